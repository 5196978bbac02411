//! The observation of every request on the router: its span, its request id, its log line and
//! its metrics, recorded when the last byte of the response body has been handed on.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tracing::{Instrument, Span};

use super::{Route, API_VERSION};
use crate::metrics::{self, finish_request, request_id, request_span, route, FinishedRequest, UploadInProgress, X_REQUEST_ID};

/// Opens the span of one request, adds the request id and the API version header to the
/// response, and logs and counts the request once its body has been sent or dropped.
pub(super) async fn trace_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| *peer);
    let id = request_id(request.headers().get(X_REQUEST_ID).map(HeaderValue::as_bytes));
    let method = request.method().clone();
    let path = request.uri().path();

    let span = request_span(method.as_str(), path, peer, &id);
    let (route, repository) = route_of(path);
    span.record("route", route);
    if let Some(repository) = repository {
        span.record("repository", repository);
    }
    let upload = (route == route::BLOB_UPLOAD && method != Method::GET).then(|| metrics::global().upload_in_progress());

    let mut response = next.run(request).instrument(span.clone()).await;
    let headers = response.headers_mut();
    headers.insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(X_REQUEST_ID, value);
    }

    let expected_bytes = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse().ok());
    let pending = Pending {
        span,
        route,
        method: metrics::method_label(&method),
        status: response.status().as_u16(),
        started,
        _upload: upload,
    };
    response.map(|inner| {
        Body::new(ObservedBody { inner, bytes: 0, expected_bytes, complete: false, pending: Some(pending) })
    })
}

/// Returns the route name of a request path and the repository it names, if any.
pub fn route_of(path: &str) -> (&'static str, Option<&str>) {
    match path {
        "/v2" | "/v2/" => return (route::BASE, None),
        "/v2/_catalog" => return (route::CATALOG, None),
        _ => {}
    }
    match path.strip_prefix("/v2/").and_then(Route::parse) {
        Some((name, endpoint)) => (endpoint.kind(), Some(name)),
        None => (route::OTHER, None),
    }
}

/// The part of a request's record that waits for the end of its response body.
struct Pending {
    span: Span,
    route: &'static str,
    method: &'static str,
    status: u16,
    started: Instant,
    _upload: Option<UploadInProgress>,
}

/// A response body that counts its bytes and records the request when it ends or is dropped.
struct ObservedBody {
    inner: Body,
    bytes: u64,
    /// The response's `Content-Length`.
    expected_bytes: Option<u64>,
    /// Set once the inner body has returned its last frame.
    complete: bool,
    pending: Option<Pending>,
}

impl ObservedBody {
    fn finish(&mut self) {
        let Some(pending) = self.pending.take() else { return };
        let finished = FinishedRequest {
            route: pending.route,
            method: pending.method,
            status: pending.status,
            bytes: self.bytes,
            duration: pending.started.elapsed(),
            complete: self.complete,
        };
        finish_request(&pending.span, &finished);
    }
}

impl HttpBody for ObservedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => {
                self.complete = true;
                self.finish();
            }
            Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        // hyper drops a body without polling it to its end when the body reports its end
        // (a HEAD response's or an empty one) or has sent all of its `Content-Length`. Such a
        // response was sent in full.
        if self.inner.is_end_stream() || self.expected_bytes == Some(self.bytes) {
            self.complete = true;
        }
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_have_fixed_names() {
        let digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let cases = [
            ("/v2/".to_owned(), route::BASE, None),
            ("/v2".to_owned(), route::BASE, None),
            ("/v2/_catalog".to_owned(), route::CATALOG, None),
            (format!("/v2/a/b/blobs/{digest}"), route::BLOB, Some("a/b")),
            ("/v2/a/blobs/uploads/".to_owned(), route::BLOB_UPLOAD, Some("a")),
            ("/v2/a/blobs/uploads/some-id".to_owned(), route::BLOB_UPLOAD, Some("a")),
            ("/v2/a/manifests/latest".to_owned(), route::MANIFEST, Some("a")),
            ("/v2/a/tags/list".to_owned(), route::TAGS, Some("a")),
            (format!("/v2/a/referrers/{digest}"), route::REFERRERS, Some("a")),
            ("/v2/a/unknown".to_owned(), route::OTHER, None),
            ("/metrics".to_owned(), route::OTHER, None),
        ];
        for (path, expected_route, expected_repository) in cases {
            assert_eq!(route_of(&path), (expected_route, expected_repository), "{path}");
        }
    }
}
