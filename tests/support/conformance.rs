//! One behaviour suite for every [`Storage`] implementation. Each check is written once against
//! `Arc<dyn Storage>`; `conformance_tests!` turns every check into a `#[tokio::test]` of the
//! test binary that invokes it with a backend.
//!
//! A check must remove what it creates through the storage API: delete its blobs, manifests and
//! tags, and commit or cancel its uploads. Afterwards the runner fails the test if anything is
//! left. [`Tracked`] records every upload, blob, manifest and tag the check created and looks
//! each of them up in the storage, and for the repository list, which must be empty because a
//! repository ends with its last link. The backend then reports what its own tools still see,
//! such as containerd's content, ingests, images and leases after a garbage collection.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use containerd_registry::digest::{Algorithm, Digest};
use containerd_registry::error::{ClientError, Result};
use containerd_registry::manifest::{Descriptor, Manifest, OCI_INDEX, OCI_MANIFEST};
use containerd_registry::mapping::UploadId;
use containerd_registry::names::{Reference, RepositoryName, Tag};
use super::storage_values::{blob_unknown, body, body_in_pieces, client_error, collect, data, empty_body, repo, tag};
use containerd_registry::storage::{
    BlobInfo, ByteRange, ByteStream, Health, Storage, StoredManifest, UploadStatus,
};

const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const ARTIFACT_TYPE: &str = "application/vnd.example.signature";

/// A storage implementation under test.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    fn storage(&self) -> Arc<dyn Storage>;

    /// Describes what the backend still stores after a check cleaned up, one line per object.
    /// The list is empty when nothing is left.
    async fn leftovers(&self) -> Vec<String>;
}

/// Runs one check against `backend`, then fails if the check left anything behind.
pub async fn run<B, F, Fut>(backend: B, check: F)
where
    B: Backend,
    F: FnOnce(Arc<Tracked>) -> Fut,
    Fut: Future<Output = ()>,
{
    let storage = Arc::new(Tracked::new(backend.storage()));
    check(storage.clone()).await;

    let mut left = storage.leftovers().await;
    left.extend(backend.leftovers().await);
    assert!(left.is_empty(), "the check left state behind:\n  {}", left.join("\n  "));
}

