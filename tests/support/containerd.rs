//! A private containerd for integration tests: `/usr/bin/containerd` with its own root, state
//! and sockets in a temporary directory, stopped by PID when the fixture is dropped.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::{CreateRequest, DeleteRequest};
use containerd_client::tonic::Request;

/// The containerd binary of the Debian package.
pub const CONTAINERD: &str = "/usr/bin/containerd";
/// The `ctr` binary of the same package.
pub const CTR: &str = "/usr/bin/ctr";

/// Time containerd gets to open its socket before the fixture gives up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running containerd that only this test talks to.
pub struct Containerd {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Containerd {
    /// Starts containerd and waits until its socket accepts connections.
    pub fn start() -> Containerd {
        let dir = tempfile::Builder::new().prefix("ctrd").tempdir().expect("create a temporary directory");
        fs::write(dir.path().join("config.toml"), config(dir.path())).expect("write containerd's config");
        let mut containerd = Containerd { dir, child: None };
        containerd.spawn();
        containerd
    }

    /// Returns the path of the gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// Returns containerd's root directory.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Returns the directory of containerd's content store.
    pub fn content_dir(&self) -> PathBuf {
        self.root().join("io.containerd.content.v1.content")
    }

    /// Returns the path where the content store keeps committed content with this sha256 hex.
    pub fn blob_path(&self, sha256_hex: &str) -> PathBuf {
        self.content_dir().join("blobs").join("sha256").join(sha256_hex)
    }

    /// Returns containerd's log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// Kills containerd and waits for it to exit. Its root and state stay.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Child::kill signals this child's PID only.
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_file(self.socket());
    }

    /// Stops containerd and starts it again on the same root, state and socket.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Runs containerd's garbage collector to completion: containerd collects before it returns
    /// from deleting a lease with `sync` set.
    pub async fn force_gc(&self) {
        let channel = containerd_client::connect(self.socket()).await.expect("connect to containerd");
        let mut leases = LeasesClient::new(channel);
        let id = format!("force-gc-{}", uuid::Uuid::new_v4().simple());

        let create = with_namespace(CreateRequest { id: id.clone(), labels: Default::default() });
        leases.create(create).await.expect("create a throwaway lease");
        let delete = with_namespace(DeleteRequest { id, sync: true });
        leases.delete(delete).await.expect("delete the throwaway lease with sync");
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("containerd.log"))
            .expect("open containerd's log");
        let child = Command::new(CONTAINERD)
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("start {CONTAINERD}: {error}"));
        self.child = Some(child);
        self.wait_for_socket();
    }

    fn wait_for_socket(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                return;
            }
            let exited = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!("containerd exited with {status} before opening its socket:\n{}", self.log());
            }
            if Instant::now() > deadline {
                self.stop();
                panic!("containerd did not open {} within {START_TIMEOUT:?}:\n{}", self.socket().display(), self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The namespace of the fixture's own requests; garbage collection covers every namespace.
const FIXTURE_NAMESPACE: &str = "fixture";

fn with_namespace<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("containerd-namespace", FIXTURE_NAMESPACE.parse().expect("ASCII namespace"));
    request
}

/// containerd's config: everything under `dir`, and no CRI plugin, which would want a CNI
/// setup. Snapshotters that probe kernel modules or devices are disabled too.
fn config(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        r#"version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{dir}/containerd.sock"

[ttrpc]
  address = "{dir}/containerd.sock.ttrpc"

[debug]
  address = "{dir}/debug.sock"
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"
"#
    )
}
