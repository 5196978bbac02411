//! `auth.token`: Docker registry bearer tokens (JWTs) issued by a token server.
//!
//! A token is accepted when its signature verifies with a trusted key, `iss` is the configured
//! issuer, `aud` contains the configured service, and the current time lies between `nbf` and
//! `exp` with [`LEEWAY_SECONDS`] of slack. The key comes from the first of these the header has,
//! as in Docker Distribution:
//! - `x5c`: a certificate chain whose first certificate contains the key. Each certificate must be
//!   signed by the next, and the last must be one of the root certificates or be signed by one.
//! - `jwk`: an embedded key, trusted only by its `kid`.
//! - `kid`: the id of a root certificate's key (see [`super::keys`]) or of a key in `jwks`.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;

use super::keys::{jwk_thumbprint, libtrust_key_id, signing_key, Curve, KeyKind, SigningKey};
use crate::config::TokenAuthConfig;

/// Clock skew allowed on `exp` and `nbf`, in seconds; Docker Distribution allows 60.
pub const LEEWAY_SECONDS: u64 = 60;

/// Maximum number of certificates in an `x5c` chain; the limit bounds the parsing and signature
/// checks a single token can cause.
const MAX_CHAIN_LEN: usize = 8;

/// Algorithms accepted when `signingalgorithms` is not set: every asymmetric one jsonwebtoken
/// verifies. HMAC algorithms need a shared secret, which this configuration cannot hold.
const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// One entry of the `access` claim: the actions granted on a resource.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResourceActions {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    #[serde(default)]
    pub actions: Vec<String>,
}

/// The claims of a verified token that authorization uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    #[serde(rename = "sub", default)]
    pub subject: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub access: Vec<ResourceActions>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<ResourceActions>, D::Error> {
    Ok(Option::<Vec<ResourceActions>>::deserialize(deserializer)?.unwrap_or_default())
}

impl Claims {
    /// Returns whether the token grants `action` on the resource, directly or through `*`.
    pub fn grants(&self, resource_type: &str, name: &str, action: &str) -> bool {
        self.access.iter().any(|entry| {
            entry.resource_type == resource_type
                && entry.name == name
                && entry.actions.iter().any(|granted| granted == action || granted == "*")
        })
    }
}

/// The reason a token was rejected. The challenge sends each as `error="invalid_token"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed: {0}")]
    Malformed(String),
    #[error("the token's algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    #[error("the token's signing key is not trusted: {0}")]
    UntrustedKey(String),
    #[error("the token's x5c certificate chain is not trusted: {0}")]
    Chain(String),
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    Issuer,
    #[error("the token is meant for another service")]
    Audience,
}

/// Verifies bearer tokens against the configured issuer, service and keys.
pub struct TokenVerifier {
    issuer: String,
    service: String,
    /// DER of each root certificate.
    roots: Vec<Vec<u8>>,
    /// Keys by the ids a `kid` header can name.
    trusted: HashMap<String, SigningKey>,
    algorithms: Vec<Algorithm>,
}

