//! Blob uploads: `POST /v2/<name>/blobs/uploads/` and `GET`, `PATCH`, `PUT`, `DELETE` on
//! `/v2/<name>/blobs/uploads/<id>`.
//!
//! Request bodies go to storage as a stream, never collected. Upload responses send
//! `Range: 0-<offset - 1>` only once the session contains bytes, because the header cannot express
//! an empty range; Docker Distribution sends `0-0` in that case, which reads as one byte.
//!
//! A malformed `Content-Range` is 400 `BLOB_UPLOAD_INVALID`; a well-formed chunk that does not
//! start at the session's offset is 416 `BLOB_UPLOAD_INVALID`, as the OCI spec requires.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_RANGE, LOCATION, RANGE};
use axum::http::response::Builder;
use axum::http::StatusCode;
use axum::response::Response;

use super::{blob_location, body_stream, content_length, header_text, ApiError, AppState, QueryParams};
use super::{DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID};
use crate::digest::Digest;
use crate::error::ClientError;
use crate::mapping::UploadId;
use crate::names::RepositoryName;
use crate::range::{parse_content_range, ChunkRange};
use crate::storage::{BlobInfo, ByteStream, UploadStatus};

/// `POST /v2/<name>/blobs/uploads/`: mounts a blob from another repository (`?mount=&from=`),
/// uploads a whole blob in one request (`?digest=`), or opens an upload session.
///
/// A mount that cannot be done, because `mount` or `from` is missing or invalid or `from` does
/// not hold the blob, falls back to the next form, as the OCI spec allows and as Docker
/// Distribution does.
pub(super) async fn start(state: &AppState, repository: &RepositoryName, request: Request) -> Result<Response, ApiError> {
    let query = QueryParams::from_uri(request.uri());

    if let (Some(mount), Some(from)) = (query.get("mount"), query.get("from")) {
        match (mount.parse::<Digest>(), RepositoryName::parse(from)) {
            (Ok(digest), Ok(from)) => {
                if let Some(info) = state.storage.mount_blob(repository, &from, &digest).await? {
                    tracing::debug!(%from, digest = %info.digest, "blob mounted");
                    return blob_created(repository, &info);
                }
            }
            (digest, from) => tracing::debug!(
                mount, from = ?from.err(), digest = ?digest.err(), "mount parameters are invalid; not mounting"
            ),
        }
    }

    if let Some(digest) = query.get("digest") {
        let digest: Digest = digest.parse()?;
        let upload = state.storage.start_upload(repository).await?;
        let body = body_stream(request.into_body());
        return match state.storage.commit_upload(repository, &upload.id, &digest, body).await {
            Ok(info) => blob_created(repository, &info),
            Err(error) => {
                discard(state, repository, &upload.id).await;
                Err(error.into())
            }
        };
    }

    let upload = state.storage.start_upload(repository).await?;
    Ok(upload_response(StatusCode::ACCEPTED, repository, &upload).header(CONTENT_LENGTH, 0).body(Body::empty())?)
}

/// Cancels the session of a failed monolithic upload, so it does not wait for expiry.
async fn discard(state: &AppState, repository: &RepositoryName, id: &UploadId) {
    match state.storage.cancel_upload(repository, id).await {
        Ok(()) => {}
        // A digest mismatch has already discarded the session.
        Err(error) if error.code() == crate::error::ErrorCode::BlobUploadUnknown => {}
        Err(error) => tracing::warn!(upload = %id, %error, "cancelling a failed upload failed; it expires later"),
    }
}

