//! `ContainerdStorage` against a real containerd: each test starts its own daemon with a private
//! root and socket, and checks what containerd stores, what its garbage collector keeps, and
//! which error each misuse returns.

mod support;

use std::time::Duration;

use bytes::Bytes;

use containerd_registry::config::{ContainerdConfig, FastPathMode, UploadPurging};
use containerd_registry::digest::{Algorithm, Digest};
use containerd_registry::error::{ClientError, Error};
use containerd_registry::manifest::{Manifest, OCI_INDEX, OCI_MANIFEST};
use containerd_registry::mapping::UploadId;
use containerd_registry::names::{Reference, RepositoryName, Tag};
use containerd_registry::storage::containerd::ContainerdStorage;
use containerd_registry::storage::{ByteRange, Health, Storage};

use support::containerd::{Containerd, CTR};
use support::storage_values::{blob_unknown, body, body_in_pieces, client_error, collect, data, empty_body, repo, tag};

const NAMESPACE: &str = "registry-test";
const ROOT: &str = "/registry";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const ARTIFACT_TYPE: &str = "application/vnd.example.signature";

// ---------------------------------------------------------------------------------------------
// Helpers

fn storage_with(containerd: &Containerd, namespace: &str, root: &str, purging: UploadPurging) -> ContainerdStorage {
    let config = ContainerdConfig {
        address: containerd.socket(),
        namespace: namespace.to_owned(),
        root: root.to_owned(),
        content_dir: None,
        fast_path: FastPathMode::Off,
    };
    ContainerdStorage::connect(&config, &purging).expect("connect to containerd")
}

fn storage(containerd: &Containerd) -> ContainerdStorage {
    storage_with(containerd, NAMESPACE, ROOT, UploadPurging::default())
}

async fn push_blob(storage: &ContainerdStorage, repository: &str, bytes: &[u8]) -> Digest {
    let digest = Digest::sha256(bytes);
    let upload = storage.start_upload(&repo(repository)).await.expect("start upload");
    let info = storage.commit_upload(&repo(repository), &upload.id, &digest, body(bytes)).await.expect("commit upload");
    assert_eq!(info.size, bytes.len() as u64);
    digest
}

async fn read_blob(storage: &ContainerdStorage, repository: &str, digest: &Digest) -> Vec<u8> {
    collect(storage.read_blob(&repo(repository), digest, None).await.expect("read blob")).await
}

/// An image manifest body over a config and layers, with its parsed form and digest.
struct TestManifest {
    bytes: Bytes,
    manifest: Manifest,
    digest: Digest,
}

fn descriptor_json(media_type: &str, digest: &Digest, size: usize) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": digest.to_string(), "size": size })
}

fn finish_manifest(value: serde_json::Value, algorithm: Algorithm) -> TestManifest {
    let bytes = Bytes::from(serde_json::to_vec(&value).unwrap());
    let manifest = Manifest::parse(&bytes, None).expect("test manifest parses");
    let digest = Digest::compute(algorithm, &bytes);
    TestManifest { bytes, manifest, digest }
}

fn image_manifest(config: (&Digest, usize), layers: &[(&Digest, usize)]) -> TestManifest {
    let layers: Vec<_> = layers.iter().map(|(digest, size)| descriptor_json(LAYER_TYPE, digest, *size)).collect();
    finish_manifest(
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor_json(CONFIG_TYPE, config.0, config.1),
            "layers": layers,
        }),
        Algorithm::Sha256,
    )
}

async fn put(storage: &ContainerdStorage, repository: &str, tag_name: Option<&str>, manifest: &TestManifest) {
    let tag = tag_name.map(tag);
    storage
        .put_manifest(&repo(repository), tag.as_ref(), &manifest.manifest, &manifest.digest, manifest.bytes.clone())
        .await
        .expect("put manifest");
}

/// Pushes a config and one layer and returns an image manifest over them, not yet stored.
async fn push_image_blobs(storage: &ContainerdStorage, repository: &str, seed: u8) -> TestManifest {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#).into_bytes();
    let layer = data(seed, 300 * 1024);
    let config_digest = push_blob(storage, repository, &config).await;
    let layer_digest = push_blob(storage, repository, &layer).await;
    image_manifest((&config_digest, config.len()), &[(&layer_digest, layer.len())])
}

// ---------------------------------------------------------------------------------------------
// Uploads

