//! [`Storage`] on containerd: blobs and manifests in the content store, repositories as leases,
//! tags as image records, upload sessions as ingests under expiring leases.
//!
//! Every byte the registry has acknowledged is listed by a repository lease or an upload lease
//! at every instant, so containerd's garbage collector never takes it. Changes of several steps
//! (commit, manifest put, manifest delete) run in a task of their own, so a cancelled request
//! leaves them either not started or finished.
//!
//! Module map:
//! - `client`: the gRPC channel, the namespace on every request, and `tonic::Status` conversion;
//!   `metered_channel`: the timing and status count of every call; `content`, `leases`,
//!   `images`: the calls of each containerd service.
//! - `repositories`: repository leases and the cached set of content each links.
//! - `aliases`: sha512 digests resolved to the sha256 content containerd stores.
//! - `uploads`, `blobs`, `manifests`, `tags`, `referrers`: the [`Storage`] operations.

mod aliases;
mod blob_files;
mod blobs;
mod client;
mod content;
mod images;
mod leases;
mod manifests;
mod metered_channel;
mod open_writers;
mod purge;
mod referrers;
mod repositories;
mod tags;
mod uploads;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use self::aliases::Aliases;
use self::blob_files::{BlobFiles, FileReader};
use self::client::Client;
use self::open_writers::OpenWriters;
pub use self::purge::PurgeReport;
use self::repositories::Repositories;
use crate::config::{ContainerdConfig, UploadPurging};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{Descriptor, Manifest};
use crate::mapping::{Mapping, UploadId};
use crate::names::{Reference, RepositoryName, Tag};
use crate::storage::{BlobInfo, ByteRange, ByteStream, Health, Storage, StoredManifest, UploadStatus};

/// Time a health check waits for containerd's version response.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Registry storage in one containerd namespace, under one root.
#[derive(Clone)]
pub struct ContainerdStorage {
    inner: Arc<Inner>,
}

/// The state shared by every operation, and by the tasks that finish changes after their
/// caller went away.
struct Inner {
    client: Client,
    mapping: Mapping,
    /// How long an upload session lives before containerd's garbage collector purges it;
    /// `None` keeps sessions until they are committed or cancelled.
    upload_lifetime: Option<Duration>,
    repositories: Repositories,
    aliases: Aliases,
    /// Set once the content directory is known to be readable and the fast path is on.
    blob_files: std::sync::OnceLock<BlobFiles>,
    /// Upload write streams waiting for their next chunk.
    open_writers: OpenWriters,
}

impl ContainerdStorage {
    /// Prepares storage on the containerd at `config.address` without contacting it: the socket
    /// is opened on first use and reopened after containerd restarts. Must be called inside a
    /// Tokio runtime. Upload sessions expire after `purging.age` when purging is enabled and not
    /// a dry run. containerd's garbage collector then removes them on its own schedule, so
    /// `purging.interval` has no effect.
    pub fn connect(config: &ContainerdConfig, purging: &UploadPurging) -> Result<ContainerdStorage> {
        let mapping = Mapping::new(&config.root)
            .map_err(|e| Error::Internal(format!("storage.containerd.root is invalid: {e}")))?;
        let client = Client::connect_lazy(&config.address, &config.namespace)?;
        let upload_lifetime = (purging.enabled && !purging.dry_run).then_some(purging.age);

        let inner = Inner {
            client,
            mapping,
            upload_lifetime,
            repositories: Repositories::default(),
            aliases: Aliases::default(),
            blob_files: std::sync::OnceLock::new(),
            open_writers: OpenWriters::default(),
        };
        Ok(ContainerdStorage { inner: Arc::new(inner) })
    }

    /// Returns containerd's version, which also checks that containerd is reachable.
    pub async fn version(&self) -> Result<String> {
        self.inner.client.version().await
    }

    /// Returns the directory of containerd's content store as containerd reports it, or `None`
    /// when it reports none.
    pub async fn content_dir(&self) -> Result<Option<PathBuf>> {
        self.inner.client.content_root().await
    }

    /// Serves blob GETs from the files of `content_dir`, which must be containerd's content
    /// directory and readable by this process, read with io_uring when `mode` says so and
    /// mapped otherwise. Without it, or with `mode` off, every read goes through gRPC. Only the
    /// first call has an effect.
    pub fn enable_fast_path(&self, content_dir: PathBuf, mode: crate::config::FastPathMode) {
        let reader = match mode {
            crate::config::FastPathMode::Off => return,
            crate::config::FastPathMode::IoUring => FileReader::IoUring,
            crate::config::FastPathMode::Sendfile | crate::config::FastPathMode::Mmap => FileReader::Mmap,
        };
        let _ = self.inner.blob_files.set(BlobFiles::new(content_dir, reader));
    }