/// `GET /v2/<name>/blobs/uploads/<id>`: reports the offset of a session.
pub(super) async fn status(state: &AppState, repository: &RepositoryName, id: &str) -> Result<Response, ApiError> {
    let id = parse_id(repository, id)?;
    let upload = state.storage.upload_status(repository, &id).await?;
    Ok(upload_response(StatusCode::NO_CONTENT, repository, &upload).body(Body::empty())?)
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: appends a chunk. With `Content-Range`, the chunk must
/// start at the session's offset and `Content-Length`, when sent, must equal its length. Without
/// it, the body is appended at the current offset (a streamed upload).
pub(super) async fn patch(
    state: &AppState,
    repository: &RepositoryName,
    id: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let id = parse_id(repository, id)?;
    let length = content_length(request.headers())?;

    let (start, length) = match chunk_range(&id, &request)? {
        Some(chunk) => {
            check_length(length, &chunk)?;
            (chunk.start, Some(chunk.len()))
        }
        None => (state.storage.upload_status(repository, &id).await?.offset, length),
    };

    let body = body_stream(request.into_body());
    let upload = state.storage.write_upload(repository, &id, start, length, body).await?;
    Ok(upload_response(StatusCode::ACCEPTED, repository, &upload).header(CONTENT_LENGTH, 0).body(Body::empty())?)
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: appends the body, if any, and commits the blob.
/// A `Content-Range` on the final chunk is checked as on PATCH.
pub(super) async fn put(state: &AppState, repository: &RepositoryName, id: &str, request: Request) -> Result<Response, ApiError> {
    let id = parse_id(repository, id)?;
    let query = QueryParams::from_uri(request.uri());
    let Some(digest) = query.get("digest").filter(|digest| !digest.is_empty()) else {
        let message = "the digest query parameter is missing; complete an upload with PUT <location>?digest=<digest>";
        return Err(ClientError::DigestInvalid(message.to_owned()).into());
    };
    let digest: Digest = digest.parse()?;

    // A final chunk with `Content-Range` is written exactly as a PATCH, so that its start and
    // length are checked the same way, and the commit then adds no bytes.
    let body = match chunk_range(&id, &request)? {
        Some(chunk) => {
            check_length(content_length(request.headers())?, &chunk)?;
            let chunk_body = body_stream(request.into_body());
            state.storage.write_upload(repository, &id, chunk.start, Some(chunk.len()), chunk_body).await?;
            Box::pin(futures::stream::empty()) as ByteStream
        }
        None => body_stream(request.into_body()),
    };
    let info = state.storage.commit_upload(repository, &id, &digest, body).await?;
    blob_created(repository, &info)
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: cancels a session. Allowed while deletes are disabled,
/// because it removes no committed content.
pub(super) async fn cancel(state: &AppState, repository: &RepositoryName, id: &str) -> Result<Response, ApiError> {
    let id = parse_id(repository, id)?;
    state.storage.cancel_upload(repository, &id).await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Body::empty())?)
}

/// Parses an upload id from the URL; an id this registry cannot have issued is unknown.
fn parse_id(repository: &RepositoryName, id: &str) -> Result<UploadId, ApiError> {
    UploadId::parse(id).ok_or_else(|| {
        ClientError::UploadUnknown { repository: repository.to_string(), id: id.to_owned() }.into()
    })
}

/// Returns the request's `Content-Range`, if it sent one.
fn chunk_range(id: &UploadId, request: &Request) -> Result<Option<ChunkRange>, ApiError> {
    let invalid = |reason: String| ApiError::from(ClientError::UploadInvalid { id: id.to_string(), reason });
    match header_text(request.headers(), &CONTENT_RANGE) {
        Ok(None) => Ok(None),
        Ok(Some(value)) => parse_content_range(value).map(Some).map_err(|error| invalid(error.to_string())),
        Err(_) => Err(invalid("Content-Range is not visible ASCII text".to_owned())),
    }
}

/// Checks that a `Content-Length` equals the length of the chunk its `Content-Range` declares.
fn check_length(length: Option<u64>, chunk: &ChunkRange) -> Result<(), ApiError> {
    match length {
        Some(length) if length != chunk.len() => Err(ClientError::SizeInvalid(format!(
            "Content-Length is {length}, but Content-Range {}-{} spans {} bytes",
            chunk.start,
            chunk.end,
            chunk.len()
        ))
        .into()),
        _ => Ok(()),
    }
}

/// Starts a response that describes an open session: its `Location`, id and received bytes.
fn upload_response(status: StatusCode, repository: &RepositoryName, upload: &UploadStatus) -> Builder {
    let mut response = Response::builder()
        .status(status)
        .header(LOCATION, format!("/v2/{repository}/blobs/uploads/{}", upload.id))
        .header(DOCKER_UPLOAD_UUID, upload.id.as_str());
    if upload.offset > 0 {
        response = response.header(RANGE, format!("0-{}", upload.offset - 1));
    }
    response
}

/// Returns 201 for a blob that is now linked in `repository`.
fn blob_created(repository: &RepositoryName, info: &BlobInfo) -> Result<Response, ApiError> {
    let response = Response::builder()
        .status(StatusCode::CREATED)
        .header(LOCATION, blob_location(repository, &info.digest))
        .header(DOCKER_CONTENT_DIGEST, info.digest.to_string())
        .header(CONTENT_LENGTH, 0)
        .body(Body::empty())?;
    Ok(response)
}
