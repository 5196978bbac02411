//! `health.storagedriver`: a periodic check of containerd. After `threshold` failures in a row,
//! the main port returns 503 `UNAVAILABLE` until a check succeeds again, as Docker Distribution
//! does.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ErrorCode;
use crate::http::ApiError;
use crate::storage::{Health, Storage};

/// The state of the storage health check, shared by the checker and the request paths.
pub struct HealthMonitor {
    threshold: u32,
    consecutive_failures: AtomicU32,
    last_error: Mutex<Option<String>>,
}

impl HealthMonitor {
    pub fn new(threshold: u32) -> HealthMonitor {
        HealthMonitor { threshold, consecutive_failures: AtomicU32::new(0), last_error: Mutex::new(None) }
    }

    /// Reports whether fewer than `threshold` checks in a row have failed.
    pub fn is_healthy(&self) -> bool {
        self.consecutive_failures.load(Ordering::Relaxed) < self.threshold
    }

    /// Returns the error of the last failed check while the registry is unhealthy.
    pub fn failure(&self) -> Option<String> {
        if self.is_healthy() {
            return None;
        }
        self.last_error.lock().ok()?.clone()
    }

    /// Records the result of one check, logging when the registry turns unhealthy or recovers.
    pub fn record(&self, health: Health) {
        match health {
            Health::Ok => {
                let before = self.consecutive_failures.swap(0, Ordering::Relaxed);
                if before >= self.threshold {
                    tracing::info!("storage health check passes again; serving requests");
                }
            }
            Health::Unavailable(error) => {
                let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures == self.threshold {
                    tracing::error!(%error, failures, "storage health check failed; returning 503 until it passes");
                } else {
                    tracing::warn!(%error, failures, threshold = self.threshold, "storage health check failed");
                }
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(error);
                }
            }
        }
    }
}

/// Checks `storage` every `interval` and records the results in `monitor`, forever.
pub async fn check_periodically(monitor: Arc<HealthMonitor>, storage: Arc<dyn Storage>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        monitor.record(storage.health().await);
    }
}

/// Rejects every request with 503 `UNAVAILABLE` while the health check fails.
pub async fn gate(State(monitor): State<Arc<HealthMonitor>>, request: Request, next: Next) -> Response {
    if monitor.is_healthy() {
        return next.run(request).await;
    }
    // The failure's text can name sockets and paths of the host, so it goes to the log and the
    // debug listener's /debug/health, not to clients.
    let message = "the registry's storage health check fails; the registry is unavailable until it passes";
    let mut response = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, message).into_response();
    response.headers_mut().insert("docker-distribution-api-version", HeaderValue::from_static("registry/2.0"));
    response
}

/// Set once the server has received SIGTERM or SIGINT and drains: `/debug/health` then reports
/// 503, so that load balancers and readiness probes stop sending clients to this instance.
static DRAINING: AtomicBool = AtomicBool::new(false);

/// Marks the process as draining; there is no way back.
pub fn start_draining() {
    DRAINING.store(true, Ordering::Relaxed);
}

pub fn is_draining() -> bool {
    DRAINING.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhealthy_after_threshold_failures_until_success() {
        let monitor = HealthMonitor::new(2);
        assert!(monitor.is_healthy());

        monitor.record(Health::Unavailable("down".into()));
        assert!(monitor.is_healthy());
        monitor.record(Health::Unavailable("still down".into()));
        assert!(!monitor.is_healthy());
        assert_eq!(monitor.failure().as_deref(), Some("still down"));

        monitor.record(Health::Ok);
        assert!(monitor.is_healthy());
        assert_eq!(monitor.failure(), None);
    }
}
