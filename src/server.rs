//! Start-up: open the TLS and auth files, connect to containerd, find the content directory,
//! bind and serve the HTTP API.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::front::FrontOptions;

use crate::auth::Authorizer;
use crate::config::{AuthConfig, Config, ContainerdConfig, Driver, FastPathMode, UploadPurging};
use crate::contentdir::{self, ContentDir};
use crate::health::{self, HealthMonitor};
use crate::http::location::{absolute_locations, LocationBase};
use crate::http::{router, AppState};
use crate::socket::check_socket;
use crate::storage::containerd::ContainerdStorage;
use crate::storage::Storage;

/// containerd connected and checked, with the content directory it uses.
pub(crate) struct Backend {
    pub(crate) storage: ContainerdStorage,
    pub(crate) version: String,
    pub(crate) content_dir: ContentDir,
}

/// The TLS acceptor and the authorizer of the registry port, `None` where the config turns them
/// off.
pub(crate) struct PortSecurity {
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) auth: Option<Arc<Authorizer>>,
}

/// Reads the `http.tls` files and the `auth` files, as both `serve` and `check` do before they
/// contact containerd. Each error names the config key and the file.
pub(crate) fn open_port_security(config: &Config) -> Result<PortSecurity, String> {
    let tls = config.http.tls.as_ref().map(crate::tls::acceptor).transpose()?;
    let auth = match &config.auth {
        Some(auth_config) => Some(Arc::new(Authorizer::open(auth_config)?)),
        None => None,
    };
    if auth.is_some() {
        tracing::info!(controller = auth_kind(config), "authentication required for every request");
    }
    Ok(PortSecurity { tls, auth })
}

pub(crate) async fn connect(config: &Config) -> Result<Backend, String> {
    let Driver::Containerd(containerd) = &config.storage.driver;
    check_socket(&containerd.address)?;

    let storage = ContainerdStorage::connect(containerd, &config.storage.upload_purging)
        .map_err(|error| connect_error(containerd, &error.to_string()))?;
    let version = storage.version().await.map_err(|error| connect_error(containerd, &error.to_string()))?;

    let introspected = match storage.content_dir().await {
        Ok(root) => root,
        Err(error) => {
            tracing::warn!(%error, "containerd did not report its content directory");
            None
        }
    };
    let content_dir = contentdir::discover(containerd.content_dir.as_deref(), introspected);
    Ok(Backend { storage, version, content_dir })
}

fn connect_error(containerd: &ContainerdConfig, message: &str) -> String {
    format!(
        "containerd at {} does not answer: {message}; check that containerd is running and that \
         storage.containerd.address names its socket",
        containerd.address.display()
    )
}

