//! Creating a cluster CA and the certificates it signs (`kudu cert`): ECDSA P-256 keys,
//! the role as a subject alternative name URI (see [`super::identity`]), written as a
//! Kubernetes TLS Secret / cert-manager would (`ca.crt`, `tls.crt`, `tls.key`), keys 0600.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};

use super::identity::Role;
use super::{CA_CERT, CA_KEY, TLS_CERT, TLS_KEY};

/// Default validity of a CA, in days.
pub const CA_DAYS: u32 = 3650;
/// Default validity of a server or client certificate, in days.
pub const CERT_DAYS: u32 = 365;

/// Creating or writing certificates failed.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("{0} exists; refusing to overwrite it")]
    Exists(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("invalid name '{name}': {reason}")]
    InvalidName { name: String, reason: String },
    #[error("give at least one NAME (host names or IPs for servers, a user name for clients)")]
    NoName,
    #[error("a {0} certificate names one user; give exactly one NAME")]
    OneUser(Role),
    #[error("the CA in {path} cannot be used: {reason}")]
    BadCa { path: PathBuf, reason: String },
    #[error("creating the certificate failed: {0}")]
    Create(#[from] rcgen::Error),
}

/// A certificate and its private key, PEM-encoded.
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

fn validity(params: &mut CertificateParams, days: u32) {
    validity_for(params, std::time::Duration::from_secs(u64::from(days.max(1)) * 86_400));
}

fn validity_for(params: &mut CertificateParams, valid_for: std::time::Duration) {
    let now = time::OffsetDateTime::now_utc();
    // An hour back, for clocks a little behind the issuer's.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::seconds(i64::try_from(valid_for.as_secs()).unwrap_or(i64::MAX / 2).max(1));
    let mut serial = [0u8; 16];
    rand::rng().fill(&mut serial);
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
}

/// A new self-signed CA named `common_name`, valid for `days`.
pub fn create_ca(common_name: &str, days: u32) -> Result<Pair, IssueError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, days);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(Pair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// A certificate for `role` and `names`, signed by `ca`, valid for `days`. Servers get every
/// name as a DNS or IP subject alternative name (verified against the address clients dial);
/// clients and admins get exactly one name, in the subject only.
pub fn create_cert(ca: &Pair, role: Role, names: &[String], days: u32) -> Result<Pair, IssueError> {
    create_cert_valid_for(ca, role, names, std::time::Duration::from_secs(u64::from(days.max(1)) * 86_400))
}

/// Like [`create_cert`], valid for `valid_for` (the operator issues short-lived
/// certificates it renews; tests use minutes).
pub fn create_cert_valid_for(
    ca: &Pair,
    role: Role,
    names: &[String],
    valid_for: std::time::Duration,
) -> Result<Pair, IssueError> {
    let first = names.first().ok_or(IssueError::NoName)?;
    if !role.is_server() && names.len() != 1 {
        return Err(IssueError::OneUser(role));
    }
    for name in names {
        if name.is_empty() || name.len() > 253 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(IssueError::InvalidName {
                name: name.clone(),
                reason: "empty, too long or with spaces".into(),
            });
        }
    }
    let mut params = if role.is_server() {
        CertificateParams::new(names.to_vec())
            .map_err(|e| IssueError::InvalidName { name: names.join(","), reason: e.to_string() })?
    } else {
        CertificateParams::default()
    };
    let role_uri = role.uri().try_into().map_err(IssueError::Create)?;
    params.subject_alt_names.push(SanType::URI(role_uri));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, first.as_str());
    dn.push(DnType::OrganizationalUnitName, role.as_str());
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = if role.is_server() {
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]
    } else {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    };
    params.use_authority_key_identifier_extension = true;
    validity_for(&mut params, valid_for);
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Writes `contents` to a new file `path` with `mode`; refuses an existing file unless
/// `overwrite`.
fn write_file(path: &Path, contents: &str, mode: u32, overwrite: bool) -> Result<(), IssueError> {
    let mut options = OpenOptions::new();
    options.write(true).mode(mode);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            IssueError::Exists(path.to_path_buf())
        } else {
            IssueError::Write { path: path.to_path_buf(), source }
        }
    })?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| IssueError::Write { path: path.to_path_buf(), source })?;
    // An existing file keeps its mode on open: set it.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(|source| IssueError::Write { path: path.to_path_buf(), source })
}

fn create_dir(dir: &Path) -> Result<(), IssueError> {
    std::fs::create_dir_all(dir).map_err(|source| IssueError::Write { path: dir.to_path_buf(), source })
}

fn refuse_existing(paths: &[PathBuf]) -> Result<(), IssueError> {
    match paths.iter().find(|p| p.exists()) {
        Some(p) => Err(IssueError::Exists(p.clone())),
        None => Ok(()),
    }
}

/// Creates a CA and writes `ca.crt` and `ca.key` (0600) into `dir`; refuses to overwrite.
pub fn write_ca(dir: &Path, common_name: &str, days: u32) -> Result<(), IssueError> {
    create_dir(dir)?;
    refuse_existing(&[dir.join(CA_CERT), dir.join(CA_KEY)])?;
    let ca = create_ca(common_name, days)?;
    write_file(&dir.join(CA_KEY), &ca.key_pem, 0o600, false)?;
    write_file(&dir.join(CA_CERT), &ca.cert_pem, 0o644, false)
}

/// Reads the CA (`ca.crt`, `ca.key`) from `ca_dir`.
pub fn read_ca(ca_dir: &Path) -> Result<Pair, IssueError> {
    let read = |name: &str| {
        let path = ca_dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| IssueError::Read { path, source })
    };
    Ok(Pair { cert_pem: read(CA_CERT)?, key_pem: read(CA_KEY)? })
}

/// Creates a certificate for `role` and `names` signed by the CA in `ca_dir` and writes
/// `ca.crt`, `tls.crt` and `tls.key` (0600) into `out`; refuses to overwrite unless
/// `overwrite`.
pub fn write_cert(
    ca_dir: &Path,
    out: &Path,
    role: Role,
    names: &[String],
    days: u32,
    overwrite: bool,
) -> Result<(), IssueError> {
    let ca = read_ca(ca_dir)?;
    let pair = create_cert(&ca, role, names, days).map_err(|e| match e {
        IssueError::Create(e) => IssueError::BadCa { path: ca_dir.to_path_buf(), reason: e.to_string() },
        other => other,
    })?;
    create_dir(out)?;
    if !overwrite {
        refuse_existing(&[out.join(TLS_KEY), out.join(TLS_CERT), out.join(CA_CERT)])?;
    }
    write_file(&out.join(TLS_KEY), &pair.key_pem, 0o600, overwrite)?;
    write_file(&out.join(TLS_CERT), &pair.cert_pem, 0o644, overwrite)?;
    write_file(&out.join(CA_CERT), &ca.cert_pem, 0o644, overwrite)
}

/// When the first certificate of PEM `cert_pem` expires (`None` if it does not parse).
pub fn not_after(cert_pem: &[u8]) -> Option<std::time::SystemTime> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).ok()?;
    let secs = cert.validity().not_after.timestamp();
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).ok()?))
}

/// The DNS and IP names a certificate of PEM `cert_pem` is valid for, sorted (`None` if it
/// does not parse).
pub fn names_of(cert_pem: &[u8]) -> Option<Vec<String>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem).ok()?;
    let mut names = super::identity::Identity::from_der(&pem.contents).ok()?.names;
    names.sort();
    names.dedup();
    Some(names)
}