impl TokenVerifier {
    /// Reads the root certificate bundle and JWKS file that `config` names.
    pub fn open(config: &TokenAuthConfig) -> Result<TokenVerifier, String> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path).map_err(|error| format!("{what} {} cannot be read: {error}", path.display()))
        };
        let bundle = config.root_cert_bundle.as_deref().map(|path| read(path, "auth.token.rootcertbundle")).transpose()?;
        let jwks = config.jwks.as_deref().map(|path| read(path, "auth.token.jwks")).transpose()?;
        TokenVerifier::new(&config.issuer, &config.service, bundle.as_deref(), jwks.as_deref(), &config.signing_algorithms)
    }

    /// Builds a verifier from the PEM bundle and JWKS contents.
    pub fn new(
        issuer: &str,
        service: &str,
        root_bundle: Option<&[u8]>,
        jwks: Option<&[u8]>,
        algorithm_names: &[String],
    ) -> Result<TokenVerifier, String> {
        let mut roots = Vec::new();
        let mut trusted = HashMap::new();
        for pem in Pem::iter_from_buffer(root_bundle.unwrap_or_default()) {
            let pem = pem.map_err(|error| format!("auth.token.rootcertbundle is not valid PEM: {error}"))?;
            if pem.label != "CERTIFICATE" {
                continue;
            }
            let (_, certificate) = X509Certificate::from_der(&pem.contents)
                .map_err(|error| format!("auth.token.rootcertbundle contains an invalid certificate: {error}"))?;
            let spki = certificate.public_key();
            match signing_key(spki) {
                Ok(key) => {
                    trusted.insert(libtrust_key_id(spki.raw), key.clone());
                    if let Some(thumbprint) = jwk_thumbprint(spki) {
                        trusted.insert(thumbprint, key);
                    }
                }
                Err(reason) => tracing::warn!(
                    subject = %certificate.subject(), %reason,
                    "root certificate's key cannot verify tokens; it can still root x5c chains"
                ),
            }
            roots.push(pem.contents);
        }
        if let Some(jwks) = jwks {
            add_jwks(jwks, &mut trusted)?;
        }
        if roots.is_empty() && trusted.is_empty() {
            return Err("auth.token needs at least one signing key: rootcertbundle and jwks contain none".to_owned());
        }

        let algorithms = if algorithm_names.is_empty() {
            DEFAULT_ALGORITHMS.to_vec()
        } else {
            algorithm_names.iter().map(|name| parse_algorithm(name)).collect::<Result<_, _>>()?
        };
        Ok(TokenVerifier { issuer: issuer.to_owned(), service: service.to_owned(), roots, trusted, algorithms })
    }

    /// Verifies `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|error| TokenError::Malformed(error.to_string()))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm(header.alg));
        }

        let key = if let Some(chain) = &header.x5c {
            self.chain_key(chain)?
        } else if let Some(jwk) = &header.jwk {
            let id = jwk.common.key_id.as_deref().unwrap_or_default();
            self.trusted_key(id)?
        } else if let Some(id) = &header.kid {
            self.trusted_key(id)?
        } else {
            return Err(TokenError::UntrustedKey("the header has no x5c, jwk or kid".to_owned()));
        };
        if !key.kind.verifies(header.alg) {
            return Err(TokenError::Algorithm(header.alg));
        }

        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.service]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let decoded = jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|error| match error.kind() {
            ErrorKind::InvalidSignature => TokenError::Signature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidIssuer => TokenError::Issuer,
            ErrorKind::InvalidAudience => TokenError::Audience,
            _ => TokenError::Malformed(error.to_string()),
        })?;
        Ok(decoded.claims)
    }

    fn trusted_key(&self, id: &str) -> Result<SigningKey, TokenError> {
        self.trusted.get(id).cloned().ok_or_else(|| TokenError::UntrustedKey(format!("no trusted key has the id {id:?}")))
    }

    /// Checks an `x5c` chain against the root certificates and returns the key of its first
    /// certificate.
    fn chain_key(&self, chain: &[String]) -> Result<SigningKey, TokenError> {
        if chain.is_empty() || chain.len() > MAX_CHAIN_LEN {
            return Err(TokenError::Chain(format!("it has {} certificates; send 1 to {MAX_CHAIN_LEN}", chain.len())));
        }
        let ders = chain
            .iter()
            .map(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| TokenError::Chain(format!("a certificate is not base64: {error}")))?;
        let certificates = ders
            .iter()
            .map(|der| X509Certificate::from_der(der).map(|(_, certificate)| certificate))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| TokenError::Chain(format!("a certificate cannot be parsed: {error}")))?;
        let roots = self
            .roots
            .iter()
            .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, root)| (der, root)))
            .collect::<Vec<_>>();

        for (index, certificate) in certificates.iter().enumerate() {
            if !certificate.validity().is_valid() {
                return Err(TokenError::Chain(format!("certificate {index} ({}) is expired or not yet valid", certificate.subject())));
            }
            if roots.iter().any(|(der, _)| **der == ders[index]) {
                break;
            }
            let signed_by_root = roots.iter().any(|(_, root)| {
                root.subject() == certificate.issuer()
                    && root.validity().is_valid()
                    && certificate.verify_signature(Some(root.public_key())).is_ok()
            });
            if signed_by_root {
                break;
            }
            let Some(next) = certificates.get(index + 1) else {
                return Err(TokenError::Chain(format!(
                    "certificate {index} ({}) is not signed by a root certificate of auth.token.rootcertbundle",
                    certificate.subject()
                )));
            };
            let next_is_ca = matches!(next.basic_constraints(), Ok(Some(constraints)) if constraints.value.ca);
            if next.subject() != certificate.issuer() || !next_is_ca || certificate.verify_signature(Some(next.public_key())).is_err() {
                return Err(TokenError::Chain(format!(
                    "certificate {index} is not signed by certificate {}, or that is not a CA",
                    index + 1
                )));
            }
        }
        signing_key(certificates[0].public_key()).map_err(TokenError::UntrustedKey)
    }
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    match Algorithm::from_str(name) {
        Ok(algorithm) if DEFAULT_ALGORITHMS.contains(&algorithm) => Ok(algorithm),
        _ => Err(format!(
            "auth.token.signingalgorithms: {name:?} is not supported; use RS256, RS384, RS512, PS256, PS384, PS512, \
             ES256, ES384 or EdDSA"
        )),
    }
}

fn add_jwks(jwks: &[u8], trusted: &mut HashMap<String, SigningKey>) -> Result<(), String> {
    let set: JwkSet = serde_json::from_slice(jwks).map_err(|error| format!("auth.token.jwks is not a JSON Web Key Set: {error}"))?;
    for jwk in &set.keys {
        let Some(id) = jwk.common.key_id.clone() else {
            tracing::warn!("auth.token.jwks contains a key without kid; tokens cannot name it, so it is skipped");
            continue;
        };
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyKind::Rsa,
            AlgorithmParameters::EllipticCurve(params) => match params.curve {
                EllipticCurve::P256 => KeyKind::Ec(Curve::P256),
                EllipticCurve::P384 => KeyKind::Ec(Curve::P384),
                EllipticCurve::P521 => KeyKind::Ec(Curve::P521),
                EllipticCurve::Ed25519 => return Err(format!("auth.token.jwks key {id:?}: Ed25519 is not an EC curve")),
            },
            AlgorithmParameters::OctetKeyPair(_) => KeyKind::Ed25519,
            AlgorithmParameters::OctetKey(_) => {
                return Err(format!("auth.token.jwks key {id:?} is a symmetric key; only public keys are supported"))
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|error| format!("auth.token.jwks key {id:?} is invalid: {error}"))?;
        trusted.insert(id, SigningKey { kind, key });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
