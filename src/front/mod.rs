//! The registry's connection handling: on every accepted TCP connection, plain
//! HTTP/1.1 blob GETs are served with `sendfile`, and everything else by hyper and the router.
//!
//! hyper writes response bodies from user-space buffers, so zero-copy serving needs the raw
//! socket. The front reads each request head itself; while the requests are blob GETs it can
//! serve (see [`request`]) and the blob file opens, it writes the response head and lets the
//! kernel send the file. At the first other request, or any doubt, it hands the connection,
//! with the bytes it has read, to hyper, which then serves it to the end exactly as it would
//! have from the start. HTTP/2 and anything unusual therefore never reach the sendfile code.
//!
//! With `http.tls`, every connection starts with a TLS handshake, and the front reads request
//! heads from the decrypted [`stream::ClientStream`] as from a plain one. It hands every blob GET
//! on it to hyper, because `sendfile` cannot encrypt, so blob bodies over TLS are read by the
//! configured read strategy (mmap when it is sendfile).
//!
//! On shutdown the listener closes at once. Idle connections are closed, a connection with a
//! request in flight is closed after its response, and the front waits for them for at most
//! the drain timeout.

mod request;
mod rewind;
mod stream;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::Router;
use bytes::{Buf, BytesMut};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use self::request::{BlobGet, LengthError, Parsed, RejectedLength};
use self::rewind::Rewind;
use self::stream::ClientStream;
use crate::auth::{Access, Authorizer};
use crate::error::ClientError;
use crate::fastpath::send_file;
use crate::http::ApiError;
use crate::health::HealthMonitor;
use crate::logging::WarningLimit;
use crate::metrics::{self, FinishedRequest, ReadStrategy};
use crate::range::parse_range;
use crate::storage::containerd::ContainerdStorage;

/// Pause after a failed `accept`, which is usually a full file descriptor table.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// Minimum time between two warnings about failed `accept` calls; the ones in between are
/// counted and reported with the next warning.
const ACCEPT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Time a connection has to send a complete request head, counted from when the server starts
/// waiting for it, so an idle keep-alive connection is also closed after it. Without a limit,
/// clients that open connections and never finish a head would hold file descriptors until
/// none are left. hyper applies the same limit, its default, to the connections it serves.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Maximum time a client may take to complete its TLS handshake, which bounds how long a silent
/// connection keeps a task busy before its first request.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The front's settings besides the router.
#[derive(Clone, Default)]
pub struct FrontOptions {
    /// Storage whose blob files plain HTTP/1.1 blob GETs are sent from; `None` hands every
    /// connection to hyper.
    pub sendfile: Option<ContainerdStorage>,
    /// While its check fails, every request goes to the router, which returns 503.
    pub health: Option<Arc<HealthMonitor>>,
    /// `http.headers`, added to the responses the front writes itself. The server adds them to
    /// the router's responses with a middleware.
    pub headers: Arc<[(HeaderName, HeaderValue)]>,
    /// `http.tls`: every connection starts with a TLS handshake and no blob is sent with `sendfile`.
    pub tls: Option<TlsAcceptor>,
    /// `http.draintimeout`: maximum wait for connections with requests in flight after shutdown
    /// starts. Zero closes them at once.
    pub drain_timeout: Duration,
    /// With auth configured, each blob GET is served only if its `Authorization` header grants
    /// pull; the others go to the router, which returns the 401.
    pub auth: Option<Arc<Authorizer>>,
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits for
/// the requests in flight, for at most `options.drain_timeout`. With `options.sendfile`, plain
/// HTTP/1.1 blob GETs are sent by the kernel from the blob files that storage opens.
pub async fn serve(listener: TcpListener, router: Router, options: FrontOptions, shutdown: impl Future<Output = ()>) {
    let FrontOptions { sendfile, health, headers, tls, drain_timeout, auth } = options;
    let graceful = GracefulShutdown::new();
    let (stop_sender, stop) = watch::channel(false);
    let active = Arc::new(());
    let accept_warnings = WarningLimit::new(ACCEPT_WARNING_INTERVAL);
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // With the file descriptor table full, every retry fails until a
                    // connection closes.
                    if let Some(suppressed) = accept_warnings.check() {
                        tracing::warn!(%error, failures = suppressed + 1, "accepting a connection failed");
                    }
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);

        let connection = Connection {
            router: router.clone(),
            sendfile: sendfile.clone(),
            health: health.clone(),
            headers: headers.clone(),
            auth: auth.clone(),
            peer,
            stop: stop.clone(),
        };
        let watcher = graceful.watcher();
        let guard = active.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let stream = match tls {
                None => Some(ClientStream::Plain(stream)),
                Some(acceptor) => connection.accept_tls(&acceptor, stream).await,
            };
            if let Some(stream) = stream {
                connection.run(stream, watcher).await;
            }
            drop(guard);
        });
    }

    drop(listener);
    let open = Arc::strong_count(&active) - 1;
    tracing::info!(open_connections = open, drain_timeout_secs = drain_timeout.as_secs_f64(), "stopped accepting connections");
    let _ = stop_sender.send(true);
    let drained = async {
        graceful.shutdown().await;
        while Arc::strong_count(&active) > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(drain_timeout, drained).await.is_err() {
        let open = Arc::strong_count(&active) - 1;
        if open > 0 {
            tracing::warn!(open_connections = open, "drain timeout expired; closing connections with requests in flight");
        }
    }
}

