//! Upload sessions: an ingest under a lease of its own, which expires so that containerd's
//! garbage collector purges abandoned uploads.
//!
//! containerd truncates an ingest when a write arrives at offset 0 while the ingest contains
//! bytes, so a write at offset 0 is only ever sent when the ingest is empty. A PATCH continues
//! the `content.Write` stream the previous chunk left open (see `open_writers`), or opens one;
//! containerd locks the ingest for the stream's lifetime.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::client::{Created, Failure};
use super::content::IngestWriter;
use super::open_writers::{Claim, UploadBusy};
use super::Inner;
use crate::digest::{Algorithm, Digest};
use crate::error::{ClientError, Error, Result};
use crate::limits::WRITE_CHUNK_BYTES;
use crate::mapping::{UploadId, LABEL_GC_EXPIRE, LABEL_REPOSITORY, LABEL_ROOT, LABEL_SHA512, LABEL_UPLOAD};
use crate::names::RepositoryName;
use crate::storage::{BlobInfo, ByteStream, UploadStatus};

/// The end of streaming a request body into an ingest.
enum BodyEnd {
    /// The body ended after this many bytes, all sent.
    Complete(u64),
    /// The body had more bytes than allowed; the allowed ones were sent.
    TooLong,
    /// Reading the body failed; the bytes read before were sent.
    Failed(std::io::Error),
}

/// Sends a request body to an ingest in messages of at most [`WRITE_CHUNK_BYTES`], stopping
/// after `max_len` bytes when given.
async fn send_body(writer: &mut IngestWriter, mut body: ByteStream, max_len: Option<u64>) -> Result<BodyEnd, Failure> {
    let mut buffer = Vec::with_capacity(WRITE_CHUNK_BYTES);
    let mut received: u64 = 0;
    let mut end = None;

    while end.is_none() {
        let bytes = match body.next().await {
            Some(Ok(bytes)) => bytes,
            Some(Err(error)) => {
                end = Some(BodyEnd::Failed(error));
                break;
            }
            None => break,
        };

        let mut rest = &bytes[..];
        if let Some(max_len) = max_len {
            let room = max_len - received;
            if rest.len() as u64 > room {
                rest = &rest[..room as usize];
                end = Some(BodyEnd::TooLong);
            }
        }
        received += rest.len() as u64;

        while !rest.is_empty() {
            let take = rest.len().min(WRITE_CHUNK_BYTES - buffer.len());
            buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if buffer.len() == WRITE_CHUNK_BYTES {
                let full = std::mem::replace(&mut buffer, Vec::with_capacity(WRITE_CHUNK_BYTES));
                writer.write(full).await?;
            }
        }
    }

    if !buffer.is_empty() {
        writer.write(buffer).await?;
    }
    Ok(end.unwrap_or(BodyEnd::Complete(received)))
}

/// Returns the RFC 3339 time `lifetime` from now, as containerd's `gc.expire` label wants it,
/// or `None` for no lifetime.
fn expiry_after(lifetime: Option<Duration>) -> Result<Option<String>> {
    let Some(lifetime) = lifetime else {
        return Ok(None);
    };
    // A lifetime beyond the calendar's range means no expiry in practice.
    let Some(expiry) =
        time::Duration::try_from(lifetime).ok().and_then(|lifetime| OffsetDateTime::now_utc().checked_add(lifetime))
    else {
        return Ok(None);
    };
    let expiry = expiry.replace_nanosecond(0).unwrap_or(expiry);
    let text = expiry
        .format(&Rfc3339)
        .map_err(|e| Error::Internal(format!("formatting the expiry time {expiry} failed: {e}")))?;
    Ok(Some(text))
}

impl Inner {
    fn upload_unknown(repository: &RepositoryName, id: &UploadId) -> Error {
        ClientError::UploadUnknown { repository: repository.to_string(), id: id.to_string() }.into()
    }

    /// Creates the lease of a new upload session and returns its id. The lease expires after
    /// `lifetime`, or never when it is `None`.
    pub(super) async fn create_upload_lease(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        lifetime: Option<Duration>,
    ) -> Result<String> {
        let lease = self.mapping.upload_lease(id);
        let mut labels = HashMap::from([
            (LABEL_ROOT.to_owned(), self.mapping.root().to_owned()),
            (LABEL_REPOSITORY.to_owned(), repository.as_str().to_owned()),
            (LABEL_UPLOAD.to_owned(), id.as_str().to_owned()),
        ]);
        if let Some(expiry) = expiry_after(lifetime)? {
            labels.insert(LABEL_GC_EXPIRE.to_owned(), expiry);
        }

        if self.client.create_lease(&lease, labels).await? == Created::Existing {
            return Err(Error::Internal(format!("random upload id {id} collided with an existing lease")));
        }
        Ok(lease)
    }

