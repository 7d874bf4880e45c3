//! TLS certificates for the listeners: several certificates chosen by SNI, loaded from PEM
//! files, and reloaded when the files change (cert-manager renews them in place) without
//! touching open connections: only new handshakes see the new certificate.

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One certificate chain and its key, and the names it is served for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Names given in the config; empty: the certificate's own DNS names.
    pub hosts: Vec<String>,
}

/// The TLS spec of one listener, as the config file gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsListener {
    pub certificates: Vec<CertFiles>,
    /// `None`: no HSTS header.
    pub hsts: Option<String>,
    pub http2: bool,
}

/// A listener's certificates that do not load, naming the entry and the file at fault.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct BuildError {
    /// Index into `TlsListener::certificates`.
    pub certificate: usize,
    pub error: TlsError,
}

impl BuildError {
    /// The field at fault, relative to the listener's `tls` spec.
    pub fn field(&self) -> String {
        let file = match &self.error {
            TlsError::File { is_key: true, .. } => "key",
            _ => "cert",
        };
        format!("certificates[{}].{file}", self.certificate)
    }
}

/// Loads a listener's certificates once: the resolver that serves them, and that `check`
/// builds and discards, so that what was checked is what serves.
pub fn build(spec: &TlsListener) -> Result<CertResolver, BuildError> {
    let current = Certificates::load_each(&spec.certificates)
        .map_err(|(certificate, error)| BuildError { certificate, error })?;
    Ok(CertResolver {
        files: spec.certificates.clone(),
        current: ArcSwap::from_pointee(current),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {what}")]
    File {
        path: String,
        what: String,
        /// The key file, not the certificate file, is at fault.
        is_key: bool,
    },
    #[error("{cert}: the private key in {key} does not belong to this certificate")]
    KeyMismatch { cert: String, key: String },
}

/// Everything one listener serves.
pub struct Certificates {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored as `.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field(
                "names",
                &self
                    .exact
                    .keys()
                    .chain(self.wildcard.keys())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    pingora::tls::install_default_crypto_provider();
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

fn file_error(path: &Path, what: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        what: what.to_string(),
        is_key: false,
    }
}

fn key_error(path: &Path, what: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        what: what.to_string(),
        is_key: true,
    }
}

/// Loads and checks one chain and key; returns them with the names they serve.
fn load_one(files: &CertFiles) -> Result<(Arc<CertifiedKey>, Vec<String>), TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_error(&files.cert, format!("cannot read certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&files.cert, format!("malformed PEM: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(file_error(&files.cert, "holds no certificate"));
    };
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| key_error(&files.key, format!("no usable private key: {e}")))?;
    let names = if files.hosts.is_empty() {
        dns_names(leaf).map_err(|e| file_error(&files.cert, e))?
    } else {
        files.hosts.clone()
    };
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            cert: files.cert.display().to_string(),
            key: files.key.display().to_string(),
        },
        other => key_error(&files.key, other),
    })?;
    Ok((
        Arc::new(certified),
        names.into_iter().map(|n| n.to_ascii_lowercase()).collect(),
    ))
}

/// The DNS names of a certificate's subject alternative names.
fn dns_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let names: Vec<String> = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(names)
}

impl Certificates {
    /// The first certificate is the default, served when SNI names none of the others.
    pub fn load(files: &[CertFiles]) -> Result<Certificates, TlsError> {
        Certificates::load_each(files).map_err(|(_, e)| e)
    }

    /// As `load`; a failure names the index of the entry at fault.
    fn load_each(files: &[CertFiles]) -> Result<Certificates, (usize, TlsError)> {
        let mut loaded = Vec::new();
        for (i, f) in files.iter().enumerate() {
            loaded.push(load_one(f).map_err(|e| (i, e))?);
        }
        let Some((default, _)) = loaded.first().cloned() else {
            return Err((
                0,
                TlsError::File {
                    path: "-".into(),
                    what: "a TLS listener needs a certificate".into(),
                    is_key: false,
                },
            ));
        };
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (key, names) in loaded {
            for name in names {
                match name.strip_prefix("*.") {
                    Some(rest) => wildcard
                        .entry(format!(".{rest}"))
                        .or_insert_with(|| key.clone()),
                    None => exact.entry(name).or_insert_with(|| key.clone()),
                };
            }
        }
        Ok(Certificates {
            default,
            exact,
            wildcard,
        })
    }

    fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = sni.map(str::to_ascii_lowercase) else {
            return self.default.clone();
        };
        if let Some(k) = self.exact.get(&name) {
            return k.clone();
        }
        // A wildcard covers exactly one label (RFC 6125 §6.4.3).
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(&format!(".{parent}")) {
                return k.clone();
            }
        }
        self.default.clone()
    }
}

/// The rustls resolver of one listener; its certificates can be swapped at any time.
#[derive(Debug)]
pub struct CertResolver {
    pub files: Vec<CertFiles>,
    current: ArcSwap<Certificates>,
}

impl CertResolver {
    /// Reloads from the files; keeps the certificates in use if the new ones do not load (a
    /// renewal caught half-written, a key that does not match).
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Certificates::load(&self.files)?;
        self.current.store(Arc::new(fresh));
        Ok(())
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().pick(hello.server_name()))
    }
}

/// Reloads certificates whose files changed (checked every second), for new handshakes.
/// What a certificate file looked like when last loaded.
type FileStamp = Option<(u64, std::time::SystemTime)>;

pub struct CertWatch {
    resolvers: Vec<(Arc<CertResolver>, std::sync::Mutex<Vec<FileStamp>>)>,
}

impl CertWatch {
    pub fn new(resolvers: Vec<Arc<CertResolver>>) -> CertWatch {
        let resolvers = resolvers
            .into_iter()
            .map(|r| {
                let stamps = stamps(&r.files);
                (r, std::sync::Mutex::new(stamps))
            })
            .collect();
        CertWatch { resolvers }
    }
}

fn stamps(files: &[CertFiles]) -> Vec<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    files
        .iter()
        .flat_map(|f| [&f.cert, &f.key])
        .map(|p| {
            std::fs::metadata(p).ok().map(|m| {
                (
                    m.ino() ^ m.len(),
                    m.modified().unwrap_or(std::time::UNIX_EPOCH),
                )
            })
        })
        .collect()
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for CertWatch {
    async fn start(&self, shutdown: pingora::server::ShutdownWatch) {
        crate::background::every(std::time::Duration::from_secs(1), shutdown, || async {
            for (resolver, seen) in &self.resolvers {
                let now = stamps(&resolver.files);
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                if *seen == now {
                    continue;
                }
                match resolver.reload() {
                    Ok(()) => {
                        tracing::info!("TLS certificates reloaded");
                        *seen = now;
                    }
                    // Retried next second: cert-manager may be between the two files.
                    Err(e) => tracing::warn!(error = %e, "TLS certificates changed but do not load; keeping the previous ones"),
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(dir: &Path, stem: &str) -> CertFiles {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let files = CertFiles {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
            hosts: Vec::new(),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    fn listener(certificates: Vec<CertFiles>) -> TlsListener {
        TlsListener {
            certificates,
            hsts: None,
            http2: true,
        }
    }

    #[test]
    fn certificates_that_do_not_load_are_a_build_error_naming_the_entry_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = self_signed(dir.path(), "good");
        let other = self_signed(dir.path(), "other");
        assert!(build(&listener(vec![good.clone()])).is_ok());

        let missing_cert = CertFiles {
            cert: dir.path().join("missing.crt"),
            ..good.clone()
        };
        let err = build(&listener(vec![good.clone(), missing_cert])).unwrap_err();
        assert_eq!(err.field(), "certificates[1].cert");

        let not_a_key = CertFiles {
            key: good.cert.clone(),
            ..good.clone()
        };
        let err = build(&listener(vec![not_a_key])).unwrap_err();
        assert_eq!(err.field(), "certificates[0].key");

        let mismatched = CertFiles {
            key: other.key.clone(),
            ..good
        };
        let err = build(&listener(vec![mismatched])).unwrap_err();
        assert_eq!(err.field(), "certificates[0].cert");
        assert!(err.to_string().contains("does not belong"), "{err}");
    }
}
