//! Token signing keys taken from certificates: the `DecodingKey` of a certificate's public key,
//! and the two key ids by which a token's `kid` header names a root certificate's key.
//!
//! Docker Distribution 2.x names a key by its libtrust key id: the SHA-256 of the DER
//! `SubjectPublicKeyInfo`, cut to 240 bits and written as 48 base32 characters in 12 groups of 4
//! separated by `:` (libtrust's `keyIDFromCryptoKey`). Distribution 3.x names it by its JWK
//! thumbprint (RFC 7638, SHA-256, unpadded base64url). Both are accepted.

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use sha2::{Digest, Sha256};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// The kind of a public key, which decides the JWS algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    /// ECDSA on P-256, P-384 or P-521.
    Ec(Curve),
    Ed25519,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl KeyKind {
    /// Returns whether a token signed with `algorithm` can be verified with a key of this kind.
    pub fn verifies(self, algorithm: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => matches!(algorithm, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::Ec(Curve::P256) => algorithm == ES256,
            KeyKind::Ec(Curve::P384) => algorithm == ES384,
            // NOTE: ES512 (P-521) tokens are rejected, because jsonwebtoken 9 has no ES512.
            KeyKind::Ec(Curve::P521) => false,
            KeyKind::Ed25519 => algorithm == EdDSA,
        }
    }
}

/// A public key that verifies token signatures.
#[derive(Clone)]
pub struct SigningKey {
    pub kind: KeyKind,
    pub key: DecodingKey,
}

/// Reads the public key of a certificate, or returns why it cannot verify tokens.
pub fn signing_key(spki: &SubjectPublicKeyInfo) -> Result<SigningKey, String> {
    let bits = spki.subject_public_key.data.as_ref();
    let kind = key_kind(spki)?;
    let key = match kind {
        // The key bits of an RSA key are the PKCS#1 RSAPublicKey, those of an EC key the
        // uncompressed point and those of an Ed25519 key the raw 32 bytes: the forms
        // jsonwebtoken's constructors take.
        KeyKind::Rsa => DecodingKey::from_rsa_der(bits),
        KeyKind::Ec(_) => DecodingKey::from_ec_der(bits),
        KeyKind::Ed25519 => DecodingKey::from_ed_der(bits),
    };
    Ok(SigningKey { kind, key })
}

fn key_kind(spki: &SubjectPublicKeyInfo) -> Result<KeyKind, String> {
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_PKCS1_RSAENCRYPTION {
        return Ok(KeyKind::Rsa);
    }
    if *algorithm == OID_SIG_ED25519 {
        return Ok(KeyKind::Ed25519);
    }
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki.algorithm.parameters.as_ref().and_then(|parameters| parameters.as_oid().ok());
        return match curve {
            Some(oid) if oid == OID_EC_P256 => Ok(KeyKind::Ec(Curve::P256)),
            Some(oid) if oid == OID_NIST_EC_P384 => Ok(KeyKind::Ec(Curve::P384)),
            Some(oid) if oid == OID_NIST_EC_P521 => Ok(KeyKind::Ec(Curve::P521)),
            other => Err(format!("elliptic curve {other:?} is not supported; use P-256 or P-384")),
        };
    }
    Err(format!("public key algorithm {algorithm} is not supported; use RSA, ECDSA or Ed25519"))
}

/// Returns libtrust's key id of a DER `SubjectPublicKeyInfo`.
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    let digest = Sha256::digest(spki_der);
    let encoded = data_encoding::BASE32_NOPAD.encode(&digest[..30]);
    let groups: Vec<&str> = encoded.as_bytes().chunks(4).map(|group| std::str::from_utf8(group).unwrap_or_default()).collect();
    groups.join(":")
}

/// Returns the JWK thumbprint that Docker Distribution 3.x computes for a public key, or `None`
/// for a key type it does not name. Like Distribution, which writes Go's `big.Int.Bytes()`, the
/// EC coordinates lose their leading zero bytes.
pub fn jwk_thumbprint(spki: &SubjectPublicKeyInfo) -> Option<String> {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let json = match (key_kind(spki).ok()?, spki.parsed().ok()?) {
        (KeyKind::Rsa, PublicKey::RSA(rsa)) => {
            format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(trim_zeros(rsa.exponent)), b64(trim_zeros(rsa.modulus)))
        }
        (KeyKind::Ec(curve), PublicKey::EC(point)) => {
            let point = point.data();
            let coordinates = point.strip_prefix(&[4])?;
            let (x, y) = coordinates.split_at(coordinates.len() / 2);
            let name = match curve {
                Curve::P256 => "P-256",
                Curve::P384 => "P-384",
                Curve::P521 => "P-521",
            };
            format!(r#"{{"crv":"{name}","kty":"EC","x":"{}","y":"{}"}}"#, b64(trim_zeros(x)), b64(trim_zeros(y)))
        }
        (KeyKind::Ed25519, _) => {
            format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(spki.subject_public_key.data.as_ref()))
        }
        _ => return None,
    };
    Some(b64(&Sha256::digest(json.as_bytes())))
}

fn trim_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|byte| *byte != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;

    /// A P-256 public key with its libtrust key id and JWK thumbprint, computed outside this code.
    /// The key id is the base32 of the first 30 bytes of `openssl pkey -pubin -outform DER |
    /// sha256sum`. The thumbprint is the SHA-256 of the RFC 7638 JSON of the key's coordinates.
    const P256_SPKI_PEM: &str = include_str!("testdata/p256.pub.pem");
    const P256_KEY_ID: &str = include_str!("testdata/p256.keyid");
    const P256_THUMBPRINT: &str = include_str!("testdata/p256.thumbprint");

    fn spki_der() -> Vec<u8> {
        let body: String = P256_SPKI_PEM.lines().filter(|line| !line.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD.decode(body).unwrap()
    }

    #[test]
    fn libtrust_key_id_matches_openssl() {
        assert_eq!(libtrust_key_id(&spki_der()), P256_KEY_ID.trim());
    }

    #[test]
    fn libtrust_key_id_has_twelve_groups() {
        let id = libtrust_key_id(b"any bytes");
        let groups: Vec<&str> = id.split(':').collect();
        assert_eq!(groups.len(), 12);
        assert!(groups.iter().all(|group| group.len() == 4), "{id}");
        assert!(id.chars().all(|c| c == ':' || c.is_ascii_uppercase() || ('2'..='7').contains(&c)), "{id}");
    }

    #[test]
    fn jwk_thumbprint_matches_reference() {
        let der = spki_der();
        let (_, spki) = SubjectPublicKeyInfo::from_der(&der).unwrap();
        assert_eq!(jwk_thumbprint(&spki).as_deref(), Some(P256_THUMBPRINT.trim()));
    }

    #[test]
    fn p256_key_verifies_only_es256() {
        let der = spki_der();
        let (_, spki) = SubjectPublicKeyInfo::from_der(&der).unwrap();
        let key = signing_key(&spki).unwrap();
        assert!(key.kind.verifies(Algorithm::ES256));
        assert!(!key.kind.verifies(Algorithm::ES384));
        assert!(!key.kind.verifies(Algorithm::RS256));
        assert!(!key.kind.verifies(Algorithm::HS256));
    }
}
