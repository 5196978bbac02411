//! `Location` headers of upload responses: absolute URLs from `http.host` or from the request,
//! or relative paths with `http.relativeurls`. In-process over `MemoryStorage` for every source
//! of the URL, then against the registry binary to check that the config keys reach the router.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use tower::ServiceExt;

use containerd_registry::config::PublicHost;
use containerd_registry::digest::Digest;
use containerd_registry::http::location::{absolute_locations, LocationBase};
use containerd_registry::http::{router, AppState};
use containerd_registry::storage::memory::MemoryStorage;
use support::containerd::Containerd;
use support::registry::RegistryProcess;

fn registry(base: Option<LocationBase>) -> Router {
    let state = AppState { storage: Arc::new(MemoryStorage::new()), delete_enabled: true, read_only: false, health: None, auth: None };
    let app = router(state);
    match base {
        Some(base) => app.layer(axum::middleware::from_fn_with_state(Arc::new(base), absolute_locations)),
        None => app,
    }
}

async fn location(app: &Router, method: Method, uri: &str, headers: &[(&str, &str)], body: &'static [u8]) -> String {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app.clone().oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
    assert!(response.status().is_success(), "{uri}: {}", response.status());
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// Opens an upload, appends to it and completes it; returns the `Location` of the POST, the
/// PATCH and the PUT.
async fn upload_locations(app: &Router, headers: &[(&str, &str)]) -> [String; 3] {
    let blob = b"location test blob";
    let digest = Digest::sha256(blob);
    let posted = location(app, Method::POST, "/v2/loc/app/blobs/uploads/", headers, b"").await;
    let path = posted.find("/v2/").map(|start| &posted[start..]).unwrap().to_owned();
    let patched = location(app, Method::PATCH, &path, headers, blob).await;
    let put = location(app, Method::PUT, &format!("{path}?digest={digest}"), headers, b"").await;
    [posted, patched, put]
}

fn blob_path() -> String {
    format!("/v2/loc/app/blobs/{}", Digest::sha256(b"location test blob"))
}

#[tokio::test]
async fn http_host_sets_scheme_and_authority() {
    let host = PublicHost { scheme: "https".to_owned(), authority: "registry.example.com:5000".to_owned() };
    let app = registry(Some(LocationBase::Fixed(host)));
    let [posted, patched, put] = upload_locations(&app, &[("host", "internal:8080"), ("x-forwarded-host", "proxy")]).await;

    assert!(posted.starts_with("https://registry.example.com:5000/v2/loc/app/blobs/uploads/"), "{posted}");
    assert!(patched.starts_with("https://registry.example.com:5000/v2/loc/app/blobs/uploads/"), "{patched}");
    assert_eq!(put, format!("https://registry.example.com:5000{}", blob_path()));
}

#[tokio::test]
async fn request_host_and_forwarded_headers() {
    let app = registry(Some(LocationBase::FromRequest { scheme: "http" }));

    let [posted, _, put] = upload_locations(&app, &[("host", "127.0.0.1:5000")]).await;
    assert!(posted.starts_with("http://127.0.0.1:5000/v2/loc/app/blobs/uploads/"), "{posted}");
    assert_eq!(put, format!("http://127.0.0.1:5000{}", blob_path()));

    let proxied = [("host", "10.0.0.5:5000"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "registry.example.com")];
    let [posted, _, put] = upload_locations(&app, &proxied).await;
    assert!(posted.starts_with("https://registry.example.com/v2/loc/app/blobs/uploads/"), "{posted}");
    assert_eq!(put, format!("https://registry.example.com{}", blob_path()));
}

#[tokio::test]
async fn relative_urls_are_paths() {
    let app = registry(None);
    let [posted, patched, put] = upload_locations(&app, &[("host", "127.0.0.1:5000")]).await;
    assert!(posted.starts_with("/v2/loc/app/blobs/uploads/"), "{posted}");
    assert!(patched.starts_with("/v2/loc/app/blobs/uploads/"), "{patched}");
    assert_eq!(put, blob_path());
}

/// Starts the binary with `http` lines and returns the `Location` of an upload POST.
async fn binary_post_location(containerd: &Containerd, dir: &std::path::Path, name: &str, http: &str) -> (String, String) {
    let config = dir.join(format!("{name}.yml"));
    let text = format!(
        "http:\n  addr: 127.0.0.1:0\n{http}storage:\n  containerd:\n    address: {}\n    namespace: locations\n",
        containerd.socket().display()
    );
    std::fs::write(&config, text).unwrap();
    let process = RegistryProcess::start_with_config(&config);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client.post(format!("http://{}/v2/loc/app/blobs/uploads/", process.addr)).send().await.unwrap();
    assert_eq!(response.status(), 202, "{name}");
    (response.headers()["location"].to_str().unwrap().to_owned(), process.host())
}

#[tokio::test]
async fn binary_applies_host_and_relativeurls() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();

    let (location, _) = binary_post_location(&containerd, dir.path(), "host", "  host: https://registry.example.com\n").await;
    assert!(location.starts_with("https://registry.example.com/v2/loc/app/blobs/uploads/"), "{location}");

    let (location, _) = binary_post_location(&containerd, dir.path(), "relative", "  relativeurls: true\n").await;
    assert!(location.starts_with("/v2/loc/app/blobs/uploads/"), "{location}");

    let (location, host) = binary_post_location(&containerd, dir.path(), "default", "").await;
    assert!(location.starts_with(&format!("http://{host}/v2/loc/app/blobs/uploads/")), "{location}");
}