#[tokio::test]
async fn monolithic_upload_round_trips() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let bytes = data(1, 3 * 1024 * 1024 + 17);

    let digest = push_blob(&storage, "library/app", &bytes).await;

    let info = storage.stat_blob(&repo("library/app"), &digest).await.unwrap();
    assert_eq!(info.size, bytes.len() as u64);
    assert_eq!(info.digest, digest);
    assert!(read_blob(&storage, "library/app", &digest).await == bytes, "blob bytes differ");

    let range = ByteRange { start: 1_000_000, end: 2_500_000 };
    let stream = storage.read_blob(&repo("library/app"), &digest, Some(range)).await.unwrap();
    let part = collect(stream).await;
    assert!(part == bytes[1_000_000..=2_500_000], "ranged read differs");
    assert!(containerd.blob_path(digest.hex()).exists(), "content file is missing");
}

#[tokio::test]
async fn chunked_upload_round_trips() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let repository = repo("chunked");
    let bytes = data(2, 2 * 1024 * 1024 + 5);
    let chunks = [&bytes[..10], &bytes[10..1_500_000], &bytes[1_500_000..2_000_000], &bytes[2_000_000..]];

    let upload = storage.start_upload(&repository).await.unwrap();
    assert_eq!(upload.offset, 0);
    let mut offset = 0u64;
    for (i, chunk) in chunks.iter().enumerate().take(3) {
        let status = storage
            .write_upload(&repository, &upload.id, offset, Some(chunk.len() as u64), body_in_pieces(chunk, 7_000 + i))
            .await
            .unwrap();
        offset += chunk.len() as u64;
        assert_eq!(status.offset, offset);
        assert_eq!(storage.upload_status(&repository, &upload.id).await.unwrap().offset, offset);
    }

    let digest = Digest::sha256(&bytes);
    let info = storage.commit_upload(&repository, &upload.id, &digest, body(chunks[3])).await.unwrap();
    assert_eq!(info.size, bytes.len() as u64);
    assert!(read_blob(&storage, "chunked", &digest).await == bytes, "blob bytes differ");

    let closed = storage.upload_status(&repository, &upload.id).await;
    assert_eq!(
        client_error(closed),
        ClientError::UploadUnknown { repository: "chunked".into(), id: upload.id.to_string() }
    );
}

#[tokio::test]
async fn empty_blob_round_trips() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let digest = push_blob(&storage, "empty", b"").await;

    assert_eq!(storage.stat_blob(&repo("empty"), &digest).await.unwrap().size, 0);
    assert_eq!(read_blob(&storage, "empty", &digest).await, b"");
}

#[tokio::test]
async fn concurrent_uploads_of_one_blob_all_succeed() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let bytes = data(16, 500_000);
    let digest = Digest::sha256(&bytes);

    let uploads = (0..4).map(|i| {
        let storage = storage.clone();
        let bytes = bytes.clone();
        let digest = digest.clone();
        let repository = repo(if i % 2 == 0 { "even" } else { "odd" });
        tokio::spawn(async move {
            let upload = storage.start_upload(&repository).await.unwrap();
            storage.commit_upload(&repository, &upload.id, &digest, body(&bytes)).await
        })
    });
    for result in futures::future::join_all(uploads).await {
        assert_eq!(result.unwrap().unwrap().size, bytes.len() as u64);
    }

    containerd.force_gc().await;
    for repository in ["even", "odd"] {
        assert!(read_blob(&storage, repository, &digest).await == bytes, "blob bytes differ in {repository}");
    }
}

#[tokio::test]
async fn chunk_out_of_order_is_rejected() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let repository = repo("ordered");
    let upload = storage.start_upload(&repository).await.unwrap();
    storage.write_upload(&repository, &upload.id, 0, None, body(b"0123456789")).await.unwrap();

    for start in [5, 11, 0] {
        let result = storage.write_upload(&repository, &upload.id, start, None, body(b"abcdef")).await;
        assert_eq!(
            client_error(result),
            ClientError::UploadOutOfOrder { id: upload.id.to_string(), start, offset: 10 },
            "chunk at {start}"
        );
        let status = storage.upload_status(&repository, &upload.id).await.unwrap();
        assert_eq!(status.offset, 10, "offset after a chunk at {start}");
    }

    // The upload is intact: a chunk at offset 0 did not truncate it.
    let digest = Digest::sha256(b"0123456789abcdef");
    storage.commit_upload(&repository, &upload.id, &digest, body(b"abcdef")).await.unwrap();
    assert_eq!(read_blob(&storage, "ordered", &digest).await, b"0123456789abcdef");
}

#[tokio::test]
async fn chunk_length_mismatch_is_size_invalid() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let repository = repo("sized");
    let upload = storage.start_upload(&repository).await.unwrap();

    let short = storage.write_upload(&repository, &upload.id, 0, Some(10), body(b"12345")).await;
    assert!(matches!(client_error(short), ClientError::SizeInvalid(_)));
    assert_eq!(storage.upload_status(&repository, &upload.id).await.unwrap().offset, 5);

    let long = storage.write_upload(&repository, &upload.id, 5, Some(2), body(b"6789")).await;
    assert!(matches!(client_error(long), ClientError::SizeInvalid(_)));
    // Only the stated length was written.
    assert_eq!(storage.upload_status(&repository, &upload.id).await.unwrap().offset, 7);
}