/// Generates one `#[tokio::test]` per check, each on a fresh backend from `$backend`.
#[macro_export]
macro_rules! conformance_tests {
    ($backend:expr) => {
        $crate::conformance_tests!(@each $backend;
            blob_stat_and_reads_return_pushed_bytes,
            blob_ranges_return_exact_bytes,
            empty_blob_round_trips,
            blob_of_other_repository_is_unknown,
            deleted_blob_is_unknown_and_stays_in_other_repository,
            mount_links_blob_of_source,
            mount_from_repository_without_blob_returns_none,
            upload_offsets_follow_chunks,
            chunk_out_of_order_returns_416_and_keeps_upload,
            chunk_length_mismatch_is_size_invalid,
            commit_with_wrong_digest_discards_upload,
            cancelled_upload_is_unknown,
            upload_of_another_repository_is_unknown,
            manifest_is_stored_by_tag_and_digest,
            manifest_with_missing_references_is_manifest_blob_unknown,
            manifest_with_wrong_descriptor_size_is_invalid,
            delete_manifest_removes_its_tags,
            delete_tag_keeps_manifest,
            tags_and_repositories_are_listed_in_lexical_order,
            referrers_are_listed_per_repository,
        );
    };
    (@each $backend:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::support::conformance::run($backend, $crate::support::conformance::$check).await;
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------------
// The recording wrapper

/// What a check created through the storage API.
#[derive(Default)]
struct Created {
    uploads: Vec<(RepositoryName, UploadId)>,
    blobs: Vec<(RepositoryName, Digest)>,
    manifests: Vec<(RepositoryName, Digest)>,
    tags: Vec<(RepositoryName, Tag)>,
}

/// A [`Storage`] that passes every call on and records what the calls created.
pub struct Tracked {
    inner: Arc<dyn Storage>,
    created: Mutex<Created>,
}

impl Tracked {
    fn new(inner: Arc<dyn Storage>) -> Tracked {
        Tracked { inner, created: Mutex::new(Created::default()) }
    }

    fn record(&self, change: impl FnOnce(&mut Created)) {
        change(&mut self.created.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Asks the storage for everything the check created; each must be gone.
    async fn leftovers(&self) -> Vec<String> {
        let created = std::mem::take(&mut *self.created.lock().unwrap_or_else(PoisonError::into_inner));
        let mut left = Vec::new();
        for (repository, id) in &created.uploads {
            if let Ok(status) = self.inner.upload_status(repository, id).await {
                left.push(format!("upload {id} of {repository} is open at offset {}", status.offset));
            }
        }
        for (repository, digest) in &created.blobs {
            if let Ok(info) = self.inner.stat_blob(repository, digest).await {
                left.push(format!("blob {digest} ({} bytes) is linked in {repository}", info.size));
            }
        }
        for (repository, digest) in &created.manifests {
            if self.inner.get_manifest(repository, &Reference::Digest(digest.clone())).await.is_ok() {
                left.push(format!("manifest {digest} is linked in {repository}"));
            }
        }
        for (repository, tag) in &created.tags {
            if self.inner.get_manifest(repository, &Reference::Tag(tag.clone())).await.is_ok() {
                left.push(format!("tag {repository}:{tag} exists"));
            }
        }
        match self.inner.list_repositories().await {
            Ok(repositories) if repositories.is_empty() => {}
            Ok(repositories) => left.push(format!("repositories are listed: {repositories:?}")),
            Err(error) => left.push(format!("listing repositories failed: {error}")),
        }
        left
    }
}

#[async_trait::async_trait]
impl Storage for Tracked {
    async fn stat_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<BlobInfo> {
        self.inner.stat_blob(repository, digest).await
    }

    async fn read_blob(&self, repository: &RepositoryName, digest: &Digest, range: Option<ByteRange>) -> Result<ByteStream> {
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
        self.record(|created| created.blobs.push((repository.clone(), digest.clone())));
        self.inner.mount_blob(repository, from, digest).await
    }

    async fn start_upload(&self, repository: &RepositoryName) -> Result<UploadStatus> {
        let status = self.inner.start_upload(repository).await?;
        self.record(|created| created.uploads.push((repository.clone(), status.id.clone())));
        Ok(status)
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
        self.record(|created| created.blobs.push((repository.clone(), digest.clone())));
        self.inner.commit_upload(repository, id, digest, body).await
    }

    async fn cancel_upload(&self, repository: &RepositoryName, id: &UploadId) -> Result<()> {
        self.inner.cancel_upload(repository, id).await
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
        self.record(|created| {
            created.manifests.push((repository.clone(), digest.clone()));
            created.tags.extend(tag.map(|tag| (repository.clone(), tag.clone())));
        });
        self.inner.put_manifest(repository, tag, manifest, digest, bytes).await
    }

    async fn delete_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        self.inner.delete_manifest(repository, digest).await
    }

    async fn delete_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<()> {
        self.inner.delete_tag(repository, tag).await
    }

    async fn list_tags(&self, repository: &RepositoryName) -> Result<Vec<Tag>> {
        self.inner.list_tags(repository).await
    }

    async fn list_repositories(&self) -> Result<Vec<RepositoryName>> {
        self.inner.list_repositories().await
    }

    async fn list_referrers(&self, repository: &RepositoryName, digest: &Digest) -> Result<Vec<Descriptor>> {
        self.inner.list_referrers(repository, digest).await
    }

    async fn health(&self) -> Health {
        self.inner.health().await
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

type S = Arc<Tracked>;

fn upload_unknown(repository: &str, id: &UploadId) -> ClientError {
    ClientError::UploadUnknown { repository: repository.to_owned(), id: id.to_string() }
}

fn manifest_unknown(repository: &str, reference: &dyn std::fmt::Display) -> ClientError {
    ClientError::ManifestUnknown { repository: repository.to_owned(), reference: reference.to_string() }
}

async fn push_blob(storage: &S, repository: &str, bytes: &[u8]) -> Digest {
    let digest = Digest::sha256(bytes);
    let upload = storage.start_upload(&repo(repository)).await.expect("start an upload");
    let info = storage.commit_upload(&repo(repository), &upload.id, &digest, body(bytes)).await.expect("commit");
    assert_eq!(info, BlobInfo { digest: digest.clone(), size: bytes.len() as u64 });
    digest
}

async fn read_blob(storage: &S, repository: &str, digest: &Digest, range: Option<ByteRange>) -> Vec<u8> {
    collect(storage.read_blob(&repo(repository), digest, range).await.expect("read the blob")).await
}

async fn delete_blobs(storage: &S, repository: &str, digests: &[&Digest]) {
    for digest in digests {
        storage.delete_blob(&repo(repository), digest).await.expect("delete a blob");
    }
}

/// A manifest body, with its parsed form and digest.
struct TestManifest {
    bytes: Bytes,
    manifest: Manifest,
    digest: Digest,
    /// The blobs it references, which the test pushed.
    blobs: Vec<Digest>,
}

fn descriptor_json(media_type: &str, digest: &Digest, size: usize) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": digest.to_string(), "size": size })
}

fn finish_manifest(value: serde_json::Value, blobs: Vec<Digest>) -> TestManifest {
    let bytes = Bytes::from(serde_json::to_vec(&value).unwrap());
    let manifest = Manifest::parse(&bytes, None).expect("the test manifest parses");
    let digest = Digest::compute(Algorithm::Sha256, &bytes);
    TestManifest { bytes, manifest, digest, blobs }
}

fn image_manifest(config: (&Digest, usize), layers: &[(&Digest, usize)]) -> TestManifest {
    let layer_json: Vec<_> = layers.iter().map(|(digest, size)| descriptor_json(LAYER_TYPE, digest, *size)).collect();
    let mut blobs = vec![config.0.clone()];
    blobs.extend(layers.iter().map(|(digest, _)| (*digest).clone()));
    finish_manifest(
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor_json(CONFIG_TYPE, config.0, config.1),
            "layers": layer_json,
        }),
        blobs,
    )
}

/// Pushes a config and one layer, and returns an image manifest over them, not yet stored.
async fn push_image_blobs(storage: &S, repository: &str, seed: u8) -> TestManifest {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#).into_bytes();
    let layer = data(seed, 100 * 1024);
    let config_digest = push_blob(storage, repository, &config).await;
    let layer_digest = push_blob(storage, repository, &layer).await;
    image_manifest((&config_digest, config.len()), &[(&layer_digest, layer.len())])
}

async fn put(storage: &S, repository: &str, tag_name: Option<&str>, manifest: &TestManifest) -> Result<()> {
    let tag = tag_name.map(tag);
    storage
        .put_manifest(&repo(repository), tag.as_ref(), &manifest.manifest, &manifest.digest, manifest.bytes.clone())
        .await
}

/// Deletes a manifest and then the blobs it references.
async fn delete_image(storage: &S, repository: &str, manifest: &TestManifest) {
    storage.delete_manifest(&repo(repository), &manifest.digest).await.expect("delete the manifest");
    delete_blobs(storage, repository, &manifest.blobs.iter().collect::<Vec<_>>()).await;
}

// ---------------------------------------------------------------------------------------------
// Blobs

pub async fn blob_stat_and_reads_return_pushed_bytes(storage: S) {
    let bytes = data(1, 300_000);
    let digest = push_blob(&storage, "blobs/app", &bytes).await;

    let info = storage.stat_blob(&repo("blobs/app"), &digest).await.unwrap();
    assert_eq!(info, BlobInfo { digest: digest.clone(), size: bytes.len() as u64 });
    assert!(read_blob(&storage, "blobs/app", &digest, None).await == bytes, "blob bytes differ");

    delete_blobs(&storage, "blobs/app", &[&digest]).await;
}

pub async fn blob_ranges_return_exact_bytes(storage: S) {
    let bytes = data(2, 200_000);
    let digest = push_blob(&storage, "ranges", &bytes).await;
    let last = bytes.len() as u64 - 1;

    let ranges = [(0, 0), (last, last), (0, last), (65_535, 65_536), (1_000, 150_000), (131_072, last)];
    for (start, end) in ranges {
        let part = read_blob(&storage, "ranges", &digest, Some(ByteRange { start, end })).await;
        assert!(part == bytes[start as usize..=end as usize], "range {start}-{end} differs");
    }

    delete_blobs(&storage, "ranges", &[&digest]).await;
}

pub async fn empty_blob_round_trips(storage: S) {
    let digest = push_blob(&storage, "empty", b"").await;

    assert_eq!(storage.stat_blob(&repo("empty"), &digest).await.unwrap().size, 0);
    assert_eq!(read_blob(&storage, "empty", &digest, None).await, b"");

    delete_blobs(&storage, "empty", &[&digest]).await;
}

pub async fn blob_of_other_repository_is_unknown(storage: S) {
    let digest = push_blob(&storage, "team/a", b"private layer").await;
    let never_pushed = Digest::sha256(b"never pushed");

    for (repository, digest) in [("team/b", &digest), ("team/a", &never_pushed)] {
        let expected = blob_unknown(repository, digest);
        assert_eq!(client_error(storage.stat_blob(&repo(repository), digest).await), expected);
        let read = storage.read_blob(&repo(repository), digest, None).await;
        assert_eq!(client_error(read.map(|_| ())), expected);
        assert_eq!(client_error(storage.delete_blob(&repo(repository), digest).await), expected);
    }
    assert_eq!(storage.list_repositories().await.unwrap(), vec![repo("team/a")]);

    delete_blobs(&storage, "team/a", &[&digest]).await;
}

pub async fn deleted_blob_is_unknown_and_stays_in_other_repository(storage: S) {
    let digest = push_blob(&storage, "first", b"shared bytes").await;
    assert!(storage.mount_blob(&repo("second"), &repo("first"), &digest).await.unwrap().is_some());

    storage.delete_blob(&repo("first"), &digest).await.unwrap();

    assert_eq!(client_error(storage.stat_blob(&repo("first"), &digest).await), blob_unknown("first", &digest));
    assert_eq!(client_error(storage.delete_blob(&repo("first"), &digest).await), blob_unknown("first", &digest));
    assert_eq!(read_blob(&storage, "second", &digest, None).await, b"shared bytes");
    assert_eq!(storage.list_repositories().await.unwrap(), vec![repo("second")]);

    delete_blobs(&storage, "second", &[&digest]).await;
}

pub async fn mount_links_blob_of_source(storage: S) {
    let digest = push_blob(&storage, "source", b"mounted layer").await;

    let mounted = storage.mount_blob(&repo("target"), &repo("source"), &digest).await.unwrap();
    assert_eq!(mounted, Some(BlobInfo { digest: digest.clone(), size: 13 }));
    assert_eq!(read_blob(&storage, "target", &digest, None).await, b"mounted layer");
    // Mounting again is harmless.
    assert!(storage.mount_blob(&repo("target"), &repo("source"), &digest).await.unwrap().is_some());

    delete_blobs(&storage, "source", &[&digest]).await;
    delete_blobs(&storage, "target", &[&digest]).await;
}

pub async fn mount_from_repository_without_blob_returns_none(storage: S) {
    let digest = push_blob(&storage, "holder", b"held layer").await;
    let never_pushed = Digest::sha256(b"never pushed");

    let cases = [("empty-source", &digest), ("holder", &never_pushed), ("never-seen", &never_pushed)];
    for (from, digest) in cases {
        let mounted = storage.mount_blob(&repo("target"), &repo(from), digest).await.unwrap();
        assert_eq!(mounted, None, "mount of {digest} from {from}");
        assert_eq!(client_error(storage.stat_blob(&repo("target"), digest).await), blob_unknown("target", digest));
    }
    // A mount that links nothing creates no repository.
    assert_eq!(storage.list_repositories().await.unwrap(), vec![repo("holder")]);

    delete_blobs(&storage, "holder", &[&digest]).await;
}

// ---------------------------------------------------------------------------------------------
// Uploads

pub async fn upload_offsets_follow_chunks(storage: S) {
    let repository = repo("chunked");
    let bytes = data(3, 400_000);
    let chunks = [&bytes[..10], &bytes[10..150_000], &bytes[150_000..300_000], &bytes[300_000..]];

    let upload = storage.start_upload(&repository).await.unwrap();
    assert_eq!(upload.offset, 0);
    assert_eq!(storage.upload_status(&repository, &upload.id).await.unwrap(), upload);
    let mut offset = 0u64;
    for chunk in &chunks[..3] {
        let length = Some(chunk.len() as u64);
        let status = storage.write_upload(&repository, &upload.id, offset, length, body_in_pieces(chunk, 7_001)).await;
        offset += chunk.len() as u64;
        assert_eq!(status.unwrap(), UploadStatus { id: upload.id.clone(), offset });
        assert_eq!(storage.upload_status(&repository, &upload.id).await.unwrap().offset, offset);
    }
    // A chunk without a stated length is accepted too.
    let status = storage.write_upload(&repository, &upload.id, offset, None, body(&chunks[3][..50])).await.unwrap();
    assert_eq!(status.offset, offset + 50);

    let digest = Digest::sha256(&bytes);
    let info = storage.commit_upload(&repository, &upload.id, &digest, body(&chunks[3][50..])).await.unwrap();
    assert_eq!(info, BlobInfo { digest: digest.clone(), size: bytes.len() as u64 });
    assert!(read_blob(&storage, "chunked", &digest, None).await == bytes, "blob bytes differ");
    let closed = storage.upload_status(&repository, &upload.id).await;
    assert_eq!(client_error(closed), upload_unknown("chunked", &upload.id));

    delete_blobs(&storage, "chunked", &[&digest]).await;
}

pub async fn chunk_out_of_order_returns_416_and_keeps_upload(storage: S) {
    let repository = repo("ordered");
    let upload = storage.start_upload(&repository).await.unwrap();
    storage.write_upload(&repository, &upload.id, 0, None, body(b"0123456789")).await.unwrap();

    for start in [5, 11, 0] {
        let result = storage.write_upload(&repository, &upload.id, start, Some(6), body(b"abcdef")).await;
        let error = client_error(result);
        assert_eq!(error, ClientError::UploadOutOfOrder { id: upload.id.to_string(), start, offset: 10 });
        assert_eq!(error.status().as_u16(), 416);
        assert_eq!(storage.upload_status(&repository, &upload.id).await.unwrap().offset, 10, "after a chunk at {start}");
    }

    // The upload is intact: the chunk at offset 0 truncated nothing.
    let digest = Digest::sha256(b"0123456789abcdef");
    storage.commit_upload(&repository, &upload.id, &digest, body(b"abcdef")).await.unwrap();
    assert_eq!(read_blob(&storage, "ordered", &digest, None).await, b"0123456789abcdef");

    delete_blobs(&storage, "ordered", &[&digest]).await;
}

pub async fn chunk_length_mismatch_is_size_invalid(storage: S) {
    let repository = repo("sized");
    let upload = storage.start_upload(&repository).await.unwrap();

    let short = storage.write_upload(&repository, &upload.id, 0, Some(10), body(b"12345")).await;
    assert!(matches!(client_error(short), ClientError::SizeInvalid(_)));
    assert_eq!(storage.upload_status(&repository, &upload.id).await.unwrap().offset, 5);

    // Of a longer body, the stated length is written, however the body is split.
    let long = storage.write_upload(&repository, &upload.id, 5, Some(2), body(b"6789")).await;
    assert!(matches!(client_error(long), ClientError::SizeInvalid(_)));
    assert_eq!(storage.upload_status(&repository, &upload.id).await.unwrap().offset, 7);
    let long = storage.write_upload(&repository, &upload.id, 7, Some(3), body_in_pieces(b"89abc", 2)).await;
    assert!(matches!(client_error(long), ClientError::SizeInvalid(_)));
    assert_eq!(storage.upload_status(&repository, &upload.id).await.unwrap().offset, 10);

    let digest = Digest::sha256(b"123456789a");
    storage.commit_upload(&repository, &upload.id, &digest, empty_body()).await.unwrap();
    assert_eq!(read_blob(&storage, "sized", &digest, None).await, b"123456789a");

    delete_blobs(&storage, "sized", &[&digest]).await;
}

pub async fn commit_with_wrong_digest_discards_upload(storage: S) {
    let repository = repo("mismatch");
    let bytes = data(4, 100_000);
    let actual = Digest::sha256(&bytes);
    let claimed = Digest::sha256(b"something else");

    let upload = storage.start_upload(&repository).await.unwrap();
    storage.write_upload(&repository, &upload.id, 0, None, body(&bytes[..60_000])).await.unwrap();
    let result = storage.commit_upload(&repository, &upload.id, &claimed, body(&bytes[60_000..])).await;
    assert!(matches!(client_error(result), ClientError::DigestInvalid(_)));

    let status = storage.upload_status(&repository, &upload.id).await;
    assert_eq!(client_error(status), upload_unknown("mismatch", &upload.id));
    for digest in [&actual, &claimed] {
        assert_eq!(client_error(storage.stat_blob(&repository, digest).await), blob_unknown("mismatch", digest));
    }
    assert_eq!(storage.list_repositories().await.unwrap(), Vec::<RepositoryName>::new());
}

pub async fn cancelled_upload_is_unknown(storage: S) {
    let repository = repo("cancelled");
    let upload = storage.start_upload(&repository).await.unwrap();
    storage.write_upload(&repository, &upload.id, 0, None, body(b"partial")).await.unwrap();

    storage.cancel_upload(&repository, &upload.id).await.unwrap();

    let unknown = upload_unknown("cancelled", &upload.id);
    assert_eq!(client_error(storage.upload_status(&repository, &upload.id).await), unknown);
    assert_eq!(client_error(storage.write_upload(&repository, &upload.id, 7, None, body(b"x")).await), unknown);
    let commit = storage.commit_upload(&repository, &upload.id, &Digest::sha256(b"partial"), empty_body()).await;
    assert_eq!(client_error(commit), unknown);
    assert_eq!(client_error(storage.cancel_upload(&repository, &upload.id).await), unknown);
    // A session that never got a byte cancels too.
    let idle = storage.start_upload(&repository).await.unwrap();
    storage.cancel_upload(&repository, &idle.id).await.unwrap();
}

pub async fn upload_of_another_repository_is_unknown(storage: S) {
    let owner = repo("owner");
    let intruder = repo("intruder");
    let upload = storage.start_upload(&owner).await.unwrap();
    storage.write_upload(&owner, &upload.id, 0, None, body(b"owned")).await.unwrap();

    let unknown = upload_unknown("intruder", &upload.id);
    assert_eq!(client_error(storage.upload_status(&intruder, &upload.id).await), unknown);
    assert_eq!(client_error(storage.write_upload(&intruder, &upload.id, 5, None, body(b"x")).await), unknown);
    let commit = storage.commit_upload(&intruder, &upload.id, &Digest::sha256(b"owned"), empty_body()).await;
    assert_eq!(client_error(commit), unknown);
    assert_eq!(client_error(storage.cancel_upload(&intruder, &upload.id).await), unknown);
    let never_started = UploadId::random();
    let status = storage.upload_status(&owner, &never_started).await;
    assert_eq!(client_error(status), upload_unknown("owner", &never_started));

    // The owner's session is untouched.
    assert_eq!(storage.upload_status(&owner, &upload.id).await.unwrap().offset, 5);
    storage.cancel_upload(&owner, &upload.id).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Manifests and tags

pub async fn manifest_is_stored_by_tag_and_digest(storage: S) {
    let manifest = push_image_blobs(&storage, "library/app", 5).await;
    put(&storage, "library/app", Some("v1"), &manifest).await.unwrap();

    let expected =
        StoredManifest { digest: manifest.digest.clone(), media_type: OCI_MANIFEST.to_owned(), bytes: manifest.bytes.clone() };
    let by_tag = storage.get_manifest(&repo("library/app"), &Reference::Tag(tag("v1"))).await.unwrap();
    assert_eq!(by_tag, expected);
    let by_digest = storage.get_manifest(&repo("library/app"), &Reference::Digest(manifest.digest.clone())).await;
    assert_eq!(by_digest.unwrap(), expected);
    // Another repository does not see it.
    let elsewhere = storage.get_manifest(&repo("other"), &Reference::Digest(manifest.digest.clone())).await;
    assert_eq!(client_error(elsewhere), manifest_unknown("other", &manifest.digest));
    // A blob that is not a manifest is not served as one.
    let layer = &manifest.blobs[1];
    let as_manifest = storage.get_manifest(&repo("library/app"), &Reference::Digest(layer.clone())).await;
    assert_eq!(client_error(as_manifest), manifest_unknown("library/app", layer));

    delete_image(&storage, "library/app", &manifest).await;
}

pub async fn manifest_with_missing_references_is_manifest_blob_unknown(storage: S) {
    let config = push_blob(&storage, "incomplete", b"{}").await;
    let missing = Digest::sha256(b"layer never pushed");
    let manifest = image_manifest((&config, 2), &[(&missing, 18)]);
    let expected = ClientError::ManifestBlobUnknown { repository: "incomplete".into(), digest: missing.clone() };
    assert_eq!(client_error(put(&storage, "incomplete", Some("v1"), &manifest).await), expected);

    // A layer linked only in another repository is missing here too.
    let elsewhere = push_blob(&storage, "other", b"layer elsewhere").await;
    let manifest = image_manifest((&config, 2), &[(&elsewhere, 15)]);
    let expected = ClientError::ManifestBlobUnknown { repository: "incomplete".into(), digest: elsewhere.clone() };
    assert_eq!(client_error(put(&storage, "incomplete", None, &manifest).await), expected);

    // An index needs its child manifests linked, not just pushed as blobs elsewhere.
    let child = push_image_blobs(&storage, "incomplete", 6).await;
    let index = finish_manifest(
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor_json(OCI_MANIFEST, &child.digest, child.bytes.len())],
        }),
        Vec::new(),
    );
    let expected = ClientError::ManifestBlobUnknown { repository: "incomplete".into(), digest: child.digest.clone() };
    assert_eq!(client_error(put(&storage, "incomplete", Some("multi"), &index).await), expected);

    for reference in ["v1", "multi"] {
        let unknown = storage.get_manifest(&repo("incomplete"), &Reference::Tag(tag(reference))).await;
        assert_eq!(client_error(unknown), manifest_unknown("incomplete", &reference));
    }
    assert_eq!(storage.list_tags(&repo("incomplete")).await.unwrap(), Vec::<Tag>::new());

    // With the child linked, the index is stored.
    put(&storage, "incomplete", None, &child).await.unwrap();
    put(&storage, "incomplete", Some("multi"), &index).await.unwrap();
    let stored = storage.get_manifest(&repo("incomplete"), &Reference::Tag(tag("multi"))).await.unwrap();
    assert_eq!(stored.media_type, OCI_INDEX);

    storage.delete_manifest(&repo("incomplete"), &index.digest).await.unwrap();
    delete_image(&storage, "incomplete", &child).await;
    delete_blobs(&storage, "incomplete", &[&config]).await;
    delete_blobs(&storage, "other", &[&elsewhere]).await;
}

