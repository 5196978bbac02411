//! Prometheus metrics of the registry, and the per-request log line and request id.
//!
//! The metrics live in one process-wide registry ([`global`]), so that the HTTP router, the
//! sendfile front and the containerd client record into it without being handed a handle. The
//! debug listener ([`debug_server`]) encodes it on `/metrics`. Every label has a small fixed set
//! of values (route names, methods, statuses, read strategies, containerd RPC names), never a
//! raw path or a repository, so the number of series stays bounded.

pub mod debug_server;
mod request;

use std::sync::LazyLock;
use std::time::Duration;

use axum::http::Method;
use futures::TryStreamExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

pub use self::request::{finish_request, request_id, request_span, FinishedRequest, X_REQUEST_ID};
use crate::storage::ByteStream;

/// Upper bounds, in seconds, of the HTTP request latency buckets: from cached manifest GETs
/// (under a millisecond) to multi-gigabyte blob transfers (minutes).
const REQUEST_SECONDS_BUCKETS: [f64; 17] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Upper bounds, in seconds, of the containerd RPC latency buckets. A `content.Read` or
/// `content.Write` stream lasts as long as its blob transfer, hence the long tail.
const RPC_SECONDS_BUCKETS: [f64; 15] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0, 300.0];

/// Route names of the `route` label and the `route` log field.
pub mod route {
    /// `/v2/`.
    pub const BASE: &str = "base";
    /// `/v2/_catalog`.
    pub const CATALOG: &str = "catalog";
    /// `/v2/<name>/blobs/<digest>`.
    pub const BLOB: &str = "blob";
    /// `/v2/<name>/blobs/uploads/` and `/v2/<name>/blobs/uploads/<id>`.
    pub const BLOB_UPLOAD: &str = "blob_upload";
    /// `/v2/<name>/manifests/<reference>`.
    pub const MANIFEST: &str = "manifest";
    /// `/v2/<name>/tags/list`.
    pub const TAGS: &str = "tags";
    /// `/v2/<name>/referrers/<digest>`.
    pub const REFERRERS: &str = "referrers";
    /// Any path that matches no endpoint.
    pub const OTHER: &str = "other";
}

/// The read strategy of a blob GET response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStrategy {
    /// Sent by the kernel from the blob file to the socket, by the front.
    Sendfile,
    /// Slices of the mapped blob file.
    Mmap,
    /// Read from the blob file through an io_uring.
    IoUring,
    /// Read through containerd's gRPC `content.Read`.
    Grpc,
}

impl ReadStrategy {
    const ALL: [ReadStrategy; 4] = [ReadStrategy::Sendfile, ReadStrategy::Mmap, ReadStrategy::IoUring, ReadStrategy::Grpc];

