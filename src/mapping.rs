//! The one place where registry objects become containerd identifiers.
//!
//! containerd's identifiers (lease ids) allow `[A-Za-z0-9]+([._-][A-Za-z0-9]+)*` and at most 76
//! characters, while repository names reach 255 bytes. Every mapping here is total on validated
//! input and injective: image names are reversible by construction, and lease ids are SHA-256
//! hashes whose labels record the root and repository, which callers compare on every look-up so
//! that even a hash collision is detected rather than shared.

use sha2::Digest as _;

use crate::limits::MAX_REPOSITORY_NAME_LEN;
use crate::names::{RepositoryName, Tag};

/// Label on leases and images: the registry root that owns the object.
pub const LABEL_ROOT: &str = "containerd-registry.io/root";
/// Label on repository leases and tag images: the repository name.
pub const LABEL_REPOSITORY: &str = "containerd-registry.io/repository";
/// Label on upload leases: the upload id in the client's upload URL.
pub const LABEL_UPLOAD: &str = "containerd-registry.io/upload";
/// Label on content: the media type the manifest was pushed with. containerd stores none.
pub const LABEL_MEDIA_TYPE: &str = "containerd-registry.io/media-type";
/// Label on manifest content: the digest of its `subject`, so referrers can be listed by filter.
pub const LABEL_SUBJECT: &str = "containerd-registry.io/subject";
/// Label on sha256-addressed content that was pushed under a sha512 digest: its sha512 hex.
/// containerd 1.6 only commits sha256 content, so sha512 digests are aliases.
pub const LABEL_SHA512: &str = "containerd-registry.io/sha512";
/// containerd's label that makes its garbage collector drop a lease after a time (RFC 3339).
pub const LABEL_GC_EXPIRE: &str = "containerd.io/gc.expire";
/// Prefix of containerd's labels that make a content object keep other content alive.
pub const LABEL_GC_REF_CONTENT: &str = "containerd.io/gc.ref.content";
/// Label on manifest content that keeps its config blob alive.
pub const LABEL_GC_REF_CONFIG: &str = "containerd.io/gc.ref.content.config";

/// containerd's maximum length of an identifier such as a lease id.
pub const CONTAINERD_MAX_ID_LEN: usize = 76;
pub use crate::limits::CONTAINERD_MAX_LABEL_LEN;
/// Maximum length of a configured root, so that root plus repository always fit in a label.
pub const MAX_ROOT_LEN: usize = 1024;

// The root and repository labels fit containerd's limit for every valid root and name.
const _: () = assert!(LABEL_ROOT.len() + MAX_ROOT_LEN <= CONTAINERD_MAX_LABEL_LEN);
const _: () = assert!(LABEL_REPOSITORY.len() + MAX_REPOSITORY_NAME_LEN <= CONTAINERD_MAX_LABEL_LEN);

/// The reason a configured root cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootError {
    #[error("root {0:?} must be an absolute path such as /registry, with components of [A-Za-z0-9._-] other than '.' and '..'")]
    Invalid(String),
    #[error("root is {0} bytes long; the maximum is {MAX_ROOT_LEN}")]
    TooLong(usize),
}

/// The validated `storage.containerd.root`, which separates registries sharing a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The root as configured, without a trailing `/`; "/" itself becomes "".
    root: String,
    /// Hex SHA-256 of the root, which keys ingest refs.
    root_hash: String,
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

impl Mapping {
    pub fn new(root: &str) -> Result<Mapping, RootError> {
        if root.len() > MAX_ROOT_LEN {
            return Err(RootError::TooLong(root.len()));
        }
        let Some(path) = root.strip_prefix('/') else {
            return Err(RootError::Invalid(root.to_owned()));
        };

        let path = path.strip_suffix('/').unwrap_or(path);
        let valid = (path.is_empty() && root == "/")
            || path.split('/').all(|component| {
                !component.is_empty()
                    && component != "."
                    && component != ".."
                    && component.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            });
        if !valid {
            return Err(RootError::Invalid(root.to_owned()));
        }

        let normalized = if path.is_empty() { String::new() } else { format!("/{path}") };
        let root_hash = sha256_hex(&[&normalized]);
        Ok(Mapping { root: normalized, root_hash })
    }

    /// Returns the root as it appears in labels: "/" for the top, otherwise without a trailing `/`.
    pub fn root(&self) -> &str {
        if self.root.is_empty() {
            "/"
        } else {
            &self.root
        }
    }

    /// Returns the id of the lease that records a repository's blobs and manifests.
    pub fn repository_lease(&self, repository: &RepositoryName) -> String {
        format!("creg.r.{}", sha256_hex(&[&self.root, repository.as_str()]))
    }

    /// Returns the id of the lease that protects one upload session.
    pub fn upload_lease(&self, upload: &UploadId) -> String {
        format!("creg.u.{}", upload.as_str())
    }

