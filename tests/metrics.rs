//! Observability against the registry binary and a real containerd: the Prometheus metrics and
//! `/debug/health` on the debug listener, request ids, and the request log line. Pulls go
//! through each read path (the sendfile front, HTTP/2 with mmap, gRPC) and the counters must
//! move by exactly the requests made and the bytes served.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use support::containerd::Containerd;
use support::http::{raw_request, Pushed, Registry};
use support::registry::RegistryProcess;

/// `http.debug` with the Prometheus metrics on, on a free loopback port.
const DEBUG_WITH_METRICS: &str = "  debug:\n    addr: 127.0.0.1:0\n    prometheus:\n      enabled: true\n";

/// Time allowed for a counter to reach its expected value. A request is recorded when hyper
/// drops its response body, which can be just after the client has read the last byte.
const SETTLE_TIME: Duration = Duration::from_secs(5);

/// Writes a config with `http_extra` under `http` and `extra` at the top level, and starts the
/// registry on it.
fn start_registry(dir: &Path, containerd: &Containerd, fast_path: &str, http_extra: &str, extra: &str) -> RegistryProcess {
    let config = format!(
        "version: 0.1\nlog:\n  level: info\nhttp:\n  addr: 127.0.0.1:0\n{http_extra}storage:\n  containerd:\n    \
         address: {}\n    namespace: metrics\n    root: /metrics\n    fastpath: {fast_path}\n  delete:\n    enabled: true\n{extra}",
        containerd.socket().display()
    );
    let path = dir.join(format!("registry-{fast_path}.yml"));
    std::fs::write(&path, config).unwrap();
    RegistryProcess::start_with_config(&path)
}

/// The metrics of one scrape, by series (`name{labels}`).
struct Scrape(HashMap<String, f64>);

impl Scrape {
    /// Returns a series' value, 0 when the registry has not created it yet.
    fn value(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// Returns the sum of every series whose text starts with `prefix`.
    fn sum(&self, prefix: &str) -> f64 {
        self.0.iter().filter(|(series, _)| series.starts_with(prefix)).map(|(_, value)| value).sum()
    }
}

async fn scrape(debug: SocketAddr) -> Scrape {
    let response = reqwest::Client::builder().no_proxy().build().unwrap().get(format!("http://{debug}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET /metrics");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");

    let text = response.text().await.unwrap();
    let mut series = HashMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#') && !line.is_empty()) {
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("malformed metrics line {line:?}"));
        series.insert(name.to_owned(), value.parse().unwrap_or_else(|_| panic!("malformed value in {line:?}")));
    }
    Scrape(series)
}

/// Asserts that `series` moved by exactly `delta` from `before` to `after`.
#[track_caller]
fn assert_moved(before: &Scrape, after: &Scrape, series: &str, delta: f64) {
    let moved = after.value(series) - before.value(series);
    assert_eq!(moved, delta, "{series} moved by {moved}, expected {delta}");
}

