//! A thin typed facade over containerd's gRPC services.
//!
//! One lazily connected channel runs over containerd's unix socket, every request carries the
//! namespace, every call is timed and its status counted by `MeteredChannel`, and
//! [`Failure::new`] is the one place where a `tonic::Status` becomes an error. The
//! service calls themselves live beside their concept: `content.rs`, `leases.rs`, `images.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::introspection_client::IntrospectionClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::PluginsRequest;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Endpoint;
use tonic::{Code, Request, Response, Status};

use super::metered_channel::MeteredChannel;
use crate::error::{Error, Result};
use crate::mapping::is_containerd_identifier;

/// gRPC metadata key that selects the containerd namespace of a request.
const NAMESPACE_HEADER: &str = "containerd-namespace";
/// gRPC metadata key that makes containerd add what a request creates to a lease.
const LEASE_HEADER: &str = "containerd-lease";

/// HTTP/2 flow-control window of one stream. containerd streams a blob read in 1 MiB messages,
/// and a window of several messages keeps the socket busy while the reader drains them.
const STREAM_WINDOW_BYTES: u32 = 32 * 1024 * 1024;
/// HTTP/2 flow-control window of the whole connection, shared by concurrent streams.
const CONNECTION_WINDOW_BYTES: u32 = 64 * 1024 * 1024;
/// Maximum size of one gRPC message this client decodes or encodes. tonic's default of 4 MiB is
/// too small for a content or image listing with many labels. containerd 1.6 sends and accepts
/// at most 16 MiB by default, and this client sends at most a 1 MiB write chunk plus the labels
/// of one manifest, so containerd's own limits are the ones that apply.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Time allowed to open the unix socket before a call fails as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed containerd call, sorted by the gRPC codes that callers turn into registry outcomes.
/// Every variant carries the error to return when the caller has no better one.
#[derive(Debug)]
pub enum Failure {
    /// The object does not exist.
    NotFound(Error),
    /// The object already exists.
    AlreadyExists(Error),
    /// A precondition did not hold, such as a commit's expected digest or size.
    FailedPrecondition(Error),
    /// Any other failure, including `Unavailable` while containerd cannot be reached.
    Other(Error),
}

impl Failure {
    /// Sorts a gRPC status from containerd, naming the operation that failed. tonic reports a
    /// socket that cannot be opened, or a dropped connection, as `Unknown` with a transport
    /// error as its source. Such a status becomes `Unavailable`, because containerd cannot be
    /// reached.
    pub fn new(operation: &'static str, status: Status) -> Failure {
        let status = match transport_failure(&status) {
            Some(message) => Status::unavailable(message),
            None => status,
        };
        let code = status.code();
        let error = Error::containerd(operation, status);
        match code {
            Code::NotFound => Failure::NotFound(error),
            Code::AlreadyExists => Failure::AlreadyExists(error),
            Code::FailedPrecondition => Failure::FailedPrecondition(error),
            _ => Failure::Other(error),
        }
    }

    pub fn into_error(self) -> Error {
        match self {
            Failure::NotFound(error)
            | Failure::AlreadyExists(error)
            | Failure::FailedPrecondition(error)
            | Failure::Other(error) => error,
        }
    }
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Error {
        failure.into_error()
    }
}

/// Describes the transport or socket error behind a status, with its causes, or returns `None`
/// when the status came from containerd itself.
fn transport_failure(status: &Status) -> Option<String> {
    let source = std::error::Error::source(status)?;

    let mut message = String::from("containerd is unreachable");
    let mut from_transport = false;
    let mut cause = Some(source);
    while let Some(error) = cause {
        from_transport |= error.is::<tonic::transport::Error>() || error.is::<std::io::Error>();
        message.push_str(&format!(": {error}"));
        cause = error.source();
    }
    from_transport.then_some(message)
}

/// The result of a containerd call before the caller decides what a failure means.
pub type CallResult<T> = std::result::Result<T, Failure>;

/// Unwraps a unary response, sorting a failure.
pub fn unary<T>(operation: &'static str, result: std::result::Result<Response<T>, Status>) -> CallResult<T> {
    result.map(Response::into_inner).map_err(|status| Failure::new(operation, status))
}

