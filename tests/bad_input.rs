//! Invalid requests against the registry binary backed by containerd. Each gets the status and
//! OCI error code that the in-memory HTTP tests expect, and none changes what containerd stores:
//! the content, ingests, images and leases of the namespace are the same before and after.

mod support;

use reqwest::Method;

use support::containerd::Containerd;
use support::http::{assert_error, data, manifest_bytes, raw_exchange, raw_request, NamespaceState, Pushed, Registry, OCI_MANIFEST};
use support::registry::{RegistryProcess, RegistrySettings};

const NAMESPACE: &str = "registry";

async fn start_upload(registry: &Registry, repository: &str) -> String {
    let reply = registry.send(Method::POST, &format!("/v2/{repository}/blobs/uploads/"), &[], Vec::new()).await;
    assert_eq!(reply.status, 202, "start upload: {}", String::from_utf8_lossy(&reply.body));
    reply.header("location").expect("upload Location").to_owned()
}

async fn patch(registry: &Registry, location: &str, range: &str, bytes: &[u8]) -> support::http::Reply {
    registry.send(Method::PATCH, location, &[("content-range", range)], bytes.to_vec()).await
}

/// Sends a GET with a raw request target, which reqwest would normalise.
async fn raw_get(registry: &Registry, target: &str) -> support::http::Reply {
    let head = format!("GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", registry.addr);
    raw_request(registry.addr, &head).await
}

/// Sends `bytes`, closes the sending side and returns everything the server wrote before it
/// closed the connection.
async fn raw_bytes(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the registry");
    stream.write_all(bytes).await.expect("send the requests");
    stream.shutdown().await.expect("close the sending side");
    let mut response = Vec::new();
    let read = stream.read_to_end(&mut response);
    tokio::time::timeout(std::time::Duration::from_secs(30), read)
        .await
        .expect("the server closes the connection")
        .expect("read the responses");
    response
}