#[tokio::test]
async fn digest_mismatch_discards_upload() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let repository = repo("mismatch");
    let bytes = data(3, 100_000);
    let actual = Digest::sha256(&bytes);
    let claimed = Digest::sha256(b"something else");

    let upload = storage.start_upload(&repository).await.unwrap();
    storage.write_upload(&repository, &upload.id, 0, None, body(&bytes)).await.unwrap();
    let result = storage.commit_upload(&repository, &upload.id, &claimed, empty_body()).await;
    match client_error(result) {
        ClientError::DigestInvalid(message) => {
            assert!(message.contains(&actual.to_string()), "{message}");
            assert!(message.contains(&claimed.to_string()), "{message}");
        }
        other => panic!("expected DigestInvalid, got {other:?}"),
    }

    let status = storage.upload_status(&repository, &upload.id).await;
    assert_eq!(
        client_error(status),
        ClientError::UploadUnknown { repository: "mismatch".into(), id: upload.id.to_string() }
    );
    for digest in [&actual, &claimed] {
        assert_eq!(client_error(storage.stat_blob(&repository, digest).await), blob_unknown("mismatch", digest));
    }
    containerd.force_gc().await;
    assert!(!containerd.blob_path(actual.hex()).exists(), "mismatched bytes were committed");
    let ingests = std::fs::read_dir(containerd.content_dir().join("ingest")).map(|dir| dir.count()).unwrap_or(0);
    assert_eq!(ingests, 0, "an ingest was left behind");
}

#[tokio::test]
async fn cancelled_upload_is_unknown() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let repository = repo("cancelled");
    let upload = storage.start_upload(&repository).await.unwrap();
    storage.write_upload(&repository, &upload.id, 0, None, body(b"partial")).await.unwrap();

    storage.cancel_upload(&repository, &upload.id).await.unwrap();

    let unknown = ClientError::UploadUnknown { repository: "cancelled".into(), id: upload.id.to_string() };
    assert_eq!(client_error(storage.upload_status(&repository, &upload.id).await), unknown);
    let write = storage.write_upload(&repository, &upload.id, 0, None, body(b"x")).await;
    assert_eq!(client_error(write), unknown);
    assert_eq!(client_error(storage.cancel_upload(&repository, &upload.id).await), unknown);
}

/// The fixture starts the binary that `CONTAINERD_BIN` names, so the version containerd reports
/// over gRPC has the major version that `containerd --version` printed.
#[tokio::test]
async fn fixture_runs_selected_containerd() {
    let containerd = Containerd::start();
    let version = storage(&containerd).version().await.unwrap();

    let major = version.trim_start_matches('v').split('.').next().unwrap_or_default();
    assert_eq!(major, support::containerd::major_version().to_string(), "containerd reports version {version}");
}

/// Cancelling right after a chunk aborts an ingest whose write stream is still open. containerd
/// 1.6, 1.7 and 2.1 failed such an abort now and then with "directory not empty" while the
/// registry only dropped the stream, so the race gets many tries here.
#[tokio::test]
async fn cancel_right_after_chunk_succeeds() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let repository = repo("cancelled");

    for attempt in 0..25u8 {
        let upload = storage.start_upload(&repository).await.unwrap();
        storage.write_upload(&repository, &upload.id, 0, None, body(&data(attempt, 4096))).await.unwrap();
        let cancelled = storage.cancel_upload(&repository, &upload.id).await;
        assert!(cancelled.is_ok(), "cancel {attempt} failed: {cancelled:?}");
    }

    let ingests = std::fs::read_dir(containerd.content_dir().join("ingest")).map(|dir| dir.count()).unwrap_or(0);
    assert_eq!(ingests, 0, "an ingest was left behind");
}

#[tokio::test]
async fn upload_of_another_repository_is_unknown() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let upload = storage.start_upload(&repo("owner")).await.unwrap();

    let status = storage.upload_status(&repo("intruder"), &upload.id).await;
    assert_eq!(
        client_error(status),
        ClientError::UploadUnknown { repository: "intruder".into(), id: upload.id.to_string() }
    );
    let other_root = storage_with(&containerd, NAMESPACE, "/other", UploadPurging::default());
    let status = other_root.upload_status(&repo("owner"), &upload.id).await;
    assert!(matches!(client_error(status), ClientError::UploadUnknown { .. }));
    let never_started = storage.upload_status(&repo("owner"), &UploadId::random()).await;
    assert!(matches!(client_error(never_started), ClientError::UploadUnknown { .. }));
}

