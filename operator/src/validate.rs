//! The validate step: a `KuduCluster` as stored -> a [`ValidatedSpec`] the builders trust.
//!
//! The CRD schema already rejects most bad specs; this re-checks them (an older CRD may be
//! installed, and CEL may be unavailable) plus what the schema cannot see, such as the
//! length of the object's name that every derived object name builds on.

use std::collections::BTreeSet;

use crate::crd::{ALLOWED_MASTER_REPLICAS, ImagePullPolicy, KuduCluster, NetworkSpec, PodOverrides, RESERVED_FLAGS};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;

/// Longest `KuduCluster` name: derived names such as `<name>-tserver-<ordinal>` and the
/// StatefulSet's `controller-revision-hash` label must stay within 63 characters.
pub const MAX_NAME_LEN: usize = 40;

/// A spec that passed [`validate`]; the builders take only this.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedSpec {
    /// Name of the `KuduCluster`.
    pub name: String,
    /// Namespace of the `KuduCluster` and of every object built for it.
    pub namespace: String,
    /// UID of the `KuduCluster`, for owner references.
    pub uid: String,
    /// Container image.
    pub image: String,
    /// Image pull policy.
    pub image_pull_policy: ImagePullPolicy,
    /// The master role.
    pub masters: RoleSpec,
    /// The tablet server role.
    pub tservers: RoleSpec,
    /// Node label keys forming locations, outermost first.
    pub location_labels: Vec<String>,
    /// Whether masters that cannot come back are replaced automatically.
    pub replacement_enabled: bool,
    /// How long a master must be unable to run before it is replaced.
    pub replacement_grace: std::time::Duration,
    /// Transport security.
    pub tls: crate::tls::TlsSettings,
    /// Peers admitted by the cluster's NetworkPolicy besides its own pods and the operator.
    pub network: NetworkSpec,
    /// `kubectl.kubernetes.io/restartedAt` of the KuduCluster, copied into the pod templates.
    pub restarted_at: Option<String>,
    /// How long a pod restarted by a rollout may take to become healthy.
    pub rollout_member_timeout: std::time::Duration,
}

/// One validated role (masters or tablet servers).
#[derive(Clone, Debug, PartialEq)]
pub struct RoleSpec {
    /// Desired pods.
    pub replicas: i32,
    /// Container resources.
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
    /// Size of each pod's volume.
    pub storage_size: Quantity,
    /// Storage class of the claims.
    pub storage_class_name: Option<String>,
    /// Extra process flags.
    pub flags: Vec<String>,
    /// Scheduling and metadata overrides.
    pub pod_overrides: PodOverrides,
}

/// Why a `KuduCluster` cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The object has no name.
    #[error("the KuduCluster has no name")]
    MissingName,
    /// The object has no namespace.
    #[error("the KuduCluster has no namespace")]
    MissingNamespace,
    /// The object has no UID (it was not read from the API server).
    #[error("the KuduCluster has no uid")]
    MissingUid,
    /// The name is too long for the derived object names.
    #[error("name {name:?} is {len} characters; at most {MAX_NAME_LEN} are allowed")]
    NameTooLong {
        /// The name.
        name: String,
        /// Its length.
        len: usize,
    },
    /// The image is empty.
    #[error("spec.image must not be empty")]
    EmptyImage,
    /// The master count is not 1, 3, 5 or 7.
    #[error("spec.masters.replicas is {0}; it must be 1, 3, 5 or 7")]
    MasterReplicas(i32),
    /// The tablet server count is below one.
    #[error("spec.tservers.replicas is {0}; it must be at least 1")]
    TServerReplicas(i32),
    /// A storage size is not a positive quantity.
    #[error("{field} is {value:?}; it must be a positive quantity such as 10Gi")]
    StorageSize {
        /// The field path.
        field: &'static str,
        /// The rejected value.
        value: String,
    },
    /// A flag is malformed or one the operator sets itself.
    #[error("{field} contains {flag:?}: {why}")]
    Flag {
        /// The field path.
        field: &'static str,
        /// The rejected flag.
        flag: String,
        /// Why it was rejected.
        why: &'static str,
    },
    /// No topology label keys are configured.
    #[error("spec.topology.locationLabels must not be empty")]
    NoLocationLabels,
    /// A topology label key is not a valid label key.
    #[error("spec.topology.locationLabels contains {0:?}, which is not a valid label key")]
    LabelKey(String),
    /// A topology label key is listed twice.
    #[error("spec.topology.locationLabels lists {0:?} twice")]
    DuplicateLabelKey(String),
    /// A NetworkPolicy peer names neither pods, namespaces nor an IP block (in a
    /// NetworkPolicy such a peer is refused by the API server).
    #[error("{field}[{index}] must set podSelector, namespaceSelector or ipBlock")]
    EmptyPeer {
        /// The field path.
        field: &'static str,
        /// Index of the peer.
        index: usize,
    },
    /// The replacement grace period is out of range.
    #[error("spec.masterReplacement.gracePeriodSeconds is {0}; it must be 60..=86400")]
    GracePeriod(i64),
    /// The TLS settings are inconsistent.
    #[error("spec.tls: {0}")]
    Tls(&'static str),
}

