//! Builds OCI image layouts from real files on this machine, for pushing with real clients.

use std::path::{Path, PathBuf};
use std::process::Command;

use containerd_registry::digest::Digest;

/// One blob written into an OCI layout.
#[derive(Debug, Clone)]
pub struct LayoutBlob {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

/// An OCI image layout on disk with one tagged manifest.
#[derive(Debug)]
pub struct ImageLayout {
    pub dir: PathBuf,
    pub tag: String,
    pub manifest: LayoutBlob,
    pub config: LayoutBlob,
    pub layers: Vec<LayoutBlob>,
}

impl ImageLayout {
    /// Returns the skopeo transport reference of the tagged image: `oci:DIR:TAG`.
    pub fn reference(&self) -> String {
        format!("oci:{}:{}", self.dir.display(), self.tag)
    }

    /// Returns every blob of the image, manifest first.
    pub fn blobs(&self) -> Vec<&LayoutBlob> {
        let mut blobs = vec![&self.manifest, &self.config];
        blobs.extend(self.layers.iter());
        blobs
    }
}

fn write_blob(dir: &Path, bytes: &[u8], media_type: &str) -> LayoutBlob {
    let digest = Digest::sha256(bytes);
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(digest.hex()), bytes).unwrap();
    LayoutBlob { digest, size: bytes.len() as u64, media_type: media_type.to_owned() }
}

/// Makes a reproducible uncompressed tar of `source` (a real directory or file on this machine).
fn tar_of(source: &Path) -> Vec<u8> {
    let parent = source.parent().unwrap();
    let name = source.file_name().unwrap();
    let output = Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-cf", "-", "-C"])
        .arg(parent)
        .arg(name)
        .output()
        .expect("tar runs");
    assert!(output.status.success(), "tar of {} failed: {}", source.display(), String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// Builds a multi-layer image in `dir` whose layers are tars of `sources`.
pub fn build_image(dir: &Path, tag: &str, sources: &[&Path]) -> ImageLayout {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();

    let layers: Vec<LayoutBlob> = sources
        .iter()
        .map(|source| write_blob(dir, &tar_of(source), "application/vnd.oci.image.layer.v1.tar"))
        .collect();

    let diff_ids: Vec<String> = layers.iter().map(|layer| layer.digest.to_string()).collect();
    let config_json = serde_json::json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = write_blob(dir, &serde_json::to_vec(&config_json).unwrap(), "application/vnd.oci.image.config.v1+json");

    let descriptor = |blob: &LayoutBlob| {
        serde_json::json!({"mediaType": blob.media_type, "digest": blob.digest.to_string(), "size": blob.size})
    };
    let manifest_json = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor(&config),
        "layers": layers.iter().map(descriptor).collect::<Vec<_>>(),
    });
    let manifest = write_blob(dir, &serde_json::to_vec(&manifest_json).unwrap(), "application/vnd.oci.image.manifest.v1+json");

    let mut manifest_entry = descriptor(&manifest);
    manifest_entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [manifest_entry]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();

    ImageLayout { dir: dir.to_owned(), tag: tag.to_owned(), manifest, config, layers }
}
