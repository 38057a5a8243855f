//! TLS for the receivers: certificate, key and optional client CA read and
//! checked once at configuration time, so a bad file is a configuration
//! error (with its path) rather than a failure at the first connection.
//!
//! Invariant: rustls uses the `ring` provider everywhere in the collector,
//! passed explicitly, so the build never depends on which provider another
//! crate's features happened to enable.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// A checked TLS setup for one listener.
#[derive(Clone)]
pub struct TlsSettings {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca_pem: Option<Vec<u8>>,
    /// rustls configuration for HTTP (ALPN `h2`, `http/1.1`).
    pub server_config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("mutual", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// What is wrong with a TLS setup.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("no PEM certificate found")]
    NoCertificate,
    #[error("invalid PEM certificate: {0}")]
    Certificate(String),
    #[error("no usable PEM private key: {0}")]
    Key(String),
    #[error("invalid client CA: {0}")]
    ClientCa(String),
    #[error("certificate and key do not form a valid server identity: {0}")]
    Identity(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes `ring` the process default, for code (tonic's TLS acceptor) that
/// asks rustls for the default provider. A provider installed before is
/// kept.
pub fn install_crypto_provider() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

fn certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

impl TlsSettings {
    /// Checks the PEM data and builds the rustls configuration.
    pub fn new(
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
        client_ca_pem: Option<Vec<u8>>,
    ) -> Result<TlsSettings, TlsError> {
        let chain = certs(&cert_pem).map_err(TlsError::Certificate)?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let key =
            PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Identity(e.to_string()))?;
        let builder = match &client_ca_pem {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                let ca_certs = certs(ca).map_err(TlsError::ClientCa)?;
                if ca_certs.is_empty() {
                    return Err(TlsError::ClientCa("no PEM certificate found".into()));
                }
                for c in ca_certs {
                    roots
                        .add(c)
                        .map_err(|e| TlsError::ClientCa(e.to_string()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| TlsError::ClientCa(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Identity(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsSettings {
            cert_pem,
            key_pem,
            client_ca_pem,
            server_config: Arc::new(config),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_generated_identity_and_refuses_garbage() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = ck.cert.pem().into_bytes();
        let key = ck.signing_key.serialize_pem().into_bytes();
        let t = TlsSettings::new(cert.clone(), key.clone(), Some(cert.clone())).unwrap();
        assert!(t.client_ca_pem.is_some());
        assert!(matches!(
            TlsSettings::new(b"nothing".to_vec(), key.clone(), None),
            Err(TlsError::NoCertificate)
        ));
        assert!(matches!(
            TlsSettings::new(cert.clone(), b"nothing".to_vec(), None),
            Err(TlsError::Key(_))
        ));
        let other = rcgen::generate_simple_self_signed(vec!["x".to_string()]).unwrap();
        assert!(matches!(
            TlsSettings::new(cert, other.signing_key.serialize_pem().into_bytes(), None),
            Err(TlsError::Identity(_))
        ));
    }
}