struct Connection {
    router: Router,
    sendfile: Option<ContainerdStorage>,
    /// While its check fails, every request goes to the router, which returns 503.
    health: Option<Arc<HealthMonitor>>,
    headers: Arc<[(HeaderName, HeaderValue)]>,
    auth: Option<Arc<Authorizer>>,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
}

/// The outcome of one blob GET the front tried to serve.
enum Served {
    /// The response was sent; the connection can take the next request.
    Done,
    /// Nothing was written; hyper must serve this request.
    HandOver,
    /// The connection failed mid-response and must be closed.
    Broken,
}

impl Connection {
    async fn run(mut self, mut stream: ClientStream, watcher: Watcher) {
        let mut buffer = BytesMut::with_capacity(4096);
        let sendfile = self.sendfile.clone();
        loop {
            let get = match self.read_head(&mut stream, &mut buffer).await {
                Some(Parsed::Blob(get)) => get,
                Some(Parsed::BadLength(error)) => return self.reject_length(&mut stream, error).await,
                Some(Parsed::Other | Parsed::Incomplete) => break,
                None => return,
            };
            let (Some(storage), Some(socket)) = (&sendfile, stream.plain_socket()) else { break };
            match self.serve_blob(socket, storage, &get).await {
                Served::Done if get.close || *self.stop.borrow() => return,
                Served::Done => buffer.advance(get.head_len),
                Served::HandOver => break,
                Served::Broken => return,
            }
        }
        self.hand_over(stream, buffer, watcher).await;
    }

    /// Completes the TLS handshake. Returns `None`, after logging why, when it fails or times out.
    async fn accept_tls(&self, acceptor: &TlsAcceptor, stream: TcpStream) -> Option<ClientStream> {
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => Some(ClientStream::Tls(Box::new(stream))),
            Ok(Err(error)) => {
                tracing::debug!(peer = %self.peer, %error, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(peer = %self.peer, timeout_secs = TLS_HANDSHAKE_TIMEOUT.as_secs(), "TLS handshake timed out");
                None
            }
        }
    }

