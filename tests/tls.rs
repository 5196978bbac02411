//! `http.tls` against the registry binary. Clients verify the server certificate against a test
//! CA (reqwest over HTTP/1.1 and HTTP/2, curl, skopeo), and a client that trusts another CA
//! fails. Also covered: required client certificates, the OCI error for a bad `Content-Length`
//! read from the decrypted stream, and start-up errors that name the unreadable file.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use reqwest::{Certificate, Identity, Method, Version};
use sha2::{Digest as _, Sha256};

use support::containerd::Containerd;
use support::http::Pushed;
use support::image::build_image;
use support::registry::RegistryProcess;

/// A CA that signs the certificates of one test.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Signs a leaf certificate for `names`; returns its PEM and its key's PEM.
    fn sign(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params = CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (certificate.pem(), key.serialize_pem())
    }
}

/// Certificate files of one test, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: TestCa,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki { dir: tempfile::tempdir().unwrap(), ca: TestCa::new("registry test CA") };
        let (certificate, key) = pki.ca.sign(&["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
        std::fs::write(pki.path("ca.pem"), pki.ca.pem()).unwrap();
        std::fs::write(pki.path("server.pem"), certificate).unwrap();
        std::fs::write(pki.path("server-key.pem"), key).unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Returns the `http.tls` section for the server certificate, with `extra` lines.
    fn tls_yaml(&self, extra: &str) -> String {
        format!(
            "  tls:\n    certificate: {}\n    key: {}\n{extra}",
            self.path("server.pem").display(),
            self.path("server-key.pem").display()
        )
    }
}

/// Starts the registry over `containerd` with `http` lines added to the `http` section.
fn start_registry(dir: &Path, containerd: &Containerd, namespace: &str, http: &str) -> RegistryProcess {
    let config = dir.join(format!("{namespace}.yml"));
    let text = format!(
        "log:\n  level: debug\nhttp:\n  addr: 127.0.0.1:0\n{http}storage:\n  containerd:\n    address: {}\n    namespace: {namespace}\n  delete:\n    enabled: true\n",
        containerd.socket().display()
    );
    std::fs::write(&config, text).unwrap();
    RegistryProcess::start_with_config(&config)
}

/// Returns a client whose only trusted root is `ca_pem`.
fn client(ca_pem: &str, http1_only: bool, identity: Option<Identity>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if http1_only {
        builder = builder.http1_only();
    }
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build().unwrap()
}

fn https(addr: SocketAddr, path: &str) -> String {
    format!("https://{addr}{path}")
}

/// Pushes `bytes` as a blob with one `POST ?digest=` over `client`.
async fn push_blob(client: &reqwest::Client, addr: SocketAddr, repository: &str, bytes: &[u8]) -> Pushed {
    let pushed = Pushed::new(bytes.to_vec());
    let url = https(addr, &format!("/v2/{repository}/blobs/uploads/?digest={}", pushed.digest));
    let response = client.post(url).body(bytes.to_vec()).send().await.unwrap();
    assert_eq!(response.status(), 201, "push blob: {:?}", response.text().await);
    pushed
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i / 4096) as u8).collect()
}

#[tokio::test]
async fn verified_clients_over_http1_and_h2() {
    let containerd = Containerd::start();
    let pki = Pki::new();
    let process = start_registry(pki.dir.path(), &containerd, "tls", &pki.tls_yaml(""));
    let addr = process.addr;
    let blob_bytes = pattern(3 * 1024 * 1024 + 17);

    for (http1_only, version) in [(true, Version::HTTP_11), (false, Version::HTTP_2)] {
        let client = client(&pki.ca.pem(), http1_only, None);
        let response = client.get(https(addr, "/v2/")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), version, "ALPN outcome with http1_only={http1_only}");

        let blob = push_blob(&client, addr, "tls/app", &blob_bytes).await;
        let url = https(addr, &format!("/v2/tls/app/blobs/{}", blob.digest));
        let full = client.get(&url).send().await.unwrap();
        assert_eq!(full.status(), 200);
        let body = full.bytes().await.unwrap();
        assert_eq!(body.len(), blob_bytes.len(), "{version:?} full GET length");
        assert!(body[..] == blob_bytes[..], "{version:?} full GET bytes differ");

        for (start, end) in [(0, 0), (1, 65_536), (4095, 3 * 1024 * 1024), (blob_bytes.len() - 5, blob_bytes.len() - 1)] {
            let ranged = client.get(&url).header("range", format!("bytes={start}-{end}")).send().await.unwrap();
            assert_eq!(ranged.status(), 206, "{version:?} range {start}-{end}");
            let body = ranged.bytes().await.unwrap();
            assert!(body[..] == blob_bytes[start..=end], "{version:?} range {start}-{end} bytes differ");
        }

        let upload = client.post(https(addr, "/v2/tls/app/blobs/uploads/")).send().await.unwrap();
        assert_eq!(upload.status(), 202);
        let location = upload.headers()["location"].to_str().unwrap().to_owned();
        let prefix = format!("https://{addr}/v2/tls/app/blobs/uploads/");
        assert!(location.starts_with(&prefix), "{version:?} Location {location:?} does not start with {prefix:?}");
        let status = client.get(&location).send().await.unwrap();
        assert_eq!(status.status(), 204, "{version:?} GET on the upload Location");
    }

    let log = process.drain_log().join("\n");
    assert!(log.contains("sendfile cannot encrypt"), "start-up log does not say sendfile is off over TLS:\n{log}");
}

