//! In-memory storage for tests and demos.
//!
//! [`MemoryStorage`] follows the [`Storage`] contract with the same error variants as the
//! containerd driver: blobs and manifests are content-addressed and shared, and each repository
//! links the ones it contains. Content that no repository links any more is dropped at once, in
//! place of containerd's garbage collector. Upload sessions never expire.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use futures::StreamExt;

use crate::digest::Digest;
use crate::error::{ClientError, Error, Result};
use crate::manifest::{Descriptor, Manifest};
use crate::mapping::UploadId;
use crate::names::{Reference, RepositoryName, Tag};
use crate::storage::{BlobInfo, ByteRange, ByteStream, Health, Storage, StoredManifest, UploadStatus};

/// A [`Storage`] that keeps everything in process memory behind one mutex.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    blobs: HashMap<Digest, Bytes>,
    manifests: HashMap<Digest, ManifestEntry>,
    repositories: BTreeMap<RepositoryName, Repository>,
    uploads: HashMap<UploadId, Upload>,
}

#[derive(Debug)]
struct ManifestEntry {
    stored: StoredManifest,
    subject: Option<Digest>,
    artifact_type: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
}

/// The blobs, manifests and tags of one repository. It exists while it links a blob or a manifest.
#[derive(Debug, Default)]
struct Repository {
    blobs: BTreeSet<Digest>,
    manifests: BTreeSet<Digest>,
    tags: BTreeMap<Tag, Digest>,
}

impl Repository {
    fn is_empty(&self) -> bool {
        self.blobs.is_empty() && self.manifests.is_empty()
    }
}

#[derive(Debug)]
struct Upload {
    repository: RepositoryName,
    data: Vec<u8>,
}

impl MemoryStorage {
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// Locks the state. A panic while the lock was held leaves the maps consistent, because every
    /// change is a single insert or remove, so a poisoned lock is recovered.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn repository(&self, repository: &RepositoryName) -> Option<&Repository> {
        self.repositories.get(repository)
    }

    fn upload_mut(&mut self, repository: &RepositoryName, id: &UploadId) -> Result<&mut Upload> {
        match self.uploads.get_mut(id) {
            Some(upload) if upload.repository == *repository => Ok(upload),
            _ => Err(upload_unknown(repository, id)),
        }
    }

    fn blob_is_linked(&self, repository: &RepositoryName, digest: &Digest) -> bool {
        self.repository(repository).is_some_and(|repo| repo.blobs.contains(digest))
    }

    fn manifest_is_linked(&self, repository: &RepositoryName, digest: &Digest) -> bool {
        self.repository(repository).is_some_and(|repo| repo.manifests.contains(digest))
    }

    /// Drops a repository that links nothing, and blob or manifest content no repository links.
    fn collect_garbage(&mut self, repository: &RepositoryName) {
        if self.repository(repository).is_some_and(Repository::is_empty) {
            self.repositories.remove(repository);
        }
        let repositories = &self.repositories;
        self.blobs.retain(|digest, _| repositories.values().any(|repo| repo.blobs.contains(digest)));
        self.manifests.retain(|digest, _| repositories.values().any(|repo| repo.manifests.contains(digest)));
    }
}

fn upload_unknown(repository: &RepositoryName, id: &UploadId) -> Error {
    ClientError::UploadUnknown { repository: repository.to_string(), id: id.to_string() }.into()
}

fn blob_unknown(repository: &RepositoryName, digest: &Digest) -> Error {
    ClientError::BlobUnknown { repository: repository.to_string(), digest: digest.clone() }.into()
}

fn manifest_unknown(repository: &RepositoryName, reference: &dyn std::fmt::Display) -> Error {
    ClientError::ManifestUnknown { repository: repository.to_string(), reference: reference.to_string() }.into()
}

/// Converts a failed read of the request body into an upload error.
fn body_error(id: &UploadId, error: std::io::Error) -> Error {
    ClientError::UploadInvalid { id: id.to_string(), reason: format!("reading the request body failed: {error}") }.into()
}

impl MemoryStorage {
    /// Appends `body` to an upload chunk by chunk, so that bytes received before a failure stay in
    /// the session. Every append checks that the session still has the offset this call expects,
    /// so a concurrent write to the same session makes one of the two fail with 416.
    async fn append(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        start: u64,
        length: Option<u64>,
        mut body: ByteStream,
    ) -> Result<u64> {
        let mut offset = start;
        let mut received: u64 = 0;

        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|error| body_error(id, error))?;
            let chunk_len = chunk.len() as u64;

