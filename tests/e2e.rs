//! End to end: real images built from files on this machine, pushed and pulled with skopeo and
//! ctr over loopback, against the registry binary backed by a real containerd.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use containerd_registry::digest::Digest;
use support::containerd::{Containerd, CTR};
use support::image::{build_image, ImageLayout};
use support::registry::{RegistryProcess, RegistrySettings};

/// Real directories and files of this machine that become image layers: small text files,
/// a tree with symbolic links, and a large binary.
fn layer_sources() -> Vec<&'static Path> {
    vec![Path::new("/usr/share/common-licenses"), Path::new("/etc/ssl/certs"), Path::new("/usr/bin/ctr")]
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?} did not start: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn skopeo_push(layout: &ImageLayout, destination: &str, extra: &[&str]) {
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .args(extra)
        .arg(layout.reference())
        .arg(format!("docker://{destination}")));
}

fn skopeo_pull(source: &str, dir: &Path, tag: &str) -> PathBuf {
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false", "--preserve-digests"])
        .arg(format!("docker://{source}"))
        .arg(format!("oci:{}:{tag}", dir.display())));
    dir.to_owned()
}

/// Asserts that every blob of `layout` is in the pulled layout `pulled`, byte-identical.
fn assert_blobs_identical(layout: &ImageLayout, pulled: &Path) {
    for blob in layout.blobs() {
        let original = std::fs::read(layout.dir.join("blobs/sha256").join(blob.digest.hex())).unwrap();
        let path = pulled.join("blobs/sha256").join(blob.digest.hex());
        let copy = std::fs::read(&path).unwrap_or_else(|e| panic!("pulled layout lacks {}: {e}", blob.digest));
        assert_eq!(copy.len(), original.len(), "size of {}", blob.digest);
        assert!(copy == original, "bytes of {} differ", blob.digest);
    }
}

/// Returns a `ctr` command of the containerd under test, aimed at `containerd`'s socket.
fn ctr(containerd: &Containerd, namespace: &str) -> Command {
    let mut command = Command::new(CTR);
    command.arg("--address").arg(containerd.socket()).args(["--namespace", namespace]);
    command
}

/// Pulls with containerd's own client into `namespace` of `containerd` and checks that it contains
/// every blob of the image with the right digest.
fn ctr_pull_and_verify(containerd: &Containerd, namespace: &str, reference: &str, layout: &ImageLayout) {
    run(ctr(containerd, namespace).args(["images", "pull", "--plain-http", "--snapshotter", "native", reference]));

    let images = run(ctr(containerd, namespace).args(["images", "ls"]));
    let line = images.lines().find(|line| line.starts_with(reference)).unwrap_or_else(|| panic!("{reference} not in:\n{images}"));
    assert!(line.contains(&layout.manifest.digest.to_string()), "{line}");

    for blob in layout.blobs() {
        let mut command = ctr(containerd, namespace);
        let output = command.args(["content", "get", &blob.digest.to_string()]).output().unwrap();
        assert!(output.status.success(), "ctr content get {}: {}", blob.digest, String::from_utf8_lossy(&output.stderr));
        let original = std::fs::read(layout.dir.join("blobs/sha256").join(blob.digest.hex())).unwrap();
        assert!(output.stdout == original, "containerd's copy of {} differs", blob.digest);
    }
}

#[test]
fn skopeo_and_ctr_round_trip_survives_restarts() {
    let work = tempfile::tempdir().unwrap();
    let layout = build_image(&work.path().join("image"), "v1", &layer_sources());
    assert_eq!(layout.layers.len(), 3);

    let mut containerd = Containerd::start();
    let mut registry = RegistryProcess::start(work.path(), &RegistrySettings::new(&containerd.socket()));
    let reference = format!("{}/e2e/app:v1", registry.host());

    skopeo_push(&layout, &reference, &["--preserve-digests"]);
    let pulled = skopeo_pull(&reference, &work.path().join("pulled"), "v1");
    assert_blobs_identical(&layout, &pulled);

    let images = run(ctr(&containerd, "registry").args(["images", "ls", "--quiet"]));
    assert!(images.lines().any(|name| name == "/registry//e2e/app:v1"), "tag image missing:\n{images}");

    let puller = Containerd::start();
    ctr_pull_and_verify(&puller, "pulled", &reference, &layout);
    drop(puller);

    drop(registry);
    containerd.restart();
    registry = RegistryProcess::start_with_config(&work.path().join("registry-registry.yml"));
    let reference = format!("{}/e2e/app:v1", registry.host());
    let pulled_again = skopeo_pull(&reference, &work.path().join("pulled-again"), "v1");
    assert_blobs_identical(&layout, &pulled_again);
}

