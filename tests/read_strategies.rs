//! Blob reads through every strategy (the content-directory fast path and gRPC) must return the
//! same bytes and headers for every kind of request, and the fast path must never serve a blob
//! that this namespace and repository do not own.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use tower::ServiceExt;

use containerd_registry::config::{ContainerdConfig, FastPathMode, UploadPurging};
use containerd_registry::digest::Digest;
use containerd_registry::front;
use containerd_registry::http::{router, AppState};
use containerd_registry::names::RepositoryName;
use containerd_registry::storage::containerd::ContainerdStorage;
use containerd_registry::storage::{ByteStream, Storage};

use support::containerd::Containerd;

const NAMESPACE: &str = "strategies";

fn storage(containerd: &Containerd, namespace: &str, root: &str, mode: FastPathMode) -> ContainerdStorage {
    let config = ContainerdConfig {
        address: containerd.socket(),
        namespace: namespace.to_owned(),
        root: root.to_owned(),
        content_dir: None,
        fast_path: mode,
    };
    let storage = ContainerdStorage::connect(&config, &UploadPurging::default()).unwrap();
    storage.enable_fast_path(containerd.content_dir(), mode);
    storage
}

fn app(storage: ContainerdStorage) -> Router {
    router(AppState { storage: Arc::new(storage), delete_enabled: true, read_only: false, health: None, auth: None })
}

fn body(bytes: &[u8]) -> ByteStream {
    let owned = Bytes::copy_from_slice(bytes);
    Box::pin(futures::stream::iter([Ok(owned)]))
}

async fn push(storage: &ContainerdStorage, repository: &str, bytes: &[u8]) -> Digest {
    let repository = RepositoryName::parse(repository).unwrap();
    let digest = Digest::sha256(bytes);
    let upload = storage.start_upload(&repository).await.unwrap();
    storage.commit_upload(&repository, &upload.id, &digest, body(bytes)).await.unwrap();
    digest
}

/// Where requests go: the router in process, or a real loopback server through the sendfile front.
enum Target {
    Router(Router),
    Server(String),
}

/// Starts the sendfile front on a loopback port; it stops with the test's runtime.
async fn start_front(storage: ContainerdStorage) -> Target {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app(storage.clone());
    let options = front::FrontOptions { sendfile: Some(storage), ..Default::default() };
    tokio::spawn(front::serve(listener, router, options, std::future::pending()));
    Target::Server(base)
}

struct Reply {
    status: StatusCode,
    content_range: Option<String>,
    content_length: Option<String>,
    body: Bytes,
}

async fn get(target: &Target, uri: &str, range: Option<&str>) -> Reply {
    let app = match target {
        Target::Router(app) => app,
        Target::Server(base) => return get_over_http(base, uri, range).await,
    };
    let mut request = Request::get(uri);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (status, content_range, content_length) = (response.status(), header("content-range"), header("content-length"));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply { status, content_range, content_length, body }
}

async fn get_over_http(base: &str, uri: &str, range: Option<&str>) -> Reply {
    let client = reqwest::Client::new();
    let mut request = client.get(format!("{base}{uri}"));
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let (content_range, content_length) = (header("content-range"), header("content-length"));
    let body = response.bytes().await.unwrap();
    Reply { status, content_range, content_length, body }
}

