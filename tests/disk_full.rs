//! A full disk under containerd: its root is a 16 MiB tmpfs, and a client pushes a blob larger
//! than that through the registry binary, in one POST and in chunks. The push fails with 507,
//! no partial blob becomes visible, and once the failed session is gone a smaller blob pushes.
//!
//! The tests mount a tmpfs and so need root; the mount is removed when the test ends, also when
//! it fails.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::Method;

use containerd_registry::config::{ContainerdConfig, FastPathMode, UploadPurging};
use containerd_registry::error::{ClientError, Error};
use containerd_registry::names::RepositoryName;
use containerd_registry::storage::containerd::ContainerdStorage;
use containerd_registry::storage::Storage;

use support::containerd::Containerd;
use support::http::{assert_error, data, NamespaceState, Pushed, Registry, Reply};
use support::registry::{RegistryProcess, RegistrySettings};

const MIB: usize = 1024 * 1024;
/// Size of the tmpfs under containerd's root.
const DISK: &str = "16m";
/// A blob that cannot fit on the disk.
const TOO_LARGE: usize = 24 * MIB;
const REPOSITORY: &str = "full/app";
/// The namespace of `RegistrySettings::new`.
const NAMESPACE: &str = "registry";

/// A tmpfs mounted on a directory this test created, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path) -> Tmpfs {
        fs::create_dir(path).expect("create the mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={DISK},mode=0700"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs on {} failed; the test needs root", path.display());
        Tmpfs { path: path.to_owned() }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.path).status().is_ok_and(|status| status.success());
        if !unmounted {
            // A process still holding a file there: detach the mount now, free it when they close.
            let _ = Command::new("umount").arg("--lazy").arg(&self.path).status();
        }
    }
}

/// A registry on a containerd whose root is a small tmpfs. Fields drop in order: the registry,
/// containerd, then the mount, then the directory under it.
struct FullDisk {
    registry: Registry,
    _process: RegistryProcess,
    containerd: Containerd,
    _mount: Tmpfs,
    _work: tempfile::TempDir,
}

impl FullDisk {
    fn start() -> FullDisk {
        let work = tempfile::Builder::new().prefix("diskfull").tempdir().expect("create a temporary directory");
        let mount = Tmpfs::mount(&work.path().join("root"));
        let containerd = Containerd::start_with_root(&mount.path);
        let process = RegistryProcess::start(work.path(), &RegistrySettings::new(&containerd.socket()));
        let registry = Registry::new(process.addr);
        FullDisk { registry, _process: process, containerd, _mount: mount, _work: work }
    }

    /// Asserts that the blob is unknown to the registry and to a storage client of its own.
    async fn assert_blob_unknown(&self, blob: &Pushed) {
        let reply = self.registry.send(Method::HEAD, &format!("/v2/{REPOSITORY}/blobs/{}", blob.digest), &[], vec![]).await;
        assert_eq!(reply.status, 404, "HEAD of the blob that did not fit");

        let config = ContainerdConfig {
            address: self.containerd.socket(),
            namespace: NAMESPACE.to_owned(),
            root: "/registry".to_owned(),
            content_dir: None,
            fast_path: FastPathMode::Off,
        };
        let storage = ContainerdStorage::connect(&config, &UploadPurging::default()).expect("connect to containerd");
        let repository = RepositoryName::parse(REPOSITORY).unwrap();
        match storage.stat_blob(&repository, &blob.digest).await {
            Err(Error::Client(ClientError::BlobUnknown { .. })) => {}
            other => panic!("stat_blob of the blob that did not fit: {other:?}"),
        }
    }

    fn state(&self) -> NamespaceState {
        NamespaceState::read(&self.containerd, NAMESPACE)
    }
}

/// Asserts the reply to a write that ran out of space: 507, and a message naming the cause.
#[track_caller]
fn assert_out_of_space(reply: &Reply, what: &str) {
    assert_error(reply, 507, "UNKNOWN");
    let message = reply.json()["errors"][0]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("out of space"), "{what}: the message does not name the cause: {message}");
}

