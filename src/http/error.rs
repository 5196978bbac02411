//! Failed requests as OCI error responses, and the one place where they are logged.
//!
//! The body is `{"errors":[{"code","message","detail"}]}`. Client mistakes send their message
//! and a `detail` object naming the repository, digest, reference or upload involved, and are
//! logged at debug. containerd and internal failures send a generic message, because their text
//! can name paths and sockets of the host, and are logged once at error with the full cause.

use axum::http::header::{ALLOW, CONTENT_RANGE, RANGE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::digest::DigestError;
use crate::error::{ClientError, Error, ErrorCode};
use crate::names::NameError;
use crate::range::RangeError;

/// An error response of the registry API, boxed because handlers return it in every `Result`.
#[derive(Debug)]
pub struct ApiError(Box<Fields>);

#[derive(Debug)]
struct Fields {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    detail: Option<serde_json::Value>,
    headers: HeaderMap,
    /// The failure behind a 5xx response, logged but not sent.
    cause: Option<Error>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError(Box::new(Fields { status, code, message, detail: None, headers: HeaderMap::new(), cause: None }))
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    pub fn code(&self) -> ErrorCode {
        self.0.code
    }

    /// Adds a header to the response, such as the `WWW-Authenticate` of a 401.
    pub fn with_header(mut self, name: axum::http::HeaderName, value: HeaderValue) -> ApiError {
        self.0.headers.insert(name, value);
        self
    }

    /// Sets the `detail` of the error body.
    pub fn with_detail(mut self, detail: serde_json::Value) -> ApiError {
        self.0.detail = Some(detail);
        self
    }

    /// Returns 404 `UNSUPPORTED` for a path that matches no endpoint of the API.
    pub fn no_route(path: &str) -> ApiError {
        let message = format!("no endpoint of the OCI Distribution API matches the path {path:?}");
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::Unsupported, message)
    }

    /// Returns 405 `UNSUPPORTED` with an `Allow` header listing the methods of the endpoint.
    pub fn method_not_allowed(method: &Method, allowed: &[Method]) -> ApiError {
        let allowed: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        let allowed = allowed.join(", ");
        let message = format!("method {method} is not supported on this endpoint; use {allowed}");
        let mut error = ApiError::new(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::Unsupported, message);
        if let Ok(value) = HeaderValue::from_str(&allowed) {
            error.0.headers.insert(ALLOW, value);
        }
        error
    }
}

/// Returns the values a client error names, as the `detail` of the error body.
fn detail_of(error: &ClientError) -> Option<serde_json::Value> {
    let detail = match error {
        ClientError::BlobUnknown { repository, digest }
        | ClientError::ManifestBlobUnknown { repository, digest } => {
            json!({ "repository": repository, "digest": digest })
        }
        ClientError::UploadUnknown { repository, id } => json!({ "repository": repository, "upload": id }),
        ClientError::UploadInvalid { id, .. } | ClientError::UploadBusy { id } => json!({ "upload": id }),
        ClientError::UploadOutOfOrder { id, start, offset } => {
            json!({ "upload": id, "start": start, "offset": offset })
        }
        ClientError::ManifestUnknown { repository, reference } => {
            json!({ "repository": repository, "reference": reference })
        }
        ClientError::NameUnknown(repository) => json!({ "repository": repository }),
        ClientError::RangeNotSatisfiable { range, size } => json!({ "range": range, "size": size }),
        ClientError::DigestInvalid(_)
        | ClientError::ManifestInvalid(_)
        | ClientError::NameInvalid(_)
        | ClientError::SizeInvalid(_)
        | ClientError::PaginationInvalid(_)
        | ClientError::Unsupported(_)
        | ClientError::Denied(_) => return None,
    };
    Some(detail)
}

/// Returns the headers that help a client recover from a 416: the size of the blob for a range
/// request, and the bytes received so far for an upload chunk.
fn headers_of(error: &ClientError) -> HeaderMap {
    let mut headers = HeaderMap::new();
    match error {
        ClientError::RangeNotSatisfiable { size, .. } => {
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                headers.insert(CONTENT_RANGE, value);
            }
        }
        ClientError::UploadOutOfOrder { offset, .. } if *offset > 0 => {
            if let Ok(value) = HeaderValue::from_str(&format!("0-{}", offset - 1)) {
                headers.insert(RANGE, value);
            }
        }
        _ => {}
    }
    headers
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        let status = error.status();
        let code = error.code();
        match error {
            Error::Client(client) => ApiError(Box::new(Fields {
                status,
                code,
                message: client.to_string(),
                detail: detail_of(&client),
                headers: headers_of(&client),
                cause: None,
            })),
            other => {
                let message = if status == StatusCode::SERVICE_UNAVAILABLE {
                    "the storage backend is unavailable; retry later"
                } else if status == StatusCode::INSUFFICIENT_STORAGE {
                    "the storage backend is out of space; retry once space is freed"
                } else {
                    "internal server error; the registry log has the cause"
                };
                let mut error = ApiError::new(status, code, message);
                error.0.cause = Some(other);
                error
            }
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> ApiError {
        Error::from(error).into()
    }
}

impl From<NameError> for ApiError {
    fn from(error: NameError) -> ApiError {
        Error::from(error).into()
    }
}

impl From<DigestError> for ApiError {
    fn from(error: DigestError) -> ApiError {
        Error::from(error).into()
    }
}

impl From<RangeError> for ApiError {
    fn from(error: RangeError) -> ApiError {
        Error::from(error).into()
    }
}

impl From<axum::http::Error> for ApiError {
    fn from(error: axum::http::Error) -> ApiError {
        Error::Internal(format!("building the response failed: {error}")).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let fields = *self.0;
        let status = fields.status.as_u16();
        let code = fields.code.as_str();
        match &fields.cause {
            Some(cause) => tracing::error!(status, code, error = %cause, "request failed"),
            None => tracing::debug!(status, code, message = %fields.message, "request rejected"),
        }

        let mut entry = json!({ "code": code, "message": fields.message });
        if let Some(detail) = fields.detail {
            entry["detail"] = detail;
        }
        let mut response = super::json_response(fields.status, &json!({ "errors": [entry] }));
        response.headers_mut().extend(fields.headers);
        response
    }
}
