//! Blobs: content-store entries that a repository's lease lists.

use std::fs::File;

use super::blob_files::BlobFiles;
use super::content::to_u64;
use super::Inner;
use crate::digest::Digest;
use crate::error::{ClientError, Error, Result};
use crate::metrics::{count_served, ReadStrategy};
use crate::names::RepositoryName;
use crate::storage::{BlobInfo, ByteRange, ByteStream};

fn blob_unknown(repository: &RepositoryName, digest: &Digest) -> Error {
    ClientError::BlobUnknown { repository: repository.to_string(), digest: digest.clone() }.into()
}

impl Inner {
    /// Returns a linked blob's size. With the fast path on, a cached size is returned without a
    /// call to containerd, as the sendfile front does, because a digest's size never changes.
    /// A missing file shows when the body is sent, which then falls back to gRPC.
    pub(super) async fn stat_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<BlobInfo> {
        let Some(content_digest) = self.linked_content(repository, digest).await? else {
            return Err(blob_unknown(repository, digest));
        };
        if let Some(size) = self.blob_files.get().and_then(|files| files.cached_size(&content_digest)) {
            return Ok(BlobInfo { digest: digest.clone(), size });
        }
        let Some(info) = self.client.content_info(&content_digest).await? else {
            return Err(blob_unknown(repository, digest));
        };
        let size = to_u64(info.size, "content size")?;
        if let Some(files) = self.blob_files.get() {
            files.remember_size(&content_digest, size);
        }
        Ok(BlobInfo { digest: digest.clone(), size })
    }

    /// Streams a linked blob from its file in the content directory when the fast path is on,
    /// and otherwise, or when the file cannot be used, through one `content.Read` stream. Both
    /// keep the file open (or mapped) for the whole response, so a blob unlinked and collected
    /// meanwhile is still read in full.
    pub(super) async fn read_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream> {
        let Some(content_digest) = self.linked_content(repository, digest).await? else {
            return Err(blob_unknown(repository, digest));
        };
        if let Some(files) = self.blob_files.get() {
            let size = self.content_size(repository, digest, files, &content_digest).await?;
            if let Some(stream) = files.stream(&content_digest, size, range) {
                return Ok(stream);
            }
        }

        // A size of 0 reads to the end.
        let (offset, size) = range.map_or((0, 0), |range| (range.start, range.len()));
        match self.client.read_content(&content_digest, offset, size).await? {
            Some(stream) => Ok(count_served(stream, ReadStrategy::Grpc)),
            None => Err(blob_unknown(repository, digest)),
        }
    }

    /// Opens the file of a linked blob for the sendfile front, with its size. `None` when the
    /// fast path is off or the file cannot be used, in which case the caller serves the request
    /// through the regular path.
    pub(super) async fn blob_file(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<(File, u64)>> {
        let Some(files) = self.blob_files.get() else {
            return Ok(None);
        };
        let Some(content_digest) = self.linked_content(repository, digest).await? else {
            return Err(blob_unknown(repository, digest));
        };
        let size = self.content_size(repository, digest, files, &content_digest).await?;
        Ok(files.open(&content_digest, size).map(|file| (file, size)))
    }

    /// Returns the size of committed content, from the cache when it is there.
    async fn content_size(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        files: &BlobFiles,
        content_digest: &str,
    ) -> Result<u64> {
        if let Some(size) = files.cached_size(content_digest) {
            return Ok(size);
        }
        let Some(info) = self.client.content_info(content_digest).await? else {
            return Err(blob_unknown(repository, digest));
        };
        let size = to_u64(info.size, "content size")?;
        files.remember_size(content_digest, size);
        Ok(size)
    }

    pub(super) async fn delete_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        let Some(content_digest) = self.aliases.content_digest(&self.client, digest).await? else {
            return Err(blob_unknown(repository, digest));
        };
        let mut links = self.links(repository).await?;
        if !links.contains(&content_digest) {
            return Err(blob_unknown(repository, digest));
        }
        links.unlink(&self.client, &content_digest).await
    }

    /// Links a blob of `from` into `repository`. The blob is linked before its existence is
    /// checked, so that the garbage collector cannot take it between the check and the link.
    pub(super) async fn mount_blob(
        &self,
        repository: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<BlobInfo>> {
        let Some(content_digest) = self.linked_content(from, digest).await? else {
            return Ok(None);
        };

        let mut links = self.links(repository).await?;
        let was_linked = links.contains(&content_digest);
        links.link(&self.client, &content_digest).await?;

        match self.client.content_info(&content_digest).await? {
            Some(info) => Ok(Some(BlobInfo { digest: digest.clone(), size: to_u64(info.size, "content size")? })),
            None => {
                if !was_linked {
                    links.unlink(&self.client, &content_digest).await?;
                }
                Ok(None)
            }
        }
    }
}