/// Check `cluster` and resolve it into a [`ValidatedSpec`].
pub fn validate(cluster: &KuduCluster) -> Result<ValidatedSpec, ValidationError> {
    let name = cluster.metadata.name.clone().ok_or(ValidationError::MissingName)?;
    if name.len() > MAX_NAME_LEN {
        return Err(ValidationError::NameTooLong { len: name.len(), name });
    }
    let namespace = cluster.namespace().ok_or(ValidationError::MissingNamespace)?;
    let uid = cluster.uid().ok_or(ValidationError::MissingUid)?;
    let spec = &cluster.spec;
    if spec.image.trim().is_empty() {
        return Err(ValidationError::EmptyImage);
    }
    if !ALLOWED_MASTER_REPLICAS.contains(&spec.masters.replicas) {
        return Err(ValidationError::MasterReplicas(spec.masters.replicas));
    }
    if spec.tservers.replicas < 1 {
        return Err(ValidationError::TServerReplicas(spec.tservers.replicas));
    }
    let masters = RoleSpec {
        replicas: spec.masters.replicas,
        resources: spec.masters.resources.clone(),
        storage_size: positive_quantity("spec.masters.storage.size", &spec.masters.storage.size)?,
        storage_class_name: spec.masters.storage.storage_class_name.clone(),
        flags: check_flags("spec.masters.flags", &spec.masters.flags)?,
        pod_overrides: spec.masters.pod_overrides.clone(),
    };
    let tservers = RoleSpec {
        replicas: spec.tservers.replicas,
        resources: spec.tservers.resources.clone(),
        storage_size: positive_quantity("spec.tservers.storage.size", &spec.tservers.storage.size)?,
        storage_class_name: spec.tservers.storage.storage_class_name.clone(),
        flags: check_flags("spec.tservers.flags", &spec.tservers.flags)?,
        pod_overrides: spec.tservers.pod_overrides.clone(),
    };
    let location_labels = check_label_keys(&spec.topology.location_labels)?;
    let grace = spec.master_replacement.grace_period_seconds;
    if !(60..=86400).contains(&grace) {
        return Err(ValidationError::GracePeriod(grace));
    }
    let tls = crate::tls::TlsSettings::from_spec(&spec.tls).map_err(ValidationError::Tls)?;
    check_peers("spec.network.allowedClients", &spec.network.allowed_clients)?;
    check_peers("spec.network.metricsClients", &spec.network.metrics_clients)?;
    Ok(ValidatedSpec {
        name,
        namespace,
        uid,
        image: spec.image.clone(),
        image_pull_policy: spec.image_pull_policy,
        masters,
        tservers,
        location_labels,
        replacement_enabled: spec.master_replacement.enabled,
        replacement_grace: std::time::Duration::from_secs(grace.unsigned_abs()),
        tls,
        network: spec.network.clone(),
        restarted_at: cluster.annotations().get(crate::build::names::RESTARTED_AT_ANNOTATION).cloned(),
        rollout_member_timeout: std::time::Duration::from_secs(
            spec.rollout.member_timeout_seconds.clamp(30, 86400).unsigned_abs(),
        ),
    })
}