/// Lines of `ctr content active` other than its header.
fn ingests(state: &NamespaceState) -> Vec<&String> {
    state.ingests.iter().filter(|line| !line.starts_with("REF")).collect()
}

#[tokio::test]
async fn oversized_monolithic_push_fails_cleanly() {
    let disk = FullDisk::start();
    let blob = Pushed::new(data(1, TOO_LARGE));

    let path = format!("/v2/{REPOSITORY}/blobs/uploads/?digest={}", blob.digest);
    let reply = disk.registry.send(Method::POST, &path, &[], blob.bytes.clone()).await;
    assert_out_of_space(&reply, "monolithic push");

    disk.assert_blob_unknown(&blob).await;
    // The registry cancelled the failed session itself, which freed its ingest.
    disk.containerd.force_gc().await;
    let state = disk.state();
    assert_eq!(state.content, Vec::<String>::new(), "content after the failed push");
    assert_eq!(ingests(&state), Vec::<&String>::new(), "ingests after the failed push");
    assert_eq!(state.leases, Vec::<String>::new(), "leases after the failed push");

    let small = disk.registry.push_blob(REPOSITORY, &data(2, MIB)).await;
    disk.registry.assert_blob(REPOSITORY, &small).await;
}

#[tokio::test]
async fn oversized_chunked_push_fails_until_cancelled() {
    let disk = FullDisk::start();
    let blob = Pushed::new(data(3, TOO_LARGE));

    let reply = disk.registry.send(Method::POST, &format!("/v2/{REPOSITORY}/blobs/uploads/"), &[], vec![]).await;
    assert_eq!(reply.status, 202, "start upload: {}", String::from_utf8_lossy(&reply.body));
    let location = reply.header("location").expect("upload Location").to_owned();

    let chunk = 4 * MIB;
    let mut failed = None;
    for start in (0..TOO_LARGE).step_by(chunk) {
        let range = format!("{start}-{}", start + chunk - 1);
        let bytes = blob.bytes[start..start + chunk].to_vec();
        let reply = disk.registry.send(Method::PATCH, &location, &[("content-range", &range)], bytes).await;
        if reply.status != 202 {
            failed = Some(reply);
            break;
        }
    }
    let reply = failed.expect("every chunk of a blob larger than the disk was accepted");
    assert_out_of_space(&reply, "chunk");

    disk.assert_blob_unknown(&blob).await;
    let state = disk.state();
    assert_eq!(state.content, Vec::<String>::new(), "content after the failed chunk");
    assert_eq!(ingests(&state).len(), 1, "the session keeps its ingest until it is cancelled: {:?}", state.ingests);

    let reply = disk.registry.delete(&location).await;
    assert_eq!(reply.status, 204, "cancel the upload: {}", String::from_utf8_lossy(&reply.body));
    disk.containerd.force_gc().await;
    let state = disk.state();
    assert_eq!(ingests(&state), Vec::<&String>::new(), "ingests after the cancel");
    assert_eq!(state.leases, Vec::<String>::new(), "leases after the cancel");

    let small = Pushed::new(data(4, 3 * MIB));
    let reply = disk.registry.send(Method::POST, &format!("/v2/{REPOSITORY}/blobs/uploads/"), &[], vec![]).await;
    let location = reply.header("location").expect("upload Location").to_owned();
    let range = format!("0-{}", small.bytes.len() - 1);
    let reply = disk.registry.send(Method::PATCH, &location, &[("content-range", &range)], small.bytes.clone()).await;
    assert_eq!(reply.status, 202, "chunk after the cancel: {}", String::from_utf8_lossy(&reply.body));
    let separator = if location.contains('?') { '&' } else { '?' };
    let reply = disk.registry.send(Method::PUT, &format!("{location}{separator}digest={}", small.digest), &[], vec![]).await;
    assert_eq!(reply.status, 201, "commit after the cancel: {}", String::from_utf8_lossy(&reply.body));
    disk.registry.assert_blob(REPOSITORY, &small).await;
}
