//! Authentication and authorization, configured as Docker Distribution's `auth` section.
//!
//! [`Authorizer::authorize`] takes a request's `Authorization` header and the access the request
//! needs ([`scope::required_access`]) and returns a [`Grant`] or a [`Denial`], which becomes a
//! 401 with a `WWW-Authenticate` challenge. The router calls it through the [`require`]
//! middleware, and the sendfile front calls [`Authorizer::allows`] for each blob GET it serves
//! itself, handing denied ones to the router so that the 401 is written in one place.
//!
//! - `htpasswd`: Basic credentials checked against bcrypt hashes ([`htpasswd`]). Every user in
//!   the file may do everything.
//! - `token`: bearer tokens from a Docker token server ([`token`]), whose `access` claim lists
//!   the scopes granted.

mod challenge;
mod htpasswd;
mod keys;
pub mod scope;
mod token;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

pub use challenge::{BearerError, Challenge, Denial};
pub use htpasswd::{Htpasswd, Verification};
pub use keys::libtrust_key_id;
pub use scope::Access;
pub use token::{Claims, TokenError, TokenVerifier, LEEWAY_SECONDS};

use crate::config::AuthConfig;

/// The configured access controller.
pub struct Authorizer {
    controller: Controller,
}

enum Controller {
    Htpasswd { realm: String, file: Htpasswd },
    Token { realm: String, service: String, verifier: TokenVerifier },
}

/// The access an authenticated request has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// A user of the htpasswd file, who may do everything.
    Everything,
    /// A token holder, who may do what the token's `access` claim lists.
    Token(Claims),
}

impl Grant {
    pub fn allows(&self, access: &Access) -> bool {
        match self {
            Grant::Everything => true,
            Grant::Token(claims) => claims.grants(access.resource_type, &access.name, access.action),
        }
    }
}

impl Authorizer {
    /// Reads the htpasswd file or the token signing keys. Missing or invalid files are errors
    /// that name the file and key.
    pub fn open(config: &AuthConfig) -> Result<Authorizer, String> {
        let controller = match config {
            AuthConfig::Htpasswd { realm, path } => Controller::Htpasswd { realm: realm.clone(), file: Htpasswd::open(path)? },
            AuthConfig::Token(token) => Controller::Token {
                realm: token.realm.clone(),
                service: token.service.clone(),
                verifier: TokenVerifier::open(token)?,
            },
        };
        let authorizer = Authorizer { controller };
        let sample = authorizer.deny(Vec::new(), None, String::new());
        HeaderValue::from_str(&sample.www_authenticate())
            .map_err(|_| "auth realm and service must be printable ASCII, because they are sent in a header".to_owned())?;
        Ok(authorizer)
    }

    /// Returns the number of users in the htpasswd file as last read; `None` with token auth or
    /// while the file is unusable.
    pub fn htpasswd_user_count(&self) -> Option<usize> {
        match &self.controller {
            Controller::Htpasswd { file, .. } => file.user_count(),
            Controller::Token { .. } => None,
        }
    }