/// The expectations every strategy must meet for a blob of `data`.
async fn assert_reads(app: &Target, strategy: &str, uri: &str, data: &[u8]) {
    let size = data.len() as u64;
    let full = get(app, uri, None).await;
    assert_eq!(full.status, StatusCode::OK, "{strategy}: full GET");
    assert_eq!(full.content_length, Some(size.to_string()), "{strategy}: length");
    assert!(full.body == data, "{strategy}: full body differs");

    if size == 0 {
        let reply = get(app, uri, Some("bytes=0-0")).await;
        assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE, "{strategy}: range of empty blob");
        return;
    }

    let mut cases: Vec<(String, u64, u64)> = vec![
        ("bytes=0-0".into(), 0, 0),
        (format!("bytes={}-{}", size - 1, size - 1), size - 1, size - 1),
        (format!("bytes={}-", size / 2), size / 2, size - 1),
        ("bytes=-1".into(), size - 1, size - 1),
        (format!("bytes=-{}", size + 10), 0, size - 1),
        (format!("bytes={}-{}", size / 3, size / 3 * 2), size / 3, size / 3 * 2),
    ];
    if size > 1 {
        cases.push((format!("bytes=1-{}", size + 100), 1, size - 1));
    }
    for (range, start, end) in cases {
        let reply = get(app, uri, Some(&range)).await;
        assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT, "{strategy}: {range}");
        assert_eq!(reply.content_range, Some(format!("bytes {start}-{end}/{size}")), "{strategy}: {range}");
        assert!(reply.body == data[start as usize..=end as usize], "{strategy}: body of {range} differs");
    }

    let past = get(app, uri, Some(&format!("bytes={size}-"))).await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE, "{strategy}: range past the end");
    assert_eq!(past.content_range, Some(format!("bytes */{size}")), "{strategy}: 416 Content-Range");
}

#[tokio::test]
async fn every_strategy_returns_identical_bytes() {
    let containerd = Containerd::start();
    let writer = storage(&containerd, NAMESPACE, "/registry", FastPathMode::Off);

    let large: Vec<u8> = (0..9 * 1024 * 1024 + 7).map(|i| (i * 31 % 251) as u8).collect();
    let blobs: Vec<(&str, Vec<u8>)> = vec![("empty", Vec::new()), ("one", vec![42]), ("small", b"hello, blob".to_vec()), ("large", large)];
    let mut pushed = Vec::new();
    for (name, data) in &blobs {
        pushed.push((*name, push(&writer, "strategies/app", data).await, data));
    }

    for mode in [FastPathMode::Sendfile, FastPathMode::Mmap, FastPathMode::IoUring, FastPathMode::Off] {
        let reader = storage(&containerd, NAMESPACE, "/registry", mode);
        let app = match mode {
            FastPathMode::Sendfile => start_front(reader.clone()).await,
            _ => Target::Router(app(reader.clone())),
        };
        for (name, digest, data) in &pushed {
            let strategy = format!("{} on {name}", mode.as_str());
            assert_reads(&app, &strategy, &format!("/v2/strategies/app/blobs/{digest}"), data).await;
        }
        assert_eq!(reader.fast_path_fallbacks(), 0, "{}: fell back to gRPC", mode.as_str());
    }
}

#[tokio::test]
async fn fast_path_serves_only_owned_blobs() {
    let containerd = Containerd::start();
    let other_namespace = storage(&containerd, "elsewhere", "/registry", FastPathMode::Off);
    let other_root = storage(&containerd, NAMESPACE, "/other-root", FastPathMode::Off);
    let in_namespace = push(&other_namespace, "secret/app", b"another namespace's layer").await;
    let in_root = push(&other_root, "secret/app", b"another root's layer").await;

    let reader = storage(&containerd, NAMESPACE, "/registry", FastPathMode::Sendfile);
    push(&reader, "mine/app", b"own layer").await;
    let targets = [Target::Router(app(reader.clone())), start_front(reader).await];

    for target in &targets {
        for digest in [&in_namespace, &in_root] {
            assert!(containerd.blob_path(digest.hex()).exists(), "blob file of {digest} exists on disk");
            for repository in ["secret/app", "mine/app"] {
                let reply = get(target, &format!("/v2/{repository}/blobs/{digest}"), None).await;
                assert_eq!(reply.status, StatusCode::NOT_FOUND, "{repository} {digest}");
                let text = String::from_utf8_lossy(&reply.body);
                assert!(text.contains("BLOB_UNKNOWN"), "{text}");
            }
        }
    }
}

