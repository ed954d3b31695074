//! HTTPS on the main listener: rustls (aws-lc-rs), HTTP/2 and HTTP/1.1
//! through ALPN, and certificates reloaded when their files change — as
//! cert-manager and Kubernetes Secret updates do, by swapping a symlink —
//! without dropping a connection: new handshakes get the new certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the certificate files are checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificates from {path}: {reason}")]
    Certs { path: String, reason: String },
    #[error("cannot read the private key from {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("the key in {0} is not a supported RSA, ECDSA or Ed25519 key, or does not match the certificate")]
    Unsupported(String),
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Loads a certificate chain and its key.
pub fn load(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Certs {
            path: cert_file.display().to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certs {
            path: cert_file.display().to_string(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Key {
        path: key_file.display().to_string(),
        reason: e.to_string(),
    })?;
    let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|_| TlsError::Unsupported(key_file.display().to_string()))?;
    let ck = CertifiedKey::new(certs, signer);
    ck.keys_match()
        .map_err(|_| TlsError::Unsupported(key_file.display().to_string()))?;
    Ok(ck)
}

/// Hands every handshake the current certificate.
#[derive(Debug)]
pub struct Reloading {
    current: RwLock<Arc<CertifiedKey>>,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// When a file last changed (following symlinks, so a swapped link counts).
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl Reloading {
    pub fn new(cert_file: &Path, key_file: &Path) -> Result<Arc<Self>, TlsError> {
        let ck = load(cert_file, key_file)?;
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(ck)),
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
        }))
    }

    /// The rustls server configuration: ALPN h2 then http/1.1.
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut cfg = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(cfg)
    }

    /// Watches the files and swaps in a new certificate when they change;
    /// a broken new pair is logged and the running one kept.
    pub async fn watch(self: Arc<Self>) {
        let mut seen = (stamp(&self.cert_file), stamp(&self.key_file));
        loop {
            tokio::time::sleep(RELOAD_CHECK).await;
            let now = (stamp(&self.cert_file), stamp(&self.key_file));
            if now == seen {
                continue;
            }
            seen = now;
            match load(&self.cert_file, &self.key_file) {
                Ok(ck) => {
                    *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ck);
                    tracing::info!(cert = %self.cert_file.display(), "TLS certificate reloaded");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "new TLS certificate is unusable; keeping the current one")
                }
            }
        }
    }
}