#[test]
fn docker_schema2_push_and_pull() {
    let work = tempfile::tempdir().unwrap();
    let layout = build_image(&work.path().join("image"), "v1", &layer_sources()[..2]);

    let containerd = Containerd::start();
    let registry = RegistryProcess::start(work.path(), &RegistrySettings::new(&containerd.socket()));
    let reference = format!("{}/e2e/docker:v2", registry.host());

    skopeo_push(&layout, &reference, &["--format", "v2s2"]);
    let inspect = run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false"]).arg(format!("docker://{reference}")));
    let manifest: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(manifest["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");

    let pulled = skopeo_pull(&reference, &work.path().join("pulled"), "v2");
    let pushed_layers = manifest["layers"].as_array().unwrap();
    assert_eq!(pushed_layers.len(), layout.layers.len());

    // Converting to Docker schema 2 compresses the layers, so compare the decompressed bytes.
    for (pushed, original) in pushed_layers.iter().zip(&layout.layers) {
        let digest: Digest = pushed["digest"].as_str().unwrap().parse().unwrap();
        let path = pulled.join("blobs/sha256").join(digest.hex());
        let compressed = std::fs::read(&path).unwrap_or_else(|e| panic!("pulled layout lacks {digest}: {e}"));
        assert_eq!(Digest::sha256(&compressed), digest);

        let output = Command::new("gzip").arg("-dc").arg(&path).output().unwrap();
        assert!(output.status.success(), "layer {digest} is not gzip");
        let tar = std::fs::read(layout.dir.join("blobs/sha256").join(original.digest.hex())).unwrap();
        assert!(output.stdout == tar, "layer {digest} does not decompress to {}", original.digest);
    }
}

/// containerd 1.7 and 2.x create the content directory only at the first write, so a registry
/// that starts on a fresh containerd finds no directory at the path that introspection reports.
#[test]
fn check_on_fresh_containerd_reports_fast_path() {
    let work = tempfile::tempdir().unwrap();
    let containerd = Containerd::start();
    let registry = RegistryProcess::start(work.path(), &RegistrySettings::new(&containerd.socket()));

    let report = run(Command::new(env!("CARGO_BIN_EXE_containerd-registry")).arg("check").arg(&registry.config_path));
    let content_dir = format!("contentdir:  {} (from containerd introspection)", containerd.content_dir().display());
    assert!(report.contains(&content_dir), "{report}");
    assert!(report.contains("fast path:   sendfile: blobs are served from the content directory"), "{report}");
}

#[test]
fn ctr_sees_tag_moves_and_deletes() {
    let work = tempfile::tempdir().unwrap();
    let first = build_image(&work.path().join("first"), "v1", &layer_sources()[..1]);
    let second = build_image(&work.path().join("second"), "v1", &layer_sources()[1..2]);

    let containerd = Containerd::start();
    let registry = RegistryProcess::start(work.path(), &RegistrySettings::new(&containerd.socket()));
    let reference = format!("{}/e2e/moving:latest", registry.host());

    skopeo_push(&first, &reference, &["--preserve-digests"]);
    skopeo_push(&second, &reference, &["--preserve-digests"]);
    let images = run(ctr(&containerd, "registry").args(["images", "ls"]));
    let line = images.lines().find(|l| l.starts_with("/registry//e2e/moving:latest")).unwrap();
    assert!(line.contains(&second.manifest.digest.to_string()), "tag did not move: {line}");

    run(Command::new("skopeo").args(["delete", "--tls-verify=false"]).arg(format!("docker://{reference}")));
    let images = run(ctr(&containerd, "registry").args(["images", "ls", "--quiet"]));
    assert!(!images.contains("/registry//e2e/moving:latest"), "tag still listed:\n{images}");
}
