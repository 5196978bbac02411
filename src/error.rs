//! Errors, grouped by who is to blame, and their mapping onto OCI error codes and HTTP statuses.
//!
//! Client mistakes carry the repository, digest, tag or upload id involved and become the OCI
//! JSON error body. containerd failures are 503 while containerd is unreachable, 507 when its
//! file system is full, and 500 otherwise. Internal errors are bugs or broken invariants of this
//! registry.

use axum::http::StatusCode;

use crate::digest::{Digest, DigestError};
use crate::names::NameError;

/// The error codes of the OCI Distribution Spec, plus the ones Docker Distribution added that
/// clients recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    RangeInvalid,
    PaginationNumberInvalid,
    Unavailable,
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::RangeInvalid => "RANGE_INVALID",
            ErrorCode::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }
}

/// A mistake in the client's request. Each variant names the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("blob {digest} is not linked in repository {repository}")]
    BlobUnknown { repository: String, digest: Digest },
    #[error("upload {id} is not an open upload of repository {repository}")]
    UploadUnknown { repository: String, id: String },
    #[error("upload {id} is invalid: {reason}")]
    UploadInvalid { id: String, reason: String },
    #[error("chunk for upload {id} starts at byte {start}, but the upload has {offset} bytes; resume from {offset}")]
    UploadOutOfOrder { id: String, start: u64, offset: u64 },
    #[error(
        "upload {id} is in use by another request; send one request at a time per upload, and after \
         that request ends read the upload's offset with GET and resume from it"
    )]
    UploadBusy { id: String },
    #[error("{0}")]
    DigestInvalid(String),
    #[error("manifest references {digest}, which is not in repository {repository}")]
    ManifestBlobUnknown { repository: String, digest: Digest },
    #[error("manifest is invalid: {0}")]
    ManifestInvalid(String),
    #[error("manifest {reference} is not known in repository {repository}")]
    ManifestUnknown { repository: String, reference: String },
    #[error("{0}")]
    NameInvalid(String),
    #[error("repository {0} is not known to this registry")]
    NameUnknown(String),
    #[error("{0}")]
    SizeInvalid(String),
    #[error("range {range:?} cannot be satisfied for a blob of {size} bytes")]
    RangeNotSatisfiable { range: String, size: u64 },
    #[error("{0}")]
    PaginationInvalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Denied(String),
}

impl ClientError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ClientError::BlobUnknown { .. } => ErrorCode::BlobUnknown,
            ClientError::UploadUnknown { .. } => ErrorCode::BlobUploadUnknown,
            ClientError::UploadInvalid { .. } => ErrorCode::BlobUploadInvalid,
            ClientError::UploadOutOfOrder { .. } => ErrorCode::BlobUploadInvalid,
            ClientError::UploadBusy { .. } => ErrorCode::BlobUploadInvalid,
            ClientError::DigestInvalid(_) => ErrorCode::DigestInvalid,
            ClientError::ManifestBlobUnknown { .. } => ErrorCode::ManifestBlobUnknown,
            ClientError::ManifestInvalid(_) => ErrorCode::ManifestInvalid,
            ClientError::ManifestUnknown { .. } => ErrorCode::ManifestUnknown,
            ClientError::NameInvalid(_) => ErrorCode::NameInvalid,
            ClientError::NameUnknown(_) => ErrorCode::NameUnknown,
            ClientError::SizeInvalid(_) => ErrorCode::SizeInvalid,
            ClientError::RangeNotSatisfiable { .. } => ErrorCode::RangeInvalid,
            ClientError::PaginationInvalid(_) => ErrorCode::PaginationNumberInvalid,
            ClientError::Unsupported(_) => ErrorCode::Unsupported,
            ClientError::Denied(_) => ErrorCode::Denied,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ClientError::BlobUnknown { .. }
            | ClientError::UploadUnknown { .. }
            | ClientError::ManifestUnknown { .. }
            | ClientError::NameUnknown(_) => StatusCode::NOT_FOUND,
            ClientError::UploadOutOfOrder { .. } | ClientError::RangeNotSatisfiable { .. } => {
                StatusCode::RANGE_NOT_SATISFIABLE
            }
            ClientError::UploadBusy { .. } => StatusCode::CONFLICT,
            ClientError::Unsupported(_) => StatusCode::METHOD_NOT_ALLOWED,
            ClientError::Denied(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Any failure of a registry operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// containerd returned an error or could not be reached.
    #[error("containerd {operation} failed: {code:?}: {message}")]
    Containerd { operation: &'static str, code: tonic::Code, message: String },
    /// A broken invariant of this registry.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a gRPC status from containerd, naming the operation that failed.
    pub fn containerd(operation: &'static str, status: tonic::Status) -> Error {
        Error::Containerd { operation, code: status.code(), message: status.message().to_owned() }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Client(client) => client.code(),
            Error::Containerd { code: tonic::Code::Unavailable, .. } => ErrorCode::Unavailable,
            Error::Containerd { .. } | Error::Internal(_) => ErrorCode::Unknown,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Client(client) => client.status(),
            Error::Containerd { code: tonic::Code::Unavailable, .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Containerd { .. } if self.is_out_of_space() => StatusCode::INSUFFICIENT_STORAGE,
            Error::Containerd { .. } | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Returns whether containerd failed because its file system is full. containerd passes
    /// the text of the failed write on with code `Unknown`, so the text is the only sign.
    pub fn is_out_of_space(&self) -> bool {
        matches!(self, Error::Containerd { message, .. } if message.contains("no space left on device"))
    }

    pub fn is_client_error(&self) -> bool {
        matches!(self, Error::Client(_))
    }
}

impl From<NameError> for Error {
    fn from(error: NameError) -> Error {
        match error {
            NameError::InvalidDigest(digest) => digest.into(),
            other => Error::Client(ClientError::NameInvalid(other.to_string())),
        }
    }
}

impl From<DigestError> for Error {
    fn from(error: DigestError) -> Error {
        Error::Client(ClientError::DigestInvalid(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn containerd_error(code: tonic::Code, message: &str) -> Error {
        Error::containerd("content.Write", tonic::Status::new(code, message))
    }

    #[test]
    fn full_disk_of_containerd_is_507() {
        let full = containerd_error(tonic::Code::Unknown, "write /var/lib/containerd/ingest/x/data: no space left on device");
        assert_eq!(full.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(full.code(), ErrorCode::Unknown);

        let other = containerd_error(tonic::Code::Unknown, "write /var/lib/containerd/ingest/x/data: input/output error");
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let down = containerd_error(tonic::Code::Unavailable, "no space left on device");
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