    /// Returns the containerd ingest ref of one upload session.
    pub fn ingest_ref(&self, upload: &UploadId) -> String {
        format!("containerd-registry/{}/{}", &self.root_hash[..32], upload.as_str())
    }

    /// Returns the image name that records a tag: `<root>//<repository>:<tag>`. The root never
    /// contains `//` and neither does a repository name, and tags contain no `:` or `/`, so the
    /// name splits back into its parts uniquely.
    pub fn image_name(&self, repository: &RepositoryName, tag: &Tag) -> String {
        format!("{}//{}:{}", self.root, repository, tag)
    }

    /// Splits an image name made by [`Mapping::image_name`] with this root back into its parts.
    pub fn parse_image_name(&self, name: &str) -> Option<(RepositoryName, Tag)> {
        let rest = name.strip_prefix(&self.root)?.strip_prefix("//")?;
        let (repository, tag) = rest.rsplit_once(':')?;
        Some((RepositoryName::parse(repository).ok()?, Tag::parse(tag).ok()?))
    }
}

/// An upload session id: 32 lower-case hex characters (a random UUID).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    pub fn random() -> UploadId {
        UploadId(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Parses an id from a URL; anything but 32 lower-case hex characters is `None`.
    pub fn parse(value: &str) -> Option<UploadId> {
        let valid =
            value.len() == 32 && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| UploadId(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UploadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Returns the label key on manifest content that keeps its layer number `index` alive.
pub fn layer_ref_label(index: usize) -> String {
    format!("{LABEL_GC_REF_CONTENT}.l.{index}")
}

/// Returns the label key on index content that keeps its child manifest number `index` alive.
pub fn child_ref_label(index: usize) -> String {
    format!("{LABEL_GC_REF_CONTENT}.m.{index}")
}

/// Checks a string against containerd's identifier grammar and length limit.
pub fn is_containerd_identifier(id: &str) -> bool {
    id.len() <= CONTAINERD_MAX_ID_LEN
        && !id.is_empty()
        && id.split(['.', '_', '-']).all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> RepositoryName {
        RepositoryName::parse(name).unwrap()
    }

    #[test]
    fn root_validation() {
        for root in ["/", "/registry", "/a/b", "/a/b/", "/A.b_c-d"] {
            assert!(Mapping::new(root).is_ok(), "{root}");
        }
        for root in ["", "registry", "//", "/a//b", "/a/../b", "/.", "/a b", "/a:b"] {
            assert!(Mapping::new(root).is_err(), "{root:?} was accepted");
        }
        assert_eq!(Mapping::new("/a/").unwrap(), Mapping::new("/a").unwrap());
        assert_eq!(Mapping::new("/").unwrap().root(), "/");
    }

    #[test]
    fn lease_ids_are_containerd_identifiers() {
        let mapping = Mapping::new("/registry").unwrap();
        let long = "a".repeat(crate::limits::MAX_REPOSITORY_NAME_LEN);
        for name in ["a", "library/ubuntu", long.as_str()] {
            let id = mapping.repository_lease(&repo(name));
            assert!(is_containerd_identifier(&id), "{id}");
        }
        let upload = mapping.upload_lease(&UploadId::random());
        assert!(is_containerd_identifier(&upload), "{upload}");
    }

    #[test]
    fn roots_do_not_collide() {
        let a = Mapping::new("/a/b").unwrap();
        let b = Mapping::new("/a").unwrap();
        assert_ne!(a.repository_lease(&repo("c")), b.repository_lease(&repo("b/c")));

        let tag = Tag::parse("latest").unwrap();
        assert_ne!(a.image_name(&repo("c"), &tag), b.image_name(&repo("b/c"), &tag));
        assert_eq!(b.parse_image_name(&a.image_name(&repo("c"), &tag)), None);
    }

    #[test]
    fn image_name_round_trips() {
        for root in ["/", "/registry", "/x/y"] {
            let mapping = Mapping::new(root).unwrap();
            let tag = Tag::parse("v1.0").unwrap();
            let name = mapping.image_name(&repo("library/ubuntu"), &tag);
            assert_eq!(mapping.parse_image_name(&name), Some((repo("library/ubuntu"), tag)));
        }
    }

    #[test]
    fn gc_ref_labels_follow_containerd_convention() {
        assert_eq!(LABEL_GC_REF_CONFIG, format!("{LABEL_GC_REF_CONTENT}.config"));
        assert_eq!(layer_ref_label(3), "containerd.io/gc.ref.content.l.3");
        assert_eq!(child_ref_label(0), "containerd.io/gc.ref.content.m.0");
    }

    #[test]
    fn upload_id_parse() {
        let id = UploadId::random();
        assert_eq!(UploadId::parse(id.as_str()), Some(id));
        for bad in ["", "../x", &"A".repeat(32), &"a".repeat(33)] {
            assert_eq!(UploadId::parse(bad), None, "{bad:?}");
        }
    }
}
