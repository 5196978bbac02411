//! A client of the registry binary over loopback: reqwest for ordinary requests, and raw
//! HTTP/1.1 on a TCP socket for request targets that reqwest would normalise (`..`).

use std::net::SocketAddr;
use std::process::Command;

use containerd_registry::digest::Digest;
use reqwest::header::HeaderMap;
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::containerd::{Containerd, CTR};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// A response, read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Returns the `code` of the first entry of an OCI error body.
    pub fn error_code(&self) -> String {
        let body = self.json();
        body["errors"][0]["code"].as_str().unwrap_or_else(|| panic!("no OCI error code in {body}")).to_owned()
    }
}

/// Asserts the status of a reply and the OCI error code in its body.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "status; body: {}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.error_code(), code, "error code; body: {}", String::from_utf8_lossy(&reply.body));
}

/// A blob or manifest as the test pushed it.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: Digest,
    pub bytes: Vec<u8>,
}

impl Pushed {
    pub fn new(bytes: Vec<u8>) -> Pushed {
        Pushed { digest: Digest::sha256(&bytes), bytes }
    }
}

/// An image pushed by [`Registry::push_image`]: config, layers and the manifest over them.
#[derive(Debug, Clone)]
pub struct PushedImage {
    pub config: Pushed,
    pub layers: Vec<Pushed>,
    pub manifest: Pushed,
}

impl PushedImage {
    /// Returns the config and the layers.
    pub fn blobs(&self) -> Vec<&Pushed> {
        std::iter::once(&self.config).chain(&self.layers).collect()
    }
}

/// Deterministic bytes that differ between seeds.
pub fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed as u32 * 7919).to_be_bytes()[0]).collect()
}

/// Returns the bytes of an image manifest over a config and layers.
pub fn manifest_bytes(config: &Pushed, layers: &[&Pushed]) -> Vec<u8> {
    let descriptor = |media_type: &str, blob: &Pushed| {
        serde_json::json!({ "mediaType": media_type, "digest": blob.digest.to_string(), "size": blob.bytes.len() })
    };
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(CONFIG_TYPE, config),
        "layers": layers.iter().map(|layer| descriptor(LAYER_TYPE, layer)).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&manifest).unwrap()
}

/// Returns the path and query of a `Location` value, without the scheme and authority that the
/// registry binary puts in front unless `http.relativeurls` is set.
pub fn location_path(location: &str) -> String {
    let Some((_, rest)) = location.split_once("://") else {
        return location.to_owned();
    };
    rest.find('/').map_or_else(|| "/".to_owned(), |start| rest[start..].to_owned())
}

/// A registry at a loopback address.
#[derive(Clone)]
pub struct Registry {
    pub addr: SocketAddr,
    client: reqwest::Client,
}

impl Registry {
    pub fn new(addr: SocketAddr) -> Registry {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .expect("build the HTTP client");
        Registry { addr, client }
    }

