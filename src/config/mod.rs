//! The registry's configuration: Docker Distribution's `config.yml`, with `REGISTRY_*`
//! environment overrides, restricted to what this registry implements.

mod duration;
mod load;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use duration::parse_go_duration;
pub use load::{load, load_str, ConfigError};

/// Default containerd socket.
pub const DEFAULT_ADDRESS: &str = "/run/containerd/containerd.sock";
/// Default containerd namespace.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Default root that separates registries sharing a namespace.
pub const DEFAULT_ROOT: &str = "/registry";
/// Content directory of a containerd installed with its default root.
pub const DEFAULT_CONTENT_DIR: &str = "/var/lib/containerd/io.containerd.content.v1.content";
/// Default listen address, as Docker Distribution's.
pub const DEFAULT_HTTP_ADDR: &str = ":5000";
/// Default URL path of the Prometheus metrics on the debug listener, as Docker Distribution's.
pub const DEFAULT_PROMETHEUS_PATH: &str = "/metrics";
/// URL path of the health report on the debug listener, as Docker Distribution's.
pub const DEBUG_HEALTH_PATH: &str = "/debug/health";

/// The complete, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub log: LogConfig,
    pub http: HttpConfig,
    pub storage: StorageConfig,
    /// `health.storagedriver`: `None` when the check is off.
    pub storage_health: Option<StorageHealthCheck>,
    /// `auth`: `None` lets every client pull, push and delete anonymously.
    pub auth: Option<AuthConfig>,
    /// Docker Distribution keys that are accepted for compatibility but have no effect here,
    /// with the reason; start-up logs a warning for each.
    pub ignored_keys: Vec<(String, &'static str)>,
}

/// The `auth` section: exactly one access controller, as in Docker Distribution.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthConfig {
    /// `auth.htpasswd`: HTTP Basic authentication against an Apache htpasswd file of bcrypt
    /// hashes. Every authenticated user may do everything.
    Htpasswd { realm: String, path: PathBuf },
    /// `auth.token`: bearer tokens issued by a Docker token server, whose `access` claim lists
    /// what the holder may do.
    Token(TokenAuthConfig),
}

/// `auth.token`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenAuthConfig {
    /// URL of the token server, sent to clients in the challenge.
    pub realm: String,
    /// Name of this registry; tokens must list it in `aud`.
    pub service: String,
    /// Tokens must name it in `iss`.
    pub issuer: String,
    /// PEM file of the certificates that sign tokens, or that root their `x5c` chains.
    pub root_cert_bundle: Option<PathBuf>,
    /// JSON Web Key Set file of further token signing keys, looked up by `kid`.
    pub jwks: Option<PathBuf>,
    /// `signingalgorithms`: the JWS algorithms accepted; empty accepts every supported one.
    pub signing_algorithms: Vec<String>,
}

/// `health.storagedriver`: containerd is checked every `interval`, and after `threshold`
/// failures in a row the main port returns 503 until a check succeeds.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageHealthCheck {
    pub interval: Duration,
    pub threshold: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    pub formatter: LogFormatter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormatter {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    /// `http.secret` is accepted for compatibility; this registry signs nothing with it.
    pub secret: Option<String>,
    /// `http.headers`: headers added to every response, in config order.
    pub headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
    /// `http.debug`: `None` when `http.debug.addr` is not set.
    pub debug: Option<DebugConfig>,
    /// `http.tls`: `None` serves plain HTTP.
    pub tls: Option<TlsConfig>,
    /// `http.draintimeout`: after SIGTERM or SIGINT, how long requests in flight may run before
    /// the registry exits anyway. Zero, the default as in Docker Distribution, waits for none.
    pub drain_timeout: Duration,
    /// `http.host`: the scheme and authority of absolute `Location` URLs; `None` takes them from
    /// each request.
    pub host: Option<PublicHost>,
    /// `http.relativeurls`: `Location` headers are paths, with no scheme or host.
    pub relative_urls: bool,
}

