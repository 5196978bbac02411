//! The `auth` section: `htpasswd` or `token`, with Docker Distribution's keys.

use std::path::PathBuf;

use serde_yaml_ng::Value;

use super::{describe, ConfigError, Section};
use crate::config::{AuthConfig, TokenAuthConfig};

/// Distribution's access controllers that this registry does not implement, with the reason.
const OTHER_CONTROLLERS: [(&str, &str); 2] = [
    ("silly", "auth.silly accepts any credentials and is meant for tests; use auth.htpasswd or auth.token"),
    ("none", "auth.none is the same as leaving out the auth section"),
];

/// Parses `auth`; `None` when the section is absent or empty.
pub(super) fn auth_config(top: &Section) -> Result<Option<AuthConfig>, ConfigError> {
    let auth = top.section("auth")?;
    auth.reject_keys(&OTHER_CONTROLLERS)?;
    auth.allow_keys(&["htpasswd", "token"])?;

    let keys = auth.keys();
    if keys.len() > 1 {
        return Err(top.error("auth", "configure exactly one access controller: htpasswd or token, not both"));
    }
    match keys.first().map(String::as_str) {
        None => Ok(None),
        Some("htpasswd") => htpasswd_config(&auth.section("htpasswd")?).map(Some),
        Some(_) => token_config(&auth.section("token")?).map(Some),
    }
}

fn required(section: &Section, key: &str) -> Result<String, ConfigError> {
    match section.string(key)? {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(section.error(key, "is required")),
    }
}

fn htpasswd_config(htpasswd: &Section) -> Result<AuthConfig, ConfigError> {
    htpasswd.allow_keys(&["realm", "path"])?;
    let realm = required(htpasswd, "realm")?;
    let path = PathBuf::from(required(htpasswd, "path")?);
    Ok(AuthConfig::Htpasswd { realm, path })
}

fn token_config(token: &Section) -> Result<AuthConfig, ConfigError> {
    token.allow_keys(&[
        "realm",
        "service",
        "issuer",
        "rootcertbundle",
        "jwks",
        "autoredirect",
        "autoredirectpath",
        "signingalgorithms",
    ])?;
    if token.bool("autoredirect")? == Some(true) {
        return Err(token.error(
            "autoredirect",
            "is not supported: the challenge always sends auth.token.realm as configured; set it to false",
        ));
    }

    let root_cert_bundle = token.string("rootcertbundle")?.filter(|path| !path.is_empty()).map(PathBuf::from);
    let jwks = token.string("jwks")?.filter(|path| !path.is_empty()).map(PathBuf::from);
    if root_cert_bundle.is_none() && jwks.is_none() {
        return Err(token.error("rootcertbundle", "is required unless auth.token.jwks names the signing keys"));
    }

    let signing_algorithms = match token.get("signingalgorithms") {
        None => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(name) => Ok(name.clone()),
                other => Err(token.error("signingalgorithms", &format!("must list algorithm names, not {}", describe(other)))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(token.error("signingalgorithms", &format!("must be a list such as [ES256, RS256], not {}", describe(other))))
        }
    };

    Ok(AuthConfig::Token(TokenAuthConfig {
        realm: required(token, "realm")?,
        service: required(token, "service")?,
        issuer: required(token, "issuer")?,
        root_cert_bundle,
        jwks,
        signing_algorithms,
    }))
}
