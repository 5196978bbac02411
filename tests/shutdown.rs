//! Graceful shutdown of the registry binary: on SIGTERM it stops accepting at once, closes idle
//! keep-alive connections, lets requests in flight finish for up to `http.draintimeout`, and
//! exits 0.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use containerd_registry::digest::Digest;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::containerd::Containerd;
use support::http::Registry;
use support::registry::RegistryProcess;

/// Size of the chunks the large blob is generated, sent and hashed in.
const CHUNK: usize = 1024 * 1024;

fn start_registry(dir: &std::path::Path, containerd: &Containerd, name: &str, http: &str) -> RegistryProcess {
    let config = dir.join(format!("{name}.yml"));
    let text = format!(
        "log:\n  level: debug\nhttp:\n  addr: 127.0.0.1:0\n{http}storage:\n  containerd:\n    address: {}\n    namespace: shutdown\n",
        containerd.socket().display()
    );
    std::fs::write(&config, text).unwrap();
    RegistryProcess::start_with_config(&config)
}

/// Returns chunk `index` of a generated blob: one pseudo-random megabyte, with the index in its
/// first eight bytes so that no two chunks are equal.
fn chunk(base: &[u8], index: u64) -> Bytes {
    let mut bytes = base.to_vec();
    bytes[..8].copy_from_slice(&index.to_le_bytes());
    Bytes::from(bytes)
}

fn base_chunk() -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..CHUNK)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Pushes a blob of `chunks` generated megabytes as one streamed PATCH and a PUT, holding one
/// chunk in memory at a time. Returns its digest.
async fn push_generated_blob(addr: SocketAddr, repository: &str, chunks: u64) -> Digest {
    let base = base_chunk();
    let mut hasher = Sha256::new();
    for index in 0..chunks {
        hasher.update(chunk(&base, index));
    }
    let digest: Digest = format!("sha256:{}", hex::encode(hasher.finalize())).parse().unwrap();

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let started = client.post(format!("http://{addr}/v2/{repository}/blobs/uploads/")).send().await.unwrap();
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"].to_str().unwrap().to_owned();

    let body = futures::stream::iter((0..chunks).map(move |index| Ok::<_, std::io::Error>(chunk(&base, index))));
    let patched = client.patch(&location).body(reqwest::Body::wrap_stream(body)).send().await.unwrap();
    assert_eq!(patched.status(), 202, "PATCH: {:?}", patched.text().await);
    let location = patched.headers()["location"].to_str().unwrap().to_owned();

    let committed = client.put(format!("{location}?digest={digest}")).send().await.unwrap();
    assert_eq!(committed.status(), 201, "PUT: {:?}", committed.text().await);
    digest
}

/// Starts a GET of a blob on a new connection and returns the response once its head arrived.
async fn start_download(addr: SocketAddr, repository: &str, digest: &Digest) -> reqwest::Response {
    let client = reqwest::Client::builder().no_proxy().http1_only().build().unwrap();
    let response = client.get(format!("http://{addr}/v2/{repository}/blobs/{digest}")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response
}

/// Opens a connection, sends one keep-alive request and reads its response of `body_len` bytes,
/// leaving the connection idle.
async fn idle_connection(addr: SocketAddr, path: &str, body_len: usize) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();

    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(read > 0, "connection closed before the response to GET {path} ended");
        received.extend_from_slice(&buffer[..read]);
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            if received.len() >= end + 4 + body_len {
                break;
            }
        }
    }
    assert!(received.starts_with(b"HTTP/1.1 200"), "GET {path}: {}", String::from_utf8_lossy(&received));
    stream
}

