//! The OCI Distribution API driven in-process over `MemoryStorage`: every error path with its
//! HTTP status and OCI error code, and the happy path of every endpoint.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use containerd_registry::digest::{Algorithm, Digest};
use containerd_registry::http::{router, AppState};
use containerd_registry::limits::MAX_MANIFEST_BYTES;
use containerd_registry::manifest::{OCI_INDEX, OCI_MANIFEST};
use containerd_registry::storage::memory::MemoryStorage;

const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";

// ---------------------------------------------------------------------------------------------
// Helpers

struct Options {
    delete_enabled: bool,
    read_only: bool,
}

const DEFAULT: Options = Options { delete_enabled: true, read_only: false };

fn registry_over(storage: Arc<MemoryStorage>, options: Options) -> Router {
    router(AppState { storage, delete_enabled: options.delete_enabled, read_only: options.read_only, health: None, auth: None })
}

fn registry() -> Router {
    registry_over(Arc::new(MemoryStorage::new()), DEFAULT)
}

/// A response with its body read.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().expect("header is text"))
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("the router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("body is readable").to_bytes();
    Reply { status, headers, body }
}

async fn call(app: &Router, method: Method, uri: &str) -> Reply {
    send(app, Request::builder().method(method).uri(uri).body(Body::empty()).unwrap()).await
}

async fn call_with(app: &Router, method: Method, uri: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(app, request.body(body.into()).unwrap()).await
}

/// Asserts the status and the OCI error code of an error response, and the shape of its body.
#[track_caller]
fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "status; body {}", reply.text());
    let body = reply.json();
    let errors = body["errors"].as_array().unwrap_or_else(|| panic!("no errors array: {body}"));
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["code"], code, "code; body {body}");
    assert!(errors[0]["message"].as_str().is_some_and(|message| !message.is_empty()), "{body}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("docker-distribution-api-version"), Some("registry/2.0"));
}

#[derive(Clone)]
struct Blob {
    digest: Digest,
    size: u64,
}

/// Pushes a blob in one POST and checks the 201.
async fn push_blob(app: &Router, repository: &str, data: &[u8]) -> Blob {
    let digest = Digest::sha256(data);
    let uri = format!("/v2/{repository}/blobs/uploads/?digest={digest}");
    let reply = call_with(app, Method::POST, &uri, &[], data.to_vec()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    Blob { digest, size: data.len() as u64 }
}

fn descriptor(media_type: &str, blob: &Blob) -> Value {
    json!({ "mediaType": media_type, "digest": blob.digest.to_string(), "size": blob.size })
}

fn image_manifest(config: &Blob, layers: &[&Blob]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(CONFIG_TYPE, config),
        "layers": layers.iter().map(|layer| descriptor(LAYER_TYPE, layer)).collect::<Vec<_>>(),
    })
}

/// Pushes a config and a layer to `repository` and returns an image manifest referencing them.
async fn image_in(app: &Router, repository: &str, seed: &str) -> Value {
    let config = push_blob(app, repository, format!("{{\"seed\":\"{seed}\"}}").as_bytes()).await;
    let layer = push_blob(app, repository, format!("layer of {seed}").as_bytes()).await;
    image_manifest(&config, &[&layer])
}

async fn put_manifest(app: &Router, repository: &str, reference: &str, manifest: &Value) -> Reply {
    let uri = format!("/v2/{repository}/manifests/{reference}");
    let body = serde_json::to_vec(manifest).unwrap();
    let media_type = manifest["mediaType"].as_str().unwrap_or(OCI_MANIFEST).to_owned();
    call_with(app, Method::PUT, &uri, &[("content-type", &media_type)], body).await
}

/// Pushes a manifest and returns its digest, checking the 201.
async fn push_manifest(app: &Router, repository: &str, reference: &str, manifest: &Value) -> Digest {
    let reply = put_manifest(app, repository, reference, manifest).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let digest = Digest::sha256(&serde_json::to_vec(manifest).unwrap());
    assert_eq!(reply.header("docker-content-digest"), Some(digest.to_string().as_str()));
    digest
}

/// Opens an upload session and returns its `Location`.
async fn start_upload(app: &Router, repository: &str) -> String {
    let reply = call(app, Method::POST, &format!("/v2/{repository}/blobs/uploads/")).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    reply.header("location").expect("Location").to_owned()
}

fn body_stream(parts: &[&'static [u8]]) -> Body {
    let items: Vec<Result<Bytes, std::io::Error>> = parts.iter().map(|part| Ok(Bytes::from_static(part))).collect();
    Body::from_stream(futures::stream::iter(items))
}

// ---------------------------------------------------------------------------------------------
// Base, routing and names

#[tokio::test]
async fn base_returns_empty_json_object() {
    let app = registry();
    for uri in ["/v2/", "/v2"] {
        let reply = call(&app, Method::GET, uri).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json(), json!({}));
        assert_eq!(reply.header("docker-distribution-api-version"), Some("registry/2.0"));
    }
}

#[tokio::test]
async fn unknown_path_returns_404_unsupported() {
    let app = registry();
    for uri in ["/v2/a/unknown/thing", "/v2/a", "/other", "/v2/a/blobs/uploads/x/y"] {
        let reply = call(&app, Method::GET, uri).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "UNSUPPORTED");
    }
}

#[tokio::test]
async fn wrong_method_returns_405_with_allow() {
    let app = registry();
    let reply = call(&app, Method::POST, "/v2/a/tags/list").await;
    assert_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));

    let reply = call(&app, Method::PATCH, "/v2/a/manifests/latest").await;
    assert_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
    assert_eq!(reply.header("allow"), Some("GET, HEAD, PUT, DELETE"));

    let reply = call(&app, Method::GET, "/v2/a/blobs/uploads/").await;
    assert_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");

    let reply = call(&app, Method::DELETE, "/v2/").await;
    assert_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");

    let reply = call(&app, Method::POST, "/v2/_catalog").await;
    assert_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
}

#[tokio::test]
async fn invalid_repository_name_returns_400() {
    let app = registry();
    let digest = Digest::sha256(b"x");
    for uri in [
        "/v2/Upper/tags/list".to_owned(),
        "/v2/a%2Fb/manifests/latest".to_owned(),
        "/v2/a//b/tags/list".to_owned(),
        format!("/v2/-a/blobs/{digest}"),
        "/v2/a..b/blobs/uploads/".to_owned(),
    ] {
        let method = if uri.ends_with("uploads/") { Method::POST } else { Method::GET };
        let reply = call(&app, method, &uri).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "NAME_INVALID");
    }
}