/// Runs the registry until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> Result<(), String> {
    let Driver::Containerd(containerd) = &config.storage.driver;
    for (key, reason) in &config.ignored_keys {
        tracing::warn!(key = %key, reason, "config key has no effect in this registry");
    }
    // TLS and auth files are read before containerd is contacted, so a bad certificate,
    // htpasswd file or token bundle fails start-up at once.
    let PortSecurity { tls, auth } = open_port_security(&config)?;
    let backend = connect(&config).await?;
    tracing::info!(
        version = %backend.version,
        address = %containerd.address.display(),
        namespace = %containerd.namespace,
        root = %containerd.root,
        "connected to containerd"
    );
    match &backend.content_dir.readable {
        Ok(()) => tracing::info!(
            path = %backend.content_dir.path.display(),
            source = %backend.content_dir.source,
            "content directory is readable"
        ),
        Err(reason) => tracing::warn!(
            path = %backend.content_dir.path.display(),
            source = %backend.content_dir.source,
            %reason,
            "content directory is not readable; blobs are served through containerd's gRPC API"
        ),
    }

    let sendfile = match (&backend.content_dir.readable, containerd.fast_path) {
        (Ok(()), FastPathMode::Off) | (Err(_), _) => {
            tracing::info!(strategy = "off", "blob GETs read through containerd's gRPC API");
            None
        }
        (Ok(()), mode) => {
            backend.storage.enable_fast_path(backend.content_dir.path.clone(), mode);
            tracing::info!(strategy = mode.as_str(), "blob GETs read from the content directory");
            (mode == FastPathMode::Sendfile).then(|| backend.storage.clone())
        }
    };
    let sendfile_replaced_by_tls = sendfile.is_some() && tls.is_some();
    let sendfile = if tls.is_some() { None } else { sendfile };

    if config.storage.upload_purging.enabled {
        tokio::spawn(purge_uploads_periodically(backend.storage.clone(), config.storage.upload_purging.clone()));
    }

    let storage: Arc<dyn Storage> = Arc::new(backend.storage.clone());
    let health = config.storage_health.as_ref().map(|check| {
        let monitor = Arc::new(HealthMonitor::new(check.threshold));
        tokio::spawn(health::check_periodically(monitor.clone(), storage.clone(), check.interval));
        tracing::info!(interval_secs = check.interval.as_secs_f64(), threshold = check.threshold, "storage health check on");
        monitor
    });
    let state = AppState {
        storage,
        delete_enabled: config.storage.delete_enabled,
        read_only: config.storage.read_only,
        health: health.clone(),
        auth: auth.clone(),
    };
    let listener = TcpListener::bind(config.http.addr)
        .await
        .map_err(|error| format!("cannot listen on http.addr {}: {error}", config.http.addr))?;
    let local = listener.local_addr().map_err(|error| error.to_string())?;
    tracing::info!(
        addr = %local,
        tls = tls.is_some(),
        delete_enabled = state.delete_enabled,
        read_only = state.read_only,
        "listening"
    );
    if sendfile_replaced_by_tls {
        tracing::info!(strategy = "mmap", "sendfile cannot encrypt, so blob GETs over TLS are read with mmap");
    }
    if let Some(debug) = &config.http.debug {
        crate::metrics::debug_server::start(debug, health.clone()).await?;
    }

    let mut app = router(state.clone());
    let headers: Arc<[(HeaderName, HeaderValue)]> = config.http.headers.clone().into();
    if !headers.is_empty() {
        app = app.layer(axum::middleware::from_fn_with_state(headers.clone(), add_response_headers));
    }
    if let Some(base) = location_base(&config, tls.is_some()) {
        app = app.layer(axum::middleware::from_fn_with_state(Arc::new(base), absolute_locations));
    }
    let drain_timeout = config.http.drain_timeout;
    let options = FrontOptions { sendfile, health, headers, tls, drain_timeout, auth };
    crate::front::serve(listener, app, options, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// Returns where absolute `Location` URLs take their scheme and host from, or `None` with
/// `http.relativeurls`.
pub(crate) fn location_base(config: &Config, tls: bool) -> Option<LocationBase> {
    if config.http.relative_urls {
        return None;
    }
    Some(match &config.http.host {
        Some(host) => LocationBase::Fixed(host.clone()),
        None => LocationBase::FromRequest { scheme: if tls { "https" } else { "http" } },
    })
}

fn auth_kind(config: &Config) -> &'static str {
    match config.auth {
        Some(AuthConfig::Htpasswd { .. }) => "htpasswd",
        Some(AuthConfig::Token(_)) => "token",
        None => "none",
    }
}

/// Purges abandoned uploads every `purging.interval`, starting one interval after start-up.
async fn purge_uploads_periodically(storage: ContainerdStorage, purging: UploadPurging) {
    let start = tokio::time::Instant::now() + purging.interval;
    let mut ticks = tokio::time::interval_at(start, purging.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match storage.purge_uploads(purging.age, purging.dry_run).await {
            Ok(report) => tracing::debug!(
                purged = report.purged,
                kept_by_dry_run = report.kept_by_dry_run,
                "upload purge finished"
            ),
            Err(error) => tracing::warn!(%error, "upload purge failed; retrying after the next interval"),
        }
    }
}

/// Adds `http.headers` to a response, replacing headers of the same name as Docker Distribution
/// does.
async fn add_response_headers(
    State(headers): State<Arc<[(HeaderName, HeaderValue)]>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let mut replaced = Vec::new();
    for (name, value) in headers.iter() {
        if !replaced.contains(name) {
            response.headers_mut().remove(name);
            replaced.push(name.clone());
        }
        response.headers_mut().append(name.clone(), value.clone());
    }
    response
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};

    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
    }
    health::start_draining();

    // A second signal during the drain means the operator does not want to wait for it.
    tokio::spawn(async move {
        let signal = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        };
        tracing::warn!(signal, "second signal during the drain; exiting without waiting for requests in flight");
        std::process::exit(1);
    });
}