#[tokio::test]
async fn response_survives_gc_of_its_blob() {
    let containerd = Containerd::start();
    for mode in [FastPathMode::Mmap, FastPathMode::IoUring, FastPathMode::Off] {
        let storage = storage(&containerd, NAMESPACE, "/registry", mode);
        let data: Vec<u8> = (0..32 * 1024 * 1024).map(|i| (i * 7 % 253) as u8).collect();
        let digest = push(&storage, "gc/app", &data).await;
        let repository = RepositoryName::parse("gc/app").unwrap();

        let mut stream = storage.read_blob(&repository, &digest, None).await.unwrap();
        let mut received = Vec::new();
        let first = futures::StreamExt::next(&mut stream).await.unwrap().unwrap();
        received.extend_from_slice(&first);

        storage.delete_blob(&repository, &digest).await.unwrap();
        containerd.force_gc().await;
        assert!(!containerd.blob_path(digest.hex()).exists(), "{}: GC removed the blob file", mode.as_str());

        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            received.extend_from_slice(&chunk.unwrap());
        }
        assert!(received == data, "{}: response torn by GC", mode.as_str());
    }
}

#[tokio::test]
async fn sendfile_response_survives_gc_of_its_blob() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let containerd = Containerd::start();
    let storage = storage(&containerd, NAMESPACE, "/registry", FastPathMode::Sendfile);
    let data: Vec<u8> = (0..64 * 1024 * 1024).map(|i| (i * 13 % 241) as u8).collect();
    let digest = push(&storage, "gc/app", &data).await;
    let Target::Server(base) = start_front(storage.clone()).await else { unreachable!() };

    let mut socket = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    let request = format!("GET /v2/gc/app/blobs/{digest} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut received = vec![0u8; 256 * 1024];
    socket.read_exact(&mut received).await.unwrap();

    let repository = RepositoryName::parse("gc/app").unwrap();
    storage.delete_blob(&repository, &digest).await.unwrap();
    containerd.force_gc().await;
    assert!(!containerd.blob_path(digest.hex()).exists(), "GC removed the blob file");

    socket.read_to_end(&mut received).await.unwrap();
    let text = String::from_utf8_lossy(&received[..512]);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    let body_start = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(received[body_start..] == data[..], "response torn by GC");
}

#[tokio::test]
async fn http2_blob_gets_fall_back_from_sendfile() {
    let containerd = Containerd::start();
    let storage = storage(&containerd, NAMESPACE, "/registry", FastPathMode::Sendfile);
    let data: Vec<u8> = (0..5 * 1024 * 1024 + 3).map(|i| (i * 17 % 239) as u8).collect();
    let digest = push(&storage, "h2/app", &data).await;
    let Target::Server(base) = start_front(storage.clone()).await else { unreachable!() };

    let client = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let url = format!("{base}/v2/h2/app/blobs/{digest}");
    let full = client.get(&url).send().await.unwrap();
    assert_eq!(full.version(), reqwest::Version::HTTP_2);
    assert_eq!(full.status().as_u16(), 200);
    assert!(full.bytes().await.unwrap() == data[..], "HTTP/2 body differs");

    let part = client.get(&url).header("range", "bytes=10-19").send().await.unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert!(part.bytes().await.unwrap() == data[10..20], "HTTP/2 range differs");
    assert_eq!(storage.fast_path_fallbacks(), 0);
}

#[tokio::test]
async fn configured_headers_reach_sendfile_responses() {
    let containerd = Containerd::start();
    let storage = storage(&containerd, NAMESPACE, "/registry", FastPathMode::Sendfile);
    let digest = push(&storage, "headers/app", b"with headers").await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let headers: Arc<[(axum::http::HeaderName, axum::http::HeaderValue)]> =
        vec![(axum::http::HeaderName::from_static("x-content-type-options"), axum::http::HeaderValue::from_static("nosniff"))]
            .into();
    let options = front::FrontOptions { sendfile: Some(storage.clone()), health: None, headers, ..Default::default() };
    tokio::spawn(front::serve(listener, app(storage), options, std::future::pending()));

    let response = reqwest::get(format!("{base}/v2/headers/app/blobs/{digest}")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers().get("x-content-type-options").unwrap(), "nosniff");
    assert_eq!(&response.bytes().await.unwrap()[..], b"with headers");
}