#[tokio::test]
async fn expired_upload_is_purged_by_gc() {
    let containerd = Containerd::start();
    let purging = UploadPurging { age: Duration::from_secs(1), ..UploadPurging::default() };
    let storage = storage_with(&containerd, NAMESPACE, ROOT, purging);
    let repository = repo("abandoned");
    // containerd 1.6.20 aborts collected ingests only after it walks the blobs directory, and
    // that walk fails ("lstat .../blobs: no such file or directory") until a first commit.
    push_blob(&storage, "abandoned", b"first commit").await;
    let upload = storage.start_upload(&repository).await.unwrap();
    storage.write_upload(&repository, &upload.id, 0, None, body(&data(4, 50_000))).await.unwrap();
    let ingest_dir = containerd.content_dir().join("ingest");
    assert_eq!(std::fs::read_dir(&ingest_dir).unwrap().count(), 1, "the upload has no ingest");

    // The lease expires at a whole second at most one second after it was created.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    containerd.force_gc().await;

    let status = storage.upload_status(&repository, &upload.id).await;
    assert_eq!(
        client_error(status),
        ClientError::UploadUnknown { repository: "abandoned".into(), id: upload.id.to_string() }
    );
    assert_eq!(std::fs::read_dir(&ingest_dir).unwrap().count(), 0, "the ingest was not purged");
}

#[tokio::test]
async fn upload_without_purging_survives_gc() {
    let containerd = Containerd::start();
    let purging = UploadPurging { enabled: false, age: Duration::from_secs(1), ..UploadPurging::default() };
    let storage = storage_with(&containerd, NAMESPACE, ROOT, purging);
    let repository = repo("kept");
    let upload = storage.start_upload(&repository).await.unwrap();
    storage.write_upload(&repository, &upload.id, 0, None, body(b"kept bytes")).await.unwrap();

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    containerd.force_gc().await;

    assert_eq!(storage.upload_status(&repository, &upload.id).await.unwrap().offset, 10);
}

#[tokio::test]
async fn sha512_upload_round_trips() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let repository = repo("sha512");
    let bytes = data(5, 1_200_000);
    let digest = Digest::compute(Algorithm::Sha512, &bytes);

    let upload = storage.start_upload(&repository).await.unwrap();
    storage.write_upload(&repository, &upload.id, 0, None, body(&bytes[..700_000])).await.unwrap();
    let info = storage.commit_upload(&repository, &upload.id, &digest, body(&bytes[700_000..])).await.unwrap();
    assert_eq!(info.digest, digest);
    assert_eq!(info.size, bytes.len() as u64);

    // A fresh process resolves the sha512 digest through the content label, not a cache.
    let fresh = storage_with(&containerd, NAMESPACE, ROOT, UploadPurging::default());
    containerd.force_gc().await;
    assert_eq!(fresh.stat_blob(&repository, &digest).await.unwrap().size, bytes.len() as u64);
    assert!(read_blob(&fresh, "sha512", &digest).await == bytes, "blob bytes differ");
    assert!(containerd.blob_path(Digest::sha256(&bytes).hex()).exists(), "stored under its sha256 digest");
    assert_eq!(client_error(fresh.stat_blob(&repo("other"), &digest).await), blob_unknown("other", &digest));

    // A manifest addressed by sha512 over sha512 blobs.
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = Digest::compute(Algorithm::Sha512, config);
    let upload = fresh.start_upload(&repository).await.unwrap();
    fresh.commit_upload(&repository, &upload.id, &config_digest, body(config)).await.unwrap();
    let manifest = finish_manifest(
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor_json(CONFIG_TYPE, &config_digest, config.len()),
            "layers": [descriptor_json(LAYER_TYPE, &digest, bytes.len())],
        }),
        Algorithm::Sha512,
    );
    put(&fresh, "sha512", Some("v1"), &manifest).await;
    containerd.force_gc().await;

    let by_digest = fresh.get_manifest(&repository, &Reference::Digest(manifest.digest.clone())).await.unwrap();
    assert_eq!(by_digest.bytes, manifest.bytes);
    assert_eq!(by_digest.media_type, OCI_MANIFEST);
    let by_tag = fresh.get_manifest(&repository, &Reference::Tag(tag("v1"))).await.unwrap();
    assert_eq!(by_tag.digest, manifest.digest);
    assert_eq!(by_tag.bytes, manifest.bytes);
}