/// Scrapes until every `(series, delta)` has moved by at least its delta, or `SETTLE_TIME`
/// passes, and returns the last scrape.
async fn scrape_settled(debug: SocketAddr, before: &Scrape, expected: &[(&str, f64)]) -> Scrape {
    let deadline = Instant::now() + SETTLE_TIME;
    loop {
        let after = scrape(debug).await;
        let settled = expected.iter().all(|(series, delta)| after.value(series) - before.value(series) >= *delta);
        if settled || Instant::now() > deadline {
            return after;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn blob_requests(status: u16) -> String {
    format!(r#"registry_http_requests_total{{route="blob",method="GET",status="{status}"}}"#)
}

fn served_bytes(strategy: &str) -> String {
    format!(r#"registry_blob_served_bytes_total{{strategy="{strategy}"}}"#)
}

const BLOB_LATENCY_COUNT: &str = r#"registry_http_request_duration_seconds_count{route="blob",method="GET"}"#;
const UPLOADS_IN_PROGRESS: &str = "registry_blob_uploads_in_progress";
const FALLBACKS: &str = "registry_fast_path_fallbacks_total";

fn total_size(blobs: &[&Pushed]) -> f64 {
    blobs.iter().map(|blob| blob.bytes.len() as f64).sum()
}

/// Reads the registry's log until a line contains every one of `parts`, and returns it.
async fn wait_for_log_line(process: &RegistryProcess, parts: &[&str]) -> String {
    let deadline = Instant::now() + SETTLE_TIME;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        seen.extend(process.drain_log());
        if let Some(line) = seen.iter().find(|line| parts.iter().all(|part| line.contains(part))) {
            return line.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no log line contains all of {parts:?}");
}

async fn json(response: reqwest::Response) -> serde_json::Value {
    let bytes = response.bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&bytes)))
}

#[tokio::test]
async fn metrics_count_pushes_and_pulls_by_strategy() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let process = start_registry(dir.path(), &containerd, "sendfile", DEBUG_WITH_METRICS, "");
    let debug = process.debug_addr();
    let registry = Registry::new(process.addr);

    let start = scrape(debug).await;
    let image = registry.push_image("metrics/app", "v1", 7, 2, 300_000).await;
    let pushed = scrape_settled(debug, &start, &[(r#"registry_http_requests_total{route="manifest",method="PUT",status="201"}"#, 1.0)]).await;
    assert_moved(&start, &pushed, r#"registry_http_requests_total{route="blob_upload",method="POST",status="201"}"#, 3.0);
    assert_moved(&start, &pushed, r#"registry_http_requests_total{route="manifest",method="PUT",status="201"}"#, 1.0);
    assert_eq!(pushed.value(UPLOADS_IN_PROGRESS), 0.0, "uploads in progress after the push");
    assert!(pushed.value(r#"registry_containerd_rpc_duration_seconds_count{rpc="content.Write"}"#) >= 3.0);

    // Plain HTTP/1.1: the sendfile front serves the blobs, and echoes the client's request id.
    let blobs = image.blobs();
    let before = scrape(debug).await;
    for blob in &blobs {
        let head = format!(
            "GET /v2/metrics/app/blobs/{} HTTP/1.1\r\nHost: registry\r\nX-Request-Id: sendfile-{}\r\nConnection: close\r\n\r\n",
            blob.digest,
            blob.digest.hex()
        );
        let reply = raw_request(process.addr, &head).await;
        assert_eq!(reply.status, 200);
        assert!(reply.body == blob.bytes, "bytes of {}", blob.digest);
        assert_eq!(reply.header("x-request-id"), Some(format!("sendfile-{}", blob.digest.hex()).as_str()));
    }
    let count = blobs.len() as f64;
    let after = scrape_settled(debug, &before, &[(&blob_requests(200), count)]).await;
    assert_moved(&before, &after, &blob_requests(200), count);
    assert_moved(&before, &after, BLOB_LATENCY_COUNT, count);
    assert_moved(&before, &after, &served_bytes("sendfile"), total_size(&blobs));
    assert_moved(&before, &after, &served_bytes("mmap"), 0.0);
    assert_moved(&before, &after, FALLBACKS, 0.0);

    let layer = &image.layers[0];
    let line = wait_for_log_line(&process, &[&format!("request_id=\"sendfile-{}\"", layer.digest.hex()), "request finished"]).await;
    let fields = [r#"method="GET""#, r#"route="blob""#, r#"repository="metrics/app""#, "status=200", &format!("bytes={}", layer.bytes.len())];
    for field in fields {
        assert!(line.contains(field), "{field} missing from {line:?}");
    }

    // HTTP/2 goes through hyper, where blobs are read from the mapped file; a range is counted
    // with its own length and status.
    let http2 = reqwest::Client::builder().http2_prior_knowledge().no_proxy().build().unwrap();
    let before = scrape(debug).await;
    for blob in &blobs {
        let response = http2.get(registry.url(&format!("/v2/metrics/app/blobs/{}", blob.digest))).send().await.unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "generated request id {id:?} is not a UUID");
        assert!(response.bytes().await.unwrap() == blob.bytes, "bytes of {}", blob.digest);
    }
    let range = http2
        .get(registry.url(&format!("/v2/metrics/app/blobs/{}", layer.digest)))
        .header("range", "bytes=100-1099")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), 206);
    assert!(range.bytes().await.unwrap() == layer.bytes[100..1100], "range bytes");

    let after = scrape_settled(debug, &before, &[(&blob_requests(200), count), (&blob_requests(206), 1.0)]).await;
    assert_moved(&before, &after, &blob_requests(200), count);
    assert_moved(&before, &after, &blob_requests(206), 1.0);
    assert_moved(&before, &after, BLOB_LATENCY_COUNT, count + 1.0);
    assert_moved(&before, &after, &served_bytes("mmap"), total_size(&blobs) + 1000.0);
    assert_moved(&before, &after, &served_bytes("sendfile"), 0.0);
    assert_moved(&before, &after, FALLBACKS, 0.0);

    // Other routes, and a tag that does not exist, which containerd reports as NotFound.
    let before = scrape(debug).await;
    registry.assert_manifest("metrics/app", "v1", &image.manifest).await;
    assert_eq!(registry.get("/v2/metrics/app/manifests/missing").await.status, 404);
    assert_eq!(registry.get("/v2/metrics/app/tags/list").await.status, 200);
    assert_eq!(registry.get("/v2/_catalog").await.status, 200);
    assert_eq!(registry.get("/v2/").await.status, 200);
    assert_eq!(registry.get("/no/such/path").await.status, 404);
    let not_found = r#"registry_containerd_rpc_errors_total{rpc="images.Get",code="NotFound"}"#;
    let expected = [
        (r#"registry_http_requests_total{route="manifest",method="GET",status="200"}"#, 1.0),
        (r#"registry_http_requests_total{route="manifest",method="GET",status="404"}"#, 1.0),
        (r#"registry_http_requests_total{route="tags",method="GET",status="200"}"#, 1.0),
        (r#"registry_http_requests_total{route="catalog",method="GET",status="200"}"#, 1.0),
        (r#"registry_http_requests_total{route="base",method="GET",status="200"}"#, 1.0),
        (r#"registry_http_requests_total{route="other",method="GET",status="404"}"#, 1.0),
    ];
    let after = scrape_settled(debug, &before, &expected).await;
    for (series, delta) in expected {
        assert_moved(&before, &after, series, delta);
    }
    assert!(after.value(not_found) - before.value(not_found) >= 1.0, "images.Get NotFound was not counted");

    // The main port serves the registry API only.
    assert_eq!(registry.get("/metrics").await.status, 404);
    assert_eq!(registry.get("/debug/health").await.status, 404);
    drop(process);
}

#[tokio::test]
async fn upload_gauge_counts_upload_in_flight() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let process = start_registry(dir.path(), &containerd, "sendfile", DEBUG_WITH_METRICS, "");
    let debug = process.debug_addr();
    let registry = Registry::new(process.addr);

    let started = registry.send(Method::POST, "/v2/metrics/upload/blobs/uploads/", &[], Vec::new()).await;
    assert_eq!(started.status, 202);
    let location = started.header("location").unwrap().to_owned();
    assert_eq!(scrape(debug).await.value(UPLOADS_IN_PROGRESS), 0.0);

    // A PATCH whose body is still arriving is an upload in progress.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
    let url = registry.url(&location);
    let patch = tokio::spawn(async move { reqwest::Client::new().patch(url).body(body).send().await.unwrap().status() });
    sender.send(Ok(b"first half, ".to_vec())).await.unwrap();

    let deadline = Instant::now() + SETTLE_TIME;
    let mut in_progress = scrape(debug).await.value(UPLOADS_IN_PROGRESS);
    while in_progress != 1.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        in_progress = scrape(debug).await.value(UPLOADS_IN_PROGRESS);
    }
    assert_eq!(in_progress, 1.0, "uploads in progress while a PATCH body arrives");

    sender.send(Ok(b"second half".to_vec())).await.unwrap();
    drop(sender);
    assert_eq!(patch.await.unwrap(), 202);
    let deadline = Instant::now() + SETTLE_TIME;
    while scrape(debug).await.value(UPLOADS_IN_PROGRESS) != 0.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(scrape(debug).await.value(UPLOADS_IN_PROGRESS), 0.0, "uploads in progress after the PATCH");
    drop(process);
}

#[tokio::test]
async fn grpc_reads_are_counted_with_their_rpcs() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let process = start_registry(dir.path(), &containerd, "off", DEBUG_WITH_METRICS, "");
    let debug = process.debug_addr();
    let registry = Registry::new(process.addr);
    let image = registry.push_image("metrics/grpc", "v1", 9, 1, 200_000).await;
    let blobs = image.blobs();

    let read_count = r#"registry_containerd_rpc_duration_seconds_count{rpc="content.Read"}"#;
    let before = scrape(debug).await;
    for blob in &blobs {
        registry.assert_blob("metrics/grpc", blob).await;
    }
    let count = blobs.len() as f64;
    let after = scrape_settled(debug, &before, &[(&blob_requests(200), count), (read_count, count)]).await;
    assert_moved(&before, &after, &blob_requests(200), count);
    assert_moved(&before, &after, &served_bytes("grpc"), total_size(&blobs));
    assert_moved(&before, &after, &served_bytes("sendfile"), 0.0);
    assert_moved(&before, &after, &served_bytes("mmap"), 0.0);
    assert_moved(&before, &after, read_count, count);
    let read_errors = r#"registry_containerd_rpc_errors_total{rpc="content.Read","#;
    assert_eq!(after.sum(read_errors), before.sum(read_errors), "content.Read errors while reading linked blobs");
    drop(process);
}

#[tokio::test]
async fn debug_health_follows_storage_check() {
    let mut containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let health = "health:\n  storagedriver:\n    enabled: true\n    interval: 1s\n    threshold: 2\n";
    let process = start_registry(dir.path(), &containerd, "sendfile", "  debug:\n    addr: 127.0.0.1:0\n", health);
    let debug = process.debug_addr();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let health_url = format!("http://{debug}/debug/health");

    let response = client.get(&health_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body = json(response).await;
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["storagedriver"], "ok", "{body}");
    // Without http.debug.prometheus.enabled the debug listener has no metrics.
    assert_eq!(client.get(format!("http://{debug}/metrics")).send().await.unwrap().status(), 404);

    containerd.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut response = client.get(&health_url).send().await.unwrap();
    while response.status() != 503 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        response = client.get(&health_url).send().await.unwrap();
    }
    assert_eq!(response.status(), 503);
    let body = json(response).await;
    assert_eq!(body["status"], "unavailable", "{body}");
    assert!(body["error"].as_str().is_some_and(|error| !error.is_empty()), "{body}");

    // The main port's 503 carries a request id and is counted like any other request.
    let reply = Registry::new(process.addr).send(Method::GET, "/v2/", &[("x-request-id", "while-down")], Vec::new()).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("x-request-id"), Some("while-down"));

    containerd.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = client.get(&health_url).send().await.unwrap().status();
    while status != 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = client.get(&health_url).send().await.unwrap().status();
    }
    assert_eq!(status, 200);
    drop(process);
}

#[tokio::test]
async fn debug_health_without_check_is_ok() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let process = start_registry(dir.path(), &containerd, "sendfile", DEBUG_WITH_METRICS, "");
    let debug = process.debug_addr();

    let response = reqwest::Client::builder().no_proxy().build().unwrap().get(format!("http://{debug}/debug/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body = json(response).await;
    assert_eq!(body, serde_json::json!({ "status": "ok", "storagedriver": "off" }));
    drop(process);
}

/// A request the front refuses for its `Content-Length` is counted, logged with its request id
/// and route, and returns that id like any other response.
#[tokio::test]
async fn refused_content_length_is_counted_and_logged() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let process = start_registry(dir.path(), &containerd, "sendfile", DEBUG_WITH_METRICS, "");
    let debug = process.debug_addr();
    let before = scrape(debug).await;

    let head = format!(
        "PUT /v2/refused/app/manifests/v1 HTTP/1.1\r\nHost: {}\r\nX-Request-Id: refused-1\r\nContent-Length: -1\r\n\r\n",
        process.addr
    );
    let reply = support::http::raw_request(process.addr, &head).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("x-request-id"), Some("refused-1"));

    let series = r#"registry_http_requests_total{route="manifest",method="PUT",status="400"}"#;
    let after = scrape_settled(debug, &before, &[(series, 1.0)]).await;
    assert_moved(&before, &after, series, 1.0);
    let line = wait_for_log_line(&process, &["request finished", "refused-1", "status=400"]).await;
    assert!(line.contains("refused/app"), "{line}");
    drop(process);
}
