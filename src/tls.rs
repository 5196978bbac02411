//! TLS for the registry port: reads `http.tls` files into a rustls server config that offers
//! HTTP/2 and HTTP/1.1 by ALPN and, with client CAs, requires verified client certificates.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::{TlsConfig, TlsVersion};

/// ALPN protocol ids in order of preference: hyper serves both on one connection.
const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Builds the acceptor of `config`. Each error names the config key and the file it concerns.
pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, String> {
    let chain = read_certificates("http.tls.certificate", &config.certificate)?;
    let key = PrivateKeyDer::from_pem_file(&config.key).map_err(|error| {
        format!(
            "http.tls.key: cannot load a private key from {}: {error}; the file must contain a PEM private key (PKCS#8, PKCS#1 or SEC1)",
            config.key.display()
        )
    })?;

    // NOTE: rustls 0.23.48 deprecates the ring provider because it lacks post-quantum key
    // exchange (X25519MLKEM768). ring builds with a C compiler alone; aws-lc-rs, which has it,
    // is the replacement once its build is checked on every target machine.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match config.minimum_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|error| format!("http.tls.minimumtls: {error}"))?;

    let builder = if config.client_cas.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for path in &config.client_cas {
            for certificate in read_certificates("http.tls.clientcas", path)? {
                roots.add(certificate).map_err(|error| {
                    format!("http.tls.clientcas: {} contains an unusable CA certificate: {error}", path.display())
                })?;
            }
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|error| format!("http.tls.clientcas: cannot verify client certificates with these CAs: {error}"))?;
        builder.with_client_cert_verifier(verifier)
    };

    let mut server = builder.with_single_cert(chain, key).map_err(|error| {
        format!(
            "http.tls.certificate and http.tls.key: {} and {} do not form a usable pair: {error}",
            config.certificate.display(),
            config.key.display()
        )
    })?;
    server.alpn_protocols = ALPN_PROTOCOLS.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Reads every certificate of a PEM file; a file with none is an error.
fn read_certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let invalid = |reason: String| format!("{key}: cannot load certificates from {}: {reason}", path.display());
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| invalid(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(error.to_string()))?;
    if certificates.is_empty() {
        return Err(invalid("the file contains no PEM certificate".to_owned()));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> TlsConfig {
        TlsConfig {
            certificate: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            client_cas: Vec::new(),
            minimum_version: TlsVersion::Tls12,
        }
    }

    #[test]
    fn missing_certificate_names_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let message = acceptor(&config(dir.path())).err().unwrap();
        assert!(message.starts_with("http.tls.certificate: "), "{message}");
        assert!(message.contains("cert.pem"), "{message}");
    }

    #[test]
    fn file_without_certificate_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), "not a certificate\n").unwrap();
        let message = acceptor(&config(dir.path())).err().unwrap();
        assert!(message.contains("contains no PEM certificate"), "{message}");
    }

    #[test]
    fn unreadable_key_names_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), generated.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), "garbage").unwrap();
        let message = acceptor(&config(dir.path())).err().unwrap();
        assert!(message.starts_with("http.tls.key: "), "{message}");
        assert!(message.contains("key.pem"), "{message}");
    }

    #[test]
    fn mismatched_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let first = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let second = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), first.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), second.signing_key.serialize_pem()).unwrap();
        let message = acceptor(&config(dir.path())).err().unwrap();
        assert!(message.contains("do not form a usable pair"), "{message}");
    }

    #[test]
    fn valid_pair_offers_h2_and_http1() {
        let dir = tempfile::tempdir().unwrap();
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), generated.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
        let acceptor = acceptor(&config(dir.path())).unwrap();
        assert_eq!(acceptor.config().alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    }
}
