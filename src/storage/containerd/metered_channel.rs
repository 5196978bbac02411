//! The gRPC channel to containerd wrapped so that every call, from every service client, is
//! timed and its gRPC status counted in one place.
//!
//! A call is timed from sending the request to the end of its response. That end is the
//! trailers with the gRPC status, or the headers of a trailers-only response. containerd
//! (grpc-go) replies to a failed unary call with the latter.
//!
//! A response body dropped before its end is timed until the drop and counts as no error,
//! because the registry ended it, not containerd. A `content.Read` stream is dropped once the
//! blob's last byte is read, before its trailers, and also when the HTTP client goes away.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use axum::http;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tonic::transport::Channel;
use tonic::Code;

use crate::metrics;

/// gRPC header and trailer with the call's status code.
const GRPC_STATUS: &str = "grpc-status";

/// A [`Channel`] that records the latency and the failures of each call in the metrics.
#[derive(Clone)]
pub struct MeteredChannel {
    inner: Channel,
}

impl MeteredChannel {
    pub fn new(inner: Channel) -> MeteredChannel {
        MeteredChannel { inner }
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for MeteredChannel {
    type Response = http::Response<MeteredBody>;
    type Error = tonic::transport::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let call = Call { rpc: rpc_name(request.uri().path()), started: Instant::now() };
        let response = self.inner.call(request);
        Box::pin(async move {
            match response.await {
                Ok(response) => {
                    // A trailers-only response carries the status in its headers and has no body.
                    let mut pending = Some(call);
                    if let Some(code) = status_code(response.headers()) {
                        if let Some(call) = pending.take() {
                            call.finish(Some(code));
                        }
                    }
                    Ok(response.map(|inner| MeteredBody { inner, pending }))
                }
                Err(error) => {
                    // The channel fails only on transport errors (the socket cannot be opened or
                    // the connection broke), which `Failure::new` reports as `Unavailable` too.
                    call.finish(Some(Code::Unavailable));
                    Err(error)
                }
            }
        })
    }
}

/// One containerd call whose end is not recorded yet.
struct Call {
    /// `service.Method`, such as `content.Info`.
    rpc: String,
    started: Instant,
}

impl Call {
    fn finish(self, code: Option<Code>) {
        let error = code.filter(|code| *code != Code::Ok).map(code_name);
        metrics::global().record_rpc(&self.rpc, self.started.elapsed(), error);
    }
}

/// A containerd response body that records its call when the trailers arrive, when it ends
/// without them, or when it is dropped.
pub struct MeteredBody {
    inner: tonic::body::Body,
    pending: Option<Call>,
}

impl HttpBody for MeteredBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => match frame.trailers_ref() {
                Some(trailers) => Some(status_code(trailers).unwrap_or(Code::Unknown)),
                None => return polled,
            },
            Poll::Ready(Some(Err(status))) => Some(status.code()),
            Poll::Ready(None) => Some(Code::Unknown),
            Poll::Pending => return polled,
        };
        if let Some(call) = self.pending.take() {
            call.finish(code);
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

impl Drop for MeteredBody {
    fn drop(&mut self) {
        if let Some(call) = self.pending.take() {
            call.finish(None);
        }
    }
}

/// Returns the gRPC status code in `headers`, if they carry one.
fn status_code(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers.get(GRPC_STATUS)?.to_str().ok()?;
    Some(Code::from_i32(value.trim().parse().ok()?))
}

/// Turns a gRPC path, `/containerd.services.content.v1.Content/Info`, into `content.Info`.
/// The paths are the fixed set of methods this client calls, so the label stays bounded.
fn rpc_name(path: &str) -> String {
    let Some((service, method)) = path.trim_start_matches('/').rsplit_once('/') else {
        return "unknown".to_owned();
    };
    let service = service.rsplit('.').next().unwrap_or(service).to_ascii_lowercase();
    format!("{service}.{method}")
}

/// Returns the name of a gRPC code as the gRPC specification spells it, such as `NotFound`.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_names_are_service_and_method() {
        assert_eq!(rpc_name("/containerd.services.content.v1.Content/Info"), "content.Info");
        assert_eq!(rpc_name("/containerd.services.leases.v1.Leases/AddResource"), "leases.AddResource");
        assert_eq!(rpc_name("/containerd.services.version.v1.Version/Version"), "version.Version");
        assert_eq!(rpc_name("garbage"), "unknown");
    }

    #[test]
    fn status_is_read_from_headers() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(status_code(&headers), None);
        headers.insert(GRPC_STATUS, http::HeaderValue::from_static("5"));
        assert_eq!(status_code(&headers), Some(Code::NotFound));
        assert_eq!(code_name(Code::NotFound), "NotFound");
    }
}
