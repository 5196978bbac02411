//! `storage.maintenance.uploadpurging` against the registry binary on a private containerd: the
//! registry deletes upload sessions older than `age` every `interval`, keeps them in a dry run,
//! and never touches them when purging is disabled.

mod support;

use std::time::Duration;

use reqwest::Method;

use support::containerd::{Containerd, CTR};
use support::http::Registry;
use support::registry::{RegistryProcess, RegistrySettings};

/// Starts a registry with the given purging settings and opens one upload holding a few bytes.
/// Returns the registry process, a client, and the upload's `Location`.
async fn registry_with_upload(
    containerd: &Containerd,
    dir: &std::path::Path,
    purging: &str,
) -> (RegistryProcess, Registry, String) {
    let socket = containerd.socket();
    let mut settings = RegistrySettings::new(&socket);
    let extra = format!("  maintenance:\n    uploadpurging:\n{purging}");
    settings.extra_yaml = &extra;
    let process = RegistryProcess::start(dir, &settings);
    let registry = Registry::new(process.addr);

    let reply = registry.send(Method::POST, "/v2/sessions/app/blobs/uploads/", &[], Vec::new()).await;
    assert_eq!(reply.status, 202);
    let location = reply.header("location").unwrap().to_owned();
    let reply = registry
        .send(Method::PATCH, &location, &[("content-range", "0-4"), ("content-type", "application/octet-stream")], b"hello".to_vec())
        .await;
    assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
    (process, registry, location)
}

async fn upload_status(registry: &Registry, location: &str) -> u16 {
    registry.get(location).await.status
}

#[tokio::test]
async fn abandoned_upload_is_purged_after_age() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let purging = "      enabled: true\n      age: 2s\n      interval: 1s\n";
    let (process, registry, location) = registry_with_upload(&containerd, dir.path(), purging).await;
    assert_eq!(upload_status(&registry, &location).await, 204);

    let mut status = 204;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = upload_status(&registry, &location).await;
        if status == 404 {
            break;
        }
    }
    assert_eq!(status, 404, "upload still open after age and several intervals");
    assert!(process.drain_log().iter().any(|line| line.contains("purged an abandoned upload")));

    let output = std::process::Command::new(CTR)
        .arg("--address")
        .arg(containerd.socket())
        .args(["-n", "registry", "content", "active"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let active = String::from_utf8_lossy(&output.stdout);
    assert!(!active.contains("containerd-registry/"), "ingest left behind:\n{active}");
}

#[tokio::test]
async fn dry_run_keeps_abandoned_upload() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let purging = "      enabled: true\n      age: 1s\n      interval: 1s\n      dryrun: true\n";
    let (process, registry, location) = registry_with_upload(&containerd, dir.path(), purging).await;

    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(upload_status(&registry, &location).await, 204);
    assert!(process.drain_log().iter().any(|line| line.contains("upload would be purged (dry run)")));
}

#[tokio::test]
async fn disabled_purging_keeps_abandoned_upload() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let purging = "      enabled: false\n      age: 1s\n      interval: 1s\n";
    let (process, registry, location) = registry_with_upload(&containerd, dir.path(), purging).await;

    tokio::time::sleep(Duration::from_millis(3000)).await;
    containerd.force_gc().await;
    assert_eq!(upload_status(&registry, &location).await, 204);
    assert!(!process.drain_log().iter().any(|line| line.contains("purge")));
}
