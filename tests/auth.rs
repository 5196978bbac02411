//! `auth.htpasswd` and `auth.token` against the registry binary backed by a real containerd:
//! skopeo pushes and pulls with credentials, and HTTP-level checks of challenges, scopes, the
//! mount fallback and the sendfile front's authorization.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::Method;
use support::containerd::Containerd;
use support::http::{assert_error, Pushed, Registry, Reply};
use support::image::{build_image, ImageLayout};
use support::registry::{RegistryProcess, RegistrySettings};
use support::token_server::{self, TokenServer};

const USER: &str = "bob";
const PASSWORD: &str = "correct horse";

fn run(command: &mut Command) -> std::process::Output {
    command.output().unwrap_or_else(|error| panic!("{command:?} did not start: {error}"))
}

fn assert_success(command: &mut Command) {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn small_image(dir: &Path) -> ImageLayout {
    build_image(&dir.join("layout"), "v1", &[Path::new("/usr/share/common-licenses")])
}

fn skopeo_push(layout: &ImageLayout, destination: &str, creds: &str) -> Command {
    let mut command = Command::new("skopeo");
    command
        .args(["copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests", "--dest-creds", creds])
        .arg(layout.reference())
        .arg(format!("docker://{destination}"));
    command
}

fn skopeo_pull(source: &str, dir: &Path, creds: &str) -> Command {
    let mut command = Command::new("skopeo");
    command
        .args(["copy", "--quiet", "--src-tls-verify=false", "--preserve-digests", "--src-creds", creds])
        .arg(format!("docker://{source}"))
        .arg(format!("oci:{}:v1", dir.display()));
    command
}

fn assert_blobs_identical(layout: &ImageLayout, pulled: &Path) {
    for blob in layout.blobs() {
        let original = std::fs::read(layout.dir.join("blobs/sha256").join(blob.digest.hex())).unwrap();
        let copy = std::fs::read(pulled.join("blobs/sha256").join(blob.digest.hex()))
            .unwrap_or_else(|error| panic!("pulled layout lacks {}: {error}", blob.digest));
        assert!(copy == original, "bytes of {} differ", blob.digest);
    }
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn htpasswd_yaml(dir: &Path) -> String {
    let hash = bcrypt::hash(PASSWORD, 5).unwrap();
    let path = dir.join("htpasswd");
    std::fs::write(&path, format!("# test users\n{USER}:{hash}\n")).unwrap();
    format!("auth:\n  htpasswd:\n    realm: test realm\n    path: {}\n", path.display())
}

async fn send(registry: &Registry, method: Method, path: &str, authorization: Option<&str>, body: Vec<u8>) -> Reply {
    let headers: Vec<(&str, &str)> = authorization.map(|value| ("authorization", value)).into_iter().collect();
    registry.send(method, path, &headers, body).await
}

fn challenge(reply: &Reply) -> &str {
    reply.header("www-authenticate").unwrap_or_else(|| panic!("401 without WWW-Authenticate: {:?}", reply.headers))
}

/// Pushes `bytes` as a blob of `repository` in one `POST ?digest=`.
async fn push_blob(registry: &Registry, repository: &str, bytes: &[u8], authorization: &str) -> Pushed {
    let pushed = Pushed::new(bytes.to_vec());
    let path = format!("/v2/{repository}/blobs/uploads/?digest={}", pushed.digest);
    let reply = send(registry, Method::POST, &path, Some(authorization), pushed.bytes.clone()).await;
    assert_eq!(reply.status, 201, "push blob: {}", String::from_utf8_lossy(&reply.body));
    pushed
}

/// Starts the registry with `auth` and a debug listener whose metrics show which read strategy
/// served each blob, and returns it with the debug listener's address.
fn start_registry(dir: &Path, containerd: &Containerd, auth: &str) -> (RegistryProcess, SocketAddr) {
    let config = format!(
        "version: 0.1\nlog:\n  level: debug\nhttp:\n  addr: 127.0.0.1:0\n  debug:\n    addr: 127.0.0.1:0\n    \
         prometheus:\n      enabled: true\nstorage:\n  containerd:\n    address: {}\n    namespace: auth\n    \
         fastpath: sendfile\n  delete:\n    enabled: true\n{auth}",
        containerd.socket().display()
    );
    let path = dir.join("registry.yml");
    std::fs::write(&path, config).unwrap();
    let process = RegistryProcess::start_with_config(&path);

    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for line in process.drain_log() {
            if line.contains("debug server started") {
                let start = line.find("addr=").expect("debug server line has addr") + 5;
                let addr = line[start..].split_whitespace().next().unwrap().parse().expect("debug addr parses");
                return (process, addr);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the registry did not log its debug listener's address");
}

/// Returns the blob bytes the sendfile front has sent, from the Prometheus metrics.
async fn sendfile_bytes(debug: SocketAddr) -> f64 {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let text = client.get(format!("http://{debug}/metrics")).send().await.unwrap().text().await.unwrap();
    let series = r#"registry_blob_served_bytes_total{strategy="sendfile"} "#;
    let line = text.lines().find(|line| line.starts_with(series));
    line.map_or(0.0, |line| line[series.len()..].trim().parse().expect("metric value parses"))
}

#[tokio::test]
async fn htpasswd_push_and_pull_with_skopeo() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let auth = htpasswd_yaml(dir.path());
    let process = RegistryProcess::start(dir.path(), &RegistrySettings { extra_yaml: &auth, ..RegistrySettings::new(&containerd.socket()) });
    let host = process.host();
    let layout = small_image(dir.path());
    let creds = format!("{USER}:{PASSWORD}");

    let rejected = run(&mut skopeo_push(&layout, &format!("{host}/app:v1"), &format!("{USER}:wrong")));
    assert!(!rejected.status.success(), "a push with a wrong password succeeded");
    assert_success(&mut skopeo_push(&layout, &format!("{host}/app:v1"), &creds));

    let pulled = dir.path().join("pulled");
    assert_success(&mut skopeo_pull(&format!("{host}/app:v1"), &pulled, &creds));
    assert_blobs_identical(&layout, &pulled);

    let anonymous = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--no-creds", "--raw"])
        .arg(format!("docker://{host}/app:v1")));
    assert!(!anonymous.status.success(), "an anonymous pull succeeded");
}

#[tokio::test]
async fn htpasswd_challenges_and_sendfile() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let (process, debug) = start_registry(dir.path(), &containerd, &htpasswd_yaml(dir.path()));
    let registry = Registry::new(process.addr);
    let good = basic(USER, PASSWORD);

    for authorization in [None, Some(basic(USER, "wrong")), Some(basic("nobody", PASSWORD)), Some(bearer("x.y.z"))] {
        let reply = send(&registry, Method::GET, "/v2/", authorization.as_deref(), Vec::new()).await;
        assert_error(&reply, 401, "UNAUTHORIZED");
        assert_eq!(challenge(&reply), r#"Basic realm="test realm""#);
        assert_eq!(reply.header("docker-distribution-api-version"), Some("registry/2.0"));
    }
    let reply = send(&registry, Method::GET, "/v2/", Some(&good), Vec::new()).await;
    assert_eq!(reply.status, 200);

    let blob = push_blob(&registry, "app", &support::http::data(7, 300_000), &good).await;
    let path = format!("/v2/app/blobs/{}", blob.digest);
    let sent_before = sendfile_bytes(debug).await;

    let anonymous = support::http::raw_request(process.addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).await;
    assert_error(&anonymous, 401, "UNAUTHORIZED");
    assert_eq!(challenge(&anonymous), r#"Basic realm="test realm""#);
    let wrong = basic(USER, "wrong");
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {wrong}\r\nConnection: close\r\n\r\n");
    assert_error(&support::http::raw_request(process.addr, &head).await, 401, "UNAUTHORIZED");

    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {good}\r\nConnection: close\r\n\r\n");
    let authorized = support::http::raw_request(process.addr, &head).await;
    assert_eq!(authorized.status, 200);
    assert!(authorized.body == blob.bytes, "the blob's bytes differ");
    assert_eq!(sendfile_bytes(debug).await - sent_before, blob.bytes.len() as f64, "bytes sent by the sendfile front");
}

#[tokio::test]
async fn missing_htpasswd_file_fails_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (format!("auth:\n  htpasswd:\n    realm: r\n    path: {}/absent\n", dir.path().display()), "absent"),
        ("auth:\n  htpasswd:\n    realm: r\n    path: PATH\n".to_owned(), "\"carol\""),
    ];
    let md5_file = dir.path().join("md5");
    std::fs::write(&md5_file, "carol:$apr1$abc$def\n").unwrap();
    for (auth, expected) in cases {
        let auth = auth.replace("PATH", &md5_file.display().to_string());
        let config = dir.path().join("config.yml");
        std::fs::write(&config, format!("http:\n  addr: 127.0.0.1:0\nstorage:\n  containerd:\n    address: {}/no.sock\n{auth}", dir.path().display())).unwrap();
        let output = run(Command::new(env!("CARGO_BIN_EXE_containerd-registry")).arg("serve").arg(&config));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(stderr.contains(expected), "{stderr}");
        assert!(stderr.contains("htpasswd"), "{stderr}");
    }
}

#[tokio::test]
async fn broken_htpasswd_gets_file_error() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let (process, _debug) = start_registry(dir.path(), &containerd, &htpasswd_yaml(dir.path()));
    let registry = Registry::new(process.addr);
    let good = basic(USER, PASSWORD);
    let reply = send(&registry, Method::GET, "/v2/", Some(&good), Vec::new()).await;
    assert_eq!(reply.status, 200);

    // An MD5 line, written with the old modification time restored, as `touch -r` would.
    let path = dir.path().join("htpasswd");
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(&path, format!("{USER}:$apr1$abc$def\n")).unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(modified).unwrap();

    let reply = send(&registry, Method::GET, "/v2/", Some(&good), Vec::new()).await;
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    assert_error(&reply, 401, "UNAUTHORIZED");
    assert!(body.contains("credentials file cannot be read"), "{body}");
    assert!(!body.contains(&dir.path().display().to_string()), "the 401 must not name host paths: {body}");

    let deadline = Instant::now() + Duration::from_secs(5);
    let mut logged = false;
    while !logged && Instant::now() < deadline {
        logged = process.drain_log().iter().any(|line| line.contains("htpasswd file is unusable") && line.contains(&path.display().to_string()));
        if !logged {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(logged, "the log must name the htpasswd file");
}

/// Runs `containerd-registry COMMAND CONFIG` and returns its output.
fn run_binary(command: &str, config: &Path) -> std::process::Output {
    run(Command::new(env!("CARGO_BIN_EXE_containerd-registry")).arg(command).arg(config))
}

#[test]
fn check_fails_like_serve_on_bad_auth_files() {
    let dir = tempfile::tempdir().unwrap();
    let keys = token_server::Keys::generate(dir.path());
    let md5_file = dir.path().join("md5-htpasswd");
    std::fs::write(&md5_file, "carol:$apr1$abc$def\n").unwrap();
    let absent_htpasswd = dir.path().join("absent-htpasswd");
    let absent_bundle = dir.path().join("absent-root.pem");

    // Each case: the auth section, then what the error must name.
    let cases = [
        (
            format!("auth:\n  htpasswd:\n    realm: r\n    path: {}\n", absent_htpasswd.display()),
            vec![absent_htpasswd.display().to_string()],
        ),
        (
            format!("auth:\n  htpasswd:\n    realm: r\n    path: {}\n", md5_file.display()),
            vec![md5_file.display().to_string(), "\"carol\"".to_owned()],
        ),
        (
            format!(
                "auth:\n  token:\n    realm: https://auth.test/token\n    service: s\n    issuer: i\n    rootcertbundle: {}\n",
                absent_bundle.display()
            ),
            vec!["auth.token.rootcertbundle".to_owned(), absent_bundle.display().to_string()],
        ),
        (
            format!(
                "auth:\n  token:\n    realm: https://auth.test/token\n    service: s\n    issuer: i\n    rootcertbundle: {}\n    signingalgorithms: [ES512]\n",
                keys.bundle_path.display()
            ),
            vec!["auth.token.signingalgorithms".to_owned(), "\"ES512\"".to_owned()],
        ),
    ];
    for (auth, expected) in cases {
        // The socket does not exist, so a command that reached containerd would fail with
        // another message.
        let config = dir.path().join("config.yml");
        let text = format!("http:\n  addr: 127.0.0.1:0\nstorage:\n  containerd:\n    address: {}/no.sock\n{auth}", dir.path().display());
        std::fs::write(&config, text).unwrap();

        let mut messages = Vec::new();
        for command in ["check", "serve"] {
            let output = run_binary(command, &config);
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert_eq!(output.status.code(), Some(1), "{command} with {auth}: {stderr}");
            for text in &expected {
                assert!(stderr.contains(text.as_str()), "{command} must name {text}: {stderr}");
            }
            let message = stderr.lines().find(|line| line.starts_with("containerd-registry: ")).map(str::to_owned);
            messages.push(message.unwrap_or_else(|| panic!("{command} printed no error line: {stderr}")));
        }
        assert_eq!(messages[0], messages[1], "check and serve fail with the same error");
    }
}

#[test]
fn check_reports_auth() {
    let dir = tempfile::tempdir().unwrap();
    let containerd = Containerd::start();
    let keys = token_server::Keys::generate(dir.path());
    let htpasswd = htpasswd_yaml(dir.path());
    let token = format!(
        "auth:\n  token:\n    realm: https://auth.test/token\n    service: registry.test\n    issuer: issuer.test\n    rootcertbundle: {}\n",
        keys.bundle_path.display()
    );
    let cases = [
        ("", "auth:        none: anyone who reaches the port may pull, push and delete".to_owned()),
        (htpasswd.as_str(), format!("auth:        htpasswd (realm \"test realm\", 1 user in {})", dir.path().join("htpasswd").display())),
        (token.as_str(), "auth:        token (realm https://auth.test/token, service \"registry.test\", issuer \"issuer.test\")".to_owned()),
    ];
    for (auth, expected) in cases {
        let config = dir.path().join("check.yml");
        let text = format!(
            "http:\n  addr: 127.0.0.1:0\n  relativeurls: true\n  draintimeout: 15s\nstorage:\n  containerd:\n    address: {}\n    namespace: auth\n{auth}",
            containerd.socket().display()
        );
        std::fs::write(&config, text).unwrap();

        let output = run_binary("check", &config);
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "check failed: {}", String::from_utf8_lossy(&output.stderr));
        assert!(report.lines().any(|line| line == expected), "expected {expected:?} in:\n{report}");
        assert!(report.contains("\ntls:         off\n"), "{report}");
        assert!(report.contains("\ndebug:       off\n"), "{report}");
        assert!(report.contains("\nlocations:   relative paths (http.relativeurls)\n"), "{report}");
        assert!(report.contains("\ndrain:       15s: requests in flight may finish before exit\n"), "{report}");
        assert!(report.contains("\nfast path:   sendfile: "), "{report}");
    }
}

// The token server runs on the test's runtime while skopeo blocks the test thread, so the
// runtime needs a worker thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_push_and_pull_with_skopeo() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let server = TokenServer::start(dir.path()).await;
    server.grant("repository", "team/app", &["pull", "push"]);
    let auth = server.auth_yaml();
    let process = RegistryProcess::start(dir.path(), &RegistrySettings { extra_yaml: &auth, ..RegistrySettings::new(&containerd.socket()) });
    let host = process.host();
    let layout = small_image(dir.path());
    let creds = format!("{}:{}", token_server::USER, token_server::PASSWORD);

    let rejected = run(&mut skopeo_push(&layout, &format!("{host}/team/other:v1"), &creds));
    assert!(!rejected.status.success(), "a push without a grant succeeded");
    let rejected = run(&mut skopeo_push(&layout, &format!("{host}/team/app:v1"), &format!("{}:wrong", token_server::USER)));
    assert!(!rejected.status.success(), "a push with a wrong password succeeded");

    assert_success(&mut skopeo_push(&layout, &format!("{host}/team/app:v1"), &creds));
    let pulled = dir.path().join("pulled");
    assert_success(&mut skopeo_pull(&format!("{host}/team/app:v1"), &pulled, &creds));
    assert_blobs_identical(&layout, &pulled);
}

