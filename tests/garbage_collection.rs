//! containerd's garbage collector forced after every kind of delete through the registry binary:
//! what is still referenced stays byte-identical, and content that only the deleted objects
//! referenced leaves the content store.

mod support;

use std::collections::BTreeSet;

use support::containerd::Containerd;
use support::http::{assert_error, ctr_lines, data, manifest_bytes, Pushed, Registry};
use support::registry::{RegistryProcess, RegistrySettings};

const REPOSITORY: &str = "gc/app";
const NAMESPACE: &str = "registry";

fn content(containerd: &Containerd) -> BTreeSet<String> {
    ctr_lines(containerd, NAMESPACE, &["content", "ls", "--quiet"]).into_iter().collect()
}

fn without(set: &BTreeSet<String>, removed: &[&Pushed]) -> BTreeSet<String> {
    let mut set = set.clone();
    for pushed in removed {
        assert!(set.remove(&pushed.digest.to_string()), "{} was not in the content store", pushed.digest);
    }
    set
}

#[tokio::test]
async fn gc_after_each_delete_keeps_referenced_content() {
    let work = tempfile::tempdir().unwrap();
    let containerd = Containerd::start();
    let process = RegistryProcess::start(work.path(), &RegistrySettings::new(&containerd.socket()));
    let registry = Registry::new(process.addr);

    // Image a: config, a layer shared with image b, and a layer of its own.
    let shared_layer = registry.push_blob(REPOSITORY, &data(1, 200_000)).await;
    let config_a = registry.push_blob(REPOSITORY, b"{\"image\":\"a\"}").await;
    let own_layer = registry.push_blob(REPOSITORY, &data(2, 150_000)).await;
    let manifest_a = Pushed::new(manifest_bytes(&config_a, &[&shared_layer, &own_layer]));
    assert_eq!(registry.put_manifest(REPOSITORY, "a", &manifest_a.bytes).await.status, 201);

    let config_b = registry.push_blob(REPOSITORY, b"{\"image\":\"b\"}").await;
    let layer_b = registry.push_blob(REPOSITORY, &data(3, 100_000)).await;
    let manifest_b = Pushed::new(manifest_bytes(&config_b, &[&shared_layer, &layer_b]));
    assert_eq!(registry.put_manifest(REPOSITORY, "b", &manifest_b.bytes).await.status, 201);

    let loose = registry.push_blob(REPOSITORY, &data(4, 50_000)).await;
    let other = registry.push_blob("gc/other", &data(5, 60_000)).await;

    containerd.force_gc().await;
    let initial = content(&containerd);
    let expected_initial: BTreeSet<String> =
        [&shared_layer, &config_a, &own_layer, &manifest_a, &config_b, &layer_b, &manifest_b, &loose, &other]
            .iter()
            .map(|pushed| pushed.digest.to_string())
            .collect();
    assert_eq!(initial, expected_initial, "content store after the pushes");

    let assert_image_b = || async {
        for blob in [&config_b, &shared_layer, &layer_b] {
            registry.assert_blob(REPOSITORY, blob).await;
        }
        registry.assert_manifest(REPOSITORY, &manifest_b.digest.to_string(), &manifest_b).await;
        registry.assert_blob("gc/other", &other).await;
    };

    // A blob no manifest references is gone after its delete and a collection.
    assert_eq!(registry.delete(&format!("/v2/{REPOSITORY}/blobs/{}", loose.digest)).await.status, 202);
    containerd.force_gc().await;
    assert_error(&registry.get(&format!("/v2/{REPOSITORY}/blobs/{}", loose.digest)).await, 404, "BLOB_UNKNOWN");
    assert_eq!(content(&containerd), without(&initial, &[&loose]));
    assert!(!containerd.blob_path(loose.digest.hex()).exists(), "the file of the deleted blob is still there");
    registry.assert_manifest(REPOSITORY, "a", &manifest_a).await;
    assert_image_b().await;

    // A blob deleted from the repository stays in the store while a linked manifest references it.
    assert_eq!(registry.delete(&format!("/v2/{REPOSITORY}/blobs/{}", own_layer.digest)).await.status, 202);
    containerd.force_gc().await;
    assert_error(&registry.get(&format!("/v2/{REPOSITORY}/blobs/{}", own_layer.digest)).await, 404, "BLOB_UNKNOWN");
    assert_eq!(content(&containerd), without(&initial, &[&loose]));
    registry.assert_manifest(REPOSITORY, "a", &manifest_a).await;
    assert_image_b().await;

    // A deleted tag takes its image record, and the manifest stays linked under its digest.
    assert_eq!(registry.delete(&format!("/v2/{REPOSITORY}/manifests/b")).await.status, 202);
    containerd.force_gc().await;
    assert_error(&registry.get(&format!("/v2/{REPOSITORY}/manifests/b")).await, 404, "MANIFEST_UNKNOWN");
    assert_eq!(content(&containerd), without(&initial, &[&loose]));
    let images = ctr_lines(&containerd, NAMESPACE, &["images", "ls", "--quiet"]);
    assert_eq!(images, vec!["/registry//gc/app:a".to_owned()]);
    let tags = registry.get(&format!("/v2/{REPOSITORY}/tags/list")).await;
    assert_eq!(tags.json()["tags"], serde_json::json!(["a"]));
    registry.assert_manifest(REPOSITORY, "a", &manifest_a).await;
    assert_image_b().await;

    // A manifest deleted by digest takes its tag, its own content and the layer that only it
    // kept alive. The config and the shared layer stay linked as blobs.
    assert_eq!(registry.delete(&format!("/v2/{REPOSITORY}/manifests/{}", manifest_a.digest)).await.status, 202);
    containerd.force_gc().await;
    assert_error(&registry.get(&format!("/v2/{REPOSITORY}/manifests/a")).await, 404, "MANIFEST_UNKNOWN");
    let by_digest = registry.get(&format!("/v2/{REPOSITORY}/manifests/{}", manifest_a.digest)).await;
    assert_error(&by_digest, 404, "MANIFEST_UNKNOWN");
    assert_eq!(content(&containerd), without(&initial, &[&loose, &own_layer, &manifest_a]));
    assert!(!containerd.blob_path(own_layer.digest.hex()).exists(), "the file of the unreferenced layer is still there");
    assert!(ctr_lines(&containerd, NAMESPACE, &["images", "ls", "--quiet"]).is_empty(), "tag a is still an image record");
    let tags = registry.get(&format!("/v2/{REPOSITORY}/tags/list")).await;
    assert_eq!(tags.status, 200);
    assert_eq!(tags.json()["tags"], serde_json::json!([]));
    registry.assert_blob(REPOSITORY, &config_a).await;
    assert_image_b().await;
}
