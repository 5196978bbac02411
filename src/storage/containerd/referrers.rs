//! Referrers: manifests whose `subject` is a given digest, found by the subject label that
//! `put_manifest` sets on their content.

use super::client::label_filter;
use super::content::to_u64;
use super::Inner;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::limits::{MAX_MANIFEST_BYTES, MAX_REFERRERS};
use crate::manifest::{Descriptor, Manifest};
use crate::mapping::{LABEL_MEDIA_TYPE, LABEL_SUBJECT};
use crate::names::RepositoryName;

impl Inner {
    /// Lists the manifests linked in `repository` whose subject is `digest`, in digest order,
    /// at most [`MAX_REFERRERS`] of them. The subject label is namespace-wide, so content that
    /// only other repositories link is left out.
    pub(super) async fn list_referrers(&self, repository: &RepositoryName, digest: &Digest) -> Result<Vec<Descriptor>> {
        let infos = self.client.list_content(label_filter(LABEL_SUBJECT, &digest.to_string())).await?;
        let mut linked: Vec<_> = {
            let links = self.links(repository).await?;
            infos.into_iter().filter(|info| links.contains(&info.digest)).collect()
        };
        // containerd stores only sha256 content, so ordering the digest strings orders digests.
        linked.sort_by(|a, b| a.digest.cmp(&b.digest));
        linked.truncate(MAX_REFERRERS);

        let mut referrers = Vec::new();
        for info in linked {
            let size = to_u64(info.size, "content size")?;
            if size > MAX_MANIFEST_BYTES as u64 {
                continue;
            }
            // Content collected since the listing is no longer a referrer.
            let Some(bytes) = self.read_small_content(&info.digest, size).await? else {
                continue;
            };
            let media_type = info.labels.get(LABEL_MEDIA_TYPE).map(String::as_str);
            let manifest = Manifest::parse(&bytes, media_type)
                .map_err(|e| Error::Internal(format!("stored referrer {} does not parse: {e}", info.digest)))?;
            let digest: Digest = info.digest.parse().map_err(|e| {
                Error::Internal(format!("containerd listed content with digest {:?}: {e}", info.digest))
            })?;

            referrers.push(Descriptor {
                media_type: manifest.media_type,
                digest,
                size,
                artifact_type: manifest.artifact_type,
                annotations: manifest.annotations,
                urls: Vec::new(),
                platform: None,
            });
        }
        Ok(referrers)
    }
}
