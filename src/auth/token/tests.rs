//! Token verification against keys and certificates made with rcgen.

use jsonwebtoken::{EncodingKey, Header};
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};
use serde_json::{json, Value};

use super::*;
use crate::auth::keys::libtrust_key_id;

const ISSUER: &str = "test-issuer";
const SERVICE: &str = "test-registry";

/// An RSA key for the RS256 case, because rcgen cannot generate RSA keys; made with
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`.
const RSA_KEY_PEM: &str = include_str!("../testdata/rsa2048.key");

struct Signer {
    key: KeyPair,
    certificate_der: Vec<u8>,
    certificate_pem: String,
}

fn params(name: &str, ca: bool) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    params.distinguished_name = subject;
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    params
}

fn self_signed(key: KeyPair, name: &str) -> Signer {
    let certificate = params(name, true).self_signed(&key).unwrap();
    Signer { certificate_der: certificate.der().to_vec(), certificate_pem: certificate.pem(), key }
}

fn signed_by(name: &str, ca: bool, issuer: &Signer, issuer_name: &str) -> Signer {
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::new(params(issuer_name, true), &issuer.key);
    let certificate = params(name, ca).signed_by(&key, &issuer).unwrap();
    Signer { certificate_der: certificate.der().to_vec(), certificate_pem: certificate.pem(), key }
}

fn verifier(roots: &[&Signer]) -> TokenVerifier {
    let bundle: String = roots.iter().map(|root| root.certificate_pem.clone()).collect();
    TokenVerifier::new(ISSUER, SERVICE, Some(bundle.as_bytes()), None, &[]).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "alice",
        "aud": SERVICE,
        "exp": now() + 300,
        "nbf": now() - 10,
        "iat": now() - 10,
        "access": [{ "type": "repository", "name": "foo/bar", "actions": ["pull", "push"] }],
    })
}

fn sign(header: Header, claims: &Value, key: &KeyPair) -> String {
    let encoding = match header.alg {
        // jsonwebtoken's DER constructor takes PKCS#1, so the PKCS#8 key goes in as PEM.
        Algorithm::RS256 => EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes()).unwrap(),
        _ => EncodingKey::from_ec_der(&key.serialize_der()),
    };
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

fn with_kid(signer: &Signer) -> Header {
    let (_, certificate) = X509Certificate::from_der(&signer.certificate_der).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(libtrust_key_id(certificate.public_key().raw));
    header
}

fn with_chain(chain: &[&Signer]) -> Header {
    let mut header = Header::new(Algorithm::ES256);
    let encoded = chain.iter().map(|signer| base64::engine::general_purpose::STANDARD.encode(&signer.certificate_der));
    header.x5c = Some(encoded.collect());
    header
}

#[test]
fn kid_of_root_key_verifies() {
    let root = self_signed(KeyPair::generate().unwrap(), "root");
    let token = sign(with_kid(&root), &claims(), &root.key);
    let claims = verifier(&[&root]).verify(&token).unwrap();
    assert_eq!(claims.subject, "alice");
    assert!(claims.grants("repository", "foo/bar", "push"));
    assert!(!claims.grants("repository", "foo/bar", "delete"));
    assert!(!claims.grants("repository", "other", "pull"));
}

#[test]
fn jwk_thumbprint_kid_verifies() {
    let root = self_signed(KeyPair::generate().unwrap(), "root");
    let (_, certificate) = X509Certificate::from_der(&root.certificate_der).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = jwk_thumbprint(certificate.public_key());
    let token = sign(header, &claims(), &root.key);
    assert!(verifier(&[&root]).verify(&token).is_ok());
}

#[test]
fn rs256_token_verifies() {
    let key = KeyPair::from_pem(RSA_KEY_PEM).unwrap();
    let root = self_signed(key, "rsa root");
    let mut header = with_kid(&root);
    header.alg = Algorithm::RS256;
    let token = sign(header, &claims(), &root.key);
    assert!(verifier(&[&root]).verify(&token).is_ok());
}

#[test]
fn es384_token_verifies() {
    let root = self_signed(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(), "p384 root");
    let mut header = with_kid(&root);
    header.alg = Algorithm::ES384;
    let token = sign(header, &claims(), &root.key);
    assert!(verifier(&[&root]).verify(&token).is_ok());
}

#[test]
fn x5c_chain_through_intermediate_verifies() {
    let root = self_signed(KeyPair::generate().unwrap(), "root");
    let intermediate = signed_by("intermediate", true, &root, "root");
    let leaf = signed_by("leaf", false, &intermediate, "intermediate");
    let token = sign(with_chain(&[&leaf, &intermediate]), &claims(), &leaf.key);
    assert!(verifier(&[&root]).verify(&token).is_ok());

    let token = sign(with_chain(&[&leaf, &intermediate, &root]), &claims(), &leaf.key);
    assert!(verifier(&[&root]).verify(&token).is_ok());
}

#[test]
fn x5c_chain_not_rooted_in_bundle_is_rejected() {
    let root = self_signed(KeyPair::generate().unwrap(), "root");
    let stranger = self_signed(KeyPair::generate().unwrap(), "root");
    let leaf = signed_by("leaf", false, &stranger, "root");
    let token = sign(with_chain(&[&leaf]), &claims(), &leaf.key);
    assert!(matches!(verifier(&[&root]).verify(&token), Err(TokenError::Chain(_))));

    let token = sign(with_chain(&[&leaf, &stranger]), &claims(), &leaf.key);
    assert!(matches!(verifier(&[&root]).verify(&token), Err(TokenError::Chain(_))));
}

#[test]
fn x5c_intermediate_must_be_a_ca() {
    let root = self_signed(KeyPair::generate().unwrap(), "root");
    let not_ca = signed_by("middle", false, &root, "root");
    let leaf = signed_by("leaf", false, &not_ca, "middle");
    let token = sign(with_chain(&[&leaf, &not_ca]), &claims(), &leaf.key);
    assert!(matches!(verifier(&[&root]).verify(&token), Err(TokenError::Chain(_))));
}

#[test]
fn x5c_leaf_key_must_have_signed() {
    let root = self_signed(KeyPair::generate().unwrap(), "root");
    let leaf = signed_by("leaf", false, &root, "root");
    let other = KeyPair::generate().unwrap();
    let token = sign(with_chain(&[&leaf]), &claims(), &other);
    assert_eq!(verifier(&[&root]).verify(&token), Err(TokenError::Signature));
}

#[test]
fn bad_signature_is_rejected() {
    let root = self_signed(KeyPair::generate().unwrap(), "root");
    let token = sign(with_kid(&root), &claims(), &root.key);
    let (rest, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[10] ^= 1;
    let tampered = format!("{rest}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    assert_eq!(verifier(&[&root]).verify(&tampered), Err(TokenError::Signature));
}

#[test]
fn unknown_kid_is_rejected() {
    let root = self_signed(KeyPair::generate().unwrap(), "root");
    let other = self_signed(KeyPair::generate().unwrap(), "other");
    let token = sign(with_kid(&other), &claims(), &other.key);
    assert!(matches!(verifier(&[&root]).verify(&token), Err(TokenError::UntrustedKey(_))));
}

#[test]
fn claims_are_checked() {
    let root = self_signed(KeyPair::generate().unwrap(), "root");
    let verifier = verifier(&[&root]);
    let check = |edit: &dyn Fn(&mut Value)| {
        let mut claims = claims();
        edit(&mut claims);
        verifier.verify(&sign(with_kid(&root), &claims, &root.key))
    };

    assert_eq!(check(&|c| c["exp"] = json!(now() - 120)), Err(TokenError::Expired));
    assert!(check(&|c| c["exp"] = json!(now() - 30)).is_ok(), "within the leeway");
    assert_eq!(check(&|c| c["nbf"] = json!(now() + 120)), Err(TokenError::NotYetValid));
    assert!(check(&|c| c["nbf"] = json!(now() + 30)).is_ok(), "within the leeway");
    assert_eq!(check(&|c| c["iss"] = json!("someone-else")), Err(TokenError::Issuer));
    assert_eq!(check(&|c| c["aud"] = json!("other-registry")), Err(TokenError::Audience));
    assert!(check(&|c| c["aud"] = json!(["other", SERVICE])).is_ok(), "aud may be a list");
    assert!(matches!(check(&|c| { c.as_object_mut().unwrap().remove("exp"); }), Err(TokenError::Malformed(_))));
    assert!(check(&|c| c["access"] = Value::Null).unwrap().access.is_empty());
}

#[test]
fn algorithm_must_match_key_and_list() {
    let root = self_signed(KeyPair::generate().unwrap(), "root");
    let token = sign(with_kid(&root), &claims(), &root.key);
    let only_rsa = TokenVerifier::new(ISSUER, SERVICE, Some(root.certificate_pem.as_bytes()), None, &["RS256".to_owned()]).unwrap();
    assert_eq!(only_rsa.verify(&token), Err(TokenError::Algorithm(Algorithm::ES256)));

    let hmac = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(), &EncodingKey::from_secret(b"k")).unwrap();
    assert_eq!(verifier(&[&root]).verify(&hmac), Err(TokenError::Algorithm(Algorithm::HS256)));
    assert!(TokenVerifier::new(ISSUER, SERVICE, Some(root.certificate_pem.as_bytes()), None, &["HS256".to_owned()]).is_err());
}

#[test]
fn malformed_token_is_rejected() {
    let root = self_signed(KeyPair::generate().unwrap(), "root");
    for token in ["", "abc", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30"] {
        assert!(matches!(verifier(&[&root]).verify(token), Err(TokenError::Malformed(_))), "{token:?}");
    }
}

#[test]
fn jwks_key_verifies_by_kid() {
    let key = KeyPair::generate().unwrap();
    let der = key.public_key_raw().to_vec();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwks = json!({ "keys": [{ "kty": "EC", "crv": "P-256", "kid": "my-key", "x": b64(&der[1..33]), "y": b64(&der[33..]) }] });
    let verifier = TokenVerifier::new(ISSUER, SERVICE, None, Some(jwks.to_string().as_bytes()), &[]).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("my-key".to_owned());
    assert!(verifier.verify(&sign(header, &claims(), &key)).is_ok());
}

#[test]
fn bundle_without_keys_is_an_error() {
    let error = TokenVerifier::new(ISSUER, SERVICE, Some(b""), None, &[]).err().unwrap();
    assert!(error.contains("at least one signing key"), "{error}");
}
