//! The OCI Distribution HTTP API (distribution-spec v1.1) over any [`Storage`].
//!
//! [`router`] builds the axum [`Router`]. Repository names contain `/`, so every
//! `/v2/<name>/...` request goes to one handler, which splits the path from the right into the
//! name and the endpoint ([`Route::parse`]). It then checks the method, the read-only mode and
//! the name, and calls the endpoint's module: [`blobs`], [`uploads`], [`manifests`], [`tags`] or
//! [`referrers`]. Failures become the OCI JSON error body in [`error`], which also logs them.
//! [`location`] turns the `Location` paths that handlers return into absolute URLs.
//!
//! Decisions where the specifications leave room:
//! - A path that matches no endpoint is 404 `UNSUPPORTED`; a known endpoint with another method
//!   is 405 `UNSUPPORTED` with an `Allow` header.
//! - In read-only mode every method but GET and HEAD under `/v2/<name>/` gets the response
//!   Docker Distribution 2.8 sends there, with the same status, headers and body: 405 with
//!   `Allow: GET, HEAD` and the plain-text body `Method not allowed`, so that tools written
//!   against Distribution see no difference. It is the one error without an OCI JSON body.

mod blobs;
mod error;
pub mod location;
mod manifests;
mod observe;
mod referrers;
mod tags;
mod uploads;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures::TryStreamExt;

pub use error::ApiError;
pub use observe::route_of;

use crate::error::ClientError;
use crate::limits::MAX_CONTENT_LENGTH;
use crate::metrics::route;
use crate::names::RepositoryName;
use crate::storage::{ByteStream, Storage};

/// `Docker-Distribution-API-Version`, sent on every response; clients probe `/v2/` for it.
const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
/// The digest of the blob or manifest a response describes or a request created.
const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
/// The id of an upload session, for clients that read it instead of `Location`.
const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
/// The `subject` digest of a pushed manifest, which signals to the client that referrers are indexed.
const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
/// The referrers filters that the response has applied.
const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

/// The state shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    /// `storage.delete.enabled`: without it, blob and manifest DELETE are 405 `UNSUPPORTED`.
    pub delete_enabled: bool,
    /// `storage.maintenance.readonly.enabled`: every write gets Docker Distribution's read-only
    /// 405 response.
    pub read_only: bool,
    /// `health.storagedriver`: while its check fails, every request gets 503 `UNAVAILABLE`.
    pub health: Option<Arc<crate::health::HealthMonitor>>,
    /// `auth`: every request needs credentials that grant the access it needs.
    pub auth: Option<Arc<crate::auth::Authorizer>>,
}

/// Builds the OCI Distribution API over `state.storage`. Every request, including the ones
/// the health gate rejects, is traced, logged and counted.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/v2", get(base).fallback(get_only))
        .route("/v2/", get(base).fallback(get_only))
        .route("/v2/_catalog", get(tags::catalog).fallback(get_only))
        .route("/v2/{*path}", any(dispatch))
        .fallback(no_route);
    if let Some(authorizer) = &state.auth {
        router = router.layer(middleware::from_fn_with_state(authorizer.clone(), crate::auth::require));
    }
    if let Some(monitor) = &state.health {
        router = router.layer(middleware::from_fn_with_state(monitor.clone(), crate::health::gate));
    }
    router.layer(middleware::from_fn(observe::trace_request)).with_state(state)
}

/// `GET /v2/`: returns an empty JSON object, by which clients detect a Distribution API v2 registry.
async fn base() -> Response {
    json_response(axum::http::StatusCode::OK, &serde_json::json!({}))
}

async fn get_only(method: Method) -> ApiError {
    ApiError::method_not_allowed(&method, &[Method::GET, Method::HEAD])
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::no_route(uri.path())
}

/// An endpoint under `/v2/<name>/`, with the path parts that follow the name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Blob { digest: String },
    UploadStart,
    Upload { id: String },
    Manifest { reference: String },
    TagsList,
    Referrers { digest: String },
}