    /// Returns the lease id of an open upload of `repository`, checking that the lease exists
    /// and that its labels name this root, repository and session.
    async fn find_upload(&self, repository: &RepositoryName, id: &UploadId) -> Result<String> {
        let lease_id = self.mapping.upload_lease(id);
        let Some(lease) = self.client.find_lease(&lease_id).await? else {
            return Err(Self::upload_unknown(repository, id));
        };

        let label = |key: &str| lease.labels.get(key).map(String::as_str);
        let owned = label(LABEL_ROOT) == Some(self.mapping.root())
            && label(LABEL_REPOSITORY) == Some(repository.as_str())
            && label(LABEL_UPLOAD) == Some(id.as_str());
        if !owned {
            return Err(Self::upload_unknown(repository, id));
        }
        Ok(lease_id)
    }

    /// Opens the ingest of an upload, mapping a lease that vanished to `BLOB_UPLOAD_UNKNOWN`.
    async fn open_upload(&self, repository: &RepositoryName, id: &UploadId, lease: &str) -> Result<IngestWriter> {
        match self.client.open_ingest(&self.mapping.ingest_ref(id), lease).await {
            Ok(writer) => Ok(writer),
            Err(Failure::NotFound(_)) => Err(Self::upload_unknown(repository, id)),
            Err(failure) => Err(failure.into()),
        }
    }

