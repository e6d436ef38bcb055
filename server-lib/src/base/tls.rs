//! TLS for the listening port (`wss://` and `https://` on the same port as plain connections
//! would use): a certificate chain and key read from PEM files, reloadable without dropping
//! connections (`wsp serve` reloads on SIGHUP).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use crate::{Error, Result};

/// The server's certificate and key, and the acceptor built from them.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    acceptor: RwLock<TlsAcceptor>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads a PEM certificate chain (leaf first) and its PEM private key (PKCS#8, PKCS#1 or
    /// SEC1). The error names the file and what is wrong with it.
    pub fn from_pem_files(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Arc<Self>> {
        let (cert, key) = (cert.into(), key.into());
        let acceptor = load(&cert, &key)?;
        Ok(Arc::new(Self {
            cert,
            key,
            acceptor: RwLock::new(acceptor),
        }))
    }

    /// Reads the files again; new connections use the new certificate, open ones keep theirs.
    /// On error the current certificate stays.
    pub fn reload(&self) -> Result<()> {
        let acceptor = load(&self.cert, &self.key)?;
        *self.acceptor.write().unwrap_or_else(|e| e.into_inner()) = acceptor;
        Ok(())
    }

    /// Runs the TLS handshake of a new connection with the current certificate.
    pub async fn accept(
        &self,
        tcp: tokio::net::TcpStream,
    ) -> std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
        let acceptor = self
            .acceptor
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        acceptor.accept(tcp).await
    }
}

fn load(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let bad = |path: &Path, what: String| Error::Tls(format!("{}: {what}", path.display()));
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, e.to_string()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, format!("not a PEM certificate chain ({e})")))?;
    if certs.is_empty() {
        return Err(bad(cert, "holds no certificate".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(key, format!("no PEM private key ({e})")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            Error::Tls(format!(
                "{} and {} do not make a usable certificate and key: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    // WebSocket needs HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
