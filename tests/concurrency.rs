//! Concurrent clients of the registry binary on a private containerd: parallel pushes of one
//! blob, racing tag updates, and pulls while deletes and garbage collections run.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::Method;

use support::containerd::Containerd;
use support::http::{data, manifest_bytes, Pushed, Registry, Reply};
use support::registry::{RegistryProcess, RegistrySettings};

fn start(work: &std::path::Path, containerd: &Containerd) -> (RegistryProcess, Registry) {
    let process = RegistryProcess::start(work, &RegistrySettings::new(&containerd.socket()));
    let registry = Registry::new(process.addr);
    (process, registry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_blob_pushed_to_16_repositories() {
    let work = tempfile::tempdir().unwrap();
    let containerd = Containerd::start();
    let (_process, registry) = start(work.path(), &containerd);
    let blob = Arc::new(Pushed::new(data(1, 2 * 1024 * 1024 + 5)));

    let pushes: Vec<_> = (0..16)
        .map(|i| {
            let (registry, blob) = (registry.clone(), blob.clone());
            tokio::spawn(async move {
                let path = format!("/v2/parallel/repo{i}/blobs/uploads/?digest={}", blob.digest);
                registry.send(Method::POST, &path, &[], blob.bytes.clone()).await
            })
        })
        .collect();
    for (i, push) in pushes.into_iter().enumerate() {
        let reply = push.await.unwrap();
        assert_eq!(reply.status, 201, "push to repo{i}: {}", String::from_utf8_lossy(&reply.body));
    }

    containerd.force_gc().await;
    for i in 0..16 {
        registry.assert_blob(&format!("parallel/repo{i}"), &blob).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_tag_puts_end_on_one_manifest() {
    let work = tempfile::tempdir().unwrap();
    let containerd = Containerd::start();
    let (_process, registry) = start(work.path(), &containerd);

    let config = registry.push_blob("race/app", b"{}").await;
    let first_layer = registry.push_blob("race/app", &data(2, 10_000)).await;
    let second_layer = registry.push_blob("race/app", &data(3, 20_000)).await;
    let manifests = [
        Pushed::new(manifest_bytes(&config, &[&first_layer])),
        Pushed::new(manifest_bytes(&config, &[&second_layer, &first_layer])),
    ];

    for round in 0..20 {
        let puts: Vec<_> = manifests
            .iter()
            .map(|manifest| {
                let (registry, bytes) = (registry.clone(), manifest.bytes.clone());
                tokio::spawn(async move { registry.put_manifest("race/app", "latest", &bytes).await })
            })
            .collect();
        for put in puts {
            let reply = put.await.unwrap();
            assert_eq!(reply.status, 201, "round {round}: {}", String::from_utf8_lossy(&reply.body));
        }

        let reply = registry.get("/v2/race/app/manifests/latest").await;
        assert_eq!(reply.status, 200, "round {round}");
        let served = Pushed::new(reply.body.clone());
        assert_eq!(reply.header("docker-content-digest"), Some(served.digest.to_string().as_str()), "round {round}");
        let winner = manifests.iter().find(|manifest| manifest.digest == served.digest);
        assert!(winner.is_some(), "round {round}: tag points at neither manifest: {served:?}");
        assert!(winner.unwrap().bytes == served.bytes, "round {round}: bytes differ");

        let images = support::http::ctr_lines(&containerd, "registry", &["images", "ls"]);
        let line = images.iter().find(|line| line.starts_with("/registry//race/app:latest ")).unwrap();
        assert!(line.contains(&served.digest.to_string()), "round {round}: image record {line} differs from GET");
    }
    let tags = registry.get("/v2/race/app/tags/list").await;
    assert_eq!(tags.json()["tags"], serde_json::json!(["latest"]));
}

/// Pulls a manifest and, if it is linked, every blob it lists, and returns whether it was linked.
/// Returns an error for a partial body, a digest that does not match, or a blob that is unknown
/// while its manifest is linked.
async fn pull(registry: &Registry, repository: &str, reference: &str) -> Result<bool, String> {
    let path = format!("/v2/{repository}/manifests/{reference}");
    let reply = registry.try_send(Method::GET, &path, &[], Vec::new()).await.map_err(|e| format!("GET {path}: {e}"))?;
    match reply.status {
        404 => return Ok(false),
        200 => {}
        status => return Err(format!("GET {path}: status {status}: {}", String::from_utf8_lossy(&reply.body))),
    }
    let manifest = Pushed::new(reply.body.clone());
    if reply.header("docker-content-digest") != Some(manifest.digest.to_string().as_str()) {
        return Err(format!("GET {path}: body does not match its digest header"));
    }

    let parsed: serde_json::Value = serde_json::from_slice(&manifest.bytes).map_err(|e| format!("{path}: {e}"))?;
    let mut descriptors = vec![parsed["config"].clone()];
    descriptors.extend(parsed["layers"].as_array().cloned().unwrap_or_default());
    for descriptor in descriptors {
        let digest = descriptor["digest"].as_str().unwrap();
        let blob_path = format!("/v2/{repository}/blobs/{digest}");
        let reply: Reply =
            registry.try_send(Method::GET, &blob_path, &[], Vec::new()).await.map_err(|e| format!("GET {blob_path}: {e}"))?;
        match reply.status {
            200 => {
                if Pushed::new(reply.body.clone()).digest.to_string() != digest {
                    return Err(format!("GET {blob_path}: partial or wrong body of {} bytes", reply.body.len()));
                }
            }
            404 => {
                // The deleter removes a manifest before its blobs, so the manifest must be gone.
                let again = registry.get(&format!("/v2/{repository}/manifests/{}", manifest.digest)).await;
                if again.status != 404 {
                    return Err(format!("blob {digest} is unknown while manifest {} is linked", manifest.digest));
                }
            }
            status => return Err(format!("GET {blob_path}: status {status}")),
        }
    }
    Ok(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_survive_deletes_and_gc() {
    let work = tempfile::tempdir().unwrap();
    let containerd = Arc::new(Containerd::start());
    let (_process, registry) = start(work.path(), &containerd);
    let kept = registry.push_image("live/app", "kept", 1, 2, 1024 * 1024).await;

    let done = Arc::new(AtomicBool::new(false));
    let pulls = Arc::new(AtomicUsize::new(0));
    let pullers: Vec<_> = ["kept", "tmp"]
        .into_iter()
        .map(|tag| {
            let (registry, done, pulls) = (registry.clone(), done.clone(), pulls.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    let linked = pull(&registry, "live/app", tag).await?;
                    if tag == "kept" && !linked {
                        return Err("the kept image is unknown".to_owned());
                    }
                    pulls.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), String>(())
            })
        })
        .collect();

    for round in 0..8u8 {
        // The kept image's layers, linked in another repository and deleted there.
        for layer in &kept.layers {
            registry.push_blob("live/copy", &layer.bytes).await;
        }
        let copy = registry.push_image("live/copy", "c", 100 + round, 1, 1000).await;
        for layer in &kept.layers {
            assert_eq!(registry.delete(&format!("/v2/live/copy/blobs/{}", layer.digest)).await.status, 202);
        }
        let digest = copy.manifest.digest;
        assert_eq!(registry.delete(&format!("/v2/live/copy/manifests/{digest}")).await.status, 202);

        // An image that the second puller reads while it is deleted: manifest first, then blobs.
        let temporary = registry.push_image("live/app", "tmp", 200 + round, 2, 512 * 1024).await;
        let digest = &temporary.manifest.digest;
        assert_eq!(registry.delete(&format!("/v2/live/app/manifests/{digest}")).await.status, 202);
        for blob in temporary.blobs() {
            assert_eq!(registry.delete(&format!("/v2/live/app/blobs/{}", blob.digest)).await.status, 202);
        }
        containerd.force_gc().await;
    }
    done.store(true, Ordering::Relaxed);

    for puller in pullers {
        puller.await.unwrap().unwrap_or_else(|error| panic!("a pull failed: {error}"));
    }
    assert!(pulls.load(Ordering::Relaxed) >= 8, "too few pulls ran alongside the deletes");
    containerd.force_gc().await;
    registry.assert_image("live/app", "kept", &kept).await;
}

/// A second request for an upload while a PATCH is still streaming into it gets 409
/// `BLOB_UPLOAD_INVALID`, whichever write it is, and changes nothing: the running PATCH ends
/// with all its bytes and the upload completes with the right digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_during_a_running_patch_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let work = tempfile::tempdir().unwrap();
    let containerd = Containerd::start();
    let (_process, registry) = start(work.path(), &containerd);
    let blob = Pushed::new(data(7, 3 * 1024 * 1024));
    let first_len = 2 * 1024 * 1024;
    let (first, rest) = blob.bytes.split_at(first_len);

    let reply = registry.send(Method::POST, "/v2/busy/app/blobs/uploads/", &[], Vec::new()).await;
    assert_eq!(reply.status, 202);
    let location = reply.header("location").expect("upload Location").to_owned();

    // Half of the first chunk, then a pause with the request still open.
    let mut slow = tokio::net::TcpStream::connect(registry.addr).await.unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Range: 0-{}\r\nContent-Length: {first_len}\r\nConnection: close\r\n\r\n",
        registry.addr,
        first_len - 1
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&first[..first_len / 2]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let other = data(8, 1000);
    let digest_query = format!("{location}?digest={}", blob.digest);
    let attempts = [
        registry.send(Method::PATCH, &location, &[("content-range", "0-999")], other.clone()).await,
        registry.send(Method::PATCH, &location, &[], other.clone()).await,
        registry.send(Method::PUT, &digest_query, &[], Vec::new()).await,
        registry.send(Method::DELETE, &location, &[], Vec::new()).await,
    ];
    for reply in &attempts {
        support::http::assert_error(reply, 409, "BLOB_UPLOAD_INVALID");
        let message = reply.json()["errors"][0]["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains("in use by another request"), "{message}");
    }
    assert_eq!(registry.get(&location).await.status, 204, "reading the status needs no claim");

    slow.write_all(&first[first_len / 2..]).await.unwrap();
    let mut response = Vec::new();
    slow.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 202 "), "{response}");
    assert!(response.to_ascii_lowercase().contains(&format!("range: 0-{}\r\n", first_len - 1)), "{response}");

    let range = format!("{first_len}-{}", blob.bytes.len() - 1);
    let reply = registry.send(Method::PATCH, &location, &[("content-range", range.as_str())], rest.to_vec()).await;
    assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
    let reply = registry.send(Method::PUT, &digest_query, &[], Vec::new()).await;
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    containerd.force_gc().await;
    registry.assert_blob("busy/app", &blob).await;
}
