//! Fuzzes the parsers of repository names, tags, digests and manifest references.
//!
//! Each parser is compared with a plain re-statement of its grammar written here. It must accept
//! exactly the strings that grammar accepts and return a value that prints as the input. It must
//! reject everything else with the typed error for the reason.

#![no_main]

use containerd_registry::digest::{Digest, DigestError};
use containerd_registry::limits::{MAX_REPOSITORY_NAME_LEN, MAX_TAG_LEN};
use containerd_registry::names::{NameError, Reference, RepositoryName, Tag};
use libfuzzer_sys::fuzz_target;

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Matches `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, one component of a repository name.
fn grammar_component(component: &str) -> bool {
    let mut chars = component.chars().peekable();
    loop {
        // An alphanumeric run, which must not be empty.
        let mut run = 0;
        while chars.peek().is_some_and(|c| is_lower_alnum(*c)) {
            chars.next();
            run += 1;
        }
        if run == 0 {
            return false;
        }

        // The end, or a separator followed by another run.
        let mut separator = String::new();
        while let Some(c) = chars.peek().copied().filter(|c| !is_lower_alnum(*c)) {
            separator.push(c);
            chars.next();
        }
        if separator.is_empty() {
            return chars.peek().is_none();
        }
        let dashes = separator.chars().all(|c| c == '-');
        if !(separator == "." || separator == "_" || separator == "__" || dashes) {
            return false;
        }
    }
}

fn grammar_repository(value: &str) -> bool {
    value.split('/').all(grammar_component)
}

/// Matches `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn grammar_tag(value: &str) -> bool {
    let mut chars = value.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
    first_ok && rest_ok && value.len() <= MAX_TAG_LEN
}

/// Matches the digests this registry accepts: `sha256:` with 64 or `sha512:` with 128 lower-case
/// hex characters.
fn grammar_digest(value: &str) -> bool {
    let lower_hex = |hex: &str, len: usize| hex.len() == len && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
    match value.split_once(':') {
        Some(("sha256", hex)) => lower_hex(hex, 64),
        Some(("sha512", hex)) => lower_hex(hex, 128),
        _ => false,
    }
}

fn check_repository(input: &str) {
    match RepositoryName::parse(input) {
        Ok(name) => {
            assert!(grammar_repository(input), "{input:?} was accepted");
            assert!(input.len() <= MAX_REPOSITORY_NAME_LEN);
            assert_eq!(name.as_str(), input);
            assert_eq!(name.to_string(), input);
        }
        Err(NameError::RepositoryTooLong(len)) => {
            assert_eq!(len, input.len());
            assert!(len > MAX_REPOSITORY_NAME_LEN);
        }
        Err(NameError::InvalidRepository(value)) => {
            assert_eq!(value, input);
            assert!(!grammar_repository(input), "{input:?} was rejected");
        }
        Err(other) => panic!("{input:?}: unexpected error {other:?}"),
    }
}

fn check_tag(input: &str) {
    match Tag::parse(input) {
        Ok(tag) => {
            assert!(grammar_tag(input), "{input:?} was accepted");
            assert_eq!(tag.as_str(), input);
            assert_eq!(tag.to_string(), input);
        }
        Err(NameError::InvalidTag(value)) => {
            assert_eq!(value, input);
            assert!(!grammar_tag(input), "{input:?} was rejected");
        }
        Err(other) => panic!("{input:?}: unexpected error {other:?}"),
    }
}

fn check_digest(input: &str) {
    match input.parse::<Digest>() {
        Ok(digest) => {
            assert!(grammar_digest(input), "{input:?} was accepted");
            assert_eq!(digest.to_string(), input);
            assert_eq!(digest.hex().len(), digest.algorithm().hex_len());
            assert_eq!(format!("{}:{}", digest.algorithm().name(), digest.hex()), input);

            let json = serde_json::to_string(&digest).unwrap();
            assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
        }
        Err(error) => {
            assert!(!grammar_digest(input), "{input:?} was rejected: {error:?}");
            let (DigestError::Malformed(value)
            | DigestError::UnsupportedAlgorithm(value)
            | DigestError::BadEncoding(value, _)) = &error;
            assert_eq!(value, input);
            if let DigestError::BadEncoding(_, len) = error {
                assert!(len == 64 || len == 128);
            }
        }
    }

    // A JSON string is read with the same rules as a URL.
    let json = serde_json::to_string(input).unwrap();
    let from_json = serde_json::from_str::<Digest>(&json).ok();
    assert_eq!(from_json, input.parse().ok());
}

fn check_reference(input: &str) {
    match Reference::parse(input) {
        Ok(reference) => {
            assert_eq!(reference.to_string(), input);
            match reference {
                Reference::Tag(_) => assert!(grammar_tag(input)),
                Reference::Digest(_) => assert!(grammar_digest(input)),
            }
        }
        Err(NameError::InvalidTag(value)) => {
            assert_eq!(value, input);
            assert!(!input.contains(':'));
            assert!(!grammar_tag(input), "{input:?} was rejected");
        }
        Err(NameError::InvalidDigest(_)) => assert!(input.contains(':') && !grammar_digest(input)),
        Err(other) => panic!("{input:?}: unexpected error {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    check_repository(input);
    check_tag(input);
    check_digest(input);
    check_reference(input);
});
