//! Faults against the registry binary on a private containerd: containerd stopped while the
//! registry runs, and the registry killed with SIGKILL in the middle of a chunked upload. Nothing
//! the registry acknowledged may be lost, and both recover without an operator.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;

use support::containerd::Containerd;
use support::http::{assert_error, data, Pushed, Registry, Reply};
use support::registry::{RegistryProcess, RegistrySettings};

/// Time the registry gets to serve again after containerd is back.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(10);

const MIB: usize = 1024 * 1024;

/// Opens an upload session and returns its `Location` path.
async fn start_upload(registry: &Registry, repository: &str) -> String {
    let reply = registry.send(Method::POST, &format!("/v2/{repository}/blobs/uploads/"), &[], Vec::new()).await;
    assert_eq!(reply.status, 202, "start upload: {}", String::from_utf8_lossy(&reply.body));
    reply.header("location").expect("upload Location").to_owned()
}

/// Sends `bytes` as the chunk at `start` of an upload, with `Content-Range`.
async fn patch(registry: &Registry, location: &str, start: usize, bytes: &[u8]) -> Reply {
    let range = format!("{start}-{}", start + bytes.len() - 1);
    registry.send(Method::PATCH, location, &[("content-range", &range)], bytes.to_vec()).await
}

/// Returns the path of `location` with `digest` appended as the query of a final PUT.
fn with_digest(location: &str, digest: &impl std::fmt::Display) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}digest={digest}")
}