#[tokio::test]
async fn sha512_mismatch_discards_upload() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let repository = repo("sha512-bad");
    let bytes = data(6, 40_000);
    let claimed = Digest::compute(Algorithm::Sha512, b"other bytes");

    let upload = storage.start_upload(&repository).await.unwrap();
    let result = storage.commit_upload(&repository, &upload.id, &claimed, body(&bytes)).await;
    match client_error(result) {
        ClientError::DigestInvalid(message) => {
            assert!(message.contains(&claimed.to_string()), "{message}");
            let actual = Digest::compute(Algorithm::Sha512, &bytes);
            assert!(message.contains(&actual.to_string()), "{message}");
        }
        other => panic!("expected DigestInvalid, got {other:?}"),
    }

    assert!(matches!(
        client_error(storage.upload_status(&repository, &upload.id).await),
        ClientError::UploadUnknown { .. }
    ));
    assert_eq!(client_error(storage.stat_blob(&repository, &claimed).await), blob_unknown("sha512-bad", &claimed));
    let sha256 = Digest::sha256(&bytes);
    assert_eq!(client_error(storage.stat_blob(&repository, &sha256).await), blob_unknown("sha512-bad", &sha256));
    containerd.force_gc().await;
    assert!(!containerd.blob_path(sha256.hex()).exists(), "rejected bytes were kept");
}

// ---------------------------------------------------------------------------------------------
// Garbage collection and isolation

#[tokio::test]
async fn acknowledged_content_survives_gc_at_every_step() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let repository = repo("library/busybox");

    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = data(7, 2 * 1024 * 1024);
    let config_digest = push_blob(&storage, "library/busybox", &config).await;
    containerd.force_gc().await;
    let layer_digest = push_blob(&storage, "library/busybox", &layer).await;
    containerd.force_gc().await;
    assert!(read_blob(&storage, "library/busybox", &config_digest).await == config, "config differs after GC");
    assert!(read_blob(&storage, "library/busybox", &layer_digest).await == layer, "layer differs after GC");

    let manifest = image_manifest((&config_digest, config.len()), &[(&layer_digest, layer.len())]);
    put(&storage, "library/busybox", None, &manifest).await;
    containerd.force_gc().await;
    let stored = storage.get_manifest(&repository, &Reference::Digest(manifest.digest.clone())).await.unwrap();
    assert_eq!(stored.bytes, manifest.bytes);
    assert_eq!(stored.media_type, OCI_MANIFEST);
    assert_eq!(stored.digest, manifest.digest);

    put(&storage, "library/busybox", Some("latest"), &manifest).await;
    containerd.force_gc().await;
    let tagged = storage.get_manifest(&repository, &Reference::Tag(tag("latest"))).await.unwrap();
    assert_eq!(tagged.bytes, manifest.bytes);
    assert_eq!(tagged.digest, manifest.digest);
    assert!(read_blob(&storage, "library/busybox", &config_digest).await == config, "config differs after GC");
    assert!(read_blob(&storage, "library/busybox", &layer_digest).await == layer, "layer differs after GC");

    // Blobs unlinked from the repository stay alive while the linked manifest references them.
    storage.delete_blob(&repository, &layer_digest).await.unwrap();
    containerd.force_gc().await;
    assert!(containerd.blob_path(layer_digest.hex()).exists(), "a referenced layer was collected");
}

#[tokio::test]
async fn blob_is_isolated_between_repositories_namespaces_and_roots() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let digest = push_blob(&storage, "team/a", b"private layer").await;
    assert_eq!(storage.stat_blob(&repo("team/a"), &digest).await.unwrap().size, 13);

    let other_namespace = storage_with(&containerd, "elsewhere", ROOT, UploadPurging::default());
    let other_root = storage_with(&containerd, NAMESPACE, "/other", UploadPurging::default());
    let cases = [(&storage, "team/b"), (&other_namespace, "team/a"), (&other_root, "team/a")];
    for (storage, repository) in cases {
        assert_eq!(
            client_error(storage.stat_blob(&repo(repository), &digest).await),
            blob_unknown(repository, &digest)
        );
        let read = storage.read_blob(&repo(repository), &digest, None).await;
        assert_eq!(client_error(read.map(|_| ())), blob_unknown(repository, &digest));
        let mounted = storage.mount_blob(&repo(repository), &repo("team/c"), &digest).await.unwrap();
        assert_eq!(mounted, None);
    }
    assert_eq!(other_root.list_repositories().await.unwrap(), Vec::<RepositoryName>::new());
    assert_eq!(other_namespace.list_repositories().await.unwrap(), Vec::<RepositoryName>::new());
}

