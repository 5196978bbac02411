//! `http.headers` against the registry binary: every response carries the configured headers,
//! whether the router or the sendfile front wrote it.

mod support;

use support::containerd::Containerd;
use support::http::Registry;
use support::registry::RegistryProcess;

#[tokio::test]
async fn configured_headers_on_every_response() {
    let containerd = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    let text = format!(
        "log:\n  level: debug\nhttp:\n  addr: 127.0.0.1:0\n  headers:\n    X-Content-Type-Options: [nosniff]\n    X-Team: [a, b]\nstorage:\n  containerd:\n    address: {}\n    namespace: headers\n",
        containerd.socket().display()
    );
    std::fs::write(&config, text).unwrap();
    let process = RegistryProcess::start_with_config(&config);
    let registry = Registry::new(process.addr);
    let blob = registry.push_blob("headers/app", b"blob with headers").await;

    let paths = ["/v2/".to_owned(), format!("/v2/headers/app/blobs/{}", blob.digest), "/v2/headers/app/tags/list".to_owned()];
    for path in paths {
        let reply = registry.get(&path).await;
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{path}");
        let team: Vec<&str> = reply.headers.get_all("x-team").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(team, ["a", "b"], "{path}");
    }
}
