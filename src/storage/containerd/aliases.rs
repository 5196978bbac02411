//! sha512 digests as aliases of sha256 content.
//!
//! containerd 1.6 commits only sha256 content: a commit expecting a sha512 digest fails with
//! "unexpected commit digest sha256:..., expected sha512:...". Content pushed under a sha512
//! digest is therefore stored under its sha256 digest and labelled with its sha512 hex, and every
//! look-up by sha512 digest goes through that label.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::client::{label_filter, Client};
use crate::digest::{Algorithm, Digest};
use crate::error::Result;
use crate::mapping::LABEL_SHA512;

/// The sha256 digests of content seen under a sha512 digest. The map only grows, and an entry
/// never goes stale, because both digests are functions of the same bytes.
#[derive(Default)]
pub struct Aliases {
    sha256_by_sha512: Mutex<HashMap<String, String>>,
}

impl Aliases {
    /// Returns the digest containerd stores content under: `digest` itself for sha256, the
    /// labelled sha256 twin for sha512. `None` when no content in the namespace carries the
    /// sha512 label.
    pub async fn content_digest(&self, client: &Client, digest: &Digest) -> Result<Option<String>> {
        if digest.algorithm() == Algorithm::Sha256 {
            return Ok(Some(digest.to_string()));
        }
        if let Some(sha256) = self.cached(digest.hex()) {
            return Ok(Some(sha256));
        }

        let infos = client.list_content(label_filter(LABEL_SHA512, digest.hex())).await?;
        let Some(info) = infos.into_iter().next() else {
            return Ok(None);
        };
        self.record(digest.hex(), &info.digest);
        Ok(Some(info.digest))
    }

    /// Remembers that the content with sha512 `sha512_hex` is stored as `sha256`.
    pub fn record(&self, sha512_hex: &str, sha256: &str) {
        let mut map = self.sha256_by_sha512.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(sha512_hex.to_owned(), sha256.to_owned());
    }

    fn cached(&self, sha512_hex: &str) -> Option<String> {
        let map = self.sha256_by_sha512.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(sha512_hex).cloned()
    }
}
