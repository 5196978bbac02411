//! Manifests: content-store entries labelled with containerd's `gc.ref.content` labels, so
//! that whatever keeps a manifest alive keeps its config, layers and child manifests alive.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use containerd_client::services::v1::Image;
use containerd_client::types::Descriptor as ContainerdDescriptor;
use futures::StreamExt;

use super::client::Failure;
use super::content::{to_i64, to_u64};
use super::repositories::repository_labels;
use super::Inner;
use crate::digest::{Algorithm, Digest};
use crate::error::{ClientError, Error, Result};
use crate::limits::{MAX_MANIFEST_BYTES, WRITE_CHUNK_BYTES};
use crate::manifest::Manifest;
use crate::mapping::{
    child_ref_label, layer_ref_label, UploadId, CONTAINERD_MAX_LABEL_LEN, LABEL_GC_REF_CONFIG, LABEL_MEDIA_TYPE,
    LABEL_SHA512, LABEL_SUBJECT,
};
use crate::names::{Reference, RepositoryName, Tag};
use crate::storage::StoredManifest;

/// Lifetime of the lease that protects a manifest while it is written. The write takes
/// milliseconds; the expiry only matters when the registry dies before it deletes the lease.
const MANIFEST_LEASE_LIFETIME: Duration = Duration::from_secs(3600);

fn manifest_unknown(repository: &RepositoryName, reference: &dyn std::fmt::Display) -> Error {
    ClientError::ManifestUnknown { repository: repository.to_string(), reference: reference.to_string() }.into()
}

impl Inner {
    pub(super) async fn get_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<StoredManifest> {
        let unknown = || manifest_unknown(repository, reference);
        let (digest, tagged_media_type) = match reference {
            Reference::Digest(digest) => (digest.clone(), None),
            Reference::Tag(tag) => {
                let Some(target) = self.tag_target(repository, tag).await? else {
                    return Err(unknown());
                };
                let digest: Digest = target.digest.parse().map_err(|e| {
                    Error::Internal(format!("tag {tag} of {repository} targets an invalid digest: {e}"))
                })?;
                (digest, Some(target.media_type))
            }
        };

        let Some(content_digest) = self.linked_content(repository, &digest).await? else {
            return Err(unknown());
        };
        let Some(info) = self.client.content_info(&content_digest).await? else {
            return Err(unknown());
        };
        // A linked blob far larger than any manifest is not one; do not read it into memory.
        let size = to_u64(info.size, "content size")?;
        if size > MAX_MANIFEST_BYTES as u64 {
            return Err(unknown());
        }
        let Some(bytes) = self.read_small_content(&content_digest, size).await? else {
            return Err(unknown());
        };

        // The label records the media type the manifest was pushed with. Content linked
        // without it was pushed as a blob, and serves as a manifest only if it parses as one.
        let media_type = match info.labels.get(LABEL_MEDIA_TYPE).cloned().or(tagged_media_type) {
            Some(media_type) => media_type,
            None => match Manifest::parse(&bytes, None) {
                Ok(manifest) => manifest.media_type,
                Err(_) => return Err(unknown()),
            },
        };
        Ok(StoredManifest { digest, media_type, bytes })
    }