/// Asserts that the server closes an idle connection within five seconds.
async fn assert_closed(mut stream: TcpStream, connection: &str) {
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await;
    match read {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(count)) => panic!("{connection}: expected the connection to close, read {count} bytes"),
        Err(_) => panic!("{connection}: still open five seconds after SIGTERM"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_large_pull_finish() {
    const CHUNKS: u64 = 1024;
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut process = start_registry(dir.path(), &containerd, "drain", "  draintimeout: 5m\n");
    let addr = process.addr;
    let digest = push_generated_blob(addr, "drain/big", CHUNKS).await;
    let small = Registry::new(addr).push_blob("drain/small", b"a small blob").await;

    let idle_router = idle_connection(addr, "/v2/", 2).await;
    let idle_sendfile = idle_connection(addr, &format!("/v2/drain/small/blobs/{}", small.digest), small.bytes.len()).await;

    let mut download = start_download(addr, "drain/big", &digest).await;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    while received < 64 * CHUNK as u64 {
        let bytes = download.chunk().await.unwrap().expect("body continues");
        received += bytes.len() as u64;
        hasher.update(&bytes);
    }

    process.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connect = TcpStream::connect(addr).await;
    assert!(connect.is_err(), "a new connection was accepted after SIGTERM");
    assert_closed(idle_router, "idle connection served by hyper").await;
    assert_closed(idle_sendfile, "idle connection served by the sendfile front").await;

    while let Some(bytes) = download.chunk().await.unwrap() {
        received += bytes.len() as u64;
        hasher.update(&bytes);
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    assert_eq!(received, CHUNKS * CHUNK as u64, "bytes received after SIGTERM");
    assert_eq!(hex::encode(hasher.finalize()), digest.hex(), "sha256 of the downloaded blob");

    let status = tokio::task::block_in_place(|| process.wait_for_exit(Duration::from_secs(30)));
    let status = status.expect("registry still running 30 s after the download finished");
    assert!(status.success(), "registry exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draintimeout_bounds_exit_time() {
    const CHUNKS: u64 = 64;
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let cases = [("zero", "", Duration::ZERO), ("two-seconds", "  draintimeout: 2s\n", Duration::from_secs(2))];
    let mut digest = None;

    for (name, http, drain_timeout) in cases {
        let mut process = start_registry(dir.path(), &containerd, name, http);
        let addr = process.addr;
        if digest.is_none() {
            digest = Some(push_generated_blob(addr, "drain/stalled", CHUNKS).await);
        }
        let digest = digest.as_ref().unwrap();

        let mut download = start_download(addr, "drain/stalled", digest).await;
        let first = download.chunk().await.unwrap().expect("body starts");

        let signalled = Instant::now();
        process.terminate();
        let status = tokio::task::block_in_place(|| process.wait_for_exit(drain_timeout + Duration::from_secs(10)));
        let elapsed = signalled.elapsed();
        let status = status.unwrap_or_else(|| panic!("{name}: registry still running {elapsed:?} after SIGTERM"));
        assert!(status.success(), "{name}: registry exited with {status}");
        assert!(elapsed >= drain_timeout, "{name}: exited after {elapsed:?}, before the drain timeout");

        let mut received = first.len() as u64;
        while let Ok(Some(bytes)) = download.chunk().await {
            received += bytes.len() as u64;
        }
        assert!(received < CHUNKS * CHUNK as u64, "{name}: the stalled download completed although the registry exited");
    }
}

/// A connection whose request head is incomplete when SIGTERM arrives contains no request, so the
/// drain does not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_head_does_not_hold_the_drain() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut process = start_registry(dir.path(), &containerd, "incomplete", "  draintimeout: 20s\n");
    let mut partial = TcpStream::connect(process.addr).await.unwrap();
    partial.write_all(b"GET /v2/ HT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    process.terminate();
    let status = tokio::task::block_in_place(|| process.wait_for_exit(Duration::from_secs(10)));
    let status = status.expect("registry still running 10 s after SIGTERM");
    assert!(status.success(), "registry exited with {status}");
    assert!(signalled.elapsed() < Duration::from_secs(5), "exit took {:?}", signalled.elapsed());
}

/// During the drain `/debug/health` reports 503, and a second SIGTERM ends the drain at once
/// with exit status 1, cutting the request in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_sigterm_ends_the_drain() {
    const CHUNKS: u64 = 64;
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let http = "  draintimeout: 5m\n  debug:\n    addr: 127.0.0.1:0\n";
    let mut process = start_registry(dir.path(), &containerd, "second", http);
    let debug = process.debug_addr();
    let addr = process.addr;
    let digest = push_generated_blob(addr, "drain/second", CHUNKS).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let health = client.get(format!("http://{debug}/debug/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let mut download = start_download(addr, "drain/second", &digest).await;
    download.chunk().await.unwrap().expect("body starts");
    process.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let health = client.get(format!("http://{debug}/debug/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    assert_eq!(health.text().await.unwrap(), r#"{"status":"draining"}"#);
    assert!(process.wait_for_exit(Duration::ZERO).is_none(), "the drain waits for the stalled download");

    let signalled = Instant::now();
    process.terminate();
    let status = tokio::task::block_in_place(|| process.wait_for_exit(Duration::from_secs(10)));
    let status = status.expect("registry still running 10 s after the second SIGTERM");
    assert_eq!(status.code(), Some(1), "exit status after the second SIGTERM");
    assert!(signalled.elapsed() < Duration::from_secs(5), "exit took {:?}", signalled.elapsed());
}

/// A connection that does not complete a request head within 30 s is closed, whether the front
/// or hyper reads it, so such connections cannot pile up until file descriptors run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_head_is_closed_after_30_seconds() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let process = start_registry(dir.path(), &containerd, "slow", "");
    let addr = process.addr;

    let mut front = TcpStream::connect(addr).await.unwrap();
    front.write_all(b"GET /v2/ HTTP/1.1\r\nHost: a\r\n").await.unwrap();
    let mut hyper = idle_connection(addr, "/v2/", 2).await;
    hyper.write_all(b"GET /v2/ HTTP/1.1\r\nHost: a\r\n").await.unwrap();
    let opened = Instant::now();

    for (name, mut stream) in [("front", front), ("hyper", hyper)] {
        let mut buffer = [0u8; 256];
        let deadline = Duration::from_secs(40).saturating_sub(opened.elapsed());
        let read = tokio::time::timeout(deadline, stream.read(&mut buffer)).await;
        let closed_after = opened.elapsed();
        match read {
            // hyper sends 408 for an incomplete head it times out, then closes.
            Ok(Ok(count)) if count == 0 || buffer.starts_with(b"HTTP/1.1 408") => {}
            Ok(Err(_)) => {}
            Ok(Ok(count)) => panic!("{name}: read {count} bytes: {:?}", String::from_utf8_lossy(&buffer[..count])),
            Err(_) => panic!("{name}: connection still open after 40 s"),
        }
        assert!(closed_after >= Duration::from_secs(29), "{name}: closed after {closed_after:?}");
    }
    drop(process);
}
