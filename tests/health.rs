//! `health.storagedriver` against the registry binary: after `threshold` failed checks of
//! containerd, every request on the main port gets 503 `UNAVAILABLE`, and the registry serves
//! again once a check passes.

mod support;

use std::time::{Duration, Instant};

use support::containerd::Containerd;
use support::http::{assert_error, Registry};
use support::registry::{RegistryProcess, RegistrySettings};

/// Polls `GET /v2/` until it returns `status`, for at most `limit`.
async fn wait_for_base_status(registry: &Registry, status: u16, limit: Duration) -> support::http::Reply {
    let deadline = Instant::now() + limit;
    loop {
        let reply = registry.get("/v2/").await;
        if reply.status == status || Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn failing_storage_check_turns_main_port_unavailable() {
    let mut containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let socket = containerd.socket();
    let mut settings = RegistrySettings::new(&socket);
    settings.extra_yaml = "health:\n  storagedriver:\n    enabled: true\n    interval: 1s\n    threshold: 2\n";
    let process = RegistryProcess::start(dir.path(), &settings);
    let registry = Registry::new(process.addr);

    let blob = registry.push_blob("health/app", b"served while healthy").await;
    let blob_path = format!("/v2/health/app/blobs/{}", blob.digest);
    assert_eq!(registry.get("/v2/").await.status, 200);

    containerd.stop();
    let reply = wait_for_base_status(&registry, 503, Duration::from_secs(10)).await;
    assert_error(&reply, 503, "UNAVAILABLE");
    assert!(String::from_utf8_lossy(&reply.body).contains("health check"), "{}", String::from_utf8_lossy(&reply.body));
    // A blob the sendfile front could serve from disk is refused too while the check fails.
    assert_error(&registry.get(&blob_path).await, 503, "UNAVAILABLE");

    containerd.restart();
    let reply = wait_for_base_status(&registry, 200, Duration::from_secs(10)).await;
    assert_eq!(reply.status, 200);
    let reply = registry.get(&blob_path).await;
    assert_eq!(reply.status, 200);
    assert_eq!(&reply.body[..], b"served while healthy");
    drop(process);
}