    /// Reads until `buffer` contains a complete head or something the front does not serve.
    /// Returns `None` when the client closed the connection, when no complete head arrived
    /// within [`HEAD_TIMEOUT`], or when the server is stopping before a complete head arrived.
    async fn read_head(&mut self, stream: &mut ClientStream, buffer: &mut BytesMut) -> Option<Parsed> {
        let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
        loop {
            match request::parse(buffer) {
                Parsed::Incomplete => {}
                parsed => return Some(parsed),
            }
            // A request whose head is not complete has not started: the drain does not wait
            // for it.
            if *self.stop.borrow() {
                return None;
            }
            let read = tokio::select! {
                read = stream.read_buf(buffer) => read,
                _ = self.stop.changed() => return None,
                () = tokio::time::sleep_until(deadline) => {
                    tracing::debug!(peer = %self.peer, buffered = buffer.len(), timeout_secs = HEAD_TIMEOUT.as_secs(), "no complete request head in time; closing the connection");
                    return None;
                }
            };
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn serve_blob(&self, stream: &mut TcpStream, storage: &ContainerdStorage, get: &BlobGet) -> Served {
        let started = Instant::now();
        if self.health.as_ref().is_some_and(|health| !health.is_healthy()) {
            return Served::HandOver;
        }
        if let Some(auth) = &self.auth {
            if !auth.allows(get.authorization.as_deref(), Access::pull(get.repository.as_str())).await {
                return Served::HandOver;
            }
        }
        let (file, size) = match storage.blob_file(&get.repository, &get.digest).await {
            Ok(Some(opened)) => opened,
            Ok(None) | Err(_) => return Served::HandOver,
        };
        let range = match get.range.as_deref().map(|header| parse_range(header, size)) {
            None => None,
            Some(Ok(range)) => range,
            Some(Err(_)) => return Served::HandOver,
        };

        let digest = &get.digest;
        let (status, code, offset, length) = match range {
            None => ("200 OK", 200, 0, size),
            Some(range) => ("206 Partial Content", 206, range.start, range.len()),
        };
        let mut head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/octet-stream\r\ndocker-content-digest: {digest}\r\n\
             accept-ranges: bytes\r\netag: \"{digest}\"\r\ncontent-length: {length}\r\n\
             docker-distribution-api-version: registry/2.0\r\nx-request-id: {}\r\ndate: {}\r\n",
            get.request_id,
            httpdate::fmt_http_date(std::time::SystemTime::now())
        );
        if let Some(range) = range {
            head.push_str(&format!("content-range: bytes {}-{}/{size}\r\n", range.start, range.end));
        }
        if get.close {
            head.push_str("connection: close\r\n");
        }
        self.end_head(&mut head);

        let sent = async {
            stream.write_all(head.as_bytes()).await?;
            send_file(stream, &file, offset, length).await
        };
        let outcome = sent.await;
        let complete = outcome.is_ok();
        if complete {
            metrics::global().add_served_bytes(ReadStrategy::Sendfile, length);
        }
        // NOTE: `send_file` does not report how far a failed transfer got, so an aborted
        // response counts no bytes, in the log and in the metrics.
        self.finish_blob(get, code, if complete { length } else { 0 }, started, complete);
        match outcome {
            Ok(()) => Served::Done,
            Err(error) => {
                tracing::debug!(
                    path = %get.path, peer = %self.peer, %error, request_id = %get.request_id,
                    "blob response aborted; closing the connection"
                );
                Served::Broken
            }
        }
    }

    /// Rejects a request whose `Content-Length` cannot be trusted with 400 `SIZE_INVALID`, and
    /// closes the connection, whose remaining bytes cannot be framed. hyper would send an empty
    /// 400 for such a request, so the front checks every head it reads: all the requests of a
    /// connection up to the first one it hands over, including that one.
    async fn reject_length(&self, stream: &mut ClientStream, rejected: RejectedLength) {
        let started = Instant::now();
        let RejectedLength { error: LengthError(reason), method, path, request_id } = rejected;
        let span = metrics::request_span(method.as_str(), &path, Some(self.peer), &request_id);
        let (route, repository) = crate::http::route_of(&path);
        span.record("route", route);
        if let Some(repository) = repository {
            span.record("repository", repository);
        }
        span.in_scope(|| tracing::debug!(%reason, "request rejected for its Content-Length"));

        let (head, body) = self.error_response(ApiError::from(ClientError::SizeInvalid(reason)), &request_id).await;
        let written = async {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.shutdown().await
        };
        let complete = match written.await {
            Ok(()) => true,
            Err(error) => {
                span.in_scope(|| tracing::debug!(%error, "writing the 400 response failed"));
                false
            }
        };

        let finished = FinishedRequest {
            route,
            method: metrics::method_label(&method),
            status: 400,
            bytes: body.len() as u64,
            duration: started.elapsed(),
            complete,
        };
        metrics::finish_request(&span, &finished);
    }

    /// Returns the head and body of an error response that closes the connection, with the
    /// headers every response of the registry carries.
    async fn error_response(&self, error: ApiError, request_id: &str) -> (String, bytes::Bytes) {
        let (parts, body) = error.into_response().into_parts();
        // The body of an error response is one JSON buffer, so collecting it cannot fail.
        let body = http_body_util::BodyExt::collect(body).await.map(|collected| collected.to_bytes()).unwrap_or_default();
        let mut head = format!("HTTP/1.1 {}\r\n", parts.status);
        for (name, value) in &parts.headers {
            head.push_str(&format!("{name}: {}\r\n", String::from_utf8_lossy(value.as_bytes())));
        }
        head.push_str(&format!(
            "content-length: {}\r\ndocker-distribution-api-version: registry/2.0\r\nx-request-id: {request_id}\r\n\
             connection: close\r\ndate: {}\r\n",
            body.len(),
            httpdate::fmt_http_date(std::time::SystemTime::now())
        ));
        self.end_head(&mut head);
        (head, body)
    }

    /// Appends the `http.headers` of the config and the blank line that ends a response head.
    fn end_head(&self, head: &mut String) {
        for (name, value) in self.headers.iter() {
            head.push_str(&format!("{name}: {}\r\n", String::from_utf8_lossy(value.as_bytes())));
        }
        head.push_str("\r\n");
    }

    /// Logs and counts a blob GET the front served, with the fields of the router's request log.
    fn finish_blob(&self, get: &BlobGet, status: u16, bytes: u64, started: Instant, complete: bool) {
        let span = metrics::request_span("GET", &get.path, Some(self.peer), &get.request_id);
        span.record("route", metrics::route::BLOB);
        span.record("repository", get.repository.as_str());
        let finished = FinishedRequest {
            route: metrics::route::BLOB,
            method: "GET",
            status,
            bytes,
            duration: started.elapsed(),
            complete,
        };
        metrics::finish_request(&span, &finished);
    }

    /// Serves the rest of the connection with hyper, replaying the bytes already read.
    async fn hand_over(self, stream: ClientStream, buffer: BytesMut, watcher: Watcher) {
        let peer = self.peer;
        let router = self.router;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move { Ok::<_, Infallible>(router.oneshot(request).await.unwrap_or_else(|never| match never {})) }
        });

        let io = TokioIo::new(Rewind::new(buffer.freeze(), stream));
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(HEAD_TIMEOUT);
        let connection = builder.serve_connection_with_upgrades(io, service).into_owned();
        if let Err(error) = watcher.watch(connection).await {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}
