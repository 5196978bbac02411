//! Repository names, tags and references, checked against the OCI Distribution Spec grammar.

use std::fmt;

use crate::digest::{Digest, DigestError};
use crate::limits::{MAX_REPOSITORY_NAME_LEN, MAX_TAG_LEN};

/// A repository name: `/`-separated path components of lower-case letters and digits joined by
/// `.`, `_`, `__` or runs of `-`, at most [`MAX_REPOSITORY_NAME_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

/// The `<reference>` of a manifest URL: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

/// The reason a name, tag or reference was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("repository name {0:?} is invalid: use lower-case path components of [a-z0-9] joined by '.', '_', '__' or '-'")]
    InvalidRepository(String),
    #[error("repository name is {0} bytes long; the maximum is {MAX_REPOSITORY_NAME_LEN}")]
    RepositoryTooLong(usize),
    #[error("tag {0:?} is invalid: use at most {MAX_TAG_LEN} characters of [A-Za-z0-9._-], not starting with '.' or '-'")]
    InvalidTag(String),
    #[error(transparent)]
    InvalidDigest(#[from] DigestError),
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Checks one path component: alphanumeric runs joined by `.`, `_`, `__` or one or more `-`.
fn is_valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() || !is_lower_alnum(bytes[0]) || !is_lower_alnum(bytes[bytes.len() - 1]) {
        return false;
    }

    let mut i = 0;
    while i < bytes.len() {
        if is_lower_alnum(bytes[i]) {
            i += 1;
            continue;
        }

        let start = i;
        while i < bytes.len() && !is_lower_alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let allowed = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-');
        if !allowed {
            return false;
        }
    }
    true
}

impl RepositoryName {
    pub fn parse(value: &str) -> Result<RepositoryName, NameError> {
        if value.len() > MAX_REPOSITORY_NAME_LEN {
            return Err(NameError::RepositoryTooLong(value.len()));
        }
        if !value.split('/').all(is_valid_component) {
            return Err(NameError::InvalidRepository(value.to_owned()));
        }
        Ok(RepositoryName(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Tag {
    pub fn parse(value: &str) -> Result<Tag, NameError> {
        let bytes = value.as_bytes();
        let first_ok = bytes.first().is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        let rest_ok = bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b));
        if !first_ok || !rest_ok || bytes.len() > MAX_TAG_LEN {
            return Err(NameError::InvalidTag(value.to_owned()));
        }
        Ok(Tag(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Reference {
    /// Parses a digest when the value contains `:`, and a tag otherwise; tags cannot contain `:`.
    pub fn parse(value: &str) -> Result<Reference, NameError> {
        if value.contains(':') {
            Ok(Reference::Digest(value.parse()?))
        } else {
            Ok(Reference::Tag(Tag::parse(value)?))
        }
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(tag) => tag.fmt(f),
            Reference::Digest(digest) => digest.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_accepts_grammar() {
        for name in ["a", "library/ubuntu", "a.b/c__d/e---f", "0/1_2", "a-b.c_d__e"] {
            assert!(RepositoryName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn repository_rejects_outside_grammar() {
        for name in [
            "", "/", "a/", "/a", "a//b", "A", "a/B", "..", "a/../b", "a/./b", "%2e", "a%2fb", "-a",
            "a-", "a___b", "a..b", "a._b", "a b", "a:b", "a@b", "é",
        ] {
            assert!(
                matches!(RepositoryName::parse(name), Err(NameError::InvalidRepository(_))),
                "{name:?} was accepted"
            );
        }
    }

    #[test]
    fn repository_length_limit() {
        let max = "a".repeat(MAX_REPOSITORY_NAME_LEN);
        assert!(RepositoryName::parse(&max).is_ok());
        let over = "a".repeat(MAX_REPOSITORY_NAME_LEN + 1);
        assert_eq!(
            RepositoryName::parse(&over),
            Err(NameError::RepositoryTooLong(MAX_REPOSITORY_NAME_LEN + 1))
        );
    }

    #[test]
    fn tag_grammar() {
        for tag in ["latest", "_x", "1.0", "A-b_c.d", &"a".repeat(MAX_TAG_LEN)] {
            assert!(Tag::parse(tag).is_ok(), "{tag}");
        }
        for tag in ["", ".a", "-a", "a/b", "a:b", "a b", &"a".repeat(MAX_TAG_LEN + 1)] {
            assert!(Tag::parse(tag).is_err(), "{tag:?} was accepted");
        }
    }

    #[test]
    fn reference_picks_digest_or_tag() {
        assert!(matches!(Reference::parse("v1"), Ok(Reference::Tag(_))));
        let digest = crate::digest::Digest::sha256(b"x").to_string();
        assert!(matches!(Reference::parse(&digest), Ok(Reference::Digest(_))));
        assert!(matches!(Reference::parse("md5:00"), Err(NameError::InvalidDigest(_))));
    }
}