pub async fn manifest_with_wrong_descriptor_size_is_invalid(storage: S) {
    let config = push_blob(&storage, "sizes", b"{}").await;
    let layer = push_blob(&storage, "sizes", b"twelve bytes").await;

    for manifest in [image_manifest((&config, 2), &[(&layer, 1)]), image_manifest((&config, 3), &[(&layer, 12)])] {
        let result = put(&storage, "sizes", Some("v1"), &manifest).await;
        assert!(matches!(client_error(result), ClientError::ManifestInvalid(_)));
        let unknown = storage.get_manifest(&repo("sizes"), &Reference::Digest(manifest.digest.clone())).await;
        assert_eq!(client_error(unknown), manifest_unknown("sizes", &manifest.digest));
    }
    assert_eq!(storage.list_tags(&repo("sizes")).await.unwrap(), Vec::<Tag>::new());

    delete_blobs(&storage, "sizes", &[&config, &layer]).await;
}

pub async fn delete_manifest_removes_its_tags(storage: S) {
    let first = push_image_blobs(&storage, "apps/web", 7).await;
    let second = push_image_blobs(&storage, "apps/web", 8).await;
    for name in ["v1", "latest"] {
        put(&storage, "apps/web", Some(name), &first).await.unwrap();
    }
    put(&storage, "apps/web", Some("v2"), &second).await.unwrap();

    storage.delete_manifest(&repo("apps/web"), &first.digest).await.unwrap();

    assert_eq!(storage.list_tags(&repo("apps/web")).await.unwrap(), vec![tag("v2")]);
    for name in ["v1", "latest"] {
        let gone = storage.get_manifest(&repo("apps/web"), &Reference::Tag(tag(name))).await;
        assert_eq!(client_error(gone), manifest_unknown("apps/web", &name));
    }
    let gone = storage.get_manifest(&repo("apps/web"), &Reference::Digest(first.digest.clone())).await;
    assert_eq!(client_error(gone), manifest_unknown("apps/web", &first.digest));
    let again = storage.delete_manifest(&repo("apps/web"), &first.digest).await;
    assert_eq!(client_error(again), manifest_unknown("apps/web", &first.digest));
    let kept = storage.get_manifest(&repo("apps/web"), &Reference::Tag(tag("v2"))).await.unwrap();
    assert_eq!(kept.digest, second.digest);

    delete_blobs(&storage, "apps/web", &first.blobs.iter().collect::<Vec<_>>()).await;
    delete_image(&storage, "apps/web", &second).await;
}

