//! Certificates of a cluster (pure parts): the settings from `spec.tls`, the names each
//! role's certificate must carry, the Secrets they live in and when to renew them
//! ([`renewal`]). The I/O step is `controller::tls`.
//!
//! One certificate per role, carrying every pod's stable DNS name (its advertised address)
//! and, for masters, the client Service's names: a StatefulSet mounts the same Secret into
//! every pod. Certificates are issued with the code of `kudu cert`
//! ([`kudu_client::security::issue`]).

pub mod renewal;

use std::time::Duration;

use crate::build::names::{self, Role};
use crate::crd::{MAX_MASTER_REPLICAS, TlsMode, TlsSpec};
use crate::validate::ValidatedSpec;

/// Where the certificates are mounted in master and tablet server pods.
pub const CERTS_DIR: &str = "/etc/kudu/certs";
/// Name of the certificates volume.
pub const CERTS_VOLUME: &str = "certs";
/// Where master pods have an `admin` certificate for the `kudu` CLI (preStop, `kubectl
/// exec`).
pub const ADMIN_CERTS_DIR: &str = "/etc/kudu/admin";
/// Name of the admin certificate volume.
pub const ADMIN_CERTS_VOLUME: &str = "admin-certs";
/// Name in the admin certificate of master pods.
pub const ADMIN_NAME: &str = "kudu-admin";
/// Environment variable naming the certificates directory (servers and the CLI in pods).
pub const ENV_CERTS_DIR: &str = kudu_client::security::CERTS_DIR_ENV;
/// Name of the operator's own (in-memory) certificate.
pub const OPERATOR_NAME: &str = "kudu-operator";
/// The key of a CA certificate in a cert-manager style Secret.
pub const TLS_CRT: &str = kudu_client::security::TLS_CERT;
/// The key of a private key in a cert-manager style Secret.
pub const TLS_KEY: &str = kudu_client::security::TLS_KEY;
/// The key of the trusted CA in a Secret.
pub const CA_CRT: &str = kudu_client::security::CA_CERT;
/// The key of the CA's private key in the operator-managed CA Secret.
pub const CA_KEY: &str = kudu_client::security::CA_KEY;
/// Validity of an operator-managed CA.
pub const CA_VALIDITY_DAYS: u32 = 3650;

/// The validated `spec.tls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// Where the CA comes from (`Disabled`: plaintext).
    pub mode: TlsMode,
    /// With mode `Secret`: the user's CA Secret.
    pub ca_secret_name: Option<String>,
    /// Validity of issued certificates.
    pub cert_validity: Duration,
    /// Renew this long before expiry.
    pub renew_before: Duration,
}

impl TlsSettings {
    /// Checks `spec` (the CRD's CEL rules, again in Rust).
    pub fn from_spec(spec: &TlsSpec) -> Result<TlsSettings, &'static str> {
        if spec.mode == TlsMode::Secret && spec.ca_secret_name.as_deref().is_none_or(str::is_empty) {
            return Err("mode Secret needs caSecretName");
        }
        if spec.cert_validity_seconds < 120 || spec.renew_before_seconds < 60 {
            return Err("certValiditySeconds must be at least 120 and renewBeforeSeconds at least 60");
        }
        if spec.renew_before_seconds >= spec.cert_validity_seconds {
            return Err("renewBeforeSeconds must be less than certValiditySeconds");
        }
        Ok(TlsSettings {
            mode: spec.mode,
            ca_secret_name: spec.ca_secret_name.clone().filter(|_| spec.mode == TlsMode::Secret),
            cert_validity: Duration::from_secs(spec.cert_validity_seconds.unsigned_abs()),
            renew_before: Duration::from_secs(spec.renew_before_seconds.unsigned_abs()),
        })
    }

    /// Whether gRPC runs over mutual TLS.
    pub fn enabled(&self) -> bool {
        self.mode.enabled()
    }
}