#[tokio::test]
async fn token_challenges_scopes_and_sendfile() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let server = TokenServer::start(dir.path()).await;
    let (process, debug) = start_registry(dir.path(), &containerd, &server.auth_yaml());
    let registry = Registry::new(process.addr);
    let keys = &server.keys;
    let realm = server.realm();
    let service = token_server::SERVICE;
    let prefix = format!(r#"Bearer realm="{realm}",service="{service}""#);

    // /v2/ needs a valid token, with no scope.
    let reply = send(&registry, Method::GET, "/v2/", None, Vec::new()).await;
    assert_error(&reply, 401, "UNAUTHORIZED");
    assert_eq!(challenge(&reply), prefix);
    let nothing = bearer(&keys.token(&[], 300));
    assert_eq!(send(&registry, Method::GET, "/v2/", Some(&nothing), Vec::new()).await.status, 200);

    // A push needs pull and push; the challenge names both.
    let pusher = bearer(&keys.token(&[("repository", "team/app", &["pull", "push"])], 300));
    let blob = push_blob(&registry, "team/app", &support::http::data(3, 200_000), &pusher).await;
    let path = format!("/v2/team/app/blobs/uploads/?digest={}", blob.digest);
    let reply = send(&registry, Method::POST, &path, None, blob.bytes.clone()).await;
    assert_error(&reply, 401, "UNAUTHORIZED");
    assert_eq!(challenge(&reply), format!(r#"{prefix},scope="repository:team/app:pull,push""#));

    let pull_only = bearer(&keys.token(&[("repository", "team/app", &["pull"])], 300));
    let reply = send(&registry, Method::POST, &path, Some(&pull_only), blob.bytes.clone()).await;
    assert_error(&reply, 401, "UNAUTHORIZED");
    assert_eq!(challenge(&reply), format!(r#"{prefix},scope="repository:team/app:pull,push",error="insufficient_scope""#));

    // A token for another repository lacks the scope.
    let blob_path = format!("/v2/team/app/blobs/{}", blob.digest);
    let other = bearer(&keys.token(&[("repository", "team/other", &["pull", "push"])], 300));
    let reply = send(&registry, Method::GET, &blob_path, Some(&other), Vec::new()).await;
    assert_error(&reply, 401, "UNAUTHORIZED");
    assert_eq!(challenge(&reply), format!(r#"{prefix},scope="repository:team/app:pull",error="insufficient_scope""#));

    // Expired, foreign and garbled tokens are invalid.
    let expired = bearer(&keys.token(&[("repository", "team/app", &["pull"])], -300));
    let now = token_server::unix_now();
    let foreign = bearer(&keys.sign(&serde_json::json!({
        "iss": "someone-else", "aud": service, "exp": now + 300,
        "access": [{ "type": "repository", "name": "team/app", "actions": ["pull"] }],
    })));
    for token in [expired, foreign, bearer("not.a.token")] {
        let reply = send(&registry, Method::GET, &blob_path, Some(&token), Vec::new()).await;
        assert_error(&reply, 401, "UNAUTHORIZED");
        assert_eq!(challenge(&reply), format!(r#"{prefix},scope="repository:team/app:pull",error="invalid_token""#));
    }

    // DELETE needs the delete action.
    let manifest_path = format!("/v2/team/app/blobs/{}", blob.digest);
    let reply = send(&registry, Method::DELETE, &manifest_path, Some(&pusher), Vec::new()).await;
    assert_eq!(challenge(&reply), format!(r#"{prefix},scope="repository:team/app:delete",error="insufficient_scope""#));
    let deleter = bearer(&keys.token(&[("repository", "team/scratch", &["pull", "push", "delete"])], 300));
    let scratch = push_blob(&registry, "team/scratch", b"scratch blob", &deleter).await;
    let reply = send(&registry, Method::DELETE, &format!("/v2/team/scratch/blobs/{}", scratch.digest), Some(&deleter), Vec::new()).await;
    assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));

    // The catalog needs registry:catalog:*.
    let reply = send(&registry, Method::GET, "/v2/_catalog", Some(&pusher), Vec::new()).await;
    assert_error(&reply, 401, "UNAUTHORIZED");
    assert_eq!(challenge(&reply), format!(r#"{prefix},scope="registry:catalog:*",error="insufficient_scope""#));
    let cataloguer = bearer(&keys.token(&[("registry", "catalog", &["*"])], 300));
    let reply = send(&registry, Method::GET, "/v2/_catalog", Some(&cataloguer), Vec::new()).await;
    assert_eq!(reply.status, 200);
    assert!(reply.json()["repositories"].as_array().unwrap().iter().any(|name| name == "team/app"));

    // A mount without pull on the source opens a plain upload; with it, the blob is mounted.
    let mount = format!("/v2/team/copy/blobs/uploads/?mount={}&from=team/app", blob.digest);
    let copier = bearer(&keys.token(&[("repository", "team/copy", &["pull", "push"])], 300));
    let reply = send(&registry, Method::POST, &mount, Some(&copier), Vec::new()).await;
    assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
    let copied_path = format!("/v2/team/copy/blobs/{}", blob.digest);
    assert_eq!(send(&registry, Method::HEAD, &copied_path, Some(&copier), Vec::new()).await.status, 404);
    let copier_with_source =
        bearer(&keys.token(&[("repository", "team/copy", &["pull", "push"]), ("repository", "team/app", &["pull"])], 300));
    let reply = send(&registry, Method::POST, &mount, Some(&copier_with_source), Vec::new()).await;
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));

    // The sendfile front rejects anonymous and under-scoped blob GETs and serves granted ones.
    let sent_before = sendfile_bytes(debug).await;
    let anonymous = support::http::raw_request(process.addr, &format!("GET {blob_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).await;
    assert_error(&anonymous, 401, "UNAUTHORIZED");
    assert_eq!(challenge(&anonymous), format!(r#"{prefix},scope="repository:team/app:pull""#));
    let head = format!("GET {blob_path} HTTP/1.1\r\nHost: x\r\nAuthorization: {other}\r\nConnection: close\r\n\r\n");
    assert_error(&support::http::raw_request(process.addr, &head).await, 401, "UNAUTHORIZED");

    let head = format!("GET {blob_path} HTTP/1.1\r\nHost: x\r\nAuthorization: {pull_only}\r\nConnection: close\r\n\r\n");
    let authorized = support::http::raw_request(process.addr, &head).await;
    assert_eq!(authorized.status, 200);
    assert!(authorized.body == blob.bytes, "the blob's bytes differ");
    assert_eq!(sendfile_bytes(debug).await - sent_before, blob.bytes.len() as f64, "bytes sent by the sendfile front");
}
