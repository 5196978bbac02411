//! `GET`, `HEAD`, `PUT` and `DELETE /v2/<name>/manifests/<reference>`.
//!
//! Decisions where the specifications leave room:
//! - A manifest PUT over [`MAX_MANIFEST_BYTES`] is 413 `MANIFEST_INVALID`: OCI distribution-spec
//!   v1.1 recommends 413 Payload Too Large, and `MANIFEST_INVALID` is the code Docker Distribution
//!   sends for the same case (with status 400). The limit is checked on `Content-Length` before
//!   reading, and the read itself stops at the limit.
//! - A GET or HEAD whose `Accept` header lists neither the stored media type nor a wildcard that
//!   covers it is 404 `MANIFEST_UNKNOWN`, as Docker Distribution responds when it has no variant of
//!   the manifest in an acceptable type. No `Accept` header accepts every type.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, ETAG, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{content_length, header_text, ApiError, AppState, DOCKER_CONTENT_DIGEST, OCI_SUBJECT};
use crate::digest::Digest;
use crate::error::{ClientError, ErrorCode};
use crate::limits::MAX_MANIFEST_BYTES;
use crate::manifest::Manifest;
use crate::names::{NameError, Reference, RepositoryName};

/// `GET` and `HEAD`: the manifest bytes as pushed, with their media type. axum drops the body of
/// a HEAD response and keeps its headers.
pub(super) async fn get(
    state: &AppState,
    repository: &RepositoryName,
    reference: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let reference = parse_read_reference(repository, reference)?;
    let manifest = state.storage.get_manifest(repository, &reference).await?;

    if !accepts(headers, &manifest.media_type) {
        let message = format!(
            "manifest {reference} has media type {}, which the Accept header does not list",
            manifest.media_type
        );
        return Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::ManifestUnknown, message));
    }

    let response = Response::builder()
        .header(CONTENT_TYPE, manifest.media_type.as_str())
        .header(CONTENT_LENGTH, manifest.bytes.len())
        .header(DOCKER_CONTENT_DIGEST, manifest.digest.to_string())
        .header(ETAG, format!("\"{}\"", manifest.digest))
        .body(Body::from(manifest.bytes))?;
    Ok(response)
}

/// Returns whether the `Accept` headers list `media_type`, `*/*` or `<type>/*` of it. Entries
/// with `q=0` are excluded; other weights are ignored, since only one type can be served.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let ranges: Vec<&str> = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter(|range| !range.trim().is_empty())
        .collect();
    if ranges.is_empty() {
        return true;
    }

    let top_level = media_type.split('/').next().unwrap_or_default();
    ranges.iter().any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let essence = parts.next().unwrap_or_default();
        let refused = parts.any(|parameter| {
            let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            name.trim().eq_ignore_ascii_case("q") && value.trim().parse::<f32>().is_ok_and(|q| q == 0.0)
        });
        let matches = essence == "*/*"
            || essence.eq_ignore_ascii_case(media_type)
            || essence.strip_suffix("/*").is_some_and(|prefix| prefix.eq_ignore_ascii_case(top_level));
        matches && !refused
    })
}