#[tokio::test]
async fn nested_repository_name_is_routed() {
    let app = registry();
    let blob = push_blob(&app, "a/blobs/uploads", b"nested").await;

    let reply = call(&app, Method::GET, &format!("/v2/a/blobs/uploads/blobs/{}", blob.digest)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"nested");
}

#[tokio::test]
async fn invalid_digest_returns_400() {
    let app = registry();
    for digest in ["sha256:xyz", "sha256", "SHA256:00", "sha256:..%2F..%2Fetc%2Fpasswd"] {
        let reply = call(&app, Method::GET, &format!("/v2/a/blobs/{digest}")).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    }
}

#[tokio::test]
async fn unsupported_digest_algorithm_rejected() {
    let app = registry();
    let reply = call(&app, Method::GET, "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    let reply = call(&app, Method::GET, "/v2/a/manifests/md5:d41d8cd98f00b204e9800998ecf8427e").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

// ---------------------------------------------------------------------------------------------
// Blob reads

#[tokio::test]
async fn blob_get_returns_bytes_and_headers() {
    let app = registry();
    let blob = push_blob(&app, "a", b"0123456789").await;
    let digest = blob.digest.to_string();

    let reply = call(&app, Method::GET, &format!("/v2/a/blobs/{digest}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"0123456789");
    assert_eq!(reply.header("content-length"), Some("10"));
    assert_eq!(reply.header("content-type"), Some("application/octet-stream"));
    assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(reply.header("accept-ranges"), Some("bytes"));
    assert_eq!(reply.header("etag"), Some(format!("\"{digest}\"").as_str()));
    assert_eq!(reply.header("docker-distribution-api-version"), Some("registry/2.0"));
}

#[tokio::test]
async fn blob_get_large_blob_in_full() {
    let app = registry();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let blob = push_blob(&app, "a", &data).await;

    let reply = call(&app, Method::GET, &format!("/v2/a/blobs/{}", blob.digest)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-length"), Some("300000"));
    assert_eq!(reply.body.to_vec(), data);
}

#[tokio::test]
async fn blob_head_returns_headers_without_body() {
    let app = registry();
    let blob = push_blob(&app, "a", b"0123456789").await;

    let reply = call(&app, Method::HEAD, &format!("/v2/a/blobs/{}", blob.digest)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("content-length"), Some("10"));
    assert_eq!(reply.header("docker-content-digest"), Some(blob.digest.to_string().as_str()));
}

#[tokio::test]
async fn blob_head_unknown_returns_404() {
    let app = registry();
    let reply = call(&app, Method::HEAD, &format!("/v2/a/blobs/{}", Digest::sha256(b"none"))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn blob_get_unknown_returns_404() {
    let app = registry();
    let reply = call(&app, Method::GET, &format!("/v2/a/blobs/{}", Digest::sha256(b"none"))).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    assert_eq!(reply.json()["errors"][0]["detail"]["digest"], Digest::sha256(b"none").to_string());
}

#[tokio::test]
async fn blob_of_other_repository_returns_404() {
    let app = registry();
    let blob = push_blob(&app, "a", b"private").await;

    let reply = call(&app, Method::GET, &format!("/v2/b/blobs/{}", blob.digest)).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
}

async fn get_range(app: &Router, blob: &Blob, range: &str) -> Reply {
    let uri = format!("/v2/a/blobs/{}", blob.digest);
    call_with(app, Method::GET, &uri, &[("range", range)], Body::empty()).await
}

#[tokio::test]
async fn blob_range_returns_206_with_content_range() {
    let app = registry();
    let blob = push_blob(&app, "a", b"0123456789").await;

    let reply = get_range(&app, &blob, "bytes=2-5").await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&reply.body[..], b"2345");
    assert_eq!(reply.header("content-range"), Some("bytes 2-5/10"));
    assert_eq!(reply.header("content-length"), Some("4"));
    assert_eq!(reply.header("docker-content-digest"), Some(blob.digest.to_string().as_str()));
}

#[tokio::test]
async fn blob_suffix_range_returns_last_bytes() {
    let app = registry();
    let blob = push_blob(&app, "a", b"0123456789").await;

    let reply = get_range(&app, &blob, "bytes=-3").await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&reply.body[..], b"789");
    assert_eq!(reply.header("content-range"), Some("bytes 7-9/10"));

    let reply = get_range(&app, &blob, "bytes=-50").await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&reply.body[..], b"0123456789");
    assert_eq!(reply.header("content-range"), Some("bytes 0-9/10"));
}

#[tokio::test]
async fn blob_range_last_byte() {
    let app = registry();
    let blob = push_blob(&app, "a", b"0123456789").await;

    for range in ["bytes=9-", "bytes=9-9", "bytes=-1"] {
        let reply = get_range(&app, &blob, range).await;
        assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(&reply.body[..], b"9", "{range}");
        assert_eq!(reply.header("content-range"), Some("bytes 9-9/10"), "{range}");
    }
}

#[tokio::test]
async fn blob_range_end_past_size_is_clamped() {
    let app = registry();
    let blob = push_blob(&app, "a", b"0123456789").await;

    let reply = get_range(&app, &blob, "bytes=8-100").await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&reply.body[..], b"89");
    assert_eq!(reply.header("content-range"), Some("bytes 8-9/10"));
}

#[tokio::test]
async fn blob_range_past_end_returns_416() {
    let app = registry();
    let blob = push_blob(&app, "a", b"0123456789").await;

    for range in ["bytes=10-", "bytes=10-20", "bytes=-0"] {
        let reply = get_range(&app, &blob, range).await;
        assert_error(&reply, StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID");
        assert_eq!(reply.header("content-range"), Some("bytes */10"), "{range}");
    }
}

#[tokio::test]
async fn blob_malformed_range_returns_416() {
    let app = registry();
    let blob = push_blob(&app, "a", b"0123456789").await;

    for range in ["bytes=5-2", "bytes=x-", "bytes=0-1,4-5"] {
        let reply = get_range(&app, &blob, range).await;
        assert_error(&reply, StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID");
        assert_eq!(reply.header("content-range"), Some("bytes */10"), "{range}");
    }
}

#[tokio::test]
async fn blob_range_other_unit_ignored() {
    let app = registry();
    let blob = push_blob(&app, "a", b"0123456789").await;

    let reply = get_range(&app, &blob, "items=0-1").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"0123456789");
}

#[tokio::test]
async fn blob_head_ignores_range() {
    let app = registry();
    let blob = push_blob(&app, "a", b"0123456789").await;

    let uri = format!("/v2/a/blobs/{}", blob.digest);
    let reply = call_with(&app, Method::HEAD, &uri, &[("range", "bytes=2-3")], Body::empty()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-length"), Some("10"));
}

#[tokio::test]
async fn empty_blob_push_and_get() {
    let app = registry();
    let blob = push_blob(&app, "a", b"").await;

    let reply = call(&app, Method::GET, &format!("/v2/a/blobs/{}", blob.digest)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("content-length"), Some("0"));

    let reply = call(&app, Method::HEAD, &format!("/v2/a/blobs/{}", blob.digest)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-length"), Some("0"));

    let reply = get_range(&app, &blob, "bytes=0-").await;
    assert_error(&reply, StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID");
    assert_eq!(reply.header("content-range"), Some("bytes */0"));
}

// ---------------------------------------------------------------------------------------------
// Blob deletes

#[tokio::test]
async fn blob_delete_returns_202_then_404() {
    let app = registry();
    let blob = push_blob(&app, "a", b"to delete").await;
    let uri = format!("/v2/a/blobs/{}", blob.digest);

    let reply = call(&app, Method::DELETE, &uri).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);

    let reply = call(&app, Method::GET, &uri).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    let reply = call(&app, Method::DELETE, &uri).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn blob_delete_disabled_returns_405() {
    let storage = Arc::new(MemoryStorage::new());
    let app = registry_over(storage, Options { delete_enabled: false, read_only: false });
    let blob = push_blob(&app, "a", b"kept").await;
    let uri = format!("/v2/a/blobs/{}", blob.digest);

    let reply = call(&app, Method::DELETE, &uri).await;
    assert_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
    assert_eq!(call(&app, Method::GET, &uri).await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Uploads

#[tokio::test]
async fn upload_start_returns_202_with_location() {
    let app = registry();
    let reply = call(&app, Method::POST, "/v2/a/b/blobs/uploads/").await;

    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let location = reply.header("location").expect("Location");
    let id = location.strip_prefix("/v2/a/b/blobs/uploads/").expect("Location names the repository");
    assert_eq!(reply.header("docker-upload-uuid"), Some(id));
    assert_eq!(reply.header("content-length"), Some("0"));
    assert_eq!(reply.header("range"), None);
}

#[tokio::test]
async fn monolithic_post_returns_201() {
    let app = registry();
    let digest = Digest::sha256(b"monolithic");
    let uri = format!("/v2/a/blobs/uploads/?digest={digest}");

    let reply = call_with(&app, Method::POST, &uri, &[("content-length", "10")], &b"monolithic"[..]).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.header("location"), Some(format!("/v2/a/blobs/{digest}").as_str()));
    assert_eq!(reply.header("docker-content-digest"), Some(digest.to_string().as_str()));

    let reply = call(&app, Method::GET, &format!("/v2/a/blobs/{digest}")).await;
    assert_eq!(&reply.body[..], b"monolithic");
}

#[tokio::test]
async fn monolithic_post_sha512_digest() {
    let app = registry();
    let digest = Digest::compute(Algorithm::Sha512, b"long digest");
    let uri = format!("/v2/a/blobs/uploads/?digest={digest}");

    let reply = call_with(&app, Method::POST, &uri, &[], &b"long digest"[..]).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = call(&app, Method::GET, &format!("/v2/a/blobs/{digest}")).await;
    assert_eq!(&reply.body[..], b"long digest");
}

#[tokio::test]
async fn monolithic_post_wrong_digest_rejected() {
    let app = registry();
    let digest = Digest::sha256(b"expected");
    let uri = format!("/v2/a/blobs/uploads/?digest={digest}");

    let reply = call_with(&app, Method::POST, &uri, &[], &b"actual"[..]).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    let reply = call(&app, Method::GET, &format!("/v2/a/blobs/{digest}")).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn monolithic_post_invalid_digest_returns_400() {
    let app = registry();
    let reply = call_with(&app, Method::POST, "/v2/a/blobs/uploads/?digest=sha256:zz", &[], &b"x"[..]).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

#[tokio::test]
async fn chunked_upload_with_content_range() {
    let app = registry();
    let location = start_upload(&app, "a").await;

    let first = [("content-range", "0-4"), ("content-length", "5")];
    let reply = call_with(&app, Method::PATCH, &location, &first, &b"01234"[..]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    assert_eq!(reply.header("range"), Some("0-4"));
    assert_eq!(reply.header("location"), Some(location.as_str()));
    assert_eq!(reply.header("content-length"), Some("0"));
    assert!(reply.header("docker-upload-uuid").is_some_and(|id| location.ends_with(id)));

    let second = [("content-range", "bytes 5-9/*"), ("content-length", "5")];
    let reply = call_with(&app, Method::PATCH, &location, &second, &b"56789"[..]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    assert_eq!(reply.header("range"), Some("0-9"));

    let status = call(&app, Method::GET, &location).await;
    assert_eq!(status.status, StatusCode::NO_CONTENT);
    assert_eq!(status.header("range"), Some("0-9"));
    assert_eq!(status.header("location"), Some(location.as_str()));

    let digest = Digest::sha256(b"0123456789");
    let reply = call(&app, Method::PUT, &format!("{location}?digest={digest}")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.header("location"), Some(format!("/v2/a/blobs/{digest}").as_str()));
    assert_eq!(reply.header("docker-content-digest"), Some(digest.to_string().as_str()));

    let reply = call(&app, Method::GET, &format!("/v2/a/blobs/{digest}")).await;
    assert_eq!(&reply.body[..], b"0123456789");
}

#[tokio::test]
async fn patch_out_of_order_returns_416() {
    let app = registry();
    let location = start_upload(&app, "a").await;
    let reply = call_with(&app, Method::PATCH, &location, &[("content-range", "0-2")], &b"abc"[..]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);

    for range in ["5-7", "0-2", "2-4"] {
        let reply = call_with(&app, Method::PATCH, &location, &[("content-range", range)], &b"xyz"[..]).await;
        assert_error(&reply, StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID");
        assert_eq!(reply.header("range"), Some("0-2"), "{range}");
    }

    let status = call(&app, Method::GET, &location).await;
    assert_eq!(status.header("range"), Some("0-2"));
}

#[tokio::test]
async fn patch_length_mismatch_returns_400() {
    let app = registry();
    let location = start_upload(&app, "a").await;

    let headers = [("content-range", "0-9"), ("content-length", "3")];
    let reply = call_with(&app, Method::PATCH, &location, &headers, &b"abc"[..]).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "SIZE_INVALID");
}

#[tokio::test]
async fn patch_short_body_returns_400() {
    let app = registry();
    let location = start_upload(&app, "a").await;

    let reply = call_with(&app, Method::PATCH, &location, &[("content-range", "0-9")], &b"abc"[..]).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "SIZE_INVALID");
}

#[tokio::test]
async fn patch_malformed_content_range_returns_400() {
    let app = registry();
    let location = start_upload(&app, "a").await;

    for range in ["abc", "5-2", "0-18446744073709551616", "0-2 trailing", "bytes 0-2/1"] {
        let reply = call_with(&app, Method::PATCH, &location, &[("content-range", range)], &b"abc"[..]).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID");
    }
}

#[tokio::test]
async fn streamed_patch_without_content_range() {
    let app = registry();
    let location = start_upload(&app, "a").await;

    let body = body_stream(&[b"stream", b"ed ", b"upload"]);
    let reply = send(&app, Request::patch(location.as_str()).body(body).unwrap()).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    assert_eq!(reply.header("range"), Some("0-14"));

    let body = body_stream(&[b" more"]);
    let reply = send(&app, Request::patch(location.as_str()).body(body).unwrap()).await;
    assert_eq!(reply.header("range"), Some("0-19"));

    let digest = Digest::sha256(b"streamed upload more");
    let reply = call(&app, Method::PUT, &format!("{location}?digest={digest}")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
}

#[tokio::test]
async fn put_with_final_chunk_commits() {
    let app = registry();
    let location = start_upload(&app, "a").await;
    call_with(&app, Method::PATCH, &location, &[], &b"first "[..]).await;

    let digest = Digest::sha256(b"first last");
    let uri = format!("{location}?digest={digest}");
    let reply = call_with(&app, Method::PUT, &uri, &[("content-range", "6-9")], &b"last"[..]).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());

    let reply = call(&app, Method::GET, &format!("/v2/a/blobs/{digest}")).await;
    assert_eq!(&reply.body[..], b"first last");
}

/// A streamed final chunk (no `Content-Length`) with more bytes than its `Content-Range` spans is
/// refused as the same chunk on PATCH is, and no blob is created.
#[tokio::test]
async fn put_final_chunk_longer_than_range_returns_400() {
    let app = registry();
    let location = start_upload(&app, "a").await;
    call_with(&app, Method::PATCH, &location, &[], &b"first "[..]).await;

    let digest = Digest::sha256(b"first last and more");
    let uri = format!("{location}?digest={digest}");
    let reply = call_with(&app, Method::PUT, &uri, &[("content-range", "6-9")], &b"last and more"[..]).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "SIZE_INVALID");
    assert_error(&call(&app, Method::GET, &format!("/v2/a/blobs/{digest}")).await, StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn put_final_chunk_out_of_order_returns_416() {
    let app = registry();
    let location = start_upload(&app, "a").await;

    let uri = format!("{location}?digest={}", Digest::sha256(b"x"));
    let reply = call_with(&app, Method::PUT, &uri, &[("content-range", "3-3")], &b"x"[..]).await;
    assert_error(&reply, StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID");
}

#[tokio::test]
async fn put_without_digest_returns_400() {
    let app = registry();
    let location = start_upload(&app, "a").await;

    for uri in [location.clone(), format!("{location}?digest=")] {
        let reply = call_with(&app, Method::PUT, &uri, &[], &b"data"[..]).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    }
    assert_eq!(call(&app, Method::GET, &location).await.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn put_wrong_digest_returns_400() {
    let app = registry();
    let location = start_upload(&app, "a").await;

    let uri = format!("{location}?digest={}", Digest::sha256(b"other"));
    let reply = call_with(&app, Method::PUT, &uri, &[], &b"data"[..]).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

#[tokio::test]
async fn upload_cancel_returns_204_then_unknown() {
    let app = registry();
    let location = start_upload(&app, "a").await;

    let reply = call(&app, Method::DELETE, &location).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);

    let reply = call(&app, Method::GET, &location).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    let reply = call(&app, Method::DELETE, &location).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn upload_cancel_allowed_while_delete_disabled() {
    let app = registry_over(Arc::new(MemoryStorage::new()), Options { delete_enabled: false, read_only: false });
    let location = start_upload(&app, "a").await;

    assert_eq!(call(&app, Method::DELETE, &location).await.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn unknown_upload_id_returns_404() {
    let app = registry();
    let unknown = "/v2/a/blobs/uploads/0123456789abcdef0123456789abcdef";
    let digest = Digest::sha256(b"");

    for (method, uri) in [
        (Method::GET, unknown.to_owned()),
        (Method::PATCH, unknown.to_owned()),
        (Method::PUT, format!("{unknown}?digest={digest}")),
        (Method::DELETE, unknown.to_owned()),
    ] {
        let reply = call(&app, method.clone(), &uri).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    }
}

#[tokio::test]
async fn invalid_upload_id_returns_404() {
    let app = registry();
    for id in ["not-an-id", "0123456789ABCDEF0123456789ABCDEF", "..", "0123"] {
        let reply = call(&app, Method::GET, &format!("/v2/a/blobs/uploads/{id}")).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    }
}

#[tokio::test]
async fn upload_of_other_repository_returns_404() {
    let app = registry();
    let location = start_upload(&app, "a").await;
    let other = location.replacen("/v2/a/", "/v2/b/", 1);

    let reply = call(&app, Method::GET, &other).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn mount_from_repository_returns_201() {
    let app = registry();
    let blob = push_blob(&app, "source", b"shared layer").await;

    let uri = format!("/v2/target/blobs/uploads/?mount={}&from=source", blob.digest);
    let reply = call(&app, Method::POST, &uri).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.header("location"), Some(format!("/v2/target/blobs/{}", blob.digest).as_str()));
    assert_eq!(reply.header("docker-content-digest"), Some(blob.digest.to_string().as_str()));

    let reply = call(&app, Method::GET, &format!("/v2/target/blobs/{}", blob.digest)).await;
    assert_eq!(&reply.body[..], b"shared layer");
}

#[tokio::test]
async fn mount_unknown_blob_opens_session() {
    let app = registry();
    let digest = Digest::sha256(b"nowhere");

    for uri in [
        format!("/v2/target/blobs/uploads/?mount={digest}&from=source"),
        format!("/v2/target/blobs/uploads/?mount={digest}"),
    ] {
        let reply = call(&app, Method::POST, &uri).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
        assert!(reply.header("location").is_some_and(|location| location.starts_with("/v2/target/blobs/uploads/")));
    }
}

/// Docker Distribution 2.8.2 responds to an invalid `mount` digest or `from` name with a new upload
/// session (measured), as the OCI spec recommends for any mount that cannot be done.
#[tokio::test]
async fn mount_invalid_arguments_fall_back_to_upload() {
    let app = registry();
    let digest = Digest::sha256(b"x");
    for uri in [
        "/v2/target/blobs/uploads/?mount=sha256:00&from=source".to_owned(),
        format!("/v2/target/blobs/uploads/?mount={digest}&from=Bad"),
        format!("/v2/target/blobs/uploads/?mount={digest}&from=../x"),
    ] {
        let reply = call(&app, Method::POST, &uri).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{uri}: {}", reply.text());
        assert!(reply.header("location").is_some_and(|location| location.starts_with("/v2/target/blobs/uploads/")));
    }
}

#[tokio::test]
async fn two_range_headers_return_416() {
    let app = registry();
    let blob = push_blob(&app, "a", b"0123456789").await;
    let uri = format!("/v2/a/blobs/{}", blob.digest);
    let reply = call_with(&app, Method::GET, &uri, &[("range", "bytes=0-1"), ("range", "bytes=2-3")], Bytes::new()).await;
    assert_error(&reply, StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID");
}

// ---------------------------------------------------------------------------------------------
// Manifests

#[tokio::test]
async fn manifest_put_by_tag_and_get() {
    let app = registry();
    let manifest = image_in(&app, "a/b", "one").await;
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = Digest::sha256(&bytes);

    let reply = put_manifest(&app, "a/b", "v1", &manifest).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.header("location"), Some(format!("/v2/a/b/manifests/{digest}").as_str()));
    assert_eq!(reply.header("docker-content-digest"), Some(digest.to_string().as_str()));
    assert_eq!(reply.header("oci-subject"), None);

    for reference in ["v1".to_owned(), digest.to_string()] {
        let reply = call(&app, Method::GET, &format!("/v2/a/b/manifests/{reference}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{reference}");
        assert_eq!(reply.body.to_vec(), bytes, "{reference}");
        assert_eq!(reply.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(reply.header("docker-content-digest"), Some(digest.to_string().as_str()));
        assert_eq!(reply.header("content-length"), Some(bytes.len().to_string().as_str()));
        assert_eq!(reply.header("etag"), Some(format!("\"{digest}\"").as_str()));
    }
}

#[tokio::test]
async fn manifest_head_returns_headers_without_body() {
    let app = registry();
    let manifest = image_in(&app, "a", "head").await;
    let digest = push_manifest(&app, "a", "v1", &manifest).await;

    let reply = call(&app, Method::HEAD, "/v2/a/manifests/v1").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("docker-content-digest"), Some(digest.to_string().as_str()));
    let length = serde_json::to_vec(&manifest).unwrap().len().to_string();
    assert_eq!(reply.header("content-length"), Some(length.as_str()));
}

#[tokio::test]
async fn manifest_put_by_digest() {
    let app = registry();
    let manifest = image_in(&app, "a", "by digest").await;
    let digest = Digest::sha256(&serde_json::to_vec(&manifest).unwrap());

    push_manifest(&app, "a", &digest.to_string(), &manifest).await;
    let reply = call(&app, Method::GET, &format!("/v2/a/manifests/{digest}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let tags = call(&app, Method::GET, "/v2/a/tags/list").await;
    assert_eq!(tags.json()["tags"], json!([]));
}

#[tokio::test]
async fn manifest_put_sha512_digest() {
    let app = registry();
    let manifest = image_in(&app, "a", "sha512").await;
    let digest = Digest::compute(Algorithm::Sha512, &serde_json::to_vec(&manifest).unwrap());

    let reply = put_manifest(&app, "a", &digest.to_string(), &manifest).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.header("docker-content-digest"), Some(digest.to_string().as_str()));
    assert_eq!(call(&app, Method::GET, &format!("/v2/a/manifests/{digest}")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn manifest_digest_mismatch_rejected() {
    let app = registry();
    let manifest = image_in(&app, "a", "mismatch").await;

    let reply = put_manifest(&app, "a", &Digest::sha256(b"other").to_string(), &manifest).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

#[tokio::test]
async fn manifest_missing_blob_rejected() {
    let app = registry();
    let config = push_blob(&app, "a", b"{}").await;
    let missing = Blob { digest: Digest::sha256(b"missing layer"), size: 13 };
    let manifest = image_manifest(&config, &[&missing]);

    let reply = put_manifest(&app, "a", "v1", &manifest).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(reply.json()["errors"][0]["detail"]["digest"], missing.digest.to_string());
}

#[tokio::test]
async fn manifest_blob_of_other_repository_rejected() {
    let app = registry();
    let manifest = image_in(&app, "a", "elsewhere").await;

    let reply = put_manifest(&app, "b", "v1", &manifest).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn manifest_invalid_body_rejected() {
    let app = registry();
    let uri = "/v2/a/manifests/v1";
    for body in ["", "not json", "[]", r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#] {
        let reply = call_with(&app, Method::PUT, uri, &[("content-type", OCI_MANIFEST)], body).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    }
}

#[tokio::test]
async fn manifest_content_type_mismatch_rejected() {
    let app = registry();
    let manifest = image_in(&app, "a", "mismatch").await;
    let body = serde_json::to_vec(&manifest).unwrap();

    let reply = call_with(&app, Method::PUT, "/v2/a/manifests/v1", &[("content-type", OCI_INDEX)], body).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
}

#[tokio::test]
async fn manifest_put_too_large_returns_413() {
    let app = registry();
    let length = (MAX_MANIFEST_BYTES + 1).to_string();
    let headers = [("content-type", OCI_MANIFEST), ("content-length", length.as_str())];
    let reply = call_with(&app, Method::PUT, "/v2/a/manifests/v1", &headers, "{}").await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID");

    let oversized: &'static [u8] = Box::leak(vec![b' '; MAX_MANIFEST_BYTES].into_boxed_slice());
    let body = body_stream(&[b"{", oversized, b"}"]);
    let request = Request::put("/v2/a/manifests/v1").header("content-type", OCI_MANIFEST).body(body).unwrap();
    let reply = send(&app, request).await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID");
}

#[tokio::test]
async fn manifest_invalid_tag_rejected() {
    let app = registry();
    let manifest = image_in(&app, "a", "tag").await;

    let reply = put_manifest(&app, "a", "-bad", &manifest).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "NAME_INVALID");
}

#[tokio::test]
async fn manifest_get_unknown_returns_404() {
    let app = registry();
    let reply = call(&app, Method::GET, "/v2/a/manifests/latest").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");

    let reply = call(&app, Method::GET, &format!("/v2/a/manifests/{}", Digest::sha256(b"none"))).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn blob_if_none_match_returns_304() {
    let app = registry();
    let blob = push_blob(&app, "a", b"cached bytes").await;
    let uri = format!("/v2/a/blobs/{}", blob.digest);
    let etag = format!("\"{}\"", blob.digest);

    for value in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}"), "*".to_owned()] {
        let reply = call_with(&app, Method::GET, &uri, &[("if-none-match", &value)], Vec::new()).await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{value}");
        assert!(reply.body.is_empty(), "{value}");
        assert_eq!(reply.header("etag"), Some(etag.as_str()));
    }

    let reply = call_with(&app, Method::HEAD, &uri, &[("if-none-match", &etag)], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::NOT_MODIFIED);

    let reply = call_with(&app, Method::GET, &uri, &[("if-none-match", "\"sha256:other\"")], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"cached bytes");
}

#[tokio::test]
async fn manifest_with_wrong_layer_size_is_invalid() {
    let app = registry();
    let mut manifest = image_in(&app, "a", "sizes").await;
    manifest["layers"][0]["size"] = json!(1);

    let reply = put_manifest(&app, "a", "v1", &manifest).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    assert!(reply.text().contains("gives size 1"), "{}", reply.text());

    let reply = call(&app, Method::GET, "/v2/a/manifests/v1").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn manifest_read_invalid_tag_returns_404() {
    let app = registry();
    image_in(&app, "a", "tag").await;

    let reply = call(&app, Method::GET, "/v2/a/manifests/.INVALID_MANIFEST_NAME").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");

    let reply = call(&app, Method::HEAD, "/v2/a/manifests/.INVALID_MANIFEST_NAME").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let reply = call(&app, Method::GET, "/v2/a/manifests/md5:00").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

#[tokio::test]
async fn manifest_accept_negotiation() {
    let app = registry();
    let manifest = image_in(&app, "a", "accept").await;
    push_manifest(&app, "a", "v1", &manifest).await;
    let uri = "/v2/a/manifests/v1";

    let accepted = [
        OCI_MANIFEST.to_owned(),
        format!("application/vnd.docker.distribution.manifest.v2+json, {OCI_MANIFEST}"),
        "*/*".to_owned(),
        "application/*".to_owned(),
    ];
    for accept in &accepted {
        let reply = call_with(&app, Method::GET, uri, &[("accept", accept)], Body::empty()).await;
        assert_eq!(reply.status, StatusCode::OK, "Accept: {accept}");
        assert_eq!(reply.header("content-type"), Some(OCI_MANIFEST));
    }

    for accept in ["application/vnd.docker.distribution.manifest.v2+json", OCI_INDEX] {
        let reply = call_with(&app, Method::GET, uri, &[("accept", accept)], Body::empty()).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    }
}

#[tokio::test]
async fn manifest_subject_sets_oci_subject() {
    let app = registry();
    let subject_manifest = image_in(&app, "a", "subject").await;
    let subject = push_manifest(&app, "a", "v1", &subject_manifest).await;
    let subject_size = serde_json::to_vec(&subject_manifest).unwrap().len() as u64;

    let empty = push_blob(&app, "a", b"{}").await;
    let mut artifact = image_manifest(&empty, &[]);
    artifact["config"]["mediaType"] = json!(EMPTY_TYPE);
    artifact["artifactType"] = json!("application/vnd.example.sbom");
    artifact["subject"] = descriptor(OCI_MANIFEST, &Blob { digest: subject.clone(), size: subject_size });

    let artifact_digest = Digest::sha256(&serde_json::to_vec(&artifact).unwrap());
    let reply = put_manifest(&app, "a", &artifact_digest.to_string(), &artifact).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.header("oci-subject"), Some(subject.to_string().as_str()));
}

#[tokio::test]
async fn index_put_requires_child_manifests() {
    let app = registry();
    let child = image_in(&app, "a", "child").await;
    let child_bytes = serde_json::to_vec(&child).unwrap();
    let child_blob = Blob { digest: Digest::sha256(&child_bytes), size: child_bytes.len() as u64 };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, &child_blob)],
    });

    let reply = put_manifest(&app, "a", "multi", &index).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");

    push_manifest(&app, "a", &child_blob.digest.to_string(), &child).await;
    push_manifest(&app, "a", "multi", &index).await;
    let reply = call(&app, Method::GET, "/v2/a/manifests/multi").await;
    assert_eq!(reply.header("content-type"), Some(OCI_INDEX));
}

#[tokio::test]
async fn manifest_delete_by_digest_removes_tags() {
    let app = registry();
    let manifest = image_in(&app, "a", "delete").await;
    let digest = push_manifest(&app, "a", "v1", &manifest).await;
    push_manifest(&app, "a", "v2", &manifest).await;

    let reply = call(&app, Method::DELETE, &format!("/v2/a/manifests/{digest}")).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);

    for reference in ["v1".to_owned(), "v2".to_owned(), digest.to_string()] {
        let reply = call(&app, Method::GET, &format!("/v2/a/manifests/{reference}")).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    }
    let tags = call(&app, Method::GET, "/v2/a/tags/list").await;
    assert_eq!(tags.json()["tags"], json!([]));
}

#[tokio::test]
async fn manifest_delete_by_tag_keeps_manifest() {
    let app = registry();
    let manifest = image_in(&app, "a", "untag").await;
    let digest = push_manifest(&app, "a", "v1", &manifest).await;

    let reply = call(&app, Method::DELETE, "/v2/a/manifests/v1").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);

    let reply = call(&app, Method::GET, "/v2/a/manifests/v1").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    assert_eq!(call(&app, Method::GET, &format!("/v2/a/manifests/{digest}")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn manifest_delete_unknown_returns_404() {
    let app = registry();
    let reply = call(&app, Method::DELETE, &format!("/v2/a/manifests/{}", Digest::sha256(b"none"))).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    let reply = call(&app, Method::DELETE, "/v2/a/manifests/none").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn manifest_delete_disabled_returns_405() {
    let app = registry_over(Arc::new(MemoryStorage::new()), Options { delete_enabled: false, read_only: false });
    let manifest = image_in(&app, "a", "kept").await;
    let digest = push_manifest(&app, "a", "v1", &manifest).await;

    for reference in [digest.to_string(), "v1".to_owned()] {
        let reply = call(&app, Method::DELETE, &format!("/v2/a/manifests/{reference}")).await;
        assert_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
    }
    assert_eq!(call(&app, Method::GET, "/v2/a/manifests/v1").await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Tags and catalog

async fn tag_all(app: &Router, repository: &str, tags: &[&str]) {
    let manifest = image_in(app, repository, "tags").await;
    for tag in tags {
        push_manifest(app, repository, tag, &manifest).await;
    }
}

#[tokio::test]
async fn tags_list_returns_sorted_tags() {
    let app = registry();
    tag_all(&app, "a/b", &["v2", "latest", "v1"]).await;

    let reply = call(&app, Method::GET, "/v2/a/b/tags/list").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), json!({ "name": "a/b", "tags": ["latest", "v1", "v2"] }));
    assert_eq!(reply.header("link"), None);
}

#[tokio::test]
async fn tags_list_paginates_with_link() {
    let app = registry();
    tag_all(&app, "a", &["t1", "t2", "t3", "t4", "t5"]).await;

    let reply = call(&app, Method::GET, "/v2/a/tags/list?n=2").await;
    assert_eq!(reply.json()["tags"], json!(["t1", "t2"]));
    assert_eq!(reply.header("link"), Some(r#"</v2/a/tags/list?n=2&last=t2>; rel="next""#));

    let reply = call(&app, Method::GET, "/v2/a/tags/list?n=2&last=t2").await;
    assert_eq!(reply.json()["tags"], json!(["t3", "t4"]));
    assert_eq!(reply.header("link"), Some(r#"</v2/a/tags/list?n=2&last=t4>; rel="next""#));

    let reply = call(&app, Method::GET, "/v2/a/tags/list?n=2&last=t4").await;
    assert_eq!(reply.json()["tags"], json!(["t5"]));
    assert_eq!(reply.header("link"), None);

    let reply = call(&app, Method::GET, "/v2/a/tags/list?n=5").await;
    assert_eq!(reply.json()["tags"].as_array().map(Vec::len), Some(5));
    assert_eq!(reply.header("link"), None);
}

#[tokio::test]
async fn tags_list_last_between_entries() {
    let app = registry();
    tag_all(&app, "a", &["a1", "b1", "c1"]).await;

    let reply = call(&app, Method::GET, "/v2/a/tags/list?last=b").await;
    assert_eq!(reply.json()["tags"], json!(["b1", "c1"]));
    let reply = call(&app, Method::GET, "/v2/a/tags/list?last=z").await;
    assert_eq!(reply.json()["tags"], json!([]));
}

#[tokio::test]
async fn tags_list_n_zero_returns_empty() {
    let app = registry();
    tag_all(&app, "a", &["v1"]).await;

    let reply = call(&app, Method::GET, "/v2/a/tags/list?n=0").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["tags"], json!([]));
    assert_eq!(reply.header("link"), None);
}

#[tokio::test]
async fn tags_list_invalid_n_returns_400() {
    let app = registry();
    tag_all(&app, "a", &["v1"]).await;

    for n in ["-1", "abc", "1.5", "1e3"] {
        let reply = call(&app, Method::GET, &format!("/v2/a/tags/list?n={n}")).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID");
    }
}

#[tokio::test]
async fn tags_list_unknown_repository_returns_404() {
    let app = registry();
    let reply = call(&app, Method::GET, "/v2/nothing/tags/list").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "NAME_UNKNOWN");
}

#[tokio::test]
async fn catalog_paginates_with_link() {
    let app = registry();
    for repository in ["c", "a/b", "a", "b/c/d"] {
        push_blob(&app, repository, repository.as_bytes()).await;
    }

    let reply = call(&app, Method::GET, "/v2/_catalog").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({ "repositories": ["a", "a/b", "b/c/d", "c"] }));
    assert_eq!(reply.header("link"), None);

    let reply = call(&app, Method::GET, "/v2/_catalog?n=3").await;
    assert_eq!(reply.json()["repositories"], json!(["a", "a/b", "b/c/d"]));
    assert_eq!(reply.header("link"), Some(r#"</v2/_catalog?n=3&last=b/c/d>; rel="next""#));

    let reply = call(&app, Method::GET, "/v2/_catalog?n=3&last=b/c/d").await;
    assert_eq!(reply.json()["repositories"], json!(["c"]));
    assert_eq!(reply.header("link"), None);
}

#[tokio::test]
async fn catalog_of_empty_registry_is_empty() {
    let app = registry();
    let reply = call(&app, Method::GET, "/v2/_catalog").await;
    assert_eq!(reply.json(), json!({ "repositories": [] }));
}

#[tokio::test]
async fn catalog_invalid_n_returns_400() {
    let app = registry();
    let reply = call(&app, Method::GET, "/v2/_catalog?n=-5").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID");
}

// ---------------------------------------------------------------------------------------------
// Referrers

/// Pushes an artifact manifest whose subject is `subject`, and returns its digest and size.
async fn push_referrer(app: &Router, repository: &str, subject: &Blob, artifact_type: &str) -> Blob {
    let empty = push_blob(app, repository, b"{}").await;
    let mut artifact = image_manifest(&empty, &[]);
    artifact["config"]["mediaType"] = json!(EMPTY_TYPE);
    artifact["artifactType"] = json!(artifact_type);
    artifact["annotations"] = json!({ "org.example.kind": artifact_type });
    artifact["subject"] = descriptor(OCI_MANIFEST, subject);

    let bytes = serde_json::to_vec(&artifact).unwrap();
    let blob = Blob { digest: Digest::sha256(&bytes), size: bytes.len() as u64 };
    push_manifest(app, repository, &blob.digest.to_string(), &artifact).await;
    blob
}

async fn push_subject(app: &Router, repository: &str) -> Blob {
    let manifest = image_in(app, repository, "subject").await;
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = push_manifest(app, repository, "v1", &manifest).await;
    Blob { digest, size: bytes.len() as u64 }
}

#[tokio::test]
async fn referrers_lists_manifests_with_subject() {
    let app = registry();
    let subject = push_subject(&app, "a").await;
    let sbom = push_referrer(&app, "a", &subject, "application/vnd.example.sbom").await;
    let signature = push_referrer(&app, "a", &subject, "application/vnd.example.signature").await;

    let reply = call(&app, Method::GET, &format!("/v2/a/referrers/{}", subject.digest)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some(OCI_INDEX));
    assert_eq!(reply.header("oci-filters-applied"), None);

    let index = reply.json();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], OCI_INDEX);
    let manifests = index["manifests"].as_array().expect("manifests array");
    assert_eq!(manifests.len(), 2);
    for (blob, artifact_type) in [(&sbom, "application/vnd.example.sbom"), (&signature, "application/vnd.example.signature")] {
        let entry = manifests
            .iter()
            .find(|entry| entry["digest"] == blob.digest.to_string())
            .unwrap_or_else(|| panic!("{} is not listed: {index}", blob.digest));
        assert_eq!(entry["mediaType"], OCI_MANIFEST);
        assert_eq!(entry["size"], blob.size);
        assert_eq!(entry["artifactType"], artifact_type);
        assert_eq!(entry["annotations"]["org.example.kind"], artifact_type);
    }
}

#[tokio::test]
async fn referrers_artifact_type_filter_sets_header() {
    let app = registry();
    let subject = push_subject(&app, "a").await;
    let sbom = push_referrer(&app, "a", &subject, "application/vnd.example.sbom").await;
    push_referrer(&app, "a", &subject, "application/vnd.example.signature").await;

    let uri = format!("/v2/a/referrers/{}?artifactType=application/vnd.example.sbom", subject.digest);
    let reply = call(&app, Method::GET, &uri).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("oci-filters-applied"), Some("artifactType"));
    let manifests = reply.json()["manifests"].clone();
    assert_eq!(manifests.as_array().map(Vec::len), Some(1));
    assert_eq!(manifests[0]["digest"], sbom.digest.to_string());
}

#[tokio::test]
async fn referrers_unknown_subject_returns_empty_index() {
    let app = registry();
    push_subject(&app, "a").await;

    let reply = call(&app, Method::GET, &format!("/v2/a/referrers/{}", Digest::sha256(b"none"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["manifests"], json!([]));
}

#[tokio::test]
async fn referrers_invalid_digest_returns_400() {
    let app = registry();
    let reply = call(&app, Method::GET, "/v2/a/referrers/sha256:nothex").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

// ---------------------------------------------------------------------------------------------
// Read-only mode

#[tokio::test]
async fn read_only_rejects_writes_with_405() {
    let storage = Arc::new(MemoryStorage::new());
    let writable = registry_over(storage.clone(), DEFAULT);
    let manifest = image_in(&writable, "a", "read only").await;
    let digest = push_manifest(&writable, "a", "v1", &manifest).await;
    let location = start_upload(&writable, "a").await;

    let app = registry_over(storage, Options { delete_enabled: true, read_only: true });
    let writes = [
        (Method::POST, "/v2/a/blobs/uploads/".to_owned()),
        (Method::POST, format!("/v2/a/blobs/uploads/?digest={}", Digest::sha256(b""))),
        (Method::PATCH, location.clone()),
        (Method::PUT, format!("{location}?digest={}", Digest::sha256(b""))),
        (Method::DELETE, location.clone()),
        (Method::PUT, "/v2/a/manifests/v2".to_owned()),
        (Method::DELETE, format!("/v2/a/manifests/{digest}")),
        (Method::DELETE, format!("/v2/a/blobs/{}", Digest::sha256(b"x"))),
        (Method::POST, "/v2/a/manifests/v1".to_owned()),
        (Method::OPTIONS, "/v2/a/tags/list".to_owned()),
    ];
    // Docker Distribution 2.8.2 in read-only mode, measured: 405, `Allow: GET, HEAD`, and the
    // plain-text body of Go's method router.
    for (method, uri) in writes {
        let reply = call(&app, method.clone(), &uri).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{method} {uri}");
        assert_eq!(reply.header("content-type"), Some("text/plain; charset=utf-8"), "{method} {uri}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{method} {uri}");
        assert_eq!(&reply.body[..], b"Method not allowed\n", "{method} {uri}");
    }
    // Nothing was written: the tag and the upload are as before.
    assert_eq!(call(&writable, Method::GET, "/v2/a/manifests/v1").await.status, StatusCode::OK);
    assert_eq!(call(&writable, Method::GET, &location).await.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn read_only_serves_reads() {
    let storage = Arc::new(MemoryStorage::new());
    let writable = registry_over(storage.clone(), DEFAULT);
    let manifest = image_in(&writable, "a", "read only").await;
    let digest = push_manifest(&writable, "a", "v1", &manifest).await;
    let location = start_upload(&writable, "a").await;

    let app = registry_over(storage, Options { delete_enabled: true, read_only: true });
    assert_eq!(call(&app, Method::GET, "/v2/").await.status, StatusCode::OK);
    assert_eq!(call(&app, Method::GET, "/v2/a/manifests/v1").await.status, StatusCode::OK);
    assert_eq!(call(&app, Method::HEAD, &format!("/v2/a/manifests/{digest}")).await.status, StatusCode::OK);
    assert_eq!(call(&app, Method::GET, "/v2/a/tags/list").await.status, StatusCode::OK);
    assert_eq!(call(&app, Method::GET, "/v2/_catalog").await.status, StatusCode::OK);
    assert_eq!(call(&app, Method::GET, &location).await.status, StatusCode::NO_CONTENT);
    let config = manifest["config"]["digest"].as_str().unwrap();
    assert_eq!(call(&app, Method::GET, &format!("/v2/a/blobs/{config}")).await.status, StatusCode::OK);
}