#[tokio::test]
async fn mounted_blob_is_linked_in_target() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let digest = push_blob(&storage, "source", b"shared layer").await;

    let mounted = storage.mount_blob(&repo("target"), &repo("source"), &digest).await.unwrap();
    assert_eq!(mounted.map(|info| info.size), Some(12));
    assert_eq!(read_blob(&storage, "target", &digest).await, b"shared layer");

    // Deleting it from the source leaves the target's link.
    storage.delete_blob(&repo("source"), &digest).await.unwrap();
    containerd.force_gc().await;
    assert_eq!(read_blob(&storage, "target", &digest).await, b"shared layer");
    let missing = Digest::sha256(b"never pushed");
    assert_eq!(storage.mount_blob(&repo("target"), &repo("source"), &missing).await.unwrap(), None);
}

#[tokio::test]
async fn deleted_blob_is_reclaimed_by_gc() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let repository = repo("deleting");
    let digest = push_blob(&storage, "deleting", &data(8, 10_000)).await;
    containerd.force_gc().await;
    assert!(containerd.blob_path(digest.hex()).exists());

    storage.delete_blob(&repository, &digest).await.unwrap();

    assert_eq!(client_error(storage.stat_blob(&repository, &digest).await), blob_unknown("deleting", &digest));
    assert_eq!(client_error(storage.delete_blob(&repository, &digest).await), blob_unknown("deleting", &digest));
    containerd.force_gc().await;
    assert!(!containerd.blob_path(digest.hex()).exists(), "unreferenced bytes were not reclaimed");
}

// ---------------------------------------------------------------------------------------------
// Manifests, tags, repositories, referrers

#[tokio::test]
async fn manifest_with_missing_layer_is_rejected() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let config_digest = push_blob(&storage, "incomplete", b"{}").await;
    let missing = Digest::sha256(b"layer never pushed");
    let manifest = image_manifest((&config_digest, 2), &[(&missing, 18)]);

    let result = storage
        .put_manifest(
            &repo("incomplete"),
            Some(&tag("v1")),
            &manifest.manifest,
            &manifest.digest,
            manifest.bytes.clone(),
        )
        .await;
    assert_eq!(
        client_error(result),
        ClientError::ManifestBlobUnknown { repository: "incomplete".into(), digest: missing.clone() }
    );

    // A layer linked only in another repository is missing here too.
    let elsewhere = push_blob(&storage, "other", b"layer elsewhere").await;
    let manifest = image_manifest((&config_digest, 2), &[(&elsewhere, 15)]);
    let result = storage
        .put_manifest(&repo("incomplete"), None, &manifest.manifest, &manifest.digest, manifest.bytes.clone())
        .await;
    assert_eq!(
        client_error(result),
        ClientError::ManifestBlobUnknown { repository: "incomplete".into(), digest: elsewhere.clone() }
    );

    let unknown = storage.get_manifest(&repo("incomplete"), &Reference::Tag(tag("v1"))).await;
    assert_eq!(
        client_error(unknown),
        ClientError::ManifestUnknown { repository: "incomplete".into(), reference: "v1".into() }
    );
}

#[tokio::test]
async fn manifest_with_wrong_layer_size_is_rejected() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let config_digest = push_blob(&storage, "sizes", b"{}").await;
    let layer = push_blob(&storage, "sizes", b"twelve bytes").await;
    let manifest = image_manifest((&config_digest, 2), &[(&layer, 1)]);

    let result = storage
        .put_manifest(&repo("sizes"), Some(&tag("v1")), &manifest.manifest, &manifest.digest, manifest.bytes.clone())
        .await;
    let ClientError::ManifestInvalid(message) = client_error(result) else { panic!("not MANIFEST_INVALID") };
    assert!(message.contains("gives size 1, but the stored blob has 12 bytes"), "{message}");
}

#[tokio::test]
async fn manifest_with_wrong_digest_is_rejected() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let manifest = push_image_blobs(&storage, "wrong", 9).await;
    let claimed = Digest::sha256(b"not the manifest");

    let result = storage.put_manifest(&repo("wrong"), None, &manifest.manifest, &claimed, manifest.bytes.clone()).await;
    assert!(matches!(client_error(result), ClientError::DigestInvalid(_)));
}

#[tokio::test]
async fn index_requires_linked_children() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let child = push_image_blobs(&storage, "multi", 10).await;
    let index = finish_manifest(
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor_json(OCI_MANIFEST, &child.digest, child.bytes.len())],
        }),
        Algorithm::Sha256,
    );

    let result = storage.put_manifest(&repo("multi"), None, &index.manifest, &index.digest, index.bytes.clone()).await;
    assert_eq!(
        client_error(result),
        ClientError::ManifestBlobUnknown { repository: "multi".into(), digest: child.digest.clone() }
    );

    put(&storage, "multi", None, &child).await;
    put(&storage, "multi", Some("latest"), &index).await;
    containerd.force_gc().await;
    let stored = storage.get_manifest(&repo("multi"), &Reference::Tag(tag("latest"))).await.unwrap();
    assert_eq!(stored.media_type, OCI_INDEX);
    assert_eq!(stored.bytes, index.bytes);

    // The index keeps its child alive after the child is unlinked.
    storage.delete_manifest(&repo("multi"), &child.digest).await.unwrap();
    containerd.force_gc().await;
    assert!(containerd.blob_path(child.digest.hex()).exists(), "a child of a linked index was collected");
}

