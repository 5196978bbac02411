//! Absolute `Location` URLs, built as Docker Distribution builds them.
//!
//! Handlers return `Location` as a path such as `/v2/<name>/blobs/uploads/<id>`. Unless
//! `http.relativeurls` is set, [`absolute_locations`] puts a scheme and authority in front:
//! those of `http.host` when it is set, else those of the request.
//!
//! From the request, the scheme is `X-Forwarded-Proto`, else the `proto` of `Forwarded`, else
//! that of the listener (https with TLS). The authority is the first `X-Forwarded-Host`, else
//! the `host` of `Forwarded`, else `Host` (or the HTTP/2 `:authority`). `X-Forwarded-Port` is
//! added to an authority without a port. A forwarded value that is not a valid scheme or
//! authority is skipped, and with no usable authority at all the path stays relative.
//!
//! Docker Distribution also takes the `for` parameter of `Forwarded` as the host, which names
//! the client rather than the registry; this registry does not.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{FORWARDED, HOST, LOCATION};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::config::PublicHost;

const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// The source of the scheme and authority of absolute `Location` URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationBase {
    /// `http.host`.
    Fixed(PublicHost),
    /// The request's headers; `scheme` is the listener's (`http`, or `https` with TLS), used when
    /// no forwarded header names one.
    FromRequest { scheme: &'static str },
}

/// Middleware that prefixes a path in the response's `Location` with the base URL. Does
/// nothing to a `Location` that is already absolute.
pub async fn absolute_locations(State(base): State<Arc<LocationBase>>, request: Request, next: Next) -> Response {
    let prefix = match base.as_ref() {
        LocationBase::Fixed(host) => Some(format!("{}://{}", host.scheme, host.authority)),
        LocationBase::FromRequest { scheme } => request_origin(&request, scheme),
    };
    let mut response = next.run(request).await;

    let Some(prefix) = prefix else { return response };
    let Some(path) = response.headers().get(LOCATION).and_then(|value| value.to_str().ok()) else {
        return response;
    };
    if !path.starts_with('/') {
        return response;
    }
    if let Ok(value) = HeaderValue::try_from(format!("{prefix}{path}")) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// Returns `scheme://authority` of the request as its client or a proxy in front named it.
fn request_origin(request: &Request, listener_scheme: &str) -> Option<String> {
    let headers = request.headers();
    let forwarded = forwarded_pairs(headers);
    let forwarded_value = |name: &str| forwarded.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());

    let scheme = first_value(headers, &X_FORWARDED_PROTO)
        .or_else(|| forwarded_value("proto"))
        .map(|scheme| scheme.to_ascii_lowercase())
        .filter(|scheme| scheme == "http" || scheme == "https")
        .unwrap_or_else(|| listener_scheme.to_owned());

    let forwarded_host = first_value(headers, &X_FORWARDED_HOST)
        .or_else(|| forwarded_value("host"))
        .and_then(|host| parse_authority(&host));
    let authority = forwarded_host
        .or_else(|| headers.get(HOST).and_then(|value| value.to_str().ok()).and_then(parse_authority))
        .or_else(|| request.uri().authority().and_then(|authority| parse_authority(authority.as_str())))?;

    let authority = match (authority.port(), first_value(headers, &X_FORWARDED_PORT)) {
        (None, Some(port)) if port.parse::<u16>().is_ok() => format!("{}:{port}", authority.host()),
        _ => authority.as_str().to_owned(),
    };
    Some(format!("{scheme}://{authority}"))
}

/// Parses a host with an optional port; user information and an empty host are rejected.
fn parse_authority(text: &str) -> Option<Authority> {
    let authority: Authority = text.parse().ok()?;
    let valid = !authority.host().is_empty() && !text.contains('@') && has_valid_port(&authority);
    valid.then_some(authority)
}

/// Returns whether what follows the host is nothing or `:` and a port number, because
/// [`Authority`] accepts any text there.
pub fn has_valid_port(authority: &Authority) -> bool {
    let text = authority.as_str();
    let after_host = match text.strip_prefix('[') {
        Some(bracketed) => bracketed.find(']').map(|end| &bracketed[end + 1..]),
        None => Some(text.find(':').map_or("", |colon| &text[colon..])),
    };
    match after_host {
        None => false,
        Some("") => true,
        Some(rest) => rest.strip_prefix(':').is_some_and(|port| port.parse::<u16>().is_ok()),
    }
}

/// Returns the first comma-separated value of a header, trimmed.
fn first_value(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let text = headers.get(name)?.to_str().ok()?;
    let first = text.split(',').next()?.trim();
    (!first.is_empty()).then(|| first.to_owned())
}

/// Returns the `key=value` pairs of the first element of `Forwarded` (RFC 7239), keys in lower
/// case and quotes removed.
fn forwarded_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    let Some(text) = headers.get(FORWARDED).and_then(|value| value.to_str().ok()) else {
        return Vec::new();
    };
    let first = text.split(',').next().unwrap_or_default();
    first
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.trim().to_ascii_lowercase(), value.trim().trim_matches('"').to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(headers: &[(&str, &str)], scheme: &'static str) -> Option<String> {
        let mut builder = axum::http::Request::builder().uri("/v2/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        request_origin(&builder.body(axum::body::Body::empty()).unwrap(), scheme)
    }

    #[test]
    fn host_header_and_listener_scheme() {
        assert_eq!(origin(&[("host", "reg.example:5000")], "https").as_deref(), Some("https://reg.example:5000"));
        assert_eq!(origin(&[("host", "[::1]:5000")], "http").as_deref(), Some("http://[::1]:5000"));
    }

    #[test]
    fn forwarded_headers_win_over_host() {
        let headers = [("host", "internal:5000"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "public.example, proxy")];
        assert_eq!(origin(&headers, "http").as_deref(), Some("https://public.example"));

        let headers = [("host", "internal:5000"), ("forwarded", "proto=https;host=\"public.example:8443\", for=x")];
        assert_eq!(origin(&headers, "http").as_deref(), Some("https://public.example:8443"));

        let headers = [("host", "public.example"), ("x-forwarded-port", "8443")];
        assert_eq!(origin(&headers, "http").as_deref(), Some("http://public.example:8443"));
    }

    #[test]
    fn invalid_forwarded_values_are_skipped() {
        let headers = [("host", "reg:5000"), ("x-forwarded-proto", "gopher"), ("x-forwarded-host", "bad host/x")];
        assert_eq!(origin(&headers, "http").as_deref(), Some("http://reg:5000"));

        let headers = [("host", "reg"), ("x-forwarded-port", "99999")];
        assert_eq!(origin(&headers, "http").as_deref(), Some("http://reg"));
    }

    #[test]
    fn no_authority_leaves_location_relative() {
        assert_eq!(origin(&[], "http"), None);
        assert_eq!(origin(&[("host", "a b")], "http"), None);
        assert_eq!(origin(&[("host", "user@reg")], "http"), None);
        assert_eq!(origin(&[("host", "reg:port")], "http"), None);
    }
}
