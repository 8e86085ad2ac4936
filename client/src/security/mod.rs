//! Transport security, written once for servers, clients, the CLI and the operator: a
//! certificates directory (`ca.crt`, `tls.crt`, `tls.key`, as a Kubernetes TLS Secret or
//! cert-manager writes them) loaded into tonic's server and client TLS configurations
//! (mutual TLS: both sides verify the other against the cluster CA), the identity a peer's
//! certificate carries ([`identity`]), who may call what ([`policy`]), and creating the
//! certificates ([`issue`], `kudu cert`).

pub mod identity;
pub mod issue;
pub mod policy;
mod server;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig};

pub use identity::{Identity, IdentityError, Role};

/// The cluster CA's certificate.
pub const CA_CERT: &str = "ca.crt";
/// The cluster CA's private key (only in the CA's own directory).
pub const CA_KEY: &str = "ca.key";
/// This process's certificate.
pub const TLS_CERT: &str = "tls.crt";
/// This process's private key.
pub const TLS_KEY: &str = "tls.key";
/// Environment variable naming the certificates directory (`--certs-dir`).
pub const CERTS_DIR_ENV: &str = "KUDU_CERTS_DIR";

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Transport security could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(
        "no transport security chosen: add --certs-dir DIR (or set KUDU_CERTS_DIR) for mutual TLS, or --insecure for plaintext"
    )]
    NotChosen,
    #[error("--certs-dir and --insecure exclude each other: give one")]
    Both,
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path} is a {found} certificate; this process needs one of role {needed}")]
    WrongRole { path: PathBuf, found: Role, needed: Role },
}

/// The PEM files of one process, checked: the CA, this process's certificate and key.
struct Loaded {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    ca: Certificate,
    identity: tonic::transport::Identity,
    /// `None` for a client-only security ([`Security::client_from_pem`]).
    server: Option<Arc<rustls::ServerConfig>>,
}

/// The certificates of one process. Renewed files are picked up by [`TlsFiles::reload`]
/// (servers call it periodically): new connections then use them, established ones keep
/// theirs. The role may not change on reload.
pub struct TlsFiles {
    /// Where the files are read from (`None`: given in memory, e.g. the operator's own).
    dir: Option<PathBuf>,
    own: Identity,
    current: RwLock<Arc<Loaded>>,
    /// Bumped on every reload that changed the files; channel pools start over on change.
    generation: AtomicU64,
}

/// How a process talks gRPC: plaintext (`--insecure`) or mutual TLS with its certificates.
#[derive(Clone, Debug, Default)]
pub enum Security {
    /// Plaintext, no authentication (`--insecure`). The library default; every command and
    /// server makes the choice explicitly ([`Security::from_flags`]).
    #[default]
    Insecure,
    /// Mutual TLS with the certificates of a directory.
    Tls(Arc<TlsFiles>),
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsFiles").field("dir", &self.dir).field("identity", &self.own).finish_non_exhaustive()
    }
}

fn read(path: PathBuf) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(&path).map_err(|source| SecurityError::Read { path, source })
}