#[tokio::test]
async fn manifest_stored_again_keeps_its_references_alive() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let manifest = push_image_blobs(&storage, "first", 17).await;
    put(&storage, "first", None, &manifest).await;

    // The second repository mounts the blobs and stores content that already exists.
    let blobs: Vec<Digest> = manifest.manifest.required_blobs().map(|blob| blob.digest.clone()).collect();
    for digest in &blobs {
        assert!(storage.mount_blob(&repo("second"), &repo("first"), digest).await.unwrap().is_some());
    }
    put(&storage, "second", Some("v1"), &manifest).await;

    for digest in &blobs {
        storage.delete_blob(&repo("first"), digest).await.unwrap();
        storage.delete_blob(&repo("second"), digest).await.unwrap();
    }
    storage.delete_manifest(&repo("first"), &manifest.digest).await.unwrap();
    containerd.force_gc().await;

    let stored = storage.get_manifest(&repo("second"), &Reference::Tag(tag("v1"))).await.unwrap();
    assert_eq!(stored.bytes, manifest.bytes);
    for digest in &blobs {
        assert!(containerd.blob_path(digest.hex()).exists(), "{digest} referenced by a linked manifest was collected");
    }
}

#[tokio::test]
async fn manifest_pushed_as_blob_first_gets_its_media_type() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let manifest = push_image_blobs(&storage, "early", 18).await;
    push_blob(&storage, "early", &manifest.bytes).await;

    put(&storage, "early", Some("v1"), &manifest).await;

    let stored = storage.get_manifest(&repo("early"), &Reference::Digest(manifest.digest.clone())).await.unwrap();
    assert_eq!(stored.media_type, OCI_MANIFEST);
    assert_eq!(stored.bytes, manifest.bytes);
}

#[tokio::test]
async fn tags_and_repositories_are_listed() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let unknown = storage.list_tags(&repo("apps/web")).await;
    assert_eq!(client_error(unknown), ClientError::NameUnknown("apps/web".into()));

    let first = push_image_blobs(&storage, "apps/web", 11).await;
    put(&storage, "apps/web", None, &first).await;
    assert_eq!(storage.list_tags(&repo("apps/web")).await.unwrap(), Vec::<Tag>::new());
    for name in ["v2", "latest", "v1"] {
        put(&storage, "apps/web", Some(name), &first).await;
    }
    let second = push_image_blobs(&storage, "apps/db", 12).await;
    put(&storage, "apps/db", Some("v1"), &second).await;

    assert_eq!(storage.list_tags(&repo("apps/web")).await.unwrap(), vec![tag("latest"), tag("v1"), tag("v2")]);
    assert_eq!(storage.list_tags(&repo("apps/db")).await.unwrap(), vec![tag("v1")]);
    assert_eq!(storage.list_repositories().await.unwrap(), vec![repo("apps/db"), repo("apps/web")]);

    // Retagging moves the tag.
    put(&storage, "apps/web", Some("v2"), &{
        let third = push_image_blobs(&storage, "apps/web", 13).await;
        put(&storage, "apps/web", None, &third).await;
        third
    })
    .await;
    let v2 = storage.get_manifest(&repo("apps/web"), &Reference::Tag(tag("v2"))).await.unwrap();
    assert_ne!(v2.digest, first.digest);

    storage.delete_tag(&repo("apps/web"), &tag("v1")).await.unwrap();
    let again = storage.delete_tag(&repo("apps/web"), &tag("v1")).await;
    assert_eq!(
        client_error(again),
        ClientError::ManifestUnknown { repository: "apps/web".into(), reference: "v1".into() }
    );
    assert_eq!(storage.list_tags(&repo("apps/web")).await.unwrap(), vec![tag("latest"), tag("v2")]);

    // Deleting a manifest removes the tags that point at it, and nothing else.
    storage.delete_manifest(&repo("apps/web"), &first.digest).await.unwrap();
    assert_eq!(storage.list_tags(&repo("apps/web")).await.unwrap(), vec![tag("v2")]);
    let gone = storage.get_manifest(&repo("apps/web"), &Reference::Digest(first.digest.clone())).await;
    assert_eq!(
        client_error(gone),
        ClientError::ManifestUnknown { repository: "apps/web".into(), reference: first.digest.to_string() }
    );
    let again = storage.delete_manifest(&repo("apps/web"), &first.digest).await;
    assert!(matches!(client_error(again), ClientError::ManifestUnknown { .. }));
    assert_eq!(storage.list_tags(&repo("apps/db")).await.unwrap(), vec![tag("v1")]);
}