            let mut state = self.lock();
            let upload = state.upload_mut(repository, id)?;
            let current = upload.data.len() as u64;
            if current != offset {
                return Err(ClientError::UploadOutOfOrder { id: id.to_string(), start: offset, offset: current }.into());
            }

            received = received.saturating_add(chunk_len);
            if let Some(length) = length.filter(|length| received > *length) {
                // The declared bytes are written and the rest refused, as on containerd, so the
                // offset afterwards does not depend on how the body was split.
                let allowed = chunk_len - (received - length);
                upload.data.extend_from_slice(&chunk[..allowed as usize]);
                return Err(ClientError::SizeInvalid(format!(
                    "the request body is longer than the {length} bytes declared for upload {id}"
                ))
                .into());
            }
            upload.data.extend_from_slice(&chunk);
            offset += chunk_len;
        }

        if let Some(length) = length.filter(|length| received != *length) {
            return Err(ClientError::SizeInvalid(format!(
                "the request body has {received} bytes, but {length} were declared for upload {id}"
            ))
            .into());
        }
        Ok(offset)
    }
}

#[async_trait::async_trait]
impl Storage for MemoryStorage {
    async fn stat_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<BlobInfo> {
        let state = self.lock();
        if !state.blob_is_linked(repository, digest) {
            return Err(blob_unknown(repository, digest));
        }
        let bytes = state.blobs.get(digest).ok_or_else(|| blob_unknown(repository, digest))?;
        Ok(BlobInfo { digest: digest.clone(), size: bytes.len() as u64 })
    }

    async fn read_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream> {
        let bytes = {
            let state = self.lock();
            if !state.blob_is_linked(repository, digest) {
                return Err(blob_unknown(repository, digest));
            }
            state.blobs.get(digest).cloned().ok_or_else(|| blob_unknown(repository, digest))?
        };

        let bytes = match range {
            None => bytes,
            Some(range) => {
                let size = bytes.len() as u64;
                if range.end >= size {
                    return Err(Error::Internal(format!(
                        "range {range:?} of blob {digest} reaches past its {size} bytes; the caller must check it"
                    )));
                }
                // Both positions are below `size`, which came from a `usize`.
                bytes.slice(range.start as usize..=range.end as usize)
            }
        };

        // Several items, so that readers see a stream as they would from containerd.
        const ITEM_BYTES: usize = 64 * 1024;
        let items: Vec<std::io::Result<Bytes>> = (0..bytes.len())
            .step_by(ITEM_BYTES)
            .map(|start| Ok(bytes.slice(start..bytes.len().min(start + ITEM_BYTES))))
            .collect();
        Ok(Box::pin(futures::stream::iter(items)))
    }