    pub fn as_str(self) -> &'static str {
        match self {
            ReadStrategy::Sendfile => "sendfile",
            ReadStrategy::Mmap => "mmap",
            ReadStrategy::IoUring => "iouring",
            ReadStrategy::Grpc => "grpc",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    route: &'static str,
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StrategyLabels {
    strategy: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcErrorLabels {
    rpc: String,
    code: &'static str,
}

type HistogramFamily<Labels> = Family<Labels, Histogram, fn() -> Histogram>;

/// The registry's metrics and the Prometheus registry that encodes them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<LatencyLabels>,
    /// One counter per [`ReadStrategy`], in the order of [`ReadStrategy::ALL`], created up front
    /// so that counting a chunk is one atomic add.
    served_bytes: [Counter; 4],
    fast_path_fallbacks: Counter,
    rpc_seconds: HistogramFamily<RpcLabels>,
    rpc_errors: Family<RpcErrorLabels, Counter>,
    uploads_in_progress: Gauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Returns the process-wide metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("registry");

        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route, method and status", requests.clone());

        let request_seconds: HistogramFamily<LatencyLabels> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_SECONDS_BUCKETS));
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to the last byte of its response, by route and method",
            Unit::Seconds,
            request_seconds.clone(),
        );

        let served = Family::<StrategyLabels, Counter>::default();
        let served_bytes = ReadStrategy::ALL.map(|strategy| served.get_or_create_owned(&StrategyLabels { strategy: strategy.as_str() }));
        registry.register_with_unit(
            "blob_served",
            "Blob bytes of GET responses, by read strategy: sendfile, mmap, iouring or grpc",
            Unit::Bytes,
            served,
        );

        let fast_path_fallbacks = Counter::default();
        registry.register(
            "fast_path_fallbacks",
            "Blob reads that could not use the content directory file and fell back to another strategy",
            fast_path_fallbacks.clone(),
        );

        let rpc_seconds: HistogramFamily<RpcLabels> = Family::new_with_constructor(|| Histogram::new(RPC_SECONDS_BUCKETS));
        registry.register_with_unit(
            "containerd_rpc_duration",
            "Time from sending a containerd gRPC request to the end of its response, by RPC",
            Unit::Seconds,
            rpc_seconds.clone(),
        );

        let rpc_errors = Family::<RpcErrorLabels, Counter>::default();
        registry.register(
            "containerd_rpc_errors",
            "containerd gRPC calls that ended with a status other than OK, by RPC and gRPC code",
            rpc_errors.clone(),
        );

        let uploads_in_progress = Gauge::default();
        registry.register(
            "blob_uploads_in_progress",
            "Blob upload requests (POST, PATCH, PUT and DELETE of upload sessions) being served",
            uploads_in_progress.clone(),
        );

        Metrics {
            registry,
            requests,
            request_seconds,
            served_bytes,
            fast_path_fallbacks,
            rpc_seconds,
            rpc_errors,
            uploads_in_progress,
        }
    }

    /// Encodes every metric in the Prometheus text format, version 0.0.4.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // The encoder fails only when its writer does, and writing into a String does not fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }

    fn record_request(&self, route: &'static str, method: &'static str, status: u16, duration: Duration) {
        self.requests.get_or_create(&RequestLabels { route, method, status }).inc();
        self.request_seconds.get_or_create(&LatencyLabels { route, method }).observe(duration.as_secs_f64());
    }

    /// Counts `bytes` of blob content sent with `strategy`.
    pub fn add_served_bytes(&self, strategy: ReadStrategy, bytes: u64) {
        self.served_bytes[strategy as usize].inc_by(bytes);
    }

    /// Counts one blob read that fell back from its file to another strategy.
    pub fn add_fast_path_fallback(&self) {
        self.fast_path_fallbacks.inc();
    }

    /// Records one finished containerd RPC; `code` is the gRPC code's name, `None` for OK.
    pub fn record_rpc(&self, rpc: &str, duration: Duration, code: Option<&'static str>) {
        let rpc = rpc.to_owned();
        if let Some(code) = code {
            self.rpc_errors.get_or_create(&RpcErrorLabels { rpc: rpc.clone(), code }).inc();
        }
        self.rpc_seconds.get_or_create(&RpcLabels { rpc }).observe(duration.as_secs_f64());
    }

    /// Counts an upload request as in progress until the returned guard is dropped.
    pub fn upload_in_progress(&self) -> UploadInProgress {
        self.uploads_in_progress.inc();
        UploadInProgress { gauge: self.uploads_in_progress.clone() }
    }
}

/// An upload request counted in `registry_blob_uploads_in_progress` while it lives.
pub struct UploadInProgress {
    gauge: Gauge,
}

impl Drop for UploadInProgress {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Counts the bytes of `stream` in the served bytes of `strategy` as they are handed on.
pub fn count_served(stream: ByteStream, strategy: ReadStrategy) -> ByteStream {
    let counter = global().served_bytes[strategy as usize].clone();
    Box::pin(stream.inspect_ok(move |chunk| {
        counter.inc_by(chunk.len() as u64);
    }))
}

/// Returns the `method` label of an HTTP method: its name for the methods of the
/// Distribution API, `other` for anything else.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_text_names_every_metric() {
        let metrics = Metrics::new();
        metrics.record_request(route::BLOB, "GET", 200, Duration::from_millis(3));
        metrics.add_served_bytes(ReadStrategy::Mmap, 42);
        metrics.record_rpc("content.Info", Duration::from_millis(1), Some("NotFound"));
        let text = metrics.encode();

        for line in [
            r#"registry_http_requests_total{route="blob",method="GET",status="200"} 1"#,
            r#"registry_http_request_duration_seconds_count{route="blob",method="GET"} 1"#,
            r#"registry_blob_served_bytes_total{strategy="mmap"} 42"#,
            r#"registry_blob_served_bytes_total{strategy="sendfile"} 0"#,
            "registry_fast_path_fallbacks_total 0",
            r#"registry_containerd_rpc_duration_seconds_count{rpc="content.Info"} 1"#,
            r#"registry_containerd_rpc_errors_total{rpc="content.Info",code="NotFound"} 1"#,
            "registry_blob_uploads_in_progress 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn upload_guard_decrements_on_drop() {
        let metrics = Metrics::new();
        let guard = metrics.upload_in_progress();
        assert_eq!(metrics.uploads_in_progress.get(), 1);
        drop(guard);
        assert_eq!(metrics.uploads_in_progress.get(), 0);
    }
}