#[tokio::test]
async fn invalid_requests_change_nothing_stored() {
    let work = tempfile::tempdir().unwrap();
    let containerd = Containerd::start();
    let process = RegistryProcess::start(work.path(), &RegistrySettings::new(&containerd.socket()));
    let registry = Registry::new(process.addr);

    let image = registry.push_image("bad/app", "v1", 1, 2, 100_000).await;
    let elsewhere = registry.push_blob("bad/elsewhere", &data(2, 5000)).await;
    let finished = start_upload(&registry, "bad/app").await;
    let finished_blob = Pushed::new(data(3, 3000));
    let reply = registry
        .send(Method::PUT, &format!("{finished}?digest={}", finished_blob.digest), &[], finished_blob.bytes.clone())
        .await;
    assert_eq!(reply.status, 201, "finish an upload: {}", String::from_utf8_lossy(&reply.body));
    let before = NamespaceState::read(&containerd, NAMESPACE);

    // Digest mismatch on the final PUT: 400, and the session and its bytes are discarded.
    let location = start_upload(&registry, "bad/app").await;
    let bytes = data(4, 70_000);
    assert_eq!(patch(&registry, &location, "0-69999", &bytes).await.status, 202);
    let wrong = Pushed::new(b"other bytes".to_vec()).digest;
    let reply = registry.send(Method::PUT, &format!("{location}?digest={wrong}"), &[], Vec::new()).await;
    assert_error(&reply, 400, "DIGEST_INVALID");
    assert_error(&registry.get(&location).await, 404, "BLOB_UPLOAD_UNKNOWN");
    assert_error(&registry.get(&format!("/v2/bad/app/blobs/{}", Pushed::new(bytes).digest)).await, 404, "BLOB_UNKNOWN");

    // Digest mismatch on a monolithic POST, into a repository that does not exist yet.
    let reply = registry.send(Method::POST, &format!("/v2/bad/new/blobs/uploads/?digest={wrong}"), &[], data(5, 900)).await;
    assert_error(&reply, 400, "DIGEST_INVALID");
    assert_error(&registry.get("/v2/bad/new/tags/list").await, 404, "NAME_UNKNOWN");

    // A chunk, a status request or a second PUT after the final PUT.
    assert_error(&patch(&registry, &finished, "3000-3009", &[7; 10]).await, 404, "BLOB_UPLOAD_UNKNOWN");
    assert_error(&registry.get(&finished).await, 404, "BLOB_UPLOAD_UNKNOWN");
    let reply = registry.send(Method::PUT, &format!("{finished}?digest={}", finished_blob.digest), &[], Vec::new()).await;
    assert_error(&reply, 404, "BLOB_UPLOAD_UNKNOWN");

    // Content-Range out of order: 416 with the offset the session has, then cancelled.
    let location = start_upload(&registry, "bad/app").await;
    assert_eq!(patch(&registry, &location, "0-99", &[1; 100]).await.status, 202);
    let reply = patch(&registry, &location, "200-299", &[2; 100]).await;
    assert_error(&reply, 416, "BLOB_UPLOAD_INVALID");
    assert_eq!(reply.header("range"), Some("0-99"));
    let reply = patch(&registry, &location, "0-99", &[3; 100]).await;
    assert_error(&reply, 416, "BLOB_UPLOAD_INVALID");
    assert_eq!(reply.header("range"), Some("0-99"));
    assert_eq!(registry.delete(&location).await.status, 204);
    assert_error(&registry.get(&location).await, 404, "BLOB_UPLOAD_UNKNOWN");

    // Ranges that cannot be satisfied. The sendfile front hands these requests to hyper.
    let layer = &image.layers[0];
    for range in ["bytes=5-1", "bytes=99999999999-", "bytes=100000-"] {
        let path = format!("/v2/bad/app/blobs/{}", layer.digest);
        let reply = registry.send(Method::GET, &path, &[("range", range)], Vec::new()).await;
        assert_error(&reply, 416, "RANGE_INVALID");
        assert_eq!(reply.header("content-range"), Some("bytes */100000"), "{range}");
    }

    // Page sizes that are not numbers of zero or more.
    for path in ["/v2/bad/app/tags/list?n=-1", "/v2/_catalog?n=-1", "/v2/_catalog?n=abc"] {
        assert_error(&registry.get(path).await, 400, "PAGINATION_NUMBER_INVALID");
    }

    // Repository names outside the grammar, read and written.
    let too_long = format!("a/{}", "b".repeat(254));
    let names = ["bad/../app", "../bad/app", "bad/%2e%2e/app", "bad/%2E%2E", "Bad/App", "bad//app", too_long.as_str()];
    for name in names {
        let tags = raw_get(&registry, &format!("/v2/{name}/tags/list")).await;
        assert_error(&tags, 400, "NAME_INVALID");
        let blob = raw_get(&registry, &format!("/v2/{name}/blobs/{}", layer.digest)).await;
        assert_error(&blob, 400, "NAME_INVALID");
        let head = format!(
            "POST /v2/{name}/blobs/uploads/ HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            registry.addr
        );
        assert_error(&raw_request(registry.addr, &head).await, 400, "NAME_INVALID");
        let head = format!(
            "PUT /v2/{name}/manifests/v1 HTTP/1.1\r\nHost: {}\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            registry.addr,
            image.manifest.bytes.len(),
            String::from_utf8(image.manifest.bytes.clone()).unwrap()
        );
        assert_error(&raw_request(registry.addr, &head).await, 400, "NAME_INVALID");
    }

    // A manifest over 4 MiB, with Content-Length and streamed without it.
    let mut huge = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": image.config.digest.to_string(), "size": image.config.bytes.len() },
        "layers": [],
    });
    huge["annotations"] = serde_json::json!({ "filler": "x".repeat(4 * 1024 * 1024) });
    let huge = serde_json::to_vec(&huge).unwrap();
    let head = format!(
        "PUT /v2/bad/app/manifests/huge HTTP/1.1\r\nHost: {}\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        registry.addr,
        huge.len()
    );
    let reply = raw_exchange(registry.addr, head.into_bytes(), huge.clone()).await;
    assert_error(&reply, 413, "MANIFEST_INVALID");
    let head = format!(
        "PUT /v2/bad/app/manifests/huge HTTP/1.1\r\nHost: {}\r\nContent-Type: {OCI_MANIFEST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        registry.addr
    );
    let mut chunked = Vec::new();
    for piece in huge.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let reply = raw_exchange(registry.addr, head.into_bytes(), chunked).await;
    assert_error(&reply, 413, "MANIFEST_INVALID");
    assert_error(&registry.get("/v2/bad/app/manifests/huge").await, 404, "MANIFEST_UNKNOWN");

    // Negative, non-numeric, overflowing and conflicting Content-Lengths, on every write and on a
    // blob GET, as the first request of a connection: 400 SIZE_INVALID naming the value.
    let open = start_upload(&registry, "bad/app").await;
    assert_eq!(patch(&registry, &open, "0-9", b"0123456789").await.status, 202);
    let lengths = ["-1", "18446744073709551616", "18446744073709551615", "9223372036854775808", "1e3", "5\r\nContent-Length: 6"];
    let targets = [
        ("PATCH", open.clone()),
        ("PUT", format!("{open}?digest={}", layer.digest)),
        ("POST", "/v2/bad/app/blobs/uploads/".to_owned()),
        ("PUT", "/v2/bad/app/manifests/v9".to_owned()),
        ("GET", format!("/v2/bad/app/blobs/{}", layer.digest)),
    ];
    for length in lengths {
        for (method, target) in &targets {
            let head = format!(
                "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Length: {length}\r\n\r\n12345",
                registry.addr
            );
            let reply = raw_request(registry.addr, &head).await;
            assert_error(&reply, 400, "SIZE_INVALID");
            assert!(reply.header("x-request-id").is_some_and(|id| !id.is_empty()), "{method} {target}: no request id");
            let message = String::from_utf8_lossy(&reply.body).into_owned();
            let first_value = length.split('\r').next().unwrap_or_default();
            assert!(message.contains(first_value), "{method} {target} with {length:?}: {message}");
        }
    }
    // The same after a blob GET served on the connection: the front reads every head it keeps.
    let head = format!(
        "GET /v2/bad/app/blobs/{digest} HTTP/1.1\r\nHost: {addr}\r\n\r\n\
         PATCH {open} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: -5\r\n\r\n",
        digest = layer.digest,
        addr = registry.addr
    );
    let exchange = raw_bytes(registry.addr, head.as_bytes()).await;
    let text = String::from_utf8_lossy(&exchange);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{}", &text[..text.len().min(900)]);
    let second = &text[text.find("HTTP/1.1 400 ").expect("a 400 after the blob")..];
    assert!(second.contains("SIZE_INVALID"), "{second}");
    assert!(second.contains("Content-Length \\\"-5\\\""), "{second}");
    // After a request hyper served, the connection stays with hyper, which rejects unparsable
    // lengths itself with an empty 400, a documented limit. A parsable length above 2^63-1
    // reaches the router and gets the OCI error, whichever endpoint it is sent to.
    for (method, target) in &targets[..4] {
        let head = format!(
            "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\n\r\n\
             {method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 9223372036854775808\r\n\r\n0123456789",
            addr = registry.addr
        );
        let exchange = raw_bytes(registry.addr, head.as_bytes()).await;
        let text = String::from_utf8_lossy(&exchange);
        let second = &text[text.find("HTTP/1.1 400 ").unwrap_or_else(|| panic!("{method} {target}: no 400 after /v2/: {text}"))..];
        assert!(second.contains("SIZE_INVALID"), "{method} {target}: {second}");
        assert!(second.contains("9223372036854775808 exceeds the largest blob size"), "{method} {target}: {second}");
    }
    assert_eq!(registry.get(&open).await.header("range"), Some("0-9"), "the refused chunks added nothing");
    // Two Range headers: the front hands the GET to hyper, and the router refuses it like one
    // header that lists two ranges.
    let head = format!(
        "GET /v2/bad/app/blobs/{} HTTP/1.1\r\nHost: {}\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\nConnection: close\r\n\r\n",
        layer.digest, registry.addr
    );
    assert_error(&raw_request(registry.addr, &head).await, 416, "RANGE_INVALID");
    // A valid but huge length whose body ends early: the chunk fails, the bytes that arrived
    // are kept and counted, and the session goes on from there.
    let head = format!(
        "PATCH {open} HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000000000000000\r\n\r\nabcde",
        registry.addr
    );
    let reply = raw_bytes(registry.addr, head.as_bytes()).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.is_empty() || reply.starts_with("HTTP/1.1 400 "), "{reply}");
    let status = registry.get(&open).await;
    assert_eq!(status.status, 204);
    assert_eq!(status.header("range"), Some("0-14"), "the 5 bytes that arrived count");
    assert_eq!(registry.send(Method::DELETE, &open, &[], Vec::new()).await.status, 204);

    // A manifest whose layer is a blob of another repository only.
    let foreign = Pushed::new(manifest_bytes(&image.config, &[&elsewhere]));
    assert_error(&registry.put_manifest("bad/app", "foreign", &foreign.bytes).await, 400, "MANIFEST_BLOB_UNKNOWN");
    let reply = registry.put_manifest("bad/app", &foreign.digest.to_string(), &foreign.bytes).await;
    assert_error(&reply, 400, "MANIFEST_BLOB_UNKNOWN");
    assert_error(&registry.get("/v2/bad/app/manifests/foreign").await, 404, "MANIFEST_UNKNOWN");

    let after = NamespaceState::read(&containerd, NAMESPACE);
    assert_eq!(after.content, before.content, "content changed");
    assert_eq!(after.ingests, before.ingests, "ingests changed");
    assert_eq!(after.images, before.images, "images changed");
    assert_eq!(after.leases, before.leases, "leases changed");

    registry.assert_image("bad/app", "v1", &image).await;
    registry.assert_blob("bad/app", &finished_blob).await;
    registry.assert_blob("bad/elsewhere", &elsewhere).await;
    let tags = registry.get("/v2/bad/app/tags/list").await;
    assert_eq!(tags.json()["tags"], serde_json::json!(["v1"]));
}