/// `PUT`: parses and verifies the manifest, then stores it and, for a tag reference, tags it.
pub(super) async fn put(
    state: &AppState,
    repository: &RepositoryName,
    reference: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let reference = Reference::parse(reference)?;
    if content_length(request.headers())?.is_some_and(|length| length > MAX_MANIFEST_BYTES as u64) {
        return Err(too_large());
    }
    let content_type = match header_text(request.headers(), &CONTENT_TYPE) {
        Ok(content_type) => content_type.map(str::to_owned),
        Err(_) => return Err(ClientError::ManifestInvalid("Content-Type is not visible ASCII text".into()).into()),
    };

    let bytes = match Limited::new(request.into_body(), MAX_MANIFEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return Err(too_large()),
        Err(error) => {
            let message = format!("reading the manifest body failed: {error}");
            return Err(ClientError::ManifestInvalid(message).into());
        }
    };
    let manifest = Manifest::parse(&bytes, content_type.as_deref())
        .map_err(|error| ClientError::ManifestInvalid(error.to_string()))?;

    let (digest, tag) = match &reference {
        Reference::Tag(tag) => (Digest::sha256(&bytes), Some(tag)),
        Reference::Digest(expected) => {
            let actual = Digest::compute(expected.algorithm(), &bytes);
            if actual != *expected {
                let message = format!("the manifest body has digest {actual}, not {expected} as the URL states");
                return Err(ClientError::DigestInvalid(message).into());
            }
            (actual, None)
        }
    };

    let subject = manifest.subject.as_ref().map(|subject| subject.digest.to_string());
    state.storage.put_manifest(repository, tag, &manifest, &digest, bytes).await?;
    tracing::debug!(%digest, tag = tag.map(|tag| tag.as_str()), "manifest stored");

    let mut response = Response::builder()
        .status(StatusCode::CREATED)
        .header(LOCATION, format!("/v2/{repository}/manifests/{digest}"))
        .header(DOCKER_CONTENT_DIGEST, digest.to_string())
        .header(CONTENT_LENGTH, 0);
    if let Some(subject) = subject {
        response = response.header(OCI_SUBJECT, subject);
    }
    Ok(response.body(Body::empty())?)
}

fn too_large() -> ApiError {
    let message = format!("the manifest is larger than the maximum of {MAX_MANIFEST_BYTES} bytes");
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::ManifestInvalid, message)
}

/// Parses the reference of a read. A tag outside the grammar cannot name a stored manifest, so it
/// is 404 `MANIFEST_UNKNOWN`, as in Docker Distribution, whose routes do not match such a tag.
/// An invalid digest stays 400 `DIGEST_INVALID`.
fn parse_read_reference(repository: &RepositoryName, reference: &str) -> Result<Reference, ApiError> {
    match Reference::parse(reference) {
        Ok(parsed) => Ok(parsed),
        Err(NameError::InvalidTag(tag)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::ManifestUnknown,
            format!("manifest {tag:?} is not known in repository {repository}: it is not a valid tag"),
        )),
        Err(other) => Err(other.into()),
    }
}

/// `DELETE`: by digest, unlinks the manifest and removes its tags; by tag, removes only the tag.
pub(super) async fn delete(state: &AppState, repository: &RepositoryName, reference: &str) -> Result<Response, ApiError> {
    if !state.delete_enabled {
        return Err(super::blobs::delete_disabled().into());
    }
    match parse_read_reference(repository, reference)? {
        Reference::Digest(digest) => state.storage.delete_manifest(repository, &digest).await?,
        Reference::Tag(tag) => state.storage.delete_tag(repository, &tag).await?,
    }
    Ok(Response::builder().status(StatusCode::ACCEPTED).header(CONTENT_LENGTH, 0).body(Body::empty())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const OCI: &str = crate::manifest::OCI_MANIFEST;

    fn accept(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(ACCEPT, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn accepts_without_header() {
        assert!(accepts(&HeaderMap::new(), OCI));
    }

    #[test]
    fn accepts_listed_type_or_wildcard() {
        assert!(accepts(&accept(&["application/json", OCI]), OCI));
        assert!(accepts(&accept(&["text/plain, application/vnd.oci.image.manifest.v1+json; q=0.5"]), OCI));
        assert!(accepts(&accept(&["*/*"]), OCI));
        assert!(accepts(&accept(&["application/*"]), OCI));
    }

    #[test]
    fn accepts_rejects_unlisted_or_refused_type() {
        assert!(!accepts(&accept(&[crate::manifest::DOCKER_MANIFEST]), OCI));
        assert!(!accepts(&accept(&["application/vnd.oci.image.manifest.v1+json;q=0"]), OCI));
        assert!(!accepts(&accept(&["text/*"]), OCI));
    }
}
