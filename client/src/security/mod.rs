//! Transport security, written once for servers, clients, the CLI and the operator: a
//! certificates directory (`ca.crt`, `tls.crt`, `tls.key`, as a Kubernetes TLS Secret or
//! cert-manager writes them) loaded into tonic's server and client TLS configurations
//! (mutual TLS: both sides verify the other against the cluster CA), the identity a peer's
//! certificate carries ([`identity`]), who may call what ([`policy`]), and creating the
//! certificates ([`issue`], `kudu cert`).

pub mod identity;
pub mod issue;
pub mod policy;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, ServerTlsConfig};

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

/// The certificates of one process.
pub struct TlsFiles {
    dir: PathBuf,
    ca: Certificate,
    identity: tonic::transport::Identity,
    own: Identity,
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
        let (ca_path, cert_path, key_path) = (dir.join(CA_CERT), dir.join(TLS_CERT), dir.join(TLS_KEY));
        let ca_pem = read(ca_path.clone())?;
        let cert_pem = read(cert_path.clone())?;
        let key_pem = read(key_path.clone())?;
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
                    ca.subject().as_raw() == cert.issuer().as_raw()
                        && cert.verify_signature(Some(ca.public_key())).is_ok()
                }
                (Err(e), _) => {
                    return Err(SecurityError::Invalid {
                        path: ca_path,
                        reason: format!("not an X.509 certificate: {e}"),
                    });
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
        Ok(Security::Tls(Arc::new(TlsFiles {
            dir: dir.to_path_buf(),
            ca: Certificate::from_pem(ca_pem),
            identity: tonic::transport::Identity::from_pem(cert_pem, key_pem),
            own,
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
            Security::Tls(files) if files.own.role != needed => {
                Err(SecurityError::WrongRole { path: files.dir.join(TLS_CERT), found: files.own.role, needed })
            }
            _ => Ok(()),
        }
    }

    /// The URI scheme of endpoints (`https` over TLS).
    pub fn scheme(&self) -> &'static str {
        if self.is_tls() { "https" } else { "http" }
    }

    /// The client side: verify servers against the CA (and their address against the
    /// certificate's names) and present this process's certificate. `None` in plaintext.
    pub fn client_tls(&self) -> Option<ClientTlsConfig> {
        match self {
            Security::Insecure => None,
            Security::Tls(files) => Some(
                ClientTlsConfig::new()
                    .ca_certificate(files.ca.clone())
                    .identity(files.identity.clone())
                    .timeout(HANDSHAKE_TIMEOUT),
            ),
        }
    }

    /// The server side: present this process's certificate and verify client certificates
    /// against the CA. A client without a certificate completes the handshake so that it
    /// gets a clear `UNAUTHENTICATED` answer; every RPC then requires an identity
    /// ([`policy::authorize`]). `None` in plaintext.
    pub fn server_tls(&self) -> Option<ServerTlsConfig> {
        match self {
            Security::Insecure => None,
            Security::Tls(files) => Some(
                ServerTlsConfig::new()
                    .identity(files.identity.clone())
                    .client_ca_root(files.ca.clone())
                    .client_auth_optional(true)
                    .timeout(HANDSHAKE_TIMEOUT),
            ),
        }
    }
}

/// The identity the server's authorization check attached to a request (`None` in
/// plaintext, where nothing is checked).
pub fn peer_identity<T>(request: &tonic::Request<T>) -> Option<&Identity> {
    request.extensions().get::<Identity>()
}

#[cfg(test)]
mod tests;