/// The DER of the first certificate in PEM `bytes` read from `path`.
fn first_der(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, SecurityError> {
    let invalid = |reason: String| SecurityError::Invalid { path: path.to_path_buf(), reason };
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(bytes).map_err(|e| invalid(format!("not a PEM certificate: {e}")))?;
    Ok(pem.contents)
}

/// The PEM files of a process (read from a directory, or given in memory).
#[derive(Clone)]
pub struct PemFiles {
    /// `ca.crt`: the CA (or CAs) peers are verified against.
    pub ca: Vec<u8>,
    /// `tls.crt`: this process's certificate.
    pub cert: Vec<u8>,
    /// `tls.key`: its private key.
    pub key: Vec<u8>,
}

impl PemFiles {
    /// Reads `ca.crt`, `tls.crt` and `tls.key` from `dir`.
    pub fn read(dir: &Path) -> Result<PemFiles, SecurityError> {
        Ok(PemFiles { ca: read(dir.join(CA_CERT))?, cert: read(dir.join(TLS_CERT))?, key: read(dir.join(TLS_KEY))? })
    }
}

/// Checks `pem` (named as if read from `dir`, or from the file names alone) and prepares
/// the client configuration, and the server one when `serve` (it is built either way: that
/// checks the key against the certificate).
fn check(dir: Option<&Path>, pem: PemFiles, serve: bool) -> Result<(Identity, Loaded), SecurityError> {
    let at = |name: &str| dir.map_or_else(|| PathBuf::from(name), |d| d.join(name));
    let (ca_path, cert_path, key_path) = (at(CA_CERT), at(TLS_CERT), at(TLS_KEY));
    let PemFiles { ca: ca_pem, cert: cert_pem, key: key_pem } = pem;
    if !String::from_utf8_lossy(&key_pem).contains("PRIVATE KEY") {
        return Err(SecurityError::Invalid { path: key_path, reason: "not a PEM private key".into() });
    }
    let ca_der = first_der(&ca_path, &ca_pem)?;
    let cert_der = first_der(&cert_path, &cert_pem)?;
    let own = Identity::from_der(&cert_der)
        .map_err(|e| SecurityError::Invalid { path: cert_path.clone(), reason: e.to_string() })?;
    let issued_by_ca =
        match (x509_parser::parse_x509_certificate(&ca_der), x509_parser::parse_x509_certificate(&cert_der)) {
            (Ok((_, ca)), Ok((_, cert))) => {
                ca.subject().as_raw() == cert.issuer().as_raw() && cert.verify_signature(Some(ca.public_key())).is_ok()
            }
            (Err(e), _) => {
                return Err(SecurityError::Invalid { path: ca_path, reason: format!("not an X.509 certificate: {e}") });
            }
            (_, Err(e)) => {
                return Err(SecurityError::Invalid {
                    path: cert_path,
                    reason: format!("not an X.509 certificate: {e}"),
                });
            }
        };
    if !issued_by_ca {
        return Err(SecurityError::Invalid {
            path: cert_path,
            reason: format!("not issued by the CA in {}", ca_path.display()),
        });
    }
    let server = server::config(&ca_pem, &cert_pem, &key_pem)
        .map_err(|reason| SecurityError::Invalid { path: cert_path, reason })?;
    let loaded = Loaded {
        ca: Certificate::from_pem(ca_pem.clone()),
        identity: tonic::transport::Identity::from_pem(cert_pem.clone(), key_pem.clone()),
        server: serve.then(|| Arc::new(server)),
        ca_pem,
        cert_pem,
        key_pem,
    };
    Ok((own, loaded))
}

impl Security {
    /// The choice of `--certs-dir DIR` (or `KUDU_CERTS_DIR`, already folded in by clap) or
    /// `--insecure`; neither is an error naming both flags.
    pub fn from_flags(certs_dir: Option<&Path>, insecure: bool) -> Result<Security, SecurityError> {
        match (certs_dir, insecure) {
            (Some(_), true) => Err(SecurityError::Both),
            (Some(dir), false) => Security::load(dir),
            (None, true) => Ok(Security::Insecure),
            (None, false) => Err(SecurityError::NotChosen),
        }
    }

    /// Loads `ca.crt`, `tls.crt` and `tls.key` from `dir` and checks that the certificate
    /// carries a role and was issued by the CA.
    pub fn load(dir: &Path) -> Result<Security, SecurityError> {
        let (own, loaded) = check(Some(dir), PemFiles::read(dir)?, true)?;
        Ok(Security::Tls(Arc::new(TlsFiles {
            dir: Some(dir.to_path_buf()),
            own,
            current: RwLock::new(Arc::new(loaded)),
            generation: AtomicU64::new(0),
        })))
    }

    /// Mutual TLS with certificates held in memory (checked as [`Security::load`] does).
    pub fn from_pem(pem: PemFiles) -> Result<Security, SecurityError> {
        Self::in_memory(pem, true)
    }

    /// As [`Security::from_pem`], for a process that only calls others (the operator, one
    /// per cluster it manages): no server configuration is kept, [`Security::server_config`]
    /// is `None` (rustls' server session cache alone takes ~25 KiB).
    pub fn client_from_pem(pem: PemFiles) -> Result<Security, SecurityError> {
        Self::in_memory(pem, false)
    }

    fn in_memory(pem: PemFiles, serve: bool) -> Result<Security, SecurityError> {
        let (own, loaded) = check(None, pem, serve)?;
        Ok(Security::Tls(Arc::new(TlsFiles {
            dir: None,
            own,
            current: RwLock::new(Arc::new(loaded)),
            generation: AtomicU64::new(0),
        })))
    }

    /// Whether gRPC runs over TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Security::Tls(_))
    }

    /// The identity this process presents (none in plaintext).
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Security::Insecure => None,
            Security::Tls(files) => Some(&files.own),
        }
    }

    /// Refuses a certificate of another role than `needed` (a master must present a master
    /// certificate, and so on). Plaintext passes.
    pub fn require_role(&self, needed: Role) -> Result<(), SecurityError> {
        match self {
            Security::Tls(files) if files.own.role != needed => Err(SecurityError::WrongRole {
                path: files.dir.as_deref().map_or_else(|| PathBuf::from(TLS_CERT), |d| d.join(TLS_CERT)),
                found: files.own.role,
                needed,
            }),
            _ => Ok(()),
        }
    }

    /// The URI scheme of endpoints (`https` over TLS).
    pub fn scheme(&self) -> &'static str {
        if self.is_tls() { "https" } else { "http" }
    }

    /// Re-reads the certificates directory and, when the files changed and check out
    /// (same role, issued by the CA, key matching), uses them from now on. `Ok(true)` when
    /// they changed; an invalid new set (e.g. caught half-written) is an error and the
    /// previous one stays. Plaintext and in-memory certificates: `Ok(false)`.
    pub fn reload(&self) -> Result<bool, SecurityError> {
        let Security::Tls(files) = self else {
            return Ok(false);
        };
        let Some(dir) = files.dir.as_deref() else {
            return Ok(false);
        };
        let pem = PemFiles::read(dir)?;
        {
            let current = files.current();
            if current.ca_pem == pem.ca && current.cert_pem == pem.cert && current.key_pem == pem.key {
                return Ok(false);
            }
        }
        let (own, loaded) = check(Some(dir), pem, true)?;
        if own.role != files.own.role {
            return Err(SecurityError::WrongRole { path: dir.join(TLS_CERT), found: own.role, needed: files.own.role });
        }
        *files.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        files.generation.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    /// A number that changes whenever [`Security::reload`] took new certificates (0 in
    /// plaintext).
    pub fn generation(&self) -> u64 {
        match self {
            Security::Insecure => 0,
            Security::Tls(files) => files.generation.load(Ordering::SeqCst),
        }
    }

    /// The certificate this process presents now, PEM (none in plaintext).
    pub fn cert_pem(&self) -> Option<Vec<u8>> {
        match self {
            Security::Insecure => None,
            Security::Tls(files) => Some(files.current().cert_pem.clone()),
        }
    }

    /// The CA (or CAs) this process trusts now, PEM (none in plaintext).
    pub fn ca_pem(&self) -> Option<Vec<u8>> {
        match self {
            Security::Insecure => None,
            Security::Tls(files) => Some(files.current().ca_pem.clone()),
        }
    }

    /// The client side: verify servers against the CA (and their address against the
    /// certificate's names) and present this process's certificate. `None` in plaintext.
    pub fn client_tls(&self) -> Option<ClientTlsConfig> {
        match self {
            Security::Insecure => None,
            Security::Tls(files) => {
                let current = files.current();
                Some(
                    ClientTlsConfig::new()
                        .ca_certificate(current.ca.clone())
                        .identity(current.identity.clone())
                        .timeout(HANDSHAKE_TIMEOUT),
                )
            }
        }
    }

    /// The server side, for each new connection: present this process's current
    /// certificate and verify client certificates against the CA. A client without a
    /// certificate completes the handshake so that it gets a clear `UNAUTHENTICATED`
    /// answer; every RPC then requires an identity ([`policy::authorize`]). `None` in
    /// plaintext, and for a client-only security ([`Security::client_from_pem`]).
    pub fn server_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        match self {
            Security::Insecure => None,
            Security::Tls(files) => files.current().server.clone(),
        }
    }
}

impl TlsFiles {
    fn current(&self) -> Arc<Loaded> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// How long a TLS handshake may take on the server side.
pub const SERVER_HANDSHAKE_TIMEOUT: Duration = HANDSHAKE_TIMEOUT;

/// The identity the server's authorization check attached to a request (`None` in
/// plaintext, where nothing is checked).
pub fn peer_identity<T>(request: &tonic::Request<T>) -> Option<&Identity> {
    request.extensions().get::<Identity>()
}

#[cfg(test)]
mod tests;