impl Route {
    /// Splits the path after `/v2/` into the repository name and the endpoint. The split runs
    /// from the right, because names contain `/` while digests, tags and upload ids do not. So
    /// `a/blobs/uploads/blobs/<digest>` is a blob of the repository `a/blobs/uploads`.
    fn parse(path: &str) -> Option<(&str, Route)> {
        if let Some(name) = path.strip_suffix("/tags/list") {
            return Some((name, Route::TagsList));
        }
        if let Some(name) = path.strip_suffix("/blobs/uploads/").or_else(|| path.strip_suffix("/blobs/uploads")) {
            return Some((name, Route::UploadStart));
        }

        let (prefix, last) = path.rsplit_once('/')?;
        let (name, endpoint) = prefix.rsplit_once('/')?;
        let last = last.to_owned();
        let route = match endpoint {
            "blobs" => Route::Blob { digest: last },
            "manifests" => Route::Manifest { reference: last },
            "referrers" => Route::Referrers { digest: last },
            "uploads" => return Some((name.strip_suffix("/blobs")?, Route::Upload { id: last })),
            _ => return None,
        };
        Some((name, route))
    }

    /// Returns the route's name in logs and metrics, one of [`crate::metrics::route`].
    fn kind(&self) -> &'static str {
        match self {
            Route::Blob { .. } => route::BLOB,
            Route::UploadStart | Route::Upload { .. } => route::BLOB_UPLOAD,
            Route::Manifest { .. } => route::MANIFEST,
            Route::TagsList => route::TAGS,
            Route::Referrers { .. } => route::REFERRERS,
        }
    }

    fn methods(&self) -> &'static [Method] {
        match self {
            Route::Blob { .. } => &[Method::GET, Method::HEAD, Method::DELETE],
            Route::UploadStart => &[Method::POST],
            Route::Upload { .. } => &[Method::GET, Method::PATCH, Method::PUT, Method::DELETE],
            Route::Manifest { .. } => &[Method::GET, Method::HEAD, Method::PUT, Method::DELETE],
            Route::TagsList | Route::Referrers { .. } => &[Method::GET, Method::HEAD],
        }
    }
}

/// The response of Docker Distribution 2.8 to a write in read-only mode: in that mode it
/// registers only the read methods, so its method router returns a plain-text 405.
fn read_only_rejection() -> Response {
    use axum::http::header::{ALLOW, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};

    let headers = [
        (ALLOW, "GET, HEAD"),
        (CONTENT_TYPE, "text/plain; charset=utf-8"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (axum::http::StatusCode::METHOD_NOT_ALLOWED, headers, "Method not allowed\n").into_response()
}

/// Returns the repository name of a path after `/v2/`, split off the endpoint as [`dispatch`]
/// does, or `None` when the path matches no repository endpoint. The name is not validated.
pub(crate) fn repository_of(path: &str) -> Option<&str> {
    Route::parse(path).map(|(name, _)| name)
}

/// Routes every `/v2/<name>/...` request to its endpoint.
async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let rest = path.strip_prefix("/v2/").unwrap_or_default();
    let Some((name, route)) = Route::parse(rest) else {
        return ApiError::no_route(&path).into_response();
    };

    // hyper passes lengths up to about 2^64 to the handlers. Lengths no blob can have are
    // rejected here, before any endpoint reads the body.
    if let Err(error) = content_length(request.headers()) {
        return error.into_response();
    }
    let method = request.method().clone();
    if state.read_only && method != Method::GET && method != Method::HEAD {
        tracing::debug!(%method, "read-only mode rejects the request");
        return read_only_rejection();
    }
    if !route.methods().contains(&method) {
        return ApiError::method_not_allowed(&method, route.methods()).into_response();
    }
    let repository = match RepositoryName::parse(name) {
        Ok(repository) => repository,
        Err(error) => return ApiError::from(error).into_response(),
    };

    let result = match (route, method) {
        (Route::Blob { digest }, Method::DELETE) => blobs::delete(&state, &repository, &digest).await,
        (Route::Blob { digest }, method) => blobs::get(&state, &repository, &digest, &method, request.headers()).await,
        (Route::UploadStart, _) => uploads::start(&state, &repository, request).await,
        (Route::Upload { id }, Method::GET) => uploads::status(&state, &repository, &id).await,
        (Route::Upload { id }, Method::PATCH) => uploads::patch(&state, &repository, &id, request).await,
        (Route::Upload { id }, Method::PUT) => uploads::put(&state, &repository, &id, request).await,
        (Route::Upload { id }, _) => uploads::cancel(&state, &repository, &id).await,
        (Route::Manifest { reference }, Method::PUT) => manifests::put(&state, &repository, &reference, request).await,
        (Route::Manifest { reference }, Method::DELETE) => manifests::delete(&state, &repository, &reference).await,
        (Route::Manifest { reference }, _) => manifests::get(&state, &repository, &reference, request.headers()).await,
        (Route::TagsList, _) => tags::list(&state, &repository, request.uri()).await,
        (Route::Referrers { digest }, _) => referrers::list(&state, &repository, &digest, request.uri()).await,
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The query parameters of a request, in the order sent. A parameter sent twice counts once, with
/// its first value.
struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    fn from_uri(uri: &Uri) -> QueryParams {
        // Decoding into string pairs does not fail, because invalid percent-encoding and UTF-8
        // are replaced, not rejected.
        let pairs = Query::<Vec<(String, String)>>::try_from_uri(uri).map(|Query(pairs)| pairs);
        QueryParams(pairs.unwrap_or_default())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_str())
    }
}

/// Returns a header as text; a value that is not visible ASCII counts as invalid.
fn header_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, HeaderName> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value.to_str().map(Some).map_err(|_| name.clone()),
    }
}