/// `http.tls`: the server certificate and, with `client_cas`, required client certificates.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub certificate: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM files of the CAs that sign client certificates. When not empty, every client must
    /// present a certificate that one of them signed.
    pub client_cas: Vec<PathBuf>,
    pub minimum_version: TlsVersion,
}

/// `http.tls.minimumtls`: the oldest protocol version the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// `tls1.2`, the default as in Docker Distribution.
    #[default]
    Tls12,
    /// `tls1.3`.
    Tls13,
}

/// The scheme and authority of `http.host`, such as `https` and `registry.example.com:5000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicHost {
    /// `http` or `https`.
    pub scheme: String,
    /// Host and optional port, as written in the config.
    pub authority: String,
}

/// `http.debug`: a second listener, without authentication, for `/debug/health` and, when
/// `http.debug.prometheus.enabled` is true, the Prometheus metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct DebugConfig {
    pub addr: SocketAddr,
    /// `http.debug.prometheus.path` while `http.debug.prometheus.enabled` is true, else `None`.
    pub prometheus_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    pub driver: Driver,
    /// `storage.delete.enabled`: without it, DELETE requests get 405 `UNSUPPORTED`.
    pub delete_enabled: bool,
    pub upload_purging: UploadPurging,
    /// `storage.maintenance.readonly.enabled`.
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Driver {
    Containerd(ContainerdConfig),
}

/// The `storage.containerd` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerdConfig {
    pub address: PathBuf,
    pub namespace: String,
    pub root: String,
    /// An explicit content directory; `None` means discover it from containerd.
    pub content_dir: Option<PathBuf>,
    /// The read strategy of blob GET responses.
    pub fast_path: FastPathMode,
}

/// `storage.containerd.fastpath`: how blob GETs read committed blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FastPathMode {
    /// Plain HTTP/1.1 blob GETs are sent by the kernel with `sendfile`, with no copy through
    /// user space; other blob reads (HTTP/2, and anything the sendfile front hands to hyper)
    /// use `mmap`. The default.
    #[default]
    Sendfile,
    /// Map the blob file from the content directory and hand slices of the mapping to the HTTP
    /// stack: one copy, from the page cache to the socket.
    Mmap,
    /// Read the blob file through an io_uring with several reads in flight, into buffers that
    /// are handed to the HTTP stack.
    IoUring,
    /// Read through containerd's gRPC `content.Read`, one stream per response.
    Off,
}

impl FastPathMode {
    /// Parses a config value: `sendfile`, `mmap`, `iouring` or `off`.
    pub fn parse(value: &str) -> Option<FastPathMode> {
        match value {
            "sendfile" => Some(FastPathMode::Sendfile),
            "mmap" => Some(FastPathMode::Mmap),
            "iouring" => Some(FastPathMode::IoUring),
            "off" => Some(FastPathMode::Off),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FastPathMode::Sendfile => "sendfile",
            FastPathMode::Mmap => "mmap",
            FastPathMode::IoUring => "iouring",
            FastPathMode::Off => "off",
        }
    }
}

/// `storage.maintenance.uploadpurging`: abandoned uploads are purged by containerd's garbage
/// collector once their lease expires `age` after the upload started.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadPurging {
    pub enabled: bool,
    pub age: Duration,
    pub interval: Duration,
    pub dry_run: bool,
}

impl Default for UploadPurging {
    fn default() -> Self {
        UploadPurging {
            enabled: true,
            age: Duration::from_secs(168 * 3600),
            interval: Duration::from_secs(24 * 3600),
            dry_run: false,
        }
    }
}

impl ContainerdConfig {
    pub fn with_defaults() -> ContainerdConfig {
        ContainerdConfig {
            address: PathBuf::from(DEFAULT_ADDRESS),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            root: DEFAULT_ROOT.to_owned(),
            content_dir: None,
            fast_path: FastPathMode::default(),
        }
    }
}