    /// Authenticates the `Authorization` header and checks that it grants every item of
    /// `required`.
    pub async fn authorize(&self, authorization: Option<&str>, required: Vec<Access>) -> Result<Grant, Denial> {
        match &self.controller {
            Controller::Htpasswd { file, .. } => {
                let Some((user, password)) = authorization.and_then(basic_credentials) else {
                    return Err(self.deny(required, None, "authentication required: send Basic credentials".to_owned()));
                };
                // The 401 leaves out the file's path, which is a host detail. The error with
                // the path is logged when the file is read.
                match file.verify(&user, &password).await {
                    Verification::Accepted => Ok(Grant::Everything),
                    Verification::Rejected => {
                        Err(self.deny(required, None, format!("user name or password is incorrect for user {user:?}")))
                    }
                    Verification::FileUnusable => Err(self.deny(
                        required,
                        None,
                        "the registry's credentials file cannot be read, so no user can log in; \
                         the registry's log names the file and the error"
                            .to_owned(),
                    )),
                }
            }
            Controller::Token { verifier, .. } => {
                let Some(token) = authorization.and_then(bearer_token) else {
                    return Err(self.deny(required, None, "authentication required: send a Bearer token".to_owned()));
                };
                let claims = match verifier.verify(token) {
                    Ok(claims) => claims,
                    Err(error) => return Err(self.deny(required, Some(BearerError::InvalidToken), error.to_string())),
                };
                let grant = Grant::Token(claims);
                if let Some(missing) = required.iter().find(|access| !grant.allows(access)) {
                    let reason = format!(
                        "the token does not grant {}:{}:{}",
                        missing.resource_type, missing.name, missing.action
                    );
                    return Err(self.deny(required, Some(BearerError::InsufficientScope), reason));
                }
                Ok(grant)
            }
        }
    }

    /// Returns whether the `Authorization` header grants `access`; the sendfile front's check.
    pub async fn allows(&self, authorization: Option<&str>, access: Access) -> bool {
        self.authorize(authorization, vec![access]).await.is_ok()
    }

    fn deny(&self, required: Vec<Access>, error: Option<BearerError>, reason: String) -> Denial {
        let challenge = match &self.controller {
            Controller::Htpasswd { realm, .. } => Challenge::Basic { realm: realm.clone() },
            Controller::Token { realm, service, .. } => {
                Challenge::Bearer { realm: realm.clone(), service: service.clone(), error }
            }
        };
        Denial { challenge, required, reason }
    }
}

/// Decodes `Basic <base64 of user:password>`.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Returns the token of `Bearer <token>`.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Rejects a request that lacks the access it needs with a 401; the router's middleware. A
/// cross-repository mount whose source the client may not pull becomes a plain upload.
pub async fn require(State(authorizer): State<Arc<Authorizer>>, mut request: Request, next: Next) -> Response {
    let required = scope::required_access(request.method(), request.uri().path());
    let authorization = request.headers().get(AUTHORIZATION).and_then(|value| value.to_str().ok());
    let grant = match authorizer.authorize(authorization, required).await {
        Ok(grant) => grant,
        Err(denial) => {
            tracing::debug!(
                method = %request.method(), path = %request.uri().path(), reason = %denial.reason,
                "request not authorized"
            );
            return denial.into_response();
        }
    };

    let uri = request.uri();
    if let Some(from) = scope::mount_source(request.method(), uri.path(), uri.query()) {
        if !grant.allows(&Access::pull(&from)) {
            tracing::debug!(path = %uri.path(), %from, "no pull access to the mount source; starting a plain upload");
            if let Some(plain) = without_mount(uri) {
                *request.uri_mut() = plain;
            }
        }
    }
    next.run(request).await
}

fn without_mount(uri: &Uri) -> Option<Uri> {
    let query = scope::without_mount(uri.query().unwrap_or_default());
    let path_and_query = if query.is_empty() { uri.path().to_owned() } else { format!("{}?{query}", uri.path()) };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode() {
        let header = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice:pa:ss"));
        assert_eq!(basic_credentials(&header), Some(("alice".into(), "pa:ss".into())));
        assert_eq!(basic_credentials(&header.replace("Basic", "basic")), Some(("alice".into(), "pa:ss".into())));
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(basic_credentials("Bearer abc"), None);
        let no_colon = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice"));
        assert_eq!(basic_credentials(&no_colon), None);
    }

    #[test]
    fn bearer_token_is_extracted() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_token("bearer x"), Some("x"));
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Basic eA=="), None);
    }

    #[test]
    fn without_mount_keeps_the_path() {
        let uri: Uri = "/v2/a/blobs/uploads/?mount=sha256:x&from=b".parse().unwrap();
        assert_eq!(without_mount(&uri).unwrap(), "/v2/a/blobs/uploads/");
    }
}
