//! The request id and the log line of one request, shared by the router and the sendfile front
//! so that both paths log the same fields and count into the same metrics.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::HeaderName;
use tracing::Span;

use super::global;

/// `X-Request-Id`: taken from the request when valid, generated otherwise, and returned on the
/// response.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Maximum length of an incoming request id the registry adopts. A UUID has 36 characters and
/// a W3C trace id 32, so common proxies' ids fit. A longer id is replaced, which bounds the
/// size of every log line and response header it is copied into.
const MAX_REQUEST_ID_BYTES: usize = 128;

/// Returns the incoming `X-Request-Id` when it is 1 to [`MAX_REQUEST_ID_BYTES`] characters of
/// ASCII letters, digits and `-`, `_`, `.`, `:`, `/`, `+`, `=`, and a new UUID v4 otherwise.
/// The character set keeps the id safe to copy into logs and headers unquoted.
pub fn request_id(incoming: Option<&[u8]>) -> String {
    match incoming {
        Some(id) if is_valid_request_id(id) => String::from_utf8_lossy(id).into_owned(),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

fn is_valid_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_BYTES).contains(&id.len())
        && id.iter().all(|byte| byte.is_ascii_alphanumeric() || b"-_.:/+=".contains(byte))
}

/// Opens the span of one request, in which every log line of the request is written. The
/// caller records `route` and `repository` once it has parsed them.
pub fn request_span(method: &str, path: &str, peer: Option<SocketAddr>, request_id: &str) -> Span {
    let span = tracing::info_span!(
        "request",
        method,
        path,
        route = tracing::field::Empty,
        repository = tracing::field::Empty,
        peer = tracing::field::Empty,
        request_id,
    );
    if let Some(peer) = peer {
        span.record("peer", tracing::field::display(peer));
    }
    span
}

/// The record of a request whose response has ended.
pub struct FinishedRequest {
    /// One of the names in [`super::route`].
    pub route: &'static str,
    /// See [`super::method_label`].
    pub method: &'static str,
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// From the request's arrival to the end of its response.
    pub duration: Duration,
    /// False when the connection or the body failed before the whole response was sent.
    pub complete: bool,
}

/// Counts a finished request in the metrics and logs it at info in `span`.
pub fn finish_request(span: &Span, finished: &FinishedRequest) {
    global().record_request(finished.route, finished.method, finished.status, finished.duration);

    let elapsed_ms = finished.duration.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if finished.complete {
            tracing::info!(status = finished.status, bytes = finished.bytes, elapsed_ms, "request finished");
        } else {
            tracing::info!(status = finished.status, bytes = finished.bytes, elapsed_ms, "response aborted before its end");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_incoming_id_is_kept() {
        for id in ["abc", "0f8fad5b-d9cb-469f-a165-70867728950e", "trace:1/2+3=4_5.6"] {
            assert_eq!(request_id(Some(id.as_bytes())), id);
        }
        let longest = "a".repeat(MAX_REQUEST_ID_BYTES);
        assert_eq!(request_id(Some(longest.as_bytes())), longest);
    }

    #[test]
    fn invalid_incoming_id_is_replaced() {
        let too_long = "a".repeat(MAX_REQUEST_ID_BYTES + 1);
        for id in ["", "has space", "new\nline", "quote\"", "caf\u{e9}", too_long.as_str()] {
            let generated = request_id(Some(id.as_bytes()));
            assert_ne!(generated, id);
            assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated:?} is not a UUID");
        }
    }

    #[test]
    fn missing_id_is_generated_fresh() {
        let first = request_id(None);
        let second = request_id(None);
        assert_ne!(first, second);
        assert_eq!(uuid::Uuid::parse_str(&first).unwrap().get_version_num(), 4);
    }
}
