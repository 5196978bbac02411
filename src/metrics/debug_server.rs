//! The debug listener of `http.debug.addr`: `/debug/health` and, when enabled, the Prometheus
//! metrics. It is separate from the main port and requires no credentials, so it belongs on a
//! private interface.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use super::global;
use crate::config::{DebugConfig, DEBUG_HEALTH_PATH};
use crate::health::HealthMonitor;

/// Binds `config.addr` and serves the debug endpoints on it in a task of their own, until the
/// process exits. `health` is the storage health check, `None` when it is off.
pub async fn start(config: &DebugConfig, health: Option<Arc<HealthMonitor>>) -> Result<(), String> {
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|error| format!("cannot listen on http.debug.addr {}: {error}", config.addr))?;
    let local = listener.local_addr().map_err(|error| error.to_string())?;

    // The metrics path is compared as text in the fallback, because axum's route syntax would
    // read `{` or `*` in a configured path as a parameter.
    let metrics_path: Arc<str> = config.prometheus_path.as_deref().unwrap_or_default().into();
    let app = Router::new()
        .route(DEBUG_HEALTH_PATH, get(health_report))
        .with_state(health)
        .fallback(move |method: Method, uri: Uri| metrics_or_not_found(method, uri, metrics_path.clone()));
    tracing::info!(
        addr = %local,
        metrics_path = config.prometheus_path.as_deref().unwrap_or("(disabled)"),
        "debug server started"
    );

    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, addr = %local, "debug server stopped");
        }
    });
    Ok(())
}

/// `GET /debug/health`: 200 while the storage health check passes or is off, 503 with the
/// check's last error while it fails, and 503 `draining` once shutdown has begun.
async fn health_report(State(health): State<Option<Arc<HealthMonitor>>>) -> Response {
    let (status, body) = match &health {
        _ if crate::health::is_draining() => {
            (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({ "status": "draining" }))
        }
        None => (StatusCode::OK, serde_json::json!({ "status": "ok", "storagedriver": "off" })),
        Some(monitor) if monitor.is_healthy() => (StatusCode::OK, serde_json::json!({ "status": "ok", "storagedriver": "ok" })),
        Some(monitor) => {
            let error = monitor.failure().unwrap_or_else(|| "containerd does not respond".to_owned());
            let body = serde_json::json!({ "status": "unavailable", "storagedriver": "failing", "error": error });
            (StatusCode::SERVICE_UNAVAILABLE, body)
        }
    };
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Serves the metrics on `GET` of `metrics_path`, which is empty while metrics are disabled, and
/// 404 on any other request.
async fn metrics_or_not_found(method: Method, uri: Uri, metrics_path: Arc<str>) -> Response {
    if metrics_path.is_empty() || uri.path() != &*metrics_path {
        return StatusCode::NOT_FOUND.into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    metrics_text()
}

/// Returns every metric in the Prometheus text format.
fn metrics_text() -> Response {
    let mut response = global().encode().into_response();
    let content_type = HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE);
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}