pub async fn delete_tag_keeps_manifest(storage: S) {
    let manifest = push_image_blobs(&storage, "tagged", 9).await;
    put(&storage, "tagged", Some("v1"), &manifest).await.unwrap();

    storage.delete_tag(&repo("tagged"), &tag("v1")).await.unwrap();

    let gone = storage.get_manifest(&repo("tagged"), &Reference::Tag(tag("v1"))).await;
    assert_eq!(client_error(gone), manifest_unknown("tagged", &"v1"));
    let again = storage.delete_tag(&repo("tagged"), &tag("v1")).await;
    assert_eq!(client_error(again), manifest_unknown("tagged", &"v1"));
    let never = storage.delete_tag(&repo("never-seen"), &tag("v1")).await;
    assert_eq!(client_error(never), manifest_unknown("never-seen", &"v1"));
    let kept = storage.get_manifest(&repo("tagged"), &Reference::Digest(manifest.digest.clone())).await.unwrap();
    assert_eq!(kept.bytes, manifest.bytes);
    assert_eq!(storage.list_tags(&repo("tagged")).await.unwrap(), Vec::<Tag>::new());

    delete_image(&storage, "tagged", &manifest).await;
}

pub async fn tags_and_repositories_are_listed_in_lexical_order(storage: S) {
    let unknown = storage.list_tags(&repo("b")).await;
    assert_eq!(client_error(unknown), ClientError::NameUnknown("b".into()));
    assert_eq!(storage.list_repositories().await.unwrap(), Vec::<RepositoryName>::new());

    let b = push_image_blobs(&storage, "b", 10).await;
    for name in ["v2", "latest", "v10", "V1", "v1"] {
        put(&storage, "b", Some(name), &b).await.unwrap();
    }
    let ab = push_image_blobs(&storage, "a/b", 11).await;
    put(&storage, "a/b", None, &ab).await.unwrap();
    let a = push_blob(&storage, "a", b"only a blob").await;

    let expected: Vec<Tag> = ["V1", "latest", "v1", "v10", "v2"].into_iter().map(tag).collect();
    assert_eq!(storage.list_tags(&repo("b")).await.unwrap(), expected);
    assert_eq!(storage.list_tags(&repo("a/b")).await.unwrap(), Vec::<Tag>::new());
    assert_eq!(storage.list_tags(&repo("a")).await.unwrap(), Vec::<Tag>::new());
    assert_eq!(storage.list_repositories().await.unwrap(), vec![repo("a"), repo("a/b"), repo("b")]);

    // A repository ends with its last link.
    delete_blobs(&storage, "a", &[&a]).await;
    assert_eq!(client_error(storage.list_tags(&repo("a")).await), ClientError::NameUnknown("a".into()));
    assert_eq!(storage.list_repositories().await.unwrap(), vec![repo("a/b"), repo("b")]);

    delete_image(&storage, "a/b", &ab).await;
    delete_image(&storage, "b", &b).await;
    assert_eq!(client_error(storage.list_tags(&repo("b")).await), ClientError::NameUnknown("b".into()));
}

