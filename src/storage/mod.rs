//! The storage contract of the registry, and its implementations.
//!
//! [`Storage`] is the specification every implementation follows. Repository names, tags and
//! digests arrive validated. Every method is safe to cancel (a dropped future leaves stored data
//! as it was before the call, or as after it, never in between), and a write becomes visible to
//! readers only when the method that makes it returns `Ok`.

pub mod containerd;
pub mod memory;

use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

use crate::digest::Digest;
use crate::error::Result;
use crate::manifest::{Descriptor, Manifest};
use crate::mapping::UploadId;
use crate::names::{Reference, RepositoryName, Tag};

/// A stream of body bytes, from a client request or to a client response.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A satisfiable byte range of a blob: `start..=end`, both within the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A blob linked in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

/// The state of an open upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    pub id: UploadId,
    /// Number of bytes received so far; the next chunk must start here.
    pub offset: u64,
}

/// A stored manifest with the media type it was pushed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

/// Reachability of the storage backend, for health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    Unavailable(String),
}

/// The store of the registry's blobs, manifests, tags and upload sessions.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Returns the size of a blob linked in `repository`. A blob stored for another repository,
    /// namespace or root is `BLOB_UNKNOWN` here.
    async fn stat_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<BlobInfo>;

    /// Streams a linked blob, or the bytes of `range`, which the caller has checked against the
    /// size from [`Storage::stat_blob`]. A blob unlinked after the stream starts is still served
    /// in full.
    async fn read_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream>;

    /// Unlinks a blob from `repository`; the bytes stay until containerd's garbage collector
    /// finds nothing else referencing them. `BLOB_UNKNOWN` when it was not linked.
    async fn delete_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()>;

    /// Links a blob that `from` holds into `repository` without sending its bytes. Returns
    /// `None` when `from` does not hold it, so the caller can open an upload instead.
    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<BlobInfo>>;

    /// Opens an upload session. It expires after the configured purge age if never committed.
    async fn start_upload(&self, repository: &RepositoryName) -> Result<UploadStatus>;

    /// Returns the offset of an open upload; `BLOB_UPLOAD_UNKNOWN` for a session that does not
    /// exist, was committed or cancelled, or belongs to another repository.
    async fn upload_status(&self, repository: &RepositoryName, id: &UploadId) -> Result<UploadStatus>;

    /// Appends `body` to an upload. `start` must equal the current offset, or the call fails with
    /// 416 and the upload is unchanged. When `length` is given, a body of another length fails
    /// with `SIZE_INVALID`; of a longer body, the first `length` bytes are written. Bytes
    /// written before a failure or cancellation stay in the session, and the new offset is
    /// reported by [`Storage::upload_status`].
    async fn write_upload(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        start: u64,
        length: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadStatus>;

    /// Appends `body` (possibly empty) and commits the upload as `digest`, then links the blob in
    /// `repository` and closes the session. On a digest mismatch the session is discarded and
    /// nothing is linked (`DIGEST_INVALID`).
    async fn commit_upload(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        digest: &Digest,
        body: ByteStream,
    ) -> Result<BlobInfo>;

    /// Discards an upload session and the bytes it received.
    async fn cancel_upload(&self, repository: &RepositoryName, id: &UploadId) -> Result<()>;

    /// Returns a manifest by tag or digest; `MANIFEST_UNKNOWN` when it is not in `repository`.
    async fn get_manifest(&self, repository: &RepositoryName, reference: &Reference) -> Result<StoredManifest>;

    /// Stores a parsed, size-checked manifest and links it in `repository`; when `tag` is given,
    /// points the tag at it. Every blob and child manifest it references must already be linked
    /// in `repository` (`MANIFEST_BLOB_UNKNOWN` otherwise). Returns the manifest's digest.
    async fn put_manifest(
        &self,
        repository: &RepositoryName,
        tag: Option<&Tag>,
        manifest: &Manifest,
        digest: &Digest,
        bytes: Bytes,
    ) -> Result<()>;

    /// Unlinks a manifest and removes every tag of `repository` that points at it.
    async fn delete_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<()>;

    /// Removes one tag; the manifest stays linked.
    async fn delete_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<()>;

    /// Lists the tags of a repository in lexical order. A repository that links no blob or
    /// manifest, such as one whose last link was deleted, is `NAME_UNKNOWN`.
    async fn list_tags(&self, repository: &RepositoryName) -> Result<Vec<Tag>>;

    /// Lists every repository of this registry's root that links a blob or manifest, in lexical
    /// order.
    async fn list_repositories(&self) -> Result<Vec<RepositoryName>>;

    /// Lists the manifests in `repository` whose `subject` is `digest`, as descriptors carrying
    /// their artifact type and annotations.
    async fn list_referrers(&self, repository: &RepositoryName, digest: &Digest) -> Result<Vec<Descriptor>>;

    /// Reports whether the backend responds.
    async fn health(&self) -> Health;
}