/// Turns `NotFound` into `None` and every other failure into an error.
pub fn optional<T>(result: CallResult<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Failure::NotFound(_)) => Ok(None),
        Err(failure) => Err(failure.into_error()),
    }
}

/// Whether a create call made a new object or found one with the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    Existing,
}

/// Turns `AlreadyExists` into [`Created::Existing`] and every other failure into an error.
pub fn created<T>(result: CallResult<T>) -> Result<Created> {
    match result {
        Ok(_) => Ok(Created::New),
        Err(Failure::AlreadyExists(_)) => Ok(Created::Existing),
        Err(failure) => Err(failure.into_error()),
    }
}

/// A connection to one containerd namespace.
#[derive(Clone)]
pub struct Client {
    channel: MeteredChannel,
    namespace: AsciiMetadataValue,
}

impl Client {
    /// Prepares a channel to containerd's socket without opening it. The socket is opened on
    /// the first call and reopened after containerd restarts, so the registry starts and
    /// recovers without containerd being up. Must be called inside a Tokio runtime, because
    /// the channel spawns its worker task.
    pub fn connect_lazy(socket: &Path, namespace: &str) -> Result<Client> {
        if !is_containerd_identifier(namespace) {
            return Err(Error::Internal(format!(
                "namespace {namespace:?} is not a valid containerd namespace: use letters and digits \
                 joined by '.', '_' or '-', at most 76 characters"
            )));
        }
        let namespace = AsciiMetadataValue::try_from(namespace)
            .map_err(|e| Error::Internal(format!("namespace {namespace:?} cannot be sent: {e}")))?;

        // The URI is required by the endpoint but unused: every connection is the unix socket.
        let socket: PathBuf = socket.to_owned();
        let channel = Endpoint::from_static("http://containerd.sock")
            .connect_timeout(CONNECT_TIMEOUT)
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .connect_with_connector_lazy(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(socket).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }));

        Ok(Client { channel: MeteredChannel::new(channel), namespace })
    }

    /// Wraps a message in a request for this client's namespace.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert(NAMESPACE_HEADER, self.namespace.clone());
        request
    }

    /// Wraps a message in a request whose created objects containerd adds to `lease`.
    pub fn leased_request<T>(&self, message: T, lease: &str) -> Result<Request<T>> {
        let mut request = self.request(message);
        let lease = AsciiMetadataValue::try_from(lease)
            .map_err(|e| Error::Internal(format!("lease id {lease:?} cannot be sent: {e}")))?;
        request.metadata_mut().insert(LEASE_HEADER, lease);
        Ok(request)
    }

    pub fn content(&self) -> ContentClient<MeteredChannel> {
        ContentClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    pub fn leases(&self) -> LeasesClient<MeteredChannel> {
        LeasesClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    pub fn images(&self) -> ImagesClient<MeteredChannel> {
        ImagesClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Returns containerd's version string, such as `1.6.20~ds1`.
    pub async fn version(&self) -> Result<String> {
        let response = VersionClient::new(self.channel.clone()).version(self.request(())).await;
        Ok(unary("version.Version", response)?.version)
    }

    /// Returns the directory of containerd's content store, as the `root` export of the
    /// `io.containerd.content.v1` plugin; `None` when containerd does not report one.
    pub async fn content_root(&self) -> Result<Option<PathBuf>> {
        let request = PluginsRequest { filters: vec!["type==io.containerd.content.v1".to_owned()] };
        let response = IntrospectionClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .plugins(self.request(request))
            .await;
        let plugins = unary("introspection.Plugins", response)?.plugins;
        Ok(plugins.into_iter().find_map(|plugin| plugin.exports.get("root").map(PathBuf::from)))
    }
}

/// Quotes a filter value for containerd's filter syntax, where an unquoted value that starts
/// with `/` or `|` would be read as a quoted regular expression.
pub fn quote_filter_value(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// Returns a filter that matches objects whose label `key` equals `value`.
pub fn label_filter(key: &str, value: &str) -> String {
    format!("labels.{}=={}", quote_filter_value(key), quote_filter_value(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_quoted() {
        assert_eq!(quote_filter_value("/registry"), r#""/registry""#);
        assert_eq!(quote_filter_value(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(label_filter("containerd-registry.io/root", "/r"), r#"labels."containerd-registry.io/root"=="/r""#);
    }
}