pub async fn referrers_are_listed_per_repository(storage: S) {
    let subject = push_image_blobs(&storage, "signed", 12).await;
    put(&storage, "signed", Some("v1"), &subject).await.unwrap();
    let empty_config = push_blob(&storage, "signed", b"{}").await;

    let mut referrers = Vec::new();
    for signer in ["alice", "bob"] {
        let signature = push_blob(&storage, "signed", format!("signature by {signer}").as_bytes()).await;
        let referrer = finish_manifest(
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": ARTIFACT_TYPE,
                "config": descriptor_json("application/vnd.oci.empty.v1+json", &empty_config, 2),
                "layers": [descriptor_json(LAYER_TYPE, &signature, 13 + signer.len())],
                "subject": descriptor_json(OCI_MANIFEST, &subject.digest, subject.bytes.len()),
                "annotations": { "org.example.signed-by": signer },
            }),
            vec![signature],
        );
        put(&storage, "signed", None, &referrer).await.unwrap();
        referrers.push(referrer);
    }

    let mut listed = storage.list_referrers(&repo("signed"), &subject.digest).await.unwrap();
    listed.sort_by_key(|descriptor| descriptor.digest.to_string());
    let mut expected: Vec<&TestManifest> = referrers.iter().collect();
    expected.sort_by_key(|referrer| referrer.digest.to_string());
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (descriptor, referrer) in listed.iter().zip(&expected) {
        assert_eq!(descriptor.digest, referrer.digest);
        assert_eq!(descriptor.media_type, OCI_MANIFEST);
        assert_eq!(descriptor.size, referrer.bytes.len() as u64);
        assert_eq!(descriptor.artifact_type.as_deref(), Some(ARTIFACT_TYPE));
        assert_eq!(descriptor.annotations, referrer.manifest.annotations);
    }
    // Other repositories and other subjects have none.
    assert_eq!(storage.list_referrers(&repo("unsigned"), &subject.digest).await.unwrap(), vec![]);
    let layer = &subject.blobs[1];
    assert_eq!(storage.list_referrers(&repo("signed"), layer).await.unwrap(), vec![]);

    // A deleted referrer is no longer listed.
    storage.delete_manifest(&repo("signed"), &referrers[0].digest).await.unwrap();
    let listed = storage.list_referrers(&repo("signed"), &subject.digest).await.unwrap();
    assert_eq!(listed.iter().map(|descriptor| &descriptor.digest).collect::<Vec<_>>(), vec![&referrers[1].digest]);

    storage.delete_manifest(&repo("signed"), &referrers[1].digest).await.unwrap();
    for referrer in &referrers {
        delete_blobs(&storage, "signed", &referrer.blobs.iter().collect::<Vec<_>>()).await;
    }
    delete_blobs(&storage, "signed", &[&empty_config]).await;
    delete_image(&storage, "signed", &subject).await;
}