    /// Claims an upload for this request, refusing it while another request uses the upload.
    fn claim<'a>(&'a self, id: &UploadId) -> Result<Claim<'a>> {
        self.open_writers.claim(id).map_err(|UploadBusy| ClientError::UploadBusy { id: id.to_string() }.into())
    }

    /// Returns the write stream of an upload: the one the previous chunk left open, or a new one.
    /// A kept stream is checked with one stat round trip first, because a stream broken while it
    /// waited (containerd restarted, the connection dropped) would fail the chunk after the
    /// request body was already consumed. The ingest keeps its bytes, so a new stream continues.
    async fn writer(&self, repository: &RepositoryName, id: &UploadId, lease: &str, claim: &mut Claim<'_>) -> Result<IngestWriter> {
        if let Some(mut writer) = claim.take_writer() {
            match writer.sync().await {
                Ok(_) => return Ok(writer),
                Err(failure) => {
                    let error = failure.into_error();
                    tracing::debug!(upload = %id, %error, "kept write stream is broken; opening a new one");
                }
            }
        }
        self.open_upload(repository, id, lease).await
    }

    /// Discards an upload's bytes and lease after a digest mismatch. The client gets
    /// `DIGEST_INVALID` in any case, so a failure here is logged, not returned.
    async fn discard_upload(&self, id: &UploadId, lease: &str) {
        if let Err(error) = self.client.abort_ingest(&self.mapping.ingest_ref(id)).await {
            tracing::warn!(upload = %id, %error, "failed to abort the ingest of a rejected upload");
        }
        if let Err(error) = self.client.delete_lease(lease, false).await {
            tracing::warn!(upload = %id, lease, %error, "failed to delete the lease of a rejected upload");
        }
    }

    pub(super) async fn start_upload(&self, repository: &RepositoryName) -> Result<UploadStatus> {
        let id = UploadId::random();
        self.create_upload_lease(repository, &id, self.upload_lifetime).await?;
        Ok(UploadStatus { id, offset: 0 })
    }

    pub(super) async fn upload_status(&self, repository: &RepositoryName, id: &UploadId) -> Result<UploadStatus> {
        self.find_upload(repository, id).await?;
        // The ingest appears with the first write; a session without one has 0 bytes.
        let offset = self.client.ingest_offset(&self.mapping.ingest_ref(id)).await?.unwrap_or(0);
        Ok(UploadStatus { id: id.clone(), offset })
    }

    pub(super) async fn write_upload(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        start: u64,
        length: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadStatus> {
        let lease = self.find_upload(repository, id).await?;
        let mut claim = self.claim(id)?;
        let mut writer = self.writer(repository, id, &lease, &mut claim).await?;

        let offset = writer.offset();
        if start != offset {
            claim.keep(writer);
            return Err(ClientError::UploadOutOfOrder { id: id.to_string(), start, offset }.into());
        }

        let end = send_body(&mut writer, body, length).await?;
        let offset = match end {
            BodyEnd::Complete(received) if length.map_or(true, |length| length == received) => {
                let offset = writer.sync().await?;
                claim.keep(writer);
                offset
            }
            _ => writer.close().await?,
        };

        let received = match end {
            BodyEnd::Complete(received) => received,
            BodyEnd::TooLong => {
                let length = length.unwrap_or_default();
                return Err(ClientError::SizeInvalid(format!(
                    "chunk for upload {id} is longer than its stated length of {length} bytes; \
                     the upload now has {offset} bytes, resume from there"
                ))
                .into());
            }
            BodyEnd::Failed(error) => {
                return Err(ClientError::UploadInvalid {
                    id: id.to_string(),
                    reason: format!("reading the request body failed: {error}; the upload now has {offset} bytes"),
                }
                .into())
            }
        };
        if let Some(length) = length.filter(|length| *length != received) {
            return Err(ClientError::SizeInvalid(format!(
                "chunk for upload {id} has {received} bytes, but its stated length is {length}; \
                 the upload now has {offset} bytes, resume from there"
            ))
            .into());
        }
        Ok(UploadStatus { id: id.clone(), offset })
    }

    /// Appends the last bytes, commits the upload as `digest`, links the blob in the
    /// repository and deletes the session. The content stays listed by the upload lease until
    /// the repository lease lists it.
    pub(super) async fn commit_upload(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        digest: &Digest,
        body: ByteStream,
    ) -> Result<BlobInfo> {
        let lease = self.find_upload(repository, id).await?;
        let mut claim = self.claim(id)?;
        let mut writer = self.writer(repository, id, &lease, &mut claim).await?;

        if let BodyEnd::Failed(error) = send_body(&mut writer, body, None).await? {
            let offset = writer.close().await?;
            return Err(ClientError::UploadInvalid {
                id: id.to_string(),
                reason: format!("reading the request body failed: {error}; the upload now has {offset} bytes"),
            }
            .into());
        }
        let size = writer.offset();

        // containerd's digest of the ingest: the content digest for sha256 pushes, and the
        // digest to commit under for sha512 pushes.
        let sha256 = writer.digest().await?;
        if digest.algorithm() == Algorithm::Sha256 && sha256 != digest.to_string() {
            drop(writer.close().await);
            self.discard_upload(id, &lease).await;
            return Err(ClientError::DigestInvalid(format!(
                "upload {id} has digest {sha256}, not the expected {digest}; the upload was discarded"
            ))
            .into());
        }

        // Listing the content in the upload lease before the commit keeps it alive even when
        // containerd returns `AlreadyExists`, which aborts the ingest without touching leases.
        if self.client.add_lease_content(&lease, &sha256).await?.is_none() {
            return Err(Self::upload_unknown(repository, id));
        }
        match writer.commit(&sha256, HashMap::new()).await {
            Ok(()) | Err(Failure::AlreadyExists(_)) => {}
            Err(Failure::FailedPrecondition(error)) => {
                self.discard_upload(id, &lease).await;
                return Err(ClientError::DigestInvalid(format!(
                    "upload {id} does not match the expected {digest}; the upload was discarded: {error}"
                ))
                .into());
            }
            Err(Failure::NotFound(_)) => return Err(Self::upload_unknown(repository, id)),
            Err(failure) => return Err(failure.into()),
        }

        if digest.algorithm() == Algorithm::Sha512 {
            self.verify_sha512(id, &lease, &sha256, digest).await?;
        }

        self.links(repository).await?.link(&self.client, &sha256).await?;
        self.client.delete_lease(&lease, false).await?;
        Ok(BlobInfo { digest: digest.clone(), size })
    }

    /// Reads committed content back to check it against a sha512 digest, then labels the
    /// content so that the sha512 digest resolves to it. A mismatch discards the upload.
    async fn verify_sha512(&self, id: &UploadId, lease: &str, sha256: &str, digest: &Digest) -> Result<()> {
        let Some(mut bytes) = self.client.read_content(sha256, 0, 0).await? else {
            return Err(Error::Internal(format!("content {sha256} of upload {id} vanished while its lease listed it")));
        };
        let mut hasher = Algorithm::Sha512.hasher();
        while let Some(chunk) = bytes.next().await {
            let chunk = chunk.map_err(|e| Error::Internal(format!("reading back {sha256} failed: {e}")))?;
            hasher.update(&chunk);
        }
        let actual = hasher.finish();

        if actual != *digest {
            self.discard_upload(id, lease).await;
            return Err(ClientError::DigestInvalid(format!(
                "upload {id} has digest {actual}, not the expected {digest}; the upload was discarded"
            ))
            .into());
        }

        let label = HashMap::from([(LABEL_SHA512.to_owned(), actual.hex().to_owned())]);
        if self.client.set_content_labels(sha256, label).await?.is_none() {
            return Err(Error::Internal(format!("content {sha256} of upload {id} vanished while its lease listed it")));
        }
        self.aliases.record(digest.hex(), sha256);
        Ok(())
    }

    pub(super) async fn cancel_upload(&self, repository: &RepositoryName, id: &UploadId) -> Result<()> {
        let lease = self.find_upload(repository, id).await?;
        self.end_session(id, &lease).await
    }

    /// Closes an upload's write stream if one is open, aborts its ingest and deletes its lease.
    pub(super) async fn end_session(&self, id: &UploadId, lease: &str) -> Result<()> {
        // containerd's local content store (1.6, 1.7 and 2.1 alike) writes the ingest's
        // `updatedat` file when a write stream ends, so an abort racing the end of a dropped
        // stream fails now and then with "directory not empty". Closing the stream first waits
        // until containerd has finished with the ingest.
        let mut claim = self.claim(id)?;
        if let Some(writer) = claim.take_writer() {
            if let Err(failure) = writer.close().await {
                let error = failure.into_error();
                tracing::debug!(upload = %id, %error, "closing the write stream of a cancelled upload failed");
            }
        }
        self.client.abort_ingest(&self.mapping.ingest_ref(id)).await?;
        self.client.delete_lease(lease, false).await?;
        Ok(())
    }
}
