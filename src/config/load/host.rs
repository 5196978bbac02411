//! `http.host`: the external URL of the registry, which absolute `Location` headers start with.

use axum::http::uri::{Authority, Uri};

use super::{ConfigError, Section};
use crate::config::PublicHost;

/// Parses `http.host`: `http` or `https`, a host and an optional port, and no path, query,
/// fragment or user information.
pub(super) fn public_host(http: &Section) -> Result<Option<PublicHost>, ConfigError> {
    let Some(text) = http.string("host")? else {
        return Ok(None);
    };
    let invalid = |reason: &str| {
        http.error("host", &format!("{text:?} {reason}; write the registry's external URL like https://registry.example.com:5000"))
    };

    let uri: Uri = text.parse().map_err(|_| invalid("is not a URL"))?;
    let scheme = match uri.scheme_str() {
        Some(scheme @ ("http" | "https")) => scheme.to_owned(),
        Some(_) => return Err(invalid("must use the http or https scheme")),
        None => return Err(invalid("has no scheme")),
    };
    let authority: &Authority = uri.authority().ok_or_else(|| invalid("has no host"))?;
    if authority.host().is_empty() {
        return Err(invalid("has no host"));
    }
    if authority.as_str().contains('@') {
        return Err(invalid("must not contain user information"));
    }
    if !crate::http::location::has_valid_port(authority) {
        return Err(invalid("has an invalid port"));
    }
    let path = uri.path();
    if !(path.is_empty() || path == "/") || uri.query().is_some() || text.contains('#') {
        return Err(invalid("must not contain a path, query or fragment, because this registry serves /v2/ at the root"));
    }

    Ok(Some(PublicHost { scheme, authority: authority.as_str().to_owned() }))
}
