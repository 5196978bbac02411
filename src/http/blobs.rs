//! `GET`, `HEAD` and `DELETE /v2/<name>/blobs/<digest>`.
//!
//! A GET streams the blob from storage and never buffers it whole in memory. A `Range` header on a
//! GET selects one byte range (see [`crate::range`]); HEAD ignores `Range`, because RFC 9110
//! defines range handling for GET only. An `If-None-Match` that lists the blob's entity tag,
//! `"<digest>"`, gets 304 Not Modified on GET and HEAD.

use axum::body::Body;
use axum::http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RANGE};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;

use super::{header_text, ApiError, AppState, DOCKER_CONTENT_DIGEST};
use crate::digest::Digest;
use crate::error::ClientError;
use crate::names::RepositoryName;
use crate::range::{parse_range, RangeError, RangeErrorKind};

pub(super) async fn get(
    state: &AppState,
    repository: &RepositoryName,
    digest: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let digest: Digest = digest.parse()?;
    let info = state.storage.stat_blob(repository, &digest).await?;

    if etag_matches(headers, &digest) {
        return Ok(Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(ETAG, format!("\"{digest}\""))
            .header(DOCKER_CONTENT_DIGEST, digest.to_string())
            .body(Body::empty())?);
    }

    let range = match header_text(headers, &RANGE) {
        _ if *method == Method::HEAD => None,
        _ if headers.get_all(RANGE).iter().count() > 1 => {
            let values: Vec<String> =
                headers.get_all(RANGE).iter().map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned()).collect();
            return Err(RangeError { kind: RangeErrorKind::MultipleRanges, header: values.join(", "), size: info.size }.into());
        }
        Ok(None) => None,
        Ok(Some(value)) => parse_range(value, info.size)?,
        Err(_) => {
            let header = String::from_utf8_lossy(headers[RANGE].as_bytes()).into_owned();
            return Err(RangeError { kind: RangeErrorKind::Malformed, header, size: info.size }.into());
        }
    };

    let response = Response::builder()
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(DOCKER_CONTENT_DIGEST, digest.to_string())
        .header(ACCEPT_RANGES, "bytes")
        .header(ETAG, format!("\"{digest}\""));
    if *method == Method::HEAD {
        return Ok(response.header(CONTENT_LENGTH, info.size).body(Body::empty())?);
    }

    let stream = state.storage.read_blob(repository, &digest, range).await?;
    let response = match range {
        None => response.status(StatusCode::OK).header(CONTENT_LENGTH, info.size),
        Some(range) => response
            .status(StatusCode::PARTIAL_CONTENT)
            .header(CONTENT_LENGTH, range.len())
            .header(CONTENT_RANGE, format!("bytes {}-{}/{}", range.start, range.end, info.size)),
    };
    Ok(response.body(Body::from_stream(stream))?)
}

/// Reports whether `If-None-Match` lists the blob's entity tag (`"<digest>"`, weak or not) or
/// is `*`. A blob's bytes never change under its digest, so a match means the client's copy is
/// current.
pub(super) fn etag_matches(headers: &HeaderMap, digest: &Digest) -> bool {
    let tag = format!("\"{digest}\"");
    headers.get_all(IF_NONE_MATCH).iter().filter_map(|value| value.to_str().ok()).any(|value| {
        value.split(',').map(str::trim).any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag)
    })
}

pub(super) async fn delete(state: &AppState, repository: &RepositoryName, digest: &str) -> Result<Response, ApiError> {
    if !state.delete_enabled {
        return Err(delete_disabled().into());
    }
    let digest: Digest = digest.parse()?;
    state.storage.delete_blob(repository, &digest).await?;
    Ok(Response::builder().status(StatusCode::ACCEPTED).header(CONTENT_LENGTH, 0).body(Body::empty())?)
}

/// Returns the 405 `UNSUPPORTED` error of a DELETE while `storage.delete.enabled` is off.
pub(super) fn delete_disabled() -> ClientError {
    ClientError::Unsupported(
        "deleting is disabled on this registry; set storage.delete.enabled to true to allow it".to_owned(),
    )
}
