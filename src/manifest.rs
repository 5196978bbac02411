//! Parsing and validation of pushed manifests and indexes (OCI and Docker schema 2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::limits::{MAX_MANIFEST_BYTES, MAX_MANIFEST_REFERENCES};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The manifest media types this registry stores and serves.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST];

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

/// Whether a manifest describes one image or lists other manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    Image,
    Index,
}

/// The fields of a manifest or index that the registry acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub media_type: String,
    pub kind: ManifestKind,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The reason a manifest body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {0} bytes; the maximum is {MAX_MANIFEST_BYTES}")]
    TooLarge(usize),
    #[error("manifest is not valid JSON for its media type: {0}")]
    Json(String),
    #[error("media type {0:?} is not a supported manifest type; use one of {MANIFEST_MEDIA_TYPES:?}")]
    UnsupportedMediaType(String),
    #[error("Content-Type {header:?} does not match the manifest's mediaType {body:?}")]
    MediaTypeMismatch { header: String, body: String },
    #[error("schemaVersion is {}; only 2 is supported", .0.map_or("missing".to_owned(), |v| v.to_string()))]
    SchemaVersion(Option<i64>),
    #[error("media type cannot be determined: send a Content-Type or a mediaType field")]
    UnknownKind,
    #[error("an image manifest needs a config descriptor")]
    MissingConfig,
    #[error("manifest has {0} descriptors; the maximum is {MAX_MANIFEST_REFERENCES}")]
    TooManyReferences(usize),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

fn kind_of(media_type: &str) -> Option<ManifestKind> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(ManifestKind::Image),
        OCI_INDEX | DOCKER_MANIFEST_LIST => Some(ManifestKind::Index),
        _ => None,
    }
}

/// Strips parameters such as `; charset=utf-8` from a Content-Type value.
fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

impl Manifest {
    /// Parses a manifest body. `content_type` is the request's Content-Type, if any; when both it
    /// and the body's `mediaType` are present they must agree.
    pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
        if body.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(body.len()));
        }
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| ManifestError::Json(e.to_string()))?;
        if !value.is_object() {
            return Err(ManifestError::Json("the manifest must be a JSON object".to_owned()));
        }
        let raw: RawManifest = serde_json::from_value(value).map_err(|e| ManifestError::Json(e.to_string()))?;

        let header = content_type.map(essence).filter(|t| !t.is_empty());
        let media_type = match (header, raw.media_type.as_deref()) {
            (Some(header), Some(body)) if header != body => {
                return Err(ManifestError::MediaTypeMismatch { header: header.into(), body: body.into() })
            }
            (_, Some(body)) => body.to_owned(),
            (Some(header), None) => header.to_owned(),
            (None, None) if raw.manifests.is_some() => OCI_INDEX.to_owned(),
            (None, None) if raw.config.is_some() => OCI_MANIFEST.to_owned(),
            (None, None) => return Err(ManifestError::UnknownKind),
        };
        let Some(kind) = kind_of(&media_type) else {
            return Err(ManifestError::UnsupportedMediaType(media_type));
        };
        if raw.schema_version != Some(2) {
            return Err(ManifestError::SchemaVersion(raw.schema_version));
        }

        let layers = raw.layers.unwrap_or_default();
        let manifests = raw.manifests.unwrap_or_default();
        let count = layers.len() + manifests.len();
        if count > MAX_MANIFEST_REFERENCES {
            return Err(ManifestError::TooManyReferences(count));
        }
        if kind == ManifestKind::Image && raw.config.is_none() {
            return Err(ManifestError::MissingConfig);
        }

        let artifact_type = raw.artifact_type.clone().or_else(|| match kind {
            ManifestKind::Image => raw.config.as_ref().map(|c| c.media_type.clone()),
            ManifestKind::Index => None,
        });
        Ok(Manifest {
            media_type,
            kind,
            config: raw.config,
            layers,
            manifests,
            subject: raw.subject,
            artifact_type,
            annotations: raw.annotations,
        })
    }

    /// Returns the blobs (config and layers) the repository must hold. Layers with `urls` are
    /// external (non-distributable) and are not required.
    pub fn required_blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(self.layers.iter().filter(|layer| layer.urls.is_empty()))
    }

    /// Returns the child manifests of an index.
    pub fn children(&self) -> &[Descriptor] {
        &self.manifests
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(seed: &str) -> String {
        Digest::sha256(seed.as_bytes()).to_string()
    }

    fn image_manifest() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":3}}]}}"#,
            digest("config"),
            digest("layer")
        )
    }

    #[test]
    fn parse_image_manifest() {
        let manifest = Manifest::parse(image_manifest().as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(manifest.kind, ManifestKind::Image);
        assert_eq!(manifest.required_blobs().count(), 2);
        assert_eq!(manifest.artifact_type.as_deref(), Some("application/vnd.oci.image.config.v1+json"));
    }

    #[test]
    fn parse_rejects_mismatched_content_type() {
        let error = Manifest::parse(image_manifest().as_bytes(), Some(OCI_INDEX)).unwrap_err();
        assert!(matches!(error, ManifestError::MediaTypeMismatch { .. }), "{error:?}");
    }

    #[test]
    fn parse_rejects_bad_bodies() {
        let cases: [(&str, fn(&ManifestError) -> bool); 5] = [
            ("", |e| matches!(e, ManifestError::Json(_))),
            ("[]", |e| matches!(e, ManifestError::Json(_))),
            (r#"{"schemaVersion":2,"mediaType":"text/plain"}"#, |e| matches!(e, ManifestError::UnsupportedMediaType(_))),
            (r#"{"schemaVersion":1,"config":{"mediaType":"a","digest":"sha256:00","size":1}}"#, |e| matches!(e, ManifestError::Json(_))),
            (r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#, |e| matches!(e, ManifestError::MissingConfig)),
        ];
        for (body, check) in cases {
            let error = Manifest::parse(body.as_bytes(), None).unwrap_err();
            assert!(check(&error), "{body}: {error:?}");
        }
    }

    #[test]
    fn parse_rejects_negative_size() {
        let body = image_manifest().replace("\"size\":3", "\"size\":-3");
        assert!(matches!(Manifest::parse(body.as_bytes(), None), Err(ManifestError::Json(_))));
    }

    #[test]
    fn parse_limits_references() {
        let child = format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1}}"#, digest("child"));
        let index = |count: usize| {
            let children = vec![child.as_str(); count].join(",");
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{children}]}}"#)
        };

        let at_limit = Manifest::parse(index(MAX_MANIFEST_REFERENCES).as_bytes(), None).unwrap();
        assert_eq!(at_limit.children().len(), MAX_MANIFEST_REFERENCES);
        let over = Manifest::parse(index(MAX_MANIFEST_REFERENCES + 1).as_bytes(), None);
        assert_eq!(over, Err(ManifestError::TooManyReferences(MAX_MANIFEST_REFERENCES + 1)));
    }

    #[test]
    fn parse_limits_body_size() {
        let body = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert_eq!(Manifest::parse(&body, None), Err(ManifestError::TooLarge(MAX_MANIFEST_BYTES + 1)));
    }
}