#[tokio::test]
async fn client_trusting_another_ca_fails() {
    let containerd = Containerd::start();
    let pki = Pki::new();
    let process = start_registry(pki.dir.path(), &containerd, "wrongca", &pki.tls_yaml(""));

    let other = TestCa::new("another CA");
    let error = client(&other.pem(), false, None).get(https(process.addr, "/v2/")).send().await.unwrap_err();
    assert!(error.is_connect(), "expected a connection error, got {error:?}");

    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let reply = plain.get(format!("http://{}/v2/", process.addr)).send().await;
    assert!(reply.is_err(), "plain HTTP on the TLS port must not be served, got {reply:?}");
}

#[tokio::test]
async fn curl_verifies_with_cacert() {
    let containerd = Containerd::start();
    let pki = Pki::new();
    let process = start_registry(pki.dir.path(), &containerd, "curl", &pki.tls_yaml(""));
    let client = client(&pki.ca.pem(), true, None);
    let blob_bytes = pattern(1024 * 1024);
    let blob = push_blob(&client, process.addr, "curl/app", &blob_bytes).await;

    let url = https(process.addr, &format!("/v2/curl/app/blobs/{}", blob.digest));
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--noproxy", "*", "--cacert"])
        .arg(pki.path("ca.pem"))
        .arg(&url)
        .output()
        .unwrap();
    assert!(output.status.success(), "curl failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(hex::encode(Sha256::digest(&output.stdout)), blob.digest.hex(), "curl's body differs from the blob");

    let other = TestCa::new("another CA");
    std::fs::write(pki.path("other.pem"), other.pem()).unwrap();
    let output = Command::new("curl")
        .args(["--silent", "--noproxy", "*", "--cacert"])
        .arg(pki.path("other.pem"))
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(60), "curl with another CA must fail certificate verification");
}

#[test]
fn skopeo_pushes_and_pulls_with_tls_verify() {
    let containerd = Containerd::start();
    let pki = Pki::new();
    let process = start_registry(pki.dir.path(), &containerd, "skopeo", &pki.tls_yaml(""));
    let certs = pki.path("certs.d");
    std::fs::create_dir(&certs).unwrap();
    std::fs::write(certs.join("ca.crt"), pki.ca.pem()).unwrap();

    let work = tempfile::tempdir().unwrap();
    let layout = build_image(&work.path().join("layout"), "v1", &[Path::new("/usr/share/common-licenses"), Path::new("/etc/ssl/certs")]);
    let reference = format!("docker://{}/skopeo/app:v1", process.host());
    let push = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=true", "--preserve-digests", "--dest-cert-dir"])
        .arg(&certs)
        .arg(layout.reference())
        .arg(&reference)
        .output()
        .unwrap();
    assert!(push.status.success(), "skopeo push failed: {}", String::from_utf8_lossy(&push.stderr));

    let pulled = work.path().join("pulled");
    let pull = Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=true", "--preserve-digests", "--src-cert-dir"])
        .arg(&certs)
        .arg(&reference)
        .arg(format!("oci:{}:v1", pulled.display()))
        .output()
        .unwrap();
    assert!(pull.status.success(), "skopeo pull failed: {}", String::from_utf8_lossy(&pull.stderr));
    for blob in layout.blobs() {
        let original = std::fs::read(layout.dir.join("blobs/sha256").join(blob.digest.hex())).unwrap();
        let copy = std::fs::read(pulled.join("blobs/sha256").join(blob.digest.hex())).unwrap();
        assert!(copy == original, "pulled bytes of {} differ", blob.digest);
    }

    let empty = pki.path("empty.d");
    std::fs::create_dir(&empty).unwrap();
    let untrusted = Command::new("skopeo")
        .args(["inspect", "--tls-verify=true", "--cert-dir"])
        .arg(&empty)
        .arg(&reference)
        .output()
        .unwrap();
    assert!(!untrusted.status.success(), "skopeo without the CA must fail verification");
}

