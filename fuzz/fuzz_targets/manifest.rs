//! Fuzzes `Manifest::parse` with a body and a request `Content-Type`.
//!
//! Input layout: the first byte picks the `Content-Type` from [`CONTENT_TYPES`]. A byte past the
//! end of that list takes the `Content-Type` from the first line of the rest instead. The
//! remaining bytes are the body.
//!
//! An accepted manifest must have `schemaVersion` 2, a supported media type that agrees with the
//! body's `mediaType` and the header, the fields its kind requires, and at most
//! `MAX_MANIFEST_REFERENCES` layers and children.

#![no_main]

use containerd_registry::limits::{MAX_MANIFEST_BYTES, MAX_MANIFEST_REFERENCES};
use containerd_registry::manifest::{
    Manifest, ManifestError, ManifestKind, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, MANIFEST_MEDIA_TYPES, OCI_INDEX,
    OCI_MANIFEST,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const CONTENT_TYPES: [Option<&str>; 9] = [
    None,
    Some(OCI_MANIFEST),
    Some(OCI_INDEX),
    Some(DOCKER_MANIFEST),
    Some(DOCKER_MANIFEST_LIST),
    Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
    Some("application/json"),
    Some(""),
    Some(" ; x=y"),
];

/// Returns the `Content-Type` and the body that `data` encodes.
fn split_input(data: &[u8]) -> Option<(Option<String>, &[u8])> {
    let (&selector, rest) = data.split_first()?;
    if let Some(content_type) = CONTENT_TYPES.get(usize::from(selector)) {
        return Some((content_type.map(str::to_owned), rest));
    }
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let content_type = String::from_utf8_lossy(&rest[..end]).into_owned();
    Some((Some(content_type), rest.get(end + 1..).unwrap_or_default()))
}

/// Returns the media type of a `Content-Type` without parameters, or `None` when it is blank.
fn essence(content_type: &str) -> Option<&str> {
    Some(content_type.split(';').next().unwrap_or("").trim()).filter(|t| !t.is_empty())
}

fn check_accepted(manifest: &Manifest, body: &[u8], content_type: Option<&str>) {
    assert!(body.len() <= MAX_MANIFEST_BYTES);

    let value: Value = serde_json::from_slice(body).expect("an accepted body is JSON");
    assert_eq!(value.get("schemaVersion").and_then(Value::as_i64), Some(2));

    assert!(MANIFEST_MEDIA_TYPES.contains(&manifest.media_type.as_str()), "{:?}", manifest.media_type);
    let expected_kind = match manifest.media_type.as_str() {
        OCI_INDEX | DOCKER_MANIFEST_LIST => ManifestKind::Index,
        _ => ManifestKind::Image,
    };
    assert_eq!(manifest.kind, expected_kind);
    if let Some(body_type) = value.get("mediaType").and_then(Value::as_str) {
        assert_eq!(manifest.media_type, body_type);
    }
    if let Some(header) = content_type.and_then(essence) {
        assert_eq!(manifest.media_type, header);
    }

    if manifest.kind == ManifestKind::Image {
        assert!(manifest.config.is_some(), "an image manifest without config was accepted");
    }
    assert!(manifest.layers.len() + manifest.manifests.len() <= MAX_MANIFEST_REFERENCES);
    assert_eq!(manifest.children().len(), manifest.manifests.len());
    assert!(manifest.required_blobs().all(|blob| blob.urls.is_empty()));
}

fn check_rejected(error: &ManifestError, content_type: Option<&str>) {
    match error {
        ManifestError::TooLarge(len) => assert!(*len > MAX_MANIFEST_BYTES),
        ManifestError::TooManyReferences(count) => assert!(*count > MAX_MANIFEST_REFERENCES),
        ManifestError::SchemaVersion(version) => assert_ne!(*version, Some(2)),
        ManifestError::UnsupportedMediaType(media_type) => {
            assert!(!MANIFEST_MEDIA_TYPES.contains(&media_type.as_str()));
        }
        ManifestError::MediaTypeMismatch { header, body } => {
            assert_ne!(header, body);
            assert_eq!(content_type.and_then(essence), Some(header.as_str()));
        }
        ManifestError::UnknownKind => assert!(content_type.and_then(essence).is_none()),
        ManifestError::Json(_) | ManifestError::MissingConfig => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((content_type, body)) = split_input(data) else {
        return;
    };
    let content_type = content_type.as_deref();
    match Manifest::parse(body, content_type) {
        Ok(manifest) => check_accepted(&manifest, body, content_type),
        Err(error) => check_rejected(&error, content_type),
    }
});