#[tokio::test]
async fn tag_is_visible_to_ctr() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let manifest = push_image_blobs(&storage, "library/alpine", 14).await;
    put(&storage, "library/alpine", Some("3.19"), &manifest).await;

    let output = std::process::Command::new(CTR)
        .arg("-a")
        .arg(containerd.socket())
        .args(["-n", NAMESPACE, "images", "ls"])
        .output()
        .expect("run ctr");
    assert!(output.status.success(), "ctr failed: {}", String::from_utf8_lossy(&output.stderr));
    let listing = String::from_utf8_lossy(&output.stdout);
    let line = listing
        .lines()
        .find(|line| line.starts_with("/registry//library/alpine:3.19 "))
        .unwrap_or_else(|| panic!("tag image not listed:\n{listing}"));
    assert!(line.contains(&manifest.digest.to_string()), "{line}");
    assert!(line.contains(OCI_MANIFEST), "{line}");
}

#[tokio::test]
async fn referrers_are_listed_per_repository() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let subject = push_image_blobs(&storage, "signed", 15).await;
    put(&storage, "signed", Some("v1"), &subject).await;

    let empty_config = push_blob(&storage, "signed", b"{}").await;
    let signature = push_blob(&storage, "signed", b"signature bytes").await;
    let referrer = finish_manifest(
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": descriptor_json("application/vnd.oci.empty.v1+json", &empty_config, 2),
            "layers": [descriptor_json(LAYER_TYPE, &signature, 15)],
            "subject": descriptor_json(OCI_MANIFEST, &subject.digest, subject.bytes.len()),
            "annotations": { "org.example.signed-by": "test" },
        }),
        Algorithm::Sha256,
    );
    put(&storage, "signed", None, &referrer).await;

    let referrers = storage.list_referrers(&repo("signed"), &subject.digest).await.unwrap();
    assert_eq!(referrers.len(), 1, "{referrers:?}");
    let descriptor = &referrers[0];
    assert_eq!(descriptor.digest, referrer.digest);
    assert_eq!(descriptor.media_type, OCI_MANIFEST);
    assert_eq!(descriptor.size, referrer.bytes.len() as u64);
    assert_eq!(descriptor.artifact_type.as_deref(), Some(ARTIFACT_TYPE));
    let annotations = descriptor.annotations.as_ref().expect("annotations");
    assert_eq!(annotations.get("org.example.signed-by").map(String::as_str), Some("test"));

    // Another repository with the same subject does not see this repository's referrer.
    assert_eq!(storage.list_referrers(&repo("unsigned"), &subject.digest).await.unwrap(), vec![]);
    storage.delete_manifest(&repo("signed"), &referrer.digest).await.unwrap();
    assert_eq!(storage.list_referrers(&repo("signed"), &subject.digest).await.unwrap(), vec![]);
}

#[tokio::test]
async fn blob_pushed_as_layer_is_not_a_manifest() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);
    let digest = push_blob(&storage, "plain", b"not json at all").await;

    let result = storage.get_manifest(&repo("plain"), &Reference::Digest(digest.clone())).await;
    assert_eq!(
        client_error(result),
        ClientError::ManifestUnknown { repository: "plain".into(), reference: digest.to_string() }
    );
}

// ---------------------------------------------------------------------------------------------
// containerd itself

#[tokio::test]
async fn unreachable_containerd_is_unavailable_until_it_returns() {
    let mut containerd = Containerd::start();
    let storage = storage(&containerd);
    let digest = push_blob(&storage, "resilient", b"survives restarts").await;
    assert_eq!(storage.health().await, Health::Ok);

    containerd.stop();
    let result = storage.start_upload(&repo("resilient")).await;
    match result {
        Err(Error::Containerd { code: tonic::Code::Unavailable, .. }) => {}
        other => panic!("expected an Unavailable containerd error, got {other:?}"),
    }
    assert!(matches!(storage.health().await, Health::Unavailable(_)));

    containerd.restart();
    assert_eq!(storage.health().await, Health::Ok);
    assert_eq!(read_blob(&storage, "resilient", &digest).await, b"survives restarts");
}

#[tokio::test]
async fn content_dir_and_version_are_reported() {
    let containerd = Containerd::start();
    let storage = storage(&containerd);

    assert_eq!(storage.content_dir().await.unwrap(), Some(containerd.content_dir()));
    let version = storage.version().await.unwrap();
    assert!(!version.is_empty(), "containerd reported an empty version");
}