    /// Returns the URL of `path` at this registry. An absolute `Location` counts by its path, so
    /// that it still reaches this registry after a restart on another port, and so that another
    /// registry's `Location` is sent here and not to its owner.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, location_path(path))
    }

    /// Sends a request and reads the whole response. A connection failure panics.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        self.try_send(method.clone(), path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e:?}"))
    }

    /// Sends a request and reads the whole response, returning connection failures.
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> reqwest::Result<Reply> {
        let mut request = self.client.request(method, self.url(path)).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        Ok(Reply { status, headers, body })
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], Vec::new()).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, &[], Vec::new()).await
    }

    /// Pushes a blob in one `POST ?digest=` and asserts 201.
    pub async fn push_blob(&self, repository: &str, bytes: &[u8]) -> Pushed {
        let pushed = Pushed::new(bytes.to_vec());
        let path = format!("/v2/{repository}/blobs/uploads/?digest={}", pushed.digest);
        let reply = self.send(Method::POST, &path, &[], pushed.bytes.clone()).await;
        assert_eq!(reply.status, 201, "push blob to {repository}: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.header("docker-content-digest"), Some(pushed.digest.to_string().as_str()));
        pushed
    }

    /// Puts manifest bytes under a tag or digest and returns the reply.
    pub async fn put_manifest(&self, repository: &str, reference: &str, bytes: &[u8]) -> Reply {
        let path = format!("/v2/{repository}/manifests/{reference}");
        self.send(Method::PUT, &path, &[("content-type", OCI_MANIFEST)], bytes.to_vec()).await
    }

    /// Pushes a config, `layers` layers of `layer_len` bytes and a manifest tagged `tag`.
    pub async fn push_image(&self, repository: &str, tag: &str, seed: u8, layers: usize, layer_len: usize) -> PushedImage {
        let config = self.push_blob(repository, format!("{{\"seed\":{seed}}}").as_bytes()).await;
        let mut pushed_layers = Vec::new();
        for i in 0..layers {
            let bytes = data(seed.wrapping_mul(31).wrapping_add(i as u8), layer_len);
            pushed_layers.push(self.push_blob(repository, &bytes).await);
        }
        let manifest = Pushed::new(manifest_bytes(&config, &pushed_layers.iter().collect::<Vec<_>>()));
        let reply = self.put_manifest(repository, tag, &manifest.bytes).await;
        assert_eq!(reply.status, 201, "put manifest {repository}:{tag}: {}", String::from_utf8_lossy(&reply.body));
        PushedImage { config, layers: pushed_layers, manifest }
    }

    /// Asserts that a blob GET returns 200 with exactly these bytes.
    pub async fn assert_blob(&self, repository: &str, blob: &Pushed) {
        let reply = self.get(&format!("/v2/{repository}/blobs/{}", blob.digest)).await;
        assert_eq!(reply.status, 200, "GET blob {} of {repository}: {:?}", blob.digest, String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.body.len(), blob.bytes.len(), "length of blob {} of {repository}", blob.digest);
        assert!(reply.body == blob.bytes, "bytes of blob {} of {repository} differ", blob.digest);
    }

    /// Asserts that a manifest GET by `reference` returns 200 with exactly these bytes.
    pub async fn assert_manifest(&self, repository: &str, reference: &str, manifest: &Pushed) {
        let reply = self.get(&format!("/v2/{repository}/manifests/{reference}")).await;
        assert_eq!(reply.status, 200, "GET manifest {repository}:{reference}: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.header("docker-content-digest"), Some(manifest.digest.to_string().as_str()));
        assert!(reply.body == manifest.bytes, "bytes of manifest {repository}:{reference} differ");
    }

    /// Asserts that every blob of an image and its manifest, by tag and by digest, are served
    /// byte-identical.
    pub async fn assert_image(&self, repository: &str, tag: &str, image: &PushedImage) {
        for blob in image.blobs() {
            self.assert_blob(repository, blob).await;
        }
        self.assert_manifest(repository, tag, &image.manifest).await;
        self.assert_manifest(repository, &image.manifest.digest.to_string(), &image.manifest).await;
    }
}

/// Sends `head` (a request head and any body) on a new connection and reads the response to
/// the end of the connection. The head should carry `Connection: close`.
pub async fn raw_request(addr: SocketAddr, head: &str) -> Reply {
    raw_exchange(addr, head.as_bytes().to_vec(), Vec::new()).await
}

/// Sends `head`, then `body` while reading the response, which the server may send before it has
/// read the whole body. A failure to send the body (the server closed the connection after
/// responding) is ignored.
pub async fn raw_exchange(addr: SocketAddr, head: Vec<u8>, body: Vec<u8>) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the registry");
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(&head).await.expect("send the request head");
    let sender = tokio::spawn(async move {
        let _ = writer.write_all(&body).await;
        writer
    });
    let mut response = Vec::new();
    reader.read_to_end(&mut response).await.expect("read the response");
    drop(sender.await);

    let head = String::from_utf8_lossy(&head).into_owned();
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(&response) {
        Ok(httparse::Status::Complete(len)) => len,
        other => panic!("response to {head:?} is not HTTP: {other:?}: {:?}", String::from_utf8_lossy(&response)),
    };
    let mut header_map = HeaderMap::new();
    for header in parsed.headers.iter() {
        let name = reqwest::header::HeaderName::from_bytes(header.name.as_bytes()).unwrap();
        header_map.append(name, reqwest::header::HeaderValue::from_bytes(header.value).unwrap());
    }
    Reply { status: parsed.code.unwrap(), headers: header_map, body: response[head_len..].to_vec() }
}

/// Runs `ctr` against the fixture's containerd in `namespace` and returns its output lines,
/// sorted.
pub fn ctr_lines(containerd: &Containerd, namespace: &str, args: &[&str]) -> Vec<String> {
    let output = Command::new(CTR)
        .arg("--address")
        .arg(containerd.socket())
        .args(["--namespace", namespace])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{CTR} did not start: {e}"));
    assert!(output.status.success(), "ctr {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut lines: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// The content digests, active ingests, image names and lease ids of a namespace, for comparing
/// the state of containerd before and after a series of requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceState {
    pub content: Vec<String>,
    pub ingests: Vec<String>,
    pub images: Vec<String>,
    pub leases: Vec<String>,
}

impl NamespaceState {
    pub fn read(containerd: &Containerd, namespace: &str) -> NamespaceState {
        NamespaceState {
            content: ctr_lines(containerd, namespace, &["content", "ls", "--quiet"]),
            ingests: ctr_lines(containerd, namespace, &["content", "active"]),
            images: ctr_lines(containerd, namespace, &["images", "ls", "--quiet"]),
            leases: ctr_lines(containerd, namespace, &["leases", "ls", "--quiet"]),
        }
    }
}