    /// Opens the file of a blob linked in `repository`, with its size, for serving it with
    /// `sendfile`. `None` when the fast path is off or the file cannot be used; `BLOB_UNKNOWN`
    /// when the repository does not link the blob.
    pub async fn blob_file(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<(std::fs::File, u64)>> {
        self.inner.blob_file(repository, digest).await
    }

    /// Deletes the upload sessions of this root that started more than `age` ago; with
    /// `dry_run`, only logs and counts them.
    pub async fn purge_uploads(&self, age: Duration, dry_run: bool) -> Result<PurgeReport> {
        self.inner.purge_uploads(age, dry_run).await
    }

    /// Returns the number of blob reads that fell back from the fast path to gRPC.
    pub fn fast_path_fallbacks(&self) -> u64 {
        self.inner.blob_files.get().map_or(0, BlobFiles::fallback_count)
    }

    /// Runs a change on a task of its own and waits for it. Dropping the returned future does
    /// not stop the change, so a cancelled request cannot leave it half done.
    async fn detached<T, F>(&self, change: impl FnOnce(Arc<Inner>) -> F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let task = tokio::spawn(change(self.inner.clone()));
        task.await.map_err(|e| Error::Internal(format!("storage task failed: {e}")))?
    }
}

#[async_trait::async_trait]
impl Storage for ContainerdStorage {
    async fn stat_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<BlobInfo> {
        self.inner.stat_blob(repository, digest).await
    }

    async fn read_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream> {
        self.inner.read_blob(repository, digest, range).await
    }

    async fn delete_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        self.inner.delete_blob(repository, digest).await
    }

    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<BlobInfo>> {
        let (repository, from, digest) = (repository.clone(), from.clone(), digest.clone());
        self.detached(|inner| async move { inner.mount_blob(&repository, &from, &digest).await }).await
    }

    async fn start_upload(&self, repository: &RepositoryName) -> Result<UploadStatus> {
        self.inner.start_upload(repository).await
    }

    async fn upload_status(&self, repository: &RepositoryName, id: &UploadId) -> Result<UploadStatus> {
        self.inner.upload_status(repository, id).await
    }

    async fn write_upload(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        start: u64,
        length: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadStatus> {
        self.inner.write_upload(repository, id, start, length, body).await
    }

    async fn commit_upload(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        digest: &Digest,
        body: ByteStream,
    ) -> Result<BlobInfo> {
        let (repository, id, digest) = (repository.clone(), id.clone(), digest.clone());
        self.detached(|inner| async move { inner.commit_upload(&repository, &id, &digest, body).await }).await
    }

    async fn cancel_upload(&self, repository: &RepositoryName, id: &UploadId) -> Result<()> {
        let (repository, id) = (repository.clone(), id.clone());
        self.detached(|inner| async move { inner.cancel_upload(&repository, &id).await }).await
    }

    async fn get_manifest(&self, repository: &RepositoryName, reference: &Reference) -> Result<StoredManifest> {
        self.inner.get_manifest(repository, reference).await
    }

    async fn put_manifest(
        &self,
        repository: &RepositoryName,
        tag: Option<&Tag>,
        manifest: &Manifest,
        digest: &Digest,
        bytes: Bytes,
    ) -> Result<()> {
        let (repository, tag, manifest, digest) = (repository.clone(), tag.cloned(), manifest.clone(), digest.clone());
        self.detached(
            |inner| async move { inner.put_manifest(&repository, tag.as_ref(), &manifest, &digest, bytes).await },
        )
        .await
    }

    async fn delete_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        let (repository, digest) = (repository.clone(), digest.clone());
        self.detached(|inner| async move { inner.delete_manifest(&repository, &digest).await }).await
    }

    async fn delete_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<()> {
        self.inner.delete_tag(repository, tag).await
    }

    async fn list_tags(&self, repository: &RepositoryName) -> Result<Vec<Tag>> {
        self.inner.list_tags(repository).await
    }

    async fn list_repositories(&self) -> Result<Vec<RepositoryName>> {
        self.inner.repositories.list(&self.inner.client, &self.inner.mapping).await
    }

    async fn list_referrers(&self, repository: &RepositoryName, digest: &Digest) -> Result<Vec<Descriptor>> {
        self.inner.list_referrers(repository, digest).await
    }

    async fn health(&self) -> Health {
        match tokio::time::timeout(HEALTH_TIMEOUT, self.inner.client.version()).await {
            Ok(Ok(_)) => Health::Ok,
            Ok(Err(error)) => Health::Unavailable(error.to_string()),
            Err(_) => Health::Unavailable(format!(
                "containerd did not answer a version request within {} seconds",
                HEALTH_TIMEOUT.as_secs()
            )),
        }
    }
}

impl Inner {
    /// Locks one repository's link set; see [`Repositories::lock`].
    async fn links(&self, repository: &RepositoryName) -> Result<repositories::Links> {
        self.repositories.lock(&self.client, &self.mapping, repository).await
    }

    /// Returns the containerd digest of content the repository links under `digest`, or `None`.
    async fn linked_content(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<String>> {
        let Some(content_digest) = self.aliases.content_digest(&self.client, digest).await? else {
            return Ok(None);
        };
        let linked = self.links(repository).await?.contains(&content_digest);
        Ok(linked.then_some(content_digest))
    }
}
