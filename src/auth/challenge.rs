//! 401 responses: the `WWW-Authenticate` challenge and the OCI error body `UNAUTHORIZED`, which
//! Docker Distribution sends for every authentication and authorization failure.

use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::scope::{scope_param, Access};
use crate::error::ErrorCode;
use crate::http::ApiError;

/// The `error` parameter of a Bearer challenge (RFC 6750, section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// The token is malformed, expired, not yet valid, for another service or issuer, or not
    /// signed by a trusted key.
    InvalidToken,
    /// The token is valid but its `access` claim lacks a required scope.
    InsufficientScope,
}

impl BearerError {
    fn as_str(self) -> &'static str {
        match self {
            BearerError::InvalidToken => "invalid_token",
            BearerError::InsufficientScope => "insufficient_scope",
        }
    }
}

/// The scheme and parameters of the `WWW-Authenticate` header of a 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic { realm: String },
    Bearer { realm: String, service: String, error: Option<BearerError> },
}

/// A request that may not proceed, with the access it needed and the reason, which is sent as
/// the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub challenge: Challenge,
    pub required: Vec<Access>,
    pub reason: String,
}

impl Denial {
    /// Formats the `WWW-Authenticate` value. A Bearer challenge carries the scope the request
    /// needed, so the client can fetch a token for exactly that.
    pub fn www_authenticate(&self) -> String {
        match &self.challenge {
            Challenge::Basic { realm } => format!("Basic realm={}", quote(realm)),
            Challenge::Bearer { realm, service, error } => {
                let mut value = format!("Bearer realm={},service={}", quote(realm), quote(service));
                let scope = scope_param(&self.required);
                if !scope.is_empty() {
                    value.push_str(&format!(",scope={}", quote(&scope)));
                }
                if let Some(error) = error {
                    value.push_str(&format!(",error={}", quote(error.as_str())));
                }
                value
            }
        }
    }
}

/// Quotes a challenge parameter value (RFC 9110 `quoted-string`).
fn quote(value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

impl IntoResponse for Denial {
    fn into_response(self) -> Response {
        let detail: Vec<serde_json::Value> = self
            .required
            .iter()
            .map(|access| json!({ "Type": access.resource_type, "Name": access.name, "Action": access.action }))
            .collect();
        let mut error = ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, self.reason.clone());
        if !detail.is_empty() {
            error = error.with_detail(json!(detail));
        }
        // `Authorizer::open` rejects a realm or service that is not a valid header value, and
        // repository names come from the URI path, which is visible ASCII. So this conversion
        // is not expected to fail; if it did, the 401 would go out without the header.
        if let Ok(value) = HeaderValue::from_str(&self.www_authenticate()) {
            error = error.with_header(WWW_AUTHENTICATE, value);
        }
        let mut response = error.into_response();
        response
            .headers_mut()
            .insert("docker-distribution-api-version", HeaderValue::from_static("registry/2.0"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(error: Option<BearerError>, required: Vec<Access>) -> Denial {
        let challenge = Challenge::Bearer { realm: "https://auth.test/token".into(), service: "registry.test".into(), error };
        Denial { challenge, required, reason: "test".into() }
    }

    #[test]
    fn basic_challenge_names_realm() {
        let denial = Denial { challenge: Challenge::Basic { realm: "Registry \"x\"".into() }, required: vec![], reason: String::new() };
        assert_eq!(denial.www_authenticate(), r#"Basic realm="Registry \"x\"""#);
    }

    #[test]
    fn bearer_challenge_without_scope() {
        let denial = bearer(None, vec![]);
        assert_eq!(denial.www_authenticate(), r#"Bearer realm="https://auth.test/token",service="registry.test""#);
    }

    #[test]
    fn bearer_challenge_with_scope_and_error() {
        let required = vec![Access::pull("foo/bar"), Access { action: "push", ..Access::pull("foo/bar") }];
        let denial = bearer(Some(BearerError::InsufficientScope), required);
        assert_eq!(
            denial.www_authenticate(),
            r#"Bearer realm="https://auth.test/token",service="registry.test",scope="repository:foo/bar:pull,push",error="insufficient_scope""#
        );
        let denial = bearer(Some(BearerError::InvalidToken), vec![Access::pull("a")]);
        assert!(denial.www_authenticate().ends_with(r#",scope="repository:a:pull",error="invalid_token""#));
    }

    #[test]
    fn denial_response_is_401_unauthorized() {
        let response = bearer(None, vec![Access::pull("a")]).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(WWW_AUTHENTICATE));
        assert_eq!(response.headers()["docker-distribution-api-version"], "registry/2.0");
    }
}
