//! A private containerd for integration tests: the binary that `CONTAINERD_BIN` names (by default
//! the Debian package's `/usr/bin/containerd`) with its own root, state and sockets in a temporary
//! directory, stopped by PID when the fixture is dropped. `CTR_BIN` names the matching `ctr`.
//!
//! The fixture writes the config format of the binary's major version: containerd 1.6 and 1.7
//! read `version = 2`, containerd 2.x reads `version = 3` and names some plugins differently.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::{CreateRequest, DeleteRequest};
use containerd_client::tonic::Request;

/// The containerd binary when `CONTAINERD_BIN` is unset: the Debian package's.
const DEFAULT_CONTAINERD: &str = "/usr/bin/containerd";
/// The `ctr` binary when `CTR_BIN` is unset: the one of the same package.
const DEFAULT_CTR: &str = "/usr/bin/ctr";

/// Returns the containerd binary under test: `CONTAINERD_BIN`, or `/usr/bin/containerd`.
pub fn containerd_bin() -> PathBuf {
    std::env::var_os("CONTAINERD_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_CONTAINERD))
}

/// The `ctr` binary that goes with it: `CTR_BIN`, or `/usr/bin/ctr`. It goes wherever a path
/// does, as in `Command::new(CTR)` or `format!("{CTR}")`.
pub const CTR: CtrBinary = CtrBinary;

/// The type of [`CTR`], which reads `CTR_BIN` once, on first use.
#[derive(Clone, Copy, Debug)]
pub struct CtrBinary;

impl CtrBinary {
    fn path(&self) -> &'static Path {
        static PATH: OnceLock<PathBuf> = OnceLock::new();
        PATH.get_or_init(|| std::env::var_os("CTR_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_CTR)))
    }
}

impl AsRef<OsStr> for CtrBinary {
    fn as_ref(&self) -> &OsStr {
        self.path().as_os_str()
    }
}

impl AsRef<Path> for CtrBinary {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl fmt::Display for CtrBinary {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.path().display().fmt(formatter)
    }
}

/// Returns the major version of the containerd under test, read once from `containerd --version`.
pub fn major_version() -> u32 {
    static MAJOR: OnceLock<u32> = OnceLock::new();
    *MAJOR.get_or_init(|| {
        let binary = containerd_bin();
        let output = Command::new(&binary)
            .arg("--version")
            .output()
            .unwrap_or_else(|error| panic!("run {} --version: {error}", binary.display()));
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{} --version failed: {}", binary.display(), String::from_utf8_lossy(&output.stderr));
        parse_major_version(&text).unwrap_or_else(|| panic!("no version in the output of {} --version: {text}", binary.display()))
    })
}

/// Parses the major version from `containerd --version` output, whose third field is the version,
/// such as `containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3` or
/// `containerd github.com/containerd/containerd/v2 2.1.9+unknown`. A leading `v` is allowed.
fn parse_major_version(output: &str) -> Option<u32> {
    let version = output.split_whitespace().nth(2)?;
    let version = version.strip_prefix('v').unwrap_or(version);
    version.split('.').next()?.parse().ok()
}

/// Time containerd gets to open its socket before the fixture gives up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running containerd that only this test talks to.
pub struct Containerd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// containerd's root when a test chose it, such as a small file system it mounted.
    custom_root: Option<PathBuf>,
}

impl Containerd {
    /// Starts containerd and waits until its socket accepts connections.
    pub fn start() -> Containerd {
        let dir = tempfile::Builder::new().prefix("ctrd").tempdir().expect("create a temporary directory");
        fs::write(dir.path().join("config.toml"), config(dir.path(), major_version())).expect("write containerd's config");
        let mut containerd = Containerd { dir, child: None, custom_root: None };
        containerd.spawn();
        containerd
    }

    /// Starts containerd with its root at `root`, an existing directory the caller owns, and
    /// everything else in a temporary directory as with [`Containerd::start`].
    pub fn start_with_root(root: &Path) -> Containerd {
        let dir = tempfile::Builder::new().prefix("ctrd").tempdir().expect("create a temporary directory");
        let default_root = format!("root = \"{}/root\"", dir.path().display());
        let config = config(dir.path(), major_version());
        assert!(config.contains(&default_root), "the config sets no root line to replace");
        let config = config.replace(&default_root, &format!("root = \"{}\"", root.display()));
        fs::write(dir.path().join("config.toml"), config).expect("write containerd's config");
        let mut containerd = Containerd { dir, child: None, custom_root: Some(root.to_owned()) };
        containerd.spawn();
        containerd
    }

    /// Returns the path of the gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// Returns containerd's root directory.
    pub fn root(&self) -> PathBuf {
        self.custom_root.clone().unwrap_or_else(|| self.dir.path().join("root"))
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
        let binary = containerd_bin();
        let child = Command::new(&binary)
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", binary.display()));
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

/// containerd's config in the format of `major`: everything under `dir`, and no CRI plugin, which
/// would want a CNI setup. Snapshotters that probe kernel modules or devices are disabled too, and
/// so is NRI, which containerd 2.x enables with a socket under `/var/run/nri`.
fn config(dir: &Path, major: u32) -> String {
    if major >= 2 {
        config_v3(dir)
    } else {
        config_v2(dir)
    }
}

/// Returns the sockets and the `opt` directory of a private containerd under `dir`: the config
/// tables that versions 2 and 3 share.
fn sockets_and_paths(dir: &std::path::Display<'_>) -> String {
    format!(
        r#"[grpc]
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

/// Returns the `version = 2` config of containerd 1.6 and 1.7.
fn config_v2(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        r#"version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

{sockets}"#,
        sockets = sockets_and_paths(&dir)
    )
}

/// Returns the `version = 3` config of containerd 2.x, where CRI is split into `io.containerd.cri.v1.*`
/// plugins beside the gRPC service, and the pod sandbox controller and its gRPC service build on
/// them.
///
/// `ctr images pull` of containerd 2.x pulls through the transfer service, which unpacks only for
/// the platform and snapshotter pairs of its `unpack_config`. The default pair names overlayfs, so
/// without the native pair below a pull with `--snapshotter native` fails with "no unpack
/// platforms defined".
fn config_v3(dir: &Path) -> String {
    let dir = dir.display();
    let platform = format!("linux/{}", oci_architecture());
    format!(
        r#"version = 3
root = "{dir}/root"
state = "{dir}/state"
temp = "{dir}/tmp"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.cri.v1.images",
  "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox",
  "io.containerd.grpc.v1.sandbox-controllers",
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.snapshotter.v1.zfs",
]

{sockets}
[plugins."io.containerd.image-verifier.v1.bindir"]
  bin_dir = "{dir}/opt/image-verifier/bin"

[[plugins."io.containerd.transfer.v1.local".unpack_config]]
  platform = "{platform}"
  snapshotter = "native"
"#,
        sockets = sockets_and_paths(&dir)
    )
}

/// Returns this machine's architecture as OCI platforms name it.
fn oci_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