    /// Reads content whose info reported `size` bytes, at most [`MAX_MANIFEST_BYTES`], into
    /// memory. `None` when the content is gone.
    pub(super) async fn read_small_content(&self, content_digest: &str, size: u64) -> Result<Option<Bytes>> {
        let Some(mut stream) = self.client.read_content(content_digest, 0, 0).await? else {
            return Ok(None);
        };
        let size = size.min(MAX_MANIFEST_BYTES as u64) as usize;
        let mut bytes = BytesMut::with_capacity(size);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::Internal(format!("reading {content_digest} failed: {e}")))?;
            if bytes.len() + chunk.len() > size {
                return Err(Error::Internal(format!(
                    "content {content_digest} is longer than its size of {size} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes.freeze()))
    }

    /// Stores a manifest: checks that the repository links everything it references, writes
    /// it through a short-lived upload lease, links it, points the tag at it, and only then
    /// deletes the upload lease.
    pub(super) async fn put_manifest(
        &self,
        repository: &RepositoryName,
        tag: Option<&Tag>,
        manifest: &Manifest,
        digest: &Digest,
        bytes: Bytes,
    ) -> Result<()> {
        let actual = Digest::compute(digest.algorithm(), &bytes);
        if actual != *digest {
            return Err(
                ClientError::DigestInvalid(format!("manifest has digest {actual}, not the expected {digest}")).into()
            );
        }
        let content_digest = match digest.algorithm() {
            Algorithm::Sha256 => digest.to_string(),
            Algorithm::Sha512 => Digest::sha256(&bytes).to_string(),
        };

        // A blob unlinked between this check and the link below stays alive through the
        // manifest's labels, as it would if it were unlinked after the put.
        let labels = self.manifest_labels(repository, manifest, digest).await?;

        let id = UploadId::random();
        let lease = self.create_upload_lease(repository, &id, Some(MANIFEST_LEASE_LIFETIME)).await?;
        let stored = async {
            self.write_manifest(&id, &lease, &content_digest, &bytes, labels).await?;
            self.links(repository).await?.link(&self.client, &content_digest).await?;
            if let Some(tag) = tag {
                self.put_tag(repository, tag, manifest, digest, bytes.len()).await?;
            }
            Ok::<(), Error>(())
        }
        .await;

        if stored.is_err() {
            if let Err(error) = self.client.abort_ingest(&self.mapping.ingest_ref(&id)).await {
                tracing::warn!(upload = %id, %error, "failed to abort the ingest of a failed manifest put");
            }
        }
        let released = self.client.delete_lease(&lease, false).await;
        stored?;
        released?;

        if digest.algorithm() == Algorithm::Sha512 {
            self.aliases.record(digest.hex(), &content_digest);
        }
        Ok(())
    }

    /// Writes manifest bytes as content under `lease`, with `labels`. Content that already
    /// exists gets the labels set instead.
    async fn write_manifest(
        &self,
        id: &UploadId,
        lease: &str,
        content_digest: &str,
        bytes: &[u8],
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let mut writer = self.client.open_ingest(&self.mapping.ingest_ref(id), lease).await?;
        for chunk in bytes.chunks(WRITE_CHUNK_BYTES) {
            writer.write(chunk.to_vec()).await?;
        }

        // Listed before the commit, for the reason given in `commit_upload`.
        if self.client.add_lease_content(lease, content_digest).await?.is_none() {
            return Err(Error::Internal(format!("lease {lease} vanished while a manifest was written")));
        }
        match writer.commit(content_digest, labels.clone()).await {
            Ok(()) => Ok(()),
            Err(Failure::AlreadyExists(_)) => match self.client.set_content_labels(content_digest, labels).await? {
                Some(()) => Ok(()),
                None => Err(Error::Internal(format!("content {content_digest} vanished while its lease listed it"))),
            },
            Err(failure) => Err(failure.into()),
        }
    }

    /// Returns the labels of manifest content, after checking that the repository links every
    /// blob and child manifest the manifest requires.
    async fn manifest_labels(
        &self,
        repository: &RepositoryName,
        manifest: &Manifest,
        digest: &Digest,
    ) -> Result<HashMap<String, String>> {
        for descriptor in manifest.required_blobs().chain(manifest.children()) {
            let unknown = || ClientError::ManifestBlobUnknown {
                repository: repository.to_string(),
                digest: descriptor.digest.clone(),
            };
            let Some(content_digest) = self.linked_content(repository, &descriptor.digest).await? else {
                return Err(unknown().into());
            };
            let Some(info) = self.client.content_info(&content_digest).await? else {
                return Err(unknown().into());
            };
            if info.size != descriptor.size as i64 {
                return Err(ClientError::ManifestInvalid(format!(
                    "descriptor of {} gives size {}, but the stored blob has {} bytes",
                    descriptor.digest, descriptor.size, info.size
                ))
                .into());
            }
        }

        let mut labels = HashMap::new();
        labels.insert(LABEL_MEDIA_TYPE.to_owned(), manifest.media_type.clone());
        if let Some(subject) = &manifest.subject {
            labels.insert(LABEL_SUBJECT.to_owned(), subject.digest.to_string());
        }
        if digest.algorithm() == Algorithm::Sha512 {
            labels.insert(LABEL_SHA512.to_owned(), digest.hex().to_owned());
        }

        // A reference that does not resolve (an external layer never pushed) gets no label.
        let references = manifest.config.iter().map(|config| (LABEL_GC_REF_CONFIG.to_owned(), config));
        let layers = manifest.layers.iter().enumerate().map(|(i, layer)| (layer_ref_label(i), layer));
        let children = manifest.manifests.iter().enumerate().map(|(i, child)| (child_ref_label(i), child));
        for (key, descriptor) in references.chain(layers).chain(children) {
            if let Some(content_digest) = self.aliases.content_digest(&self.client, &descriptor.digest).await? {
                labels.insert(key, content_digest);
            }
        }

        // Keys and values are label constants, digests and one of the supported manifest media
        // types, all far below containerd's limit. This check catches a future label that is not.
        if let Some((key, _)) = labels.iter().find(|(key, value)| key.len() + value.len() > CONTAINERD_MAX_LABEL_LEN) {
            return Err(Error::Internal(format!(
                "label {key} exceeds containerd's {CONTAINERD_MAX_LABEL_LEN}-byte limit"
            )));
        }
        Ok(labels)
    }

    /// Points a tag at a manifest: an image record named after root, repository and tag.
    async fn put_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        manifest: &Manifest,
        digest: &Digest,
        size: usize,
    ) -> Result<()> {
        let image = Image {
            name: self.mapping.image_name(repository, tag),
            labels: repository_labels(&self.mapping, repository),
            target: Some(ContainerdDescriptor {
                media_type: manifest.media_type.clone(),
                digest: digest.to_string(),
                size: to_i64(size as u64, "manifest size")?,
                annotations: HashMap::new(),
            }),
            created_at: None,
            updated_at: None,
        };
        self.client.put_image(image).await
    }

    /// Unlinks a manifest, then deletes every tag of the repository that points at it.
    pub(super) async fn delete_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        let unknown = || manifest_unknown(repository, digest);
        let Some(content_digest) = self.aliases.content_digest(&self.client, digest).await? else {
            return Err(unknown());
        };
        {
            let mut links = self.links(repository).await?;
            if !links.contains(&content_digest) {
                return Err(unknown());
            }
            links.unlink(&self.client, &content_digest).await?;
        }

        for image in self.repository_images(repository).await? {
            let Some(target) = &image.target else { continue };
            let Ok(target_digest) = target.digest.parse::<Digest>() else { continue };
            let target_content = self.aliases.content_digest(&self.client, &target_digest).await?;
            if target_content.as_deref() == Some(content_digest.as_str()) {
                self.client.delete_image(&image.name).await?;
            }
        }
        Ok(())
    }
}