    async fn delete_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        let mut state = self.lock();
        let removed = state.repositories.get_mut(repository).is_some_and(|repo| repo.blobs.remove(digest));
        if !removed {
            return Err(blob_unknown(repository, digest));
        }
        state.collect_garbage(repository);
        Ok(())
    }

    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<BlobInfo>> {
        let mut state = self.lock();
        if !state.blob_is_linked(from, digest) {
            return Ok(None);
        }
        let Some(size) = state.blobs.get(digest).map(|bytes| bytes.len() as u64) else {
            return Ok(None);
        };
        state.repositories.entry(repository.clone()).or_default().blobs.insert(digest.clone());
        Ok(Some(BlobInfo { digest: digest.clone(), size }))
    }

    async fn start_upload(&self, repository: &RepositoryName) -> Result<UploadStatus> {
        let id = UploadId::random();
        let upload = Upload { repository: repository.clone(), data: Vec::new() };
        self.lock().uploads.insert(id.clone(), upload);
        Ok(UploadStatus { id, offset: 0 })
    }

    async fn upload_status(&self, repository: &RepositoryName, id: &UploadId) -> Result<UploadStatus> {
        let mut state = self.lock();
        let upload = state.upload_mut(repository, id)?;
        Ok(UploadStatus { id: id.clone(), offset: upload.data.len() as u64 })
    }

    async fn write_upload(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        start: u64,
        length: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadStatus> {
        {
            let mut state = self.lock();
            let offset = state.upload_mut(repository, id)?.data.len() as u64;
            if start != offset {
                return Err(ClientError::UploadOutOfOrder { id: id.to_string(), start, offset }.into());
            }
        }

        let offset = self.append(repository, id, start, length, body).await?;
        Ok(UploadStatus { id: id.clone(), offset })
    }

    async fn commit_upload(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        digest: &Digest,
        body: ByteStream,
    ) -> Result<BlobInfo> {
        let start = self.upload_status(repository, id).await?.offset;
        self.append(repository, id, start, None, body).await?;

        let mut state = self.lock();
        state.upload_mut(repository, id)?;
        let upload = state.uploads.remove(id).ok_or_else(|| upload_unknown(repository, id))?;
        let actual = Digest::compute(digest.algorithm(), &upload.data);
        if actual != *digest {
            return Err(ClientError::DigestInvalid(format!(
                "upload {id} has digest {actual}, not the {digest} given to commit it"
            ))
            .into());
        }

        let size = upload.data.len() as u64;
        state.blobs.entry(digest.clone()).or_insert_with(|| Bytes::from(upload.data));
        state.repositories.entry(repository.clone()).or_default().blobs.insert(digest.clone());
        Ok(BlobInfo { digest: digest.clone(), size })
    }

    async fn cancel_upload(&self, repository: &RepositoryName, id: &UploadId) -> Result<()> {
        let mut state = self.lock();
        state.upload_mut(repository, id)?;
        state.uploads.remove(id);
        Ok(())
    }

    async fn get_manifest(&self, repository: &RepositoryName, reference: &Reference) -> Result<StoredManifest> {
        let state = self.lock();
        let repo = state.repository(repository).ok_or_else(|| manifest_unknown(repository, reference))?;
        let digest = match reference {
            Reference::Tag(tag) => repo.tags.get(tag),
            Reference::Digest(digest) => repo.manifests.get(digest),
        };
        let entry = digest
            .and_then(|digest| state.manifests.get(digest))
            .ok_or_else(|| manifest_unknown(repository, reference))?;
        Ok(entry.stored.clone())
    }

    async fn put_manifest(
        &self,
        repository: &RepositoryName,
        tag: Option<&Tag>,
        manifest: &Manifest,
        digest: &Digest,
        bytes: Bytes,
    ) -> Result<()> {
        let mut state = self.lock();

        let missing_blob = manifest.required_blobs().find(|blob| !state.blob_is_linked(repository, &blob.digest));
        let missing_child =
            manifest.children().iter().find(|child| !state.manifest_is_linked(repository, &child.digest));
        if let Some(missing) = missing_blob.or(missing_child) {
            return Err(ClientError::ManifestBlobUnknown {
                repository: repository.to_string(),
                digest: missing.digest.clone(),
            }
            .into());
        }
        for descriptor in manifest.required_blobs().chain(manifest.children()) {
            let stored_size = match state.blobs.get(&descriptor.digest) {
                Some(blob) => blob.len() as u64,
                None => state.manifests.get(&descriptor.digest).map_or(0, |entry| entry.stored.bytes.len() as u64),
            };
            if stored_size != descriptor.size {
                return Err(ClientError::ManifestInvalid(format!(
                    "descriptor of {} gives size {}, but the stored blob has {stored_size} bytes",
                    descriptor.digest, descriptor.size
                ))
                .into());
            }
        }

        let entry = ManifestEntry {
            stored: StoredManifest { digest: digest.clone(), media_type: manifest.media_type.clone(), bytes },
            subject: manifest.subject.as_ref().map(|subject| subject.digest.clone()),
            artifact_type: manifest.artifact_type.clone(),
            annotations: manifest.annotations.clone(),
        };
        state.manifests.insert(digest.clone(), entry);

        let repo = state.repositories.entry(repository.clone()).or_default();
        repo.manifests.insert(digest.clone());
        if let Some(tag) = tag {
            repo.tags.insert(tag.clone(), digest.clone());
        }
        Ok(())
    }

    async fn delete_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        let mut state = self.lock();
        let Some(repo) = state.repositories.get_mut(repository).filter(|repo| repo.manifests.contains(digest)) else {
            return Err(manifest_unknown(repository, digest));
        };
        repo.manifests.remove(digest);
        repo.tags.retain(|_, target| target != digest);
        state.collect_garbage(repository);
        Ok(())
    }

    async fn delete_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<()> {
        let mut state = self.lock();
        let removed = state.repositories.get_mut(repository).and_then(|repo| repo.tags.remove(tag));
        match removed {
            Some(_) => Ok(()),
            None => Err(manifest_unknown(repository, tag)),
        }
    }

    async fn list_tags(&self, repository: &RepositoryName) -> Result<Vec<Tag>> {
        let state = self.lock();
        let repo = state
            .repository(repository)
            .ok_or_else(|| Error::from(ClientError::NameUnknown(repository.to_string())))?;
        Ok(repo.tags.keys().cloned().collect())
    }

    async fn list_repositories(&self) -> Result<Vec<RepositoryName>> {
        Ok(self.lock().repositories.keys().cloned().collect())
    }

    async fn list_referrers(&self, repository: &RepositoryName, digest: &Digest) -> Result<Vec<Descriptor>> {
        let state = self.lock();
        let Some(repo) = state.repository(repository) else {
            return Ok(Vec::new());
        };

        let referrers = repo
            .manifests
            .iter()
            .filter_map(|linked| state.manifests.get(linked))
            .filter(|entry| entry.subject.as_ref() == Some(digest))
            .map(|entry| Descriptor {
                media_type: entry.stored.media_type.clone(),
                digest: entry.stored.digest.clone(),
                size: entry.stored.bytes.len() as u64,
                artifact_type: entry.artifact_type.clone(),
                annotations: entry.annotations.clone(),
                urls: Vec::new(),
                platform: None,
            })
            .collect();
        Ok(referrers)
    }

    async fn health(&self) -> Health {
        Health::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> RepositoryName {
        RepositoryName::parse(name).unwrap()
    }

    fn body(parts: &[&'static [u8]]) -> ByteStream {
        let items: Vec<std::io::Result<Bytes>> = parts.iter().map(|part| Ok(Bytes::from_static(part))).collect();
        Box::pin(futures::stream::iter(items))
    }

    async fn collect(stream: ByteStream) -> Vec<u8> {
        let parts: Vec<Bytes> = stream.map(|item| item.unwrap()).collect().await;
        parts.concat()
    }

    async fn push_blob(storage: &MemoryStorage, repository: &RepositoryName, data: &'static [u8]) -> Digest {
        let digest = Digest::sha256(data);
        let upload = storage.start_upload(repository).await.unwrap();
        storage.commit_upload(repository, &upload.id, &digest, body(&[data])).await.unwrap();
        digest
    }

    fn code(error: Error) -> crate::error::ErrorCode {
        error.code()
    }

    #[tokio::test]
    async fn blob_is_scoped_to_repository() {
        let storage = MemoryStorage::new();
        let digest = push_blob(&storage, &repo("a"), b"hello").await;

        assert_eq!(storage.stat_blob(&repo("a"), &digest).await.unwrap().size, 5);
        let error = storage.stat_blob(&repo("b"), &digest).await.unwrap_err();
        assert_eq!(code(error), crate::error::ErrorCode::BlobUnknown);
    }

    #[tokio::test]
    async fn read_blob_range() {
        let storage = MemoryStorage::new();
        let digest = push_blob(&storage, &repo("a"), b"0123456789").await;

        let range = ByteRange { start: 2, end: 4 };
        let stream = storage.read_blob(&repo("a"), &digest, Some(range)).await.unwrap();
        assert_eq!(collect(stream).await, b"234");
    }

    #[tokio::test]
    async fn write_upload_out_of_order_leaves_upload_unchanged() {
        let storage = MemoryStorage::new();
        let upload = storage.start_upload(&repo("a")).await.unwrap();
        storage.write_upload(&repo("a"), &upload.id, 0, Some(3), body(&[b"abc"])).await.unwrap();

        let error = storage.write_upload(&repo("a"), &upload.id, 1, None, body(&[b"x"])).await.unwrap_err();
        assert!(matches!(error, Error::Client(ClientError::UploadOutOfOrder { start: 1, offset: 3, .. })), "{error:?}");
        assert_eq!(storage.upload_status(&repo("a"), &upload.id).await.unwrap().offset, 3);
    }

    #[tokio::test]
    async fn write_upload_length_mismatch_is_size_invalid() {
        let storage = MemoryStorage::new();
        let upload = storage.start_upload(&repo("a")).await.unwrap();

        let short = storage.write_upload(&repo("a"), &upload.id, 0, Some(5), body(&[b"abc"])).await;
        assert_eq!(code(short.unwrap_err()), crate::error::ErrorCode::SizeInvalid);
        let offset = storage.upload_status(&repo("a"), &upload.id).await.unwrap().offset;
        let long = storage.write_upload(&repo("a"), &upload.id, offset, Some(1), body(&[b"ab"])).await;
        assert_eq!(code(long.unwrap_err()), crate::error::ErrorCode::SizeInvalid);
    }

    #[tokio::test]
    async fn upload_of_other_repository_is_unknown() {
        let storage = MemoryStorage::new();
        let upload = storage.start_upload(&repo("a")).await.unwrap();

        let error = storage.upload_status(&repo("b"), &upload.id).await.unwrap_err();
        assert_eq!(code(error), crate::error::ErrorCode::BlobUploadUnknown);
    }

    #[tokio::test]
    async fn commit_with_wrong_digest_discards_upload() {
        let storage = MemoryStorage::new();
        let upload = storage.start_upload(&repo("a")).await.unwrap();
        let wrong = Digest::sha256(b"other");

        let error = storage.commit_upload(&repo("a"), &upload.id, &wrong, body(&[b"data"])).await.unwrap_err();
        assert_eq!(code(error), crate::error::ErrorCode::DigestInvalid);
        let error = storage.upload_status(&repo("a"), &upload.id).await.unwrap_err();
        assert_eq!(code(error), crate::error::ErrorCode::BlobUploadUnknown);
        assert!(storage.list_repositories().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn mount_links_only_blobs_of_source() {
        let storage = MemoryStorage::new();
        let digest = push_blob(&storage, &repo("a"), b"layer").await;

        assert_eq!(storage.mount_blob(&repo("b"), &repo("c"), &digest).await.unwrap(), None);
        let mounted = storage.mount_blob(&repo("b"), &repo("a"), &digest).await.unwrap();
        assert_eq!(mounted.map(|info| info.size), Some(5));
        assert!(storage.stat_blob(&repo("b"), &digest).await.is_ok());
    }

    #[tokio::test]
    async fn deleted_blob_stays_in_other_repository() {
        let storage = MemoryStorage::new();
        let digest = push_blob(&storage, &repo("a"), b"shared").await;
        storage.mount_blob(&repo("b"), &repo("a"), &digest).await.unwrap();

        storage.delete_blob(&repo("a"), &digest).await.unwrap();
        assert!(storage.stat_blob(&repo("a"), &digest).await.is_err());
        assert!(storage.stat_blob(&repo("b"), &digest).await.is_ok());
        assert_eq!(storage.list_repositories().await.unwrap(), vec![repo("b")]);
    }

    #[tokio::test]
    async fn manifest_with_missing_blob_is_rejected() {
        let storage = MemoryStorage::new();
        let config = Digest::sha256(b"{}");
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[]}}"#,
            crate::manifest::OCI_MANIFEST
        );
        let manifest = Manifest::parse(json.as_bytes(), None).unwrap();
        let digest = Digest::sha256(json.as_bytes());
        let tag = Tag::parse("v1").unwrap();

        let error = storage
            .put_manifest(&repo("a"), Some(&tag), &manifest, &digest, Bytes::from(json.clone()))
            .await
            .unwrap_err();
        assert_eq!(code(error), crate::error::ErrorCode::ManifestBlobUnknown);

        push_blob(&storage, &repo("a"), b"{}").await;
        storage.put_manifest(&repo("a"), Some(&tag), &manifest, &digest, Bytes::from(json)).await.unwrap();
        let stored = storage.get_manifest(&repo("a"), &Reference::Tag(tag.clone())).await.unwrap();
        assert_eq!(stored.digest, digest);

        storage.delete_manifest(&repo("a"), &digest).await.unwrap();
        assert!(storage.list_tags(&repo("a")).await.unwrap().is_empty());
        let error = storage.get_manifest(&repo("a"), &Reference::Digest(digest)).await.unwrap_err();
        assert_eq!(code(error), crate::error::ErrorCode::ManifestUnknown);
    }

    #[tokio::test]
    async fn list_tags_of_unknown_repository_is_name_unknown() {
        let storage = MemoryStorage::new();
        let error = storage.list_tags(&repo("nothing")).await.unwrap_err();
        assert_eq!(code(error), crate::error::ErrorCode::NameUnknown);
    }
}