impl Default for TlsSettings {
    fn default() -> Self {
        // The CRD defaults are valid.
        Self::from_spec(&TlsSpec::default()).unwrap_or(TlsSettings {
            mode: TlsMode::Operator,
            ca_secret_name: None,
            cert_validity: Duration::from_secs(90 * 86_400),
            renew_before: Duration::from_secs(30 * 86_400),
        })
    }
}

/// The Secret of the operator-managed CA (`ca.crt`, `ca.key`).
pub fn ca_secret_name(cluster: &str) -> String {
    format!("{cluster}-ca")
}

/// The Secret with the certificate of a role (`ca.crt`, `tls.crt`, `tls.key`).
pub fn role_secret_name(cluster: &str, role: Role) -> String {
    format!("{cluster}-{}-tls", role.component())
}

/// The Secret with the `admin` certificate mounted in master pods for the CLI.
pub fn admin_secret_name(cluster: &str) -> String {
    format!("{cluster}-admin-tls")
}

/// The names a role's certificate carries: for every ordinal the pods may have, the pod's
/// DNS name (fully qualified, which is the advertised address, and the shorter forms), and
/// for masters the client Service's names. Masters get every ordinal up to the largest
/// allowed group, so scaling never waits for a new certificate; tablet servers up to
/// `tserver_replicas`.
pub fn server_names(spec: &ValidatedSpec, role: Role, tserver_replicas: i32) -> Vec<String> {
    let ordinals = match role {
        Role::Master => MAX_MASTER_REPLICAS,
        Role::TServer => tserver_replicas.max(spec.tservers.replicas).max(1),
    };
    let headless = names::headless_service_name(&spec.name, role);
    let ns = &spec.namespace;
    let mut out = Vec::new();
    for ordinal in 0..ordinals {
        let pod = format!("{}-{ordinal}", names::statefulset_name(&spec.name, role));
        out.push(format!("{pod}.{headless}.{ns}.svc.{}", names::CLUSTER_DOMAIN));
        out.push(format!("{pod}.{headless}.{ns}.svc"));
    }
    if role == Role::Master {
        let client = names::client_service_name(&spec.name);
        out.push(format!("{client}.{ns}.svc.{}", names::CLUSTER_DOMAIN));
        out.push(format!("{client}.{ns}.svc"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::spec;

    #[test]
    fn names_cover_every_pod_address() {
        let spec = spec("image: kudu:1\ntservers: {replicas: 2}\n");
        let masters = server_names(&spec, Role::Master, 2);
        for ordinal in 0..MAX_MASTER_REPLICAS {
            let address = names::master_address(&spec, ordinal);
            let host = address.rsplit_once(':').unwrap().0;
            assert!(masters.iter().any(|n| n == host), "{host} missing");
        }
        assert!(masters.contains(&"demo-client.db.svc.cluster.local".to_owned()));
        let tservers = server_names(&spec, Role::TServer, 4);
        assert!(tservers.contains(&"demo-tserver-3.demo-tservers.db.svc.cluster.local".to_owned()));
        assert!(!tservers.iter().any(|n| n.starts_with("demo-tserver-4.")));
    }

    #[test]
    fn settings_are_checked() {
        let ok = TlsSpec::default();
        assert_eq!(TlsSettings::from_spec(&ok).unwrap().mode, TlsMode::Operator);
        let secret_without_name = TlsSpec { mode: TlsMode::Secret, ..TlsSpec::default() };
        assert!(TlsSettings::from_spec(&secret_without_name).is_err());
        let renew_too_late = TlsSpec { cert_validity_seconds: 600, renew_before_seconds: 600, ..TlsSpec::default() };
        assert!(TlsSettings::from_spec(&renew_too_late).is_err());
        let short = TlsSpec { cert_validity_seconds: 300, renew_before_seconds: 200, ..TlsSpec::default() };
        assert_eq!(TlsSettings::from_spec(&short).unwrap().renew_before, Duration::from_secs(200));
    }
}
