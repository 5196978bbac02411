//! The `http.tls` section: certificate and key paths, client CAs and the minimum version.
//!
//! Only the paths are checked here. [`crate::tls`] reads and parses the files at start-up, so
//! that `check` and `serve` report an unreadable certificate the same way.

use std::path::PathBuf;

use serde_yaml_ng::Value;

use super::{describe, ConfigError, Section};
use crate::config::{TlsConfig, TlsVersion};

/// Parses `http.tls`. Returns `None` when the section is absent or names no certificate.
pub(super) fn tls_config(http: &Section) -> Result<Option<TlsConfig>, ConfigError> {
    let tls = http.section("tls")?;
    tls.reject_keys(&[
        (
            "letsencrypt",
            "Let's Encrypt certificates are not supported; obtain them with an ACME client such as certbot and set http.tls.certificate and http.tls.key",
        ),
        ("ciphersuites", "cipher suites cannot be chosen; the TLS library's safe defaults are used"),
    ])?;
    tls.allow_keys(&["certificate", "key", "clientcas", "minimumtls"])?;

    let certificate = tls.string("certificate")?;
    let key = tls.string("key")?;
    let (certificate, key) = match (certificate, key) {
        (None, None) => {
            if let Some(other) = ["clientcas", "minimumtls"].into_iter().find(|key| tls.has(key)) {
                return Err(tls.error(other, "has no effect without http.tls.certificate and http.tls.key"));
            }
            return Ok(None);
        }
        (Some(_), None) => return Err(tls.error("key", "is missing; TLS needs both http.tls.certificate and http.tls.key")),
        (None, Some(_)) => {
            return Err(tls.error("certificate", "is missing; TLS needs both http.tls.certificate and http.tls.key"))
        }
        (Some(certificate), Some(key)) => (certificate, key),
    };

    let client_cas = match tls.get("clientcas") {
        None => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| item.as_str().filter(|path| !path.is_empty()).map(PathBuf::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| tls.error("clientcas", "must be a list of CA certificate file paths"))?,
        Some(other) => {
            return Err(tls.error("clientcas", &format!("must be a list of CA certificate file paths, not {}", describe(other))))
        }
    };

    let minimum_version = match tls.string("minimumtls")?.as_deref() {
        None | Some("tls1.2") => TlsVersion::Tls12,
        Some("tls1.3") => TlsVersion::Tls13,
        Some(old @ ("tls1.0" | "tls1.1")) => {
            return Err(tls.error("minimumtls", &format!("{old} is not supported because it is insecure; use tls1.2 or tls1.3")))
        }
        Some(other) => return Err(tls.error("minimumtls", &format!("{other:?} is not a TLS version; use tls1.2 or tls1.3"))),
    };

    Ok(Some(TlsConfig {
        certificate: PathBuf::from(certificate),
        key: PathBuf::from(key),
        client_cas,
        minimum_version,
    }))
}