fn check_peers(
    field: &'static str,
    peers: &[k8s_openapi::api::networking::v1::NetworkPolicyPeer],
) -> Result<(), ValidationError> {
    match peers.iter().position(|p| p.pod_selector.is_none() && p.namespace_selector.is_none() && p.ip_block.is_none())
    {
        Some(index) => Err(ValidationError::EmptyPeer { field, index }),
        None => Ok(()),
    }
}

/// Parse a quantity like `10Gi` and require it to be greater than zero.
fn positive_quantity(field: &'static str, value: &str) -> Result<Quantity, ValidationError> {
    let bad = || ValidationError::StorageSize { field, value: value.to_owned() };
    let body = value.strip_prefix('+').unwrap_or(value);
    let number_end = body.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_end);
    let suffix_ok = matches!(
        suffix,
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E"
    ) || is_exponent(suffix);
    let number: f64 = number.parse().map_err(|_| bad())?;
    if !suffix_ok || number <= 0.0 || !number.is_finite() {
        return Err(bad());
    }
    Ok(Quantity(value.to_owned()))
}

/// Whether `s` is a decimal exponent suffix such as `e9` or `E-3`.
fn is_exponent(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(['e', 'E']) else {
        return false;
    };
    let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

fn check_flags(field: &'static str, flags: &[String]) -> Result<Vec<String>, ValidationError> {
    for flag in flags {
        let flag_name = flag.split('=').next().unwrap_or(flag);
        let name_ok = flag_name.strip_prefix("--").is_some_and(|n| {
            n.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        });
        if !name_ok {
            return Err(ValidationError::Flag {
                field,
                flag: flag.clone(),
                why: "flags must look like --name or --name=value",
            });
        }
        if RESERVED_FLAGS.contains(&flag_name) {
            return Err(ValidationError::Flag { field, flag: flag.clone(), why: "the operator sets this flag itself" });
        }
    }
    Ok(flags.to_vec())
}

fn check_label_keys(keys: &[String]) -> Result<Vec<String>, ValidationError> {
    if keys.is_empty() {
        return Err(ValidationError::NoLocationLabels);
    }
    let mut seen = BTreeSet::new();
    for key in keys {
        if !is_label_key(key) {
            return Err(ValidationError::LabelKey(key.clone()));
        }
        if !seen.insert(key.as_str()) {
            return Err(ValidationError::DuplicateLabelKey(key.clone()));
        }
    }
    Ok(keys.to_vec())
}

/// Whether `key` is a Kubernetes label key: an optional DNS-subdomain prefix of at most
/// 253 characters and `/`, then a name of 1..=63 characters from `[-A-Za-z0-9_.]` that
/// starts and ends alphanumeric (the rule [`crate::crd::LABEL_KEY_PATTERN`] encodes).
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    let alnum_ends = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphanumeric()) && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    let name_ok = (1..=63).contains(&name.len())
        && alnum_ends(name)
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    prefix_ok && name_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::cluster;

    fn error_for(spec_yaml: &str) -> ValidationError {
        validate(&cluster(spec_yaml)).unwrap_err()
    }

    #[test]
    fn defaults_resolve() {
        let spec = validate(&cluster("image: kudu:1\n")).unwrap();
        assert_eq!((spec.name.as_str(), spec.namespace.as_str(), spec.uid.as_str()), ("demo", "db", "uid-1"));
        assert_eq!(spec.masters.replicas, 3);
        assert_eq!(spec.tservers.replicas, 3);
        assert_eq!(spec.masters.storage_size, Quantity("10Gi".to_owned()));
        assert_eq!(spec.image_pull_policy, ImagePullPolicy::IfNotPresent);
        assert_eq!(spec.location_labels, crate::crd::default_location_labels());
        assert!(spec.replacement_enabled);
        assert_eq!(spec.replacement_grace, std::time::Duration::from_secs(300));
    }

    #[test]
    fn network_peers_must_name_something() {
        assert_eq!(
            error_for(
                "image: k\nnetwork:\n  allowedClients: [{podSelector: {}}]\n  metricsClients: [{ipBlock: {cidr: 10.0.0.0/8}}, {}]\n"
            ),
            ValidationError::EmptyPeer { field: "spec.network.metricsClients", index: 1 }
        );
        let spec = validate(&cluster("image: k\nnetwork: {allowedClients: [{namespaceSelector: {}}]}\n")).unwrap();
        assert_eq!(spec.network.allowed_clients.len(), 1);
    }

    #[test]
    fn rejects_bad_master_counts() {
        for n in [0, 2, 4, 8, -3] {
            assert_eq!(
                error_for(&format!("image: k\nmasters: {{replicas: {n}}}\n")),
                ValidationError::MasterReplicas(n)
            );
        }
    }

    #[test]
    fn rejects_non_positive_or_malformed_sizes() {
        for size in ["0", "0Gi", "-1Gi", "ten", "10GB", "", "1e", "Gi"] {
            assert!(
                matches!(
                    error_for(&format!("image: k\ntservers: {{storage: {{size: '{size}'}}}}\n")),
                    ValidationError::StorageSize { field: "spec.tservers.storage.size", .. }
                ),
                "{size}"
            );
        }
        for size in ["1", "10Gi", "1.5Ti", "500M", "1e9", "+3Ki", ".5Gi"] {
            assert!(
                validate(&cluster(&format!("image: k\nmasters: {{storage: {{size: '{size}'}}}}\n"))).is_ok(),
                "{size}"
            );
        }
    }

    #[test]
    fn rejects_reserved_and_malformed_flags() {
        for flag in ["--data-dir=/x", "--master-addresses", "--rpc-addr=a:1"] {
            assert!(matches!(
                error_for(&format!("image: k\nmasters: {{flags: ['{flag}']}}\n")),
                ValidationError::Flag { why: "the operator sets this flag itself", .. }
            ));
        }
        assert!(matches!(
            error_for("image: k\ntservers: {flags: [verbose]}\n"),
            ValidationError::Flag { field: "spec.tservers.flags", .. }
        ));
        assert!(validate(&cluster("image: k\nmasters: {flags: ['--data-dir-extra=1']}\n")).is_ok());
    }

    #[test]
    fn rejects_bad_or_duplicate_label_keys() {
        for key in ["bad key", "-a", "a/b/c", "Upper.case/x", "/x", "x/"] {
            assert_eq!(
                error_for(&format!("image: k\ntopology: {{locationLabels: ['{key}']}}\n")),
                ValidationError::LabelKey(key.to_owned()),
            );
        }
        assert_eq!(
            error_for("image: k\ntopology: {locationLabels: [rack, rack]}\n"),
            ValidationError::DuplicateLabelKey("rack".to_owned())
        );
        assert_eq!(error_for("image: k\ntopology: {locationLabels: []}\n"), ValidationError::NoLocationLabels);
        let long_prefix = format!("{}/zone", "a".repeat(254));
        assert!(!is_label_key(&long_prefix));
        assert!(is_label_key("example.com/rack_1.b"));
        assert!(!is_label_key(&"a".repeat(64)));
    }

    #[test]
    fn rejects_out_of_range_replicas_and_grace() {
        assert_eq!(error_for("image: k\ntservers: {replicas: 0}\n"), ValidationError::TServerReplicas(0));
        assert_eq!(
            error_for("image: k\nmasterReplacement: {gracePeriodSeconds: 5}\n"),
            ValidationError::GracePeriod(5)
        );
        assert_eq!(error_for("image: ' '\n"), ValidationError::EmptyImage);
    }

    #[test]
    fn requires_identity_and_a_short_name() {
        let mut c = cluster("image: k\n");
        c.metadata.uid = None;
        assert_eq!(validate(&c), Err(ValidationError::MissingUid));
        let mut c = cluster("image: k\n");
        c.metadata.namespace = None;
        assert_eq!(validate(&c), Err(ValidationError::MissingNamespace));
        let mut c = cluster("image: k\n");
        c.metadata.name = Some("x".repeat(MAX_NAME_LEN + 1));
        assert!(matches!(validate(&c), Err(ValidationError::NameTooLong { len: 41, .. })));
    }
}