/// Returns the request's `Content-Length`, if it sent one.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let invalid = |value: &str| {
        ApiError::from(ClientError::SizeInvalid(format!("Content-Length {value:?} is not a byte count")))
    };
    let Some(value) = header_text(headers, &axum::http::header::CONTENT_LENGTH)
        .map_err(|_| invalid("(not text)"))?
    else {
        return Ok(None);
    };
    let length: u64 = value.trim().parse().map_err(|_| invalid(value))?;
    if length > MAX_CONTENT_LENGTH {
        let message = format!("Content-Length {length} exceeds the largest blob size, {MAX_CONTENT_LENGTH} bytes");
        return Err(ClientError::SizeInvalid(message).into());
    }
    Ok(Some(length))
}

/// Turns a request body into the stream that storage reads, without buffering it.
fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

/// Builds a JSON response. Serializing a `serde_json::Value` fails only for non-string map
/// keys, which a `Value` cannot have.
fn json_response(status: axum::http::StatusCode, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Returns the URL path of a blob in `repository`.
fn blob_location(repository: &RepositoryName, digest: &crate::digest::Digest) -> String {
    format!("/v2/{repository}/blobs/{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &str) -> Option<(&str, Route)> {
        Route::parse(path)
    }

    #[test]
    fn route_parse_endpoints() {
        let digest = "sha256:abc".to_owned();
        assert_eq!(parse("a/b/blobs/sha256:abc"), Some(("a/b", Route::Blob { digest: digest.clone() })));
        assert_eq!(parse("a/blobs/uploads/"), Some(("a", Route::UploadStart)));
        assert_eq!(parse("a/blobs/uploads"), Some(("a", Route::UploadStart)));
        assert_eq!(parse("a/blobs/uploads/x1"), Some(("a", Route::Upload { id: "x1".into() })));
        assert_eq!(parse("a/manifests/v1"), Some(("a", Route::Manifest { reference: "v1".into() })));
        assert_eq!(parse("a/tags/list"), Some(("a", Route::TagsList)));
        assert_eq!(parse("a/referrers/sha256:abc"), Some(("a", Route::Referrers { digest })));
    }

    #[test]
    fn route_parse_splits_from_the_right() {
        let blob = Route::Blob { digest: "d".into() };
        assert_eq!(parse("a/blobs/uploads/blobs/d"), Some(("a/blobs/uploads", blob)));
        assert_eq!(parse("manifests/tags/list"), Some(("manifests", Route::TagsList)));
        assert_eq!(parse("x/manifests/manifests/v1"), Some(("x/manifests", Route::Manifest { reference: "v1".into() })));
        assert_eq!(parse("blobs/blobs/uploads/i"), Some(("blobs", Route::Upload { id: "i".into() })));
    }

    #[test]
    fn route_parse_rejects_unknown_paths() {
        for path in ["", "a", "a/b", "a/b/c", "a/uploads/x", "blobs/uploads/x", "a/tags/other"] {
            assert_eq!(parse(path), None, "{path:?}");
        }
    }
}
