//! Two registry binaries on one containerd, in different namespaces or under different roots of
//! one namespace: neither reads, lists, mounts or deletes what the other stores, even when it
//! requests the other's digests and upload ids.

mod support;

use reqwest::Method;

use support::containerd::Containerd;
use support::http::{assert_error, data, manifest_bytes, Pushed, PushedImage, Registry};
use support::registry::{RegistryProcess, RegistrySettings};

const REPOSITORY: &str = "shared/app";

fn start(containerd: &Containerd, work: &std::path::Path, namespace: &str, root: &str) -> (RegistryProcess, Registry) {
    let socket = containerd.socket();
    let mut settings = RegistrySettings::new(&socket);
    settings.namespace = namespace;
    settings.root = root;
    let process = RegistryProcess::start(work, &settings);
    let registry = Registry::new(process.addr);
    (process, registry)
}

/// Checks every way `intruder` could reach the image and open upload of `owner`, then checks
/// that `owner` still serves all of it.
async fn assert_isolated(containerd: &Containerd, owner: &Registry, intruder: &Registry) {
    let image: PushedImage = owner.push_image(REPOSITORY, "v1", 1, 2, 50_000).await;
    let reply = owner.send(Method::POST, &format!("/v2/{REPOSITORY}/blobs/uploads/"), &[], Vec::new()).await;
    assert_eq!(reply.status, 202);
    let upload = reply.header("location").unwrap().to_owned();
    let reply = owner.send(Method::PATCH, &upload, &[("content-range", "0-9")], vec![5; 10]).await;
    assert_eq!(reply.status, 202);

    for blob in image.blobs() {
        let path = format!("/v2/{REPOSITORY}/blobs/{}", blob.digest);
        assert_error(&intruder.get(&path).await, 404, "BLOB_UNKNOWN");
        assert_eq!(intruder.send(Method::HEAD, &path, &[], Vec::new()).await.status, 404);
        assert_error(&intruder.delete(&path).await, 404, "BLOB_UNKNOWN");

        // A mount from the owner's repository name falls back to opening a session.
        let mount = format!("/v2/intruder/app/blobs/uploads/?mount={}&from={REPOSITORY}", blob.digest);
        let reply = intruder.send(Method::POST, &mount, &[], Vec::new()).await;
        assert_eq!(reply.status, 202, "mount of {}: {}", blob.digest, String::from_utf8_lossy(&reply.body));
        assert_error(&intruder.get(&format!("/v2/intruder/app/blobs/{}", blob.digest)).await, 404, "BLOB_UNKNOWN");
        assert_eq!(intruder.delete(reply.header("location").unwrap()).await.status, 204);
    }

    let manifest_path = format!("/v2/{REPOSITORY}/manifests/{}", image.manifest.digest);
    assert_error(&intruder.get(&format!("/v2/{REPOSITORY}/manifests/v1")).await, 404, "MANIFEST_UNKNOWN");
    assert_error(&intruder.get(&manifest_path).await, 404, "MANIFEST_UNKNOWN");
    assert_error(&intruder.get(&format!("/v2/{REPOSITORY}/tags/list")).await, 404, "NAME_UNKNOWN");
    let catalog = intruder.get("/v2/_catalog").await;
    assert_eq!(catalog.status, 200);
    assert_eq!(catalog.json()["repositories"], serde_json::json!([]));
    let referrers = intruder.get(&format!("/v2/{REPOSITORY}/referrers/{}", image.manifest.digest)).await;
    assert_eq!(referrers.status, 200);
    assert_eq!(referrers.json()["manifests"], serde_json::json!([]));

    // A manifest over the owner's blobs, and deletes of the owner's manifest and tag.
    let reply = intruder.put_manifest(REPOSITORY, "v1", &image.manifest.bytes).await;
    assert_error(&reply, 400, "MANIFEST_BLOB_UNKNOWN");
    assert_error(&intruder.delete(&manifest_path).await, 404, "MANIFEST_UNKNOWN");
    assert_error(&intruder.delete(&format!("/v2/{REPOSITORY}/manifests/v1")).await, 404, "MANIFEST_UNKNOWN");

    // The owner's upload session.
    assert_error(&intruder.get(&upload).await, 404, "BLOB_UPLOAD_UNKNOWN");
    let reply = intruder.send(Method::PATCH, &upload, &[("content-range", "10-19")], vec![6; 10]).await;
    assert_error(&reply, 404, "BLOB_UPLOAD_UNKNOWN");
    let stray = Pushed::new(vec![5; 10]);
    let reply = intruder.send(Method::PUT, &format!("{upload}?digest={}", stray.digest), &[], Vec::new()).await;
    assert_error(&reply, 404, "BLOB_UPLOAD_UNKNOWN");
    assert_error(&intruder.delete(&upload).await, 404, "BLOB_UPLOAD_UNKNOWN");

    // The intruder pushes the same bytes itself and deletes them again: the owner keeps its copy.
    let own = intruder.push_blob(REPOSITORY, &image.layers[0].bytes).await;
    assert_eq!(intruder.delete(&format!("/v2/{REPOSITORY}/blobs/{}", own.digest)).await.status, 202);
    let own_manifest = Pushed::new(manifest_bytes(&intruder.push_blob(REPOSITORY, b"{}").await, &[]));
    assert_eq!(intruder.put_manifest(REPOSITORY, "v1", &own_manifest.bytes).await.status, 201);

    containerd.force_gc().await;
    owner.assert_image(REPOSITORY, "v1", &image).await;
    intruder.assert_manifest(REPOSITORY, "v1", &own_manifest).await;
    let reply = owner.get(&upload).await;
    assert_eq!(reply.status, 204, "owner's upload: {}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.header("range"), Some("0-9"));
    let tags = owner.get(&format!("/v2/{REPOSITORY}/tags/list")).await;
    assert_eq!(tags.json()["tags"], serde_json::json!(["v1"]));
    let catalog = owner.get("/v2/_catalog").await;
    assert_eq!(catalog.json()["repositories"], serde_json::json!([REPOSITORY]));
    let catalog = intruder.get("/v2/_catalog").await;
    assert_eq!(catalog.json()["repositories"], serde_json::json!([REPOSITORY]));
    let loose = owner.push_blob(REPOSITORY, &data(9, 100)).await;
    assert_error(&intruder.get(&format!("/v2/{REPOSITORY}/blobs/{}", loose.digest)).await, 404, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn registries_in_two_namespaces_are_isolated() {
    let containerd = Containerd::start();
    let (first_work, second_work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_first_process, first) = start(&containerd, first_work.path(), "team-a", "/registry");
    let (_second_process, second) = start(&containerd, second_work.path(), "team-b", "/registry");

    assert_isolated(&containerd, &first, &second).await;
}

#[tokio::test]
async fn registries_under_two_roots_are_isolated() {
    let containerd = Containerd::start();
    let (first_work, second_work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_first_process, first) = start(&containerd, first_work.path(), "shared", "/team");
    let (_second_process, second) = start(&containerd, second_work.path(), "shared", "/team/shared");

    assert_isolated(&containerd, &first, &second).await;
}