#[tokio::test]
async fn containerd_outage_returns_503_then_recovers() {
    let work = tempfile::tempdir().unwrap();
    let mut containerd = Containerd::start();
    let process = RegistryProcess::start(work.path(), &RegistrySettings::new(&containerd.socket()));
    let registry = Registry::new(process.addr);

    let image = registry.push_image("outage/app", "v1", 1, 2, 300_000).await;
    registry.assert_image("outage/app", "v1", &image).await;
    let upload_bytes = data(9, 2 * MIB + 17);
    let location = start_upload(&registry, "outage/app").await;
    let reply = patch(&registry, &location, 0, &upload_bytes[..MIB]).await;
    assert_eq!(reply.status, 202, "first chunk: {}", String::from_utf8_lossy(&reply.body));

    containerd.stop();

    let manifest_digest = image.manifest.digest.to_string();
    let requests: Vec<(Method, String, Vec<u8>)> = vec![
        (Method::GET, "/v2/outage/app/manifests/v1".into(), vec![]),
        (Method::GET, format!("/v2/outage/app/manifests/{manifest_digest}"), vec![]),
        (Method::GET, "/v2/outage/app/tags/list".into(), vec![]),
        (Method::GET, "/v2/_catalog".into(), vec![]),
        (Method::GET, format!("/v2/outage/never-seen/blobs/{}", image.config.digest), vec![]),
        (Method::POST, "/v2/outage/app/blobs/uploads/".into(), vec![]),
        (Method::GET, location.clone(), vec![]),
        (Method::PUT, "/v2/outage/app/manifests/v2".into(), image.manifest.bytes.clone()),
        (Method::DELETE, "/v2/outage/app/manifests/v1".into(), vec![]),
        (Method::DELETE, format!("/v2/outage/app/blobs/{}", image.layers[0].digest), vec![]),
    ];
    for (method, path, body) in requests {
        let headers: &[(&str, &str)] = if method == Method::PUT { &[("content-type", support::http::OCI_MANIFEST)] } else { &[] };
        let reply = registry.send(method.clone(), &path, headers, body).await;
        assert_eq!(reply.status, 503, "{method} {path} during the outage: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.error_code(), "UNAVAILABLE", "{method} {path} during the outage");
    }
    let reply = patch(&registry, &location, MIB, &upload_bytes[MIB..2 * MIB]).await;
    assert_error(&reply, 503, "UNAVAILABLE");
    // A blob whose membership and size are cached is described from the cache, as its GET is
    // sent from the content directory below.
    let reply = registry.send(Method::HEAD, &format!("/v2/outage/app/blobs/{}", image.config.digest), &[], vec![]).await;
    assert_eq!(reply.status, 200, "HEAD of a cached blob during the outage");
    assert_eq!(reply.header("content-length"), Some(image.config.bytes.len().to_string().as_str()));

    // The sendfile front serves a blob GET from the cached lease and size and the committed file
    // in the content directory, so a blob read before the outage is still sent in full.
    registry.assert_blob("outage/app", &image.layers[0]).await;

    containerd.restart();
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    loop {
        let reply = registry.get("/v2/outage/app/manifests/v1").await;
        if reply.status == 200 {
            break;
        }
        assert_error(&reply, 503, "UNAVAILABLE");
        assert!(Instant::now() < deadline, "registry still unavailable {RECOVERY_TIMEOUT:?} after containerd restarted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    registry.assert_image("outage/app", "v1", &image).await;

    // The upload opened before the outage continues at the offset the registry reports.
    let reply = registry.get(&location).await;
    assert_eq!(reply.status, 204, "upload status after the outage: {}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.header("range"), Some(format!("0-{}", MIB - 1).as_str()));
    let reply = patch(&registry, &location, MIB, &upload_bytes[MIB..2 * MIB]).await;
    assert_eq!(reply.status, 202, "chunk after the outage: {}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.header("range"), Some(format!("0-{}", 2 * MIB - 1).as_str()));
    let blob = Pushed::new(upload_bytes.clone());
    let path = with_digest(&location, &blob.digest);
    let reply = registry.send(Method::PUT, &path, &[], upload_bytes[2 * MIB..].to_vec()).await;
    assert_eq!(reply.status, 201, "final PUT after the outage: {}", String::from_utf8_lossy(&reply.body));
    registry.assert_blob("outage/app", &blob).await;

    let after = registry.push_image("outage/app", "v2", 2, 1, 1000).await;
    registry.assert_image("outage/app", "v2", &after).await;
    registry.assert_image("outage/app", "v1", &image).await;
}

#[tokio::test]
async fn registry_killed_mid_upload_resumes_from_reported_offset() {
    let work = tempfile::tempdir().unwrap();
    let containerd = Containerd::start();
    let process = RegistryProcess::start(work.path(), &RegistrySettings::new(&containerd.socket()));
    let registry = Registry::new(process.addr);

    let earlier = registry.push_image("killed/app", "v1", 3, 1, 100_000).await;
    let blob = Pushed::new(data(4, 6 * MIB + 333));
    let location = start_upload(&registry, "killed/app").await;
    for chunk in 0..2 {
        let reply = patch(&registry, &location, chunk * MIB, &blob.bytes[chunk * MIB..(chunk + 1) * MIB]).await;
        assert_eq!(reply.status, 202, "chunk {chunk}: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.header("range"), Some(format!("0-{}", (chunk + 1) * MIB - 1).as_str()));
    }

    // A third PATCH sends 1.5 MiB of its 3 MiB and stalls, and the registry dies under it.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let stalled = {
        let url = registry.url(&location);
        let range = format!("{}-{}", 2 * MIB, 5 * MIB - 1);
        let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
        tokio::spawn(async move {
            reqwest::Client::new().patch(url).header("content-range", range).body(body).send().await
        })
    };
    let sent = &blob.bytes[2 * MIB..2 * MIB + 3 * MIB / 2];
    for piece in sent.chunks(256 * 1024) {
        sender.send(Ok(Bytes::copy_from_slice(piece))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let killed = std::process::Command::new("kill").args(["-KILL", &process.pid().to_string()]).status().unwrap();
    assert!(killed.success(), "kill -KILL {} failed", process.pid());
    let config_path = process.config_path.clone();
    drop(process);
    let outcome = stalled.await.unwrap();
    assert!(outcome.is_err(), "the PATCH cut off by SIGKILL got a response: {outcome:?}");
    drop(sender);

    let process = RegistryProcess::start_with_config(&config_path);
    let registry = Registry::new(process.addr);
    registry.assert_image("killed/app", "v1", &earlier).await;

    let reply = registry.get(&location).await;
    assert_eq!(reply.status, 204, "upload status after the restart: {}", String::from_utf8_lossy(&reply.body));
    let range = reply.header("range").expect("Range of a session with bytes").to_owned();
    let (first, last) = range.split_once('-').expect("Range is first-last");
    assert_eq!(first, "0");
    let offset = last.parse::<usize>().unwrap() + 1;
    assert!(offset >= 2 * MIB, "the session lost acknowledged chunks: {range}");
    assert!(offset <= 2 * MIB + sent.len(), "the session has bytes that were never sent: {range}");

    let last_chunk = blob.bytes.len() - 1000;
    let reply = patch(&registry, &location, offset, &blob.bytes[offset..last_chunk]).await;
    assert_eq!(reply.status, 202, "resumed chunk: {}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.header("range"), Some(format!("0-{}", last_chunk - 1).as_str()));

    let path = with_digest(&location, &blob.digest);
    let content_range = format!("{last_chunk}-{}", blob.bytes.len() - 1);
    let reply = registry
        .send(Method::PUT, &path, &[("content-range", &content_range)], blob.bytes[last_chunk..].to_vec())
        .await;
    assert_eq!(reply.status, 201, "final PUT: {}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.header("docker-content-digest"), Some(blob.digest.to_string().as_str()));
    registry.assert_blob("killed/app", &blob).await;
    assert_error(&registry.get(&location).await, 404, "BLOB_UPLOAD_UNKNOWN");

    containerd.force_gc().await;
    registry.assert_blob("killed/app", &blob).await;
    registry.assert_image("killed/app", "v1", &earlier).await;
}