#[tokio::test]
async fn client_cas_require_a_client_certificate() {
    let containerd = Containerd::start();
    let pki = Pki::new();
    let client_ca = TestCa::new("client CA");
    std::fs::write(pki.path("client-ca.pem"), client_ca.pem()).unwrap();
    let extra = format!("    clientcas:\n      - {}\n    minimumtls: tls1.3\n", pki.path("client-ca.pem").display());
    let process = start_registry(pki.dir.path(), &containerd, "mtls", &pki.tls_yaml(&extra));

    let anonymous = client(&pki.ca.pem(), false, None).get(https(process.addr, "/v2/")).send().await;
    assert!(anonymous.is_err(), "a client without a certificate must be rejected, got {anonymous:?}");

    let (certificate, key) = client_ca.sign(&["client.test"], ExtendedKeyUsagePurpose::ClientAuth);
    let identity = Identity::from_pem(format!("{certificate}{key}").as_bytes()).unwrap();
    let response = client(&pki.ca.pem(), false, Some(identity)).get(https(process.addr, "/v2/")).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let identity = Identity::from_pem(format!("{certificate}{key}").as_bytes()).unwrap();
    let tls12 = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(Certificate::from_pem(pki.ca.pem().as_bytes()).unwrap())
        .identity(identity)
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .no_proxy()
        .build()
        .unwrap();
    let old = tls12.get(https(process.addr, "/v2/")).send().await;
    assert!(old.is_err(), "minimumtls: tls1.3 must reject a TLS 1.2 client, got {old:?}");

    let stranger_ca = TestCa::new("stranger CA");
    let (certificate, key) = stranger_ca.sign(&["stranger.test"], ExtendedKeyUsagePurpose::ClientAuth);
    let identity = Identity::from_pem(format!("{certificate}{key}").as_bytes()).unwrap();
    let stranger = client(&pki.ca.pem(), false, Some(identity)).request(Method::GET, https(process.addr, "/v2/")).send().await;
    assert!(stranger.is_err(), "a certificate from another CA must be rejected, got {stranger:?}");
}

#[test]
fn unreadable_certificate_fails_start_up_naming_the_file() {
    let pki = Pki::new();
    let cases = [
        ("certificate", pki.path("missing.pem"), pki.path("server-key.pem"), "http.tls.certificate"),
        ("key", pki.path("server.pem"), pki.path("ca.pem"), "http.tls.key"),
    ];
    for (name, certificate, key, config_key) in cases {
        let config = pki.path(&format!("{name}.yml"));
        let text = format!(
            "http:\n  addr: 127.0.0.1:0\n  tls:\n    certificate: {}\n    key: {}\nstorage:\n  containerd:\n    address: {}\n",
            certificate.display(),
            key.display(),
            pki.path("no-containerd.sock").display()
        );
        std::fs::write(&config, text).unwrap();
        let bad_file = if name == "certificate" { &certificate } else { &key };

        for command in ["check", "serve"] {
            let output = Command::new(env!("CARGO_BIN_EXE_containerd-registry")).arg(command).arg(&config).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{command} with a bad {name} must fail");
            assert!(stderr.contains(config_key), "{command}: {stderr}");
            assert!(stderr.contains(&bad_file.display().to_string()), "{command}: {stderr}");
        }
    }
}

#[test]
fn check_reports_tls_and_mmap_fast_path() {
    let containerd = Containerd::start();
    let pki = Pki::new();
    let config = pki.path("check.yml");
    let text = format!(
        "http:\n  addr: 127.0.0.1:0\n  host: https://registry.test:5443\n  debug:\n    addr: 127.0.0.1:0\n    prometheus:\n      enabled: true\n{}storage:\n  containerd:\n    address: {}\n    namespace: check\n    fastpath: sendfile\n",
        pki.tls_yaml(&format!("    clientcas: [{}]\n    minimumtls: tls1.3\n", pki.path("ca.pem").display())),
        containerd.socket().display()
    );
    std::fs::write(&config, text).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_containerd-registry")).arg("check").arg(&config).output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "check failed: {}", String::from_utf8_lossy(&output.stderr));
    let tls = format!(
        "tls:         on (minimum tls1.3, client certificates required; certificate {}, key {})",
        pki.path("server.pem").display(),
        pki.path("server-key.pem").display()
    );
    let expected = [
        "fast path:   mmap: blobs are served from the content directory (fastpath: sendfile, but sendfile cannot encrypt TLS)",
        tls.as_str(),
        "auth:        none: anyone who reaches the port may pull, push and delete",
        "debug:       127.0.0.1:0 (health and metrics at /metrics)",
        "locations:   absolute, https://registry.test:5443 (http.host)",
        "drain:       0s: requests in flight are cut off at shutdown",
    ];
    for line in expected {
        assert!(report.lines().any(|reported| reported == line), "expected {line:?} in:\n{report}");
    }
}

#[tokio::test]
async fn bad_content_length_over_tls_gets_oci_error() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let containerd = Containerd::start();
    let pki = Pki::new();
    let process = start_registry(pki.dir.path(), &containerd, "length", &pki.tls_yaml(""));

    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::CertificateDer::from(pki.ca.issuer.der().to_vec());
    roots.add(ca).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(process.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();

    let head = format!("POST /v2/length/app/blobs/uploads/ HTTP/1.1\r\nHost: {}\r\nContent-Length: 12abc\r\n\r\n", process.addr);
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("SIZE_INVALID"), "{response}");
    assert!(response.contains("12abc"), "the message names the value: {response}");
}
