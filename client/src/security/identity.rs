//! Identities carried in certificates: one [`Role`] and the names of the holder.
//!
//! The role is a subject alternative name URI `kudu://role/ROLE` (exactly one per
//! certificate); the name is the subject common name (the first NAME given to
//! `kudu cert create`: a host for servers, a user for clients). Server certificates also
//! carry every NAME as a DNS or IP subject alternative name, which TLS clients verify the
//! server's address against; client and admin certificates carry none, so they can never
//! pass for a server.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use x509_parser::extensions::GeneralName;

/// Prefix of the subject alternative name URI that carries the role.
pub const ROLE_URI_PREFIX: &str = "kudu://role/";

/// What the holder of a certificate may do (see [`super::policy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A master: Raft among masters, and what masters call on tablet servers.
    Master,
    /// A tablet server: heartbeats (as itself only) and tablet traffic.
    Tserver,
    /// A person or tool administering the cluster: everything.
    Admin,
    /// An application: DDL, rows and reads, never membership changes.
    Client,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Master, Role::Tserver, Role::Admin, Role::Client];

    /// The role as written in certificates and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Tserver => "tserver",
            Role::Admin => "admin",
            Role::Client => "client",
        }
    }

    /// Whether certificates of this role identify a server (names are its addresses).
    pub fn is_server(self) -> bool {
        matches!(self, Role::Master | Role::Tserver)
    }

    /// The subject alternative name URI carrying this role.
    pub fn uri(self) -> String {
        format!("{ROLE_URI_PREFIX}{}", self.as_str())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| IdentityError::UnknownRole(s.to_string()))
    }
}

/// A certificate that does not carry a usable identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("not an X.509 certificate: {0}")]
    Parse(String),
    #[error("the certificate carries no Kudu role (a subject alternative name URI {ROLE_URI_PREFIX}ROLE)")]
    NoRole,
    #[error("the certificate carries {0} Kudu roles; exactly one is allowed")]
    ManyRoles(usize),
    #[error("unknown role '{0}' (expected master, tserver, admin or client)")]
    UnknownRole(String),
    #[error("the certificate has no subject common name")]
    NoName,
}

/// Who holds a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub role: Role,
    /// The subject common name.
    pub name: String,
    /// The common name and every DNS and IP subject alternative name.
    pub names: Vec<String>,
}

impl Identity {
    /// The identity in a DER-encoded certificate (its signature is not checked here: TLS
    /// verified the chain before the certificate reaches this).
    pub fn from_der(der: &[u8]) -> Result<Identity, IdentityError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| IdentityError::Parse(e.to_string()))?;
        let name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .ok_or(IdentityError::NoName)?
            .to_string();
        let mut names = vec![name.clone()];
        let mut roles = Vec::new();
        let san = cert.subject_alternative_name().map_err(|e| IdentityError::Parse(e.to_string()))?;
        for general in san.iter().flat_map(|san| san.value.general_names.iter()) {
            match general {
                GeneralName::URI(uri) => {
                    if let Some(role) = uri.strip_prefix(ROLE_URI_PREFIX) {
                        roles.push(role.to_string());
                    }
                }
                GeneralName::DNSName(dns) => names.push(dns.to_string()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
        names.dedup();
        let role = match roles.as_slice() {
            [] => return Err(IdentityError::NoRole),
            [one] => one.parse()?,
            many => return Err(IdentityError::ManyRoles(many.len())),
        };
        Ok(Identity { role, name, names })
    }

    /// Whether `host` (a DNS name or an IP, without port) is one of this identity's names.
    /// DNS names compare case-insensitively, IPs by value.
    pub fn is_named(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip = host.parse::<IpAddr>().ok();
        self.names.iter().any(|name| match (ip, name.parse::<IpAddr>().ok()) {
            (Some(a), Some(b)) => a == b,
            (None, None) => name.eq_ignore_ascii_case(host),
            _ => false,
        })
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} '{}'", self.role, self.name)
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The host of a `host:port` address (`[v6]:port` too); the whole string without a port.
pub fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(host, _)| host);
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => address,
    }
}
