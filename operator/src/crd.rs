//! The `KuduCluster` custom resource (`kudu.dev/v1alpha1`).
//!
//! Field doc comments become the CRD's OpenAPI descriptions, so `kubectl explain
//! kuducluster.spec.masters` shows them. Whatever a structural schema can say (enums,
//! bounds, patterns) is declared with `schemars` attributes; the rest is a CEL rule in
//! `x-kubernetes-validations`. [`crate::validate`] re-checks the same invariants in Rust
//! so a cluster with an older CRD installed still cannot feed the builders a bad spec.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the custom resource.
pub const GROUP: &str = "kudu.dev";
/// API version of the custom resource.
pub const VERSION: &str = "v1alpha1";

/// Allowed master counts: an odd number of voters (2N+1 tolerate N failures).
pub const ALLOWED_MASTER_REPLICAS: [i32; 4] = [1, 3, 5, 7];
/// The largest allowed master count.
pub const MAX_MASTER_REPLICAS: i32 = 7;

/// Pattern of a Kubernetes label key: an optional DNS-subdomain prefix and `/`, then a
/// name of at most 63 characters.
pub const LABEL_KEY_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";

/// Pattern of a non-negative resource quantity such as `10Gi`, `500M` or `1e9`.
pub const QUANTITY_PATTERN: &str = r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?$";

/// Pattern of an extra process flag: `--name` or `--name=value`.
pub const FLAG_PATTERN: &str = r"^--[a-z0-9][a-z0-9_-]*(=.*)?$";

/// Process flags the operator sets itself; a user flag may not override them.
pub const RESERVED_FLAGS: [&str; 5] =
    ["--data-dir", "--rpc-addr", "--http-addr", "--master-addresses", "--location-mapping-cmd"];

/// Desired state of a Kudu cluster: Raft-replicated masters and tablet servers, with
/// tablet server locations derived from the topology labels of their nodes.
// Clippy reads the repeated `type_ = "string"` of the printer columns as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kudu.dev",
    version = "v1alpha1",
    kind = "KuduCluster",
    namespaced,
    status = "KuduClusterStatus",
    shortname = "kc",
    category = "kudu",
    doc = "A Kudu cluster: Raft-replicated masters and tablet servers.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Whether the cluster is available",
        json_path = ".status.conditions[?(@.type==\"Available\")].status"
    ),
    printcolumn(
        name = "Masters",
        type_ = "string",
        description = "Voting masters / desired masters",
        json_path = ".status.masterVoters"
    ),
    printcolumn(
        name = "Leader",
        type_ = "string",
        description = "Pod of the leader master",
        json_path = ".status.leader"
    ),
    printcolumn(
        name = "TServers",
        type_ = "integer",
        description = "Ready tablet servers",
        json_path = ".status.readyTServers"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct KuduClusterSpec {
    /// Container image with the `kudu` binary, used by masters and tablet servers.
    #[schemars(length(min = 1))]
    pub image: String,

    /// When the kubelet pulls the image.
    #[serde(default)]
    pub image_pull_policy: ImagePullPolicy,

    /// The master Raft group.
    #[serde(default)]
    pub masters: MastersSpec,

    /// The tablet servers.
    #[serde(default)]
    pub tservers: TServersSpec,

    /// How tablet server locations are derived from node labels.
    #[serde(default)]
    pub topology: TopologySpec,

    /// Automatic replacement of masters that cannot come back.
    #[serde(default)]
    pub master_replacement: MasterReplacementSpec,

    /// Transport security: mutual TLS with certificates issued by a cluster CA (the
    /// default), or plaintext for tests and development.
    #[serde(default)]
    pub tls: TlsSpec,

    /// Who may reach the cluster's pods. The operator keeps a NetworkPolicy that admits
    /// only the cluster's own pods, the operator, and the peers named here.
    #[serde(default, skip_serializing_if = "NetworkSpec::is_empty")]
    pub network: NetworkSpec,

    /// Rolling restarts and upgrades (a change of the image, flags or resources, or the
    /// `kubectl.kubernetes.io/restartedAt` annotation on the KuduCluster).
    #[serde(default)]
    pub rollout: RolloutSpec,
}

/// How the operator restarts pods one at a time after a change of their template.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// How long a restarted pod may take to become healthy (a master: a caught-up voter; a
    /// tablet server: Ready) before the rollout stops with the `RolloutStalled` condition.
    #[serde(default = "default_member_timeout_seconds")]
    #[schemars(range(min = 30, max = 86400))]
    pub member_timeout_seconds: i64,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        Self { member_timeout_seconds: default_member_timeout_seconds() }
    }
}

fn default_member_timeout_seconds() -> i64 {
    300
}

/// Network access to the masters and tablet servers, as NetworkPolicy peers (pod and
/// namespace selectors, IP blocks).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Clients allowed to the RPC ports of masters and tablet servers (applications,
    /// the `kudu` CLI). Empty: only the cluster's own pods and the operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub allowed_clients: Vec<NetworkPolicyPeer>,

    /// Clients allowed to the HTTP ports (web pages and `/metrics`), such as Prometheus.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub metrics_clients: Vec<NetworkPolicyPeer>,
}

impl NetworkSpec {
    /// Whether no peer is named.
    pub fn is_empty(&self) -> bool {
        self.allowed_clients.is_empty() && self.metrics_clients.is_empty()
    }
}

/// Where the cluster's certificates come from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TlsMode {
    /// The operator creates a cluster CA (Secret `<cluster>-ca`) and issues and renews the
    /// certificates of masters, tablet servers and itself.
    #[default]
    Operator,
    /// The operator issues and renews the certificates with a CA you provide in the Secret
    /// named by `caSecretName` (`tls.crt` and `tls.key` of the CA, as cert-manager writes a
    /// CA certificate).
    Secret,
    /// Plaintext gRPC without authentication (`--insecure`): for tests and development
    /// only; anyone who reaches a port may do anything.
    Disabled,
}

impl TlsMode {
    /// Whether gRPC runs over mutual TLS.
    pub fn enabled(self) -> bool {
        self != Self::Disabled
    }
}

/// Transport security of the cluster. The mode is fixed at creation: masters of different
/// modes cannot talk to each other.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.mode != 'Secret' || has(self.caSecretName)", "message": "mode Secret needs caSecretName"},
    {"rule": "self.renewBeforeSeconds < self.certValiditySeconds", "message": "renewBeforeSeconds must be less than certValiditySeconds"},
    {"rule": "self.mode == oldSelf.mode", "message": "tls.mode cannot change on an existing cluster"}
]))]
pub struct TlsSpec {
    /// `Operator` (default), `Secret` or `Disabled`.
    #[serde(default)]
    pub mode: TlsMode,

    /// With mode `Secret`: the Secret in the cluster's namespace holding the CA
    /// (`tls.crt` and `tls.key`; `ca.crt` when present is trusted too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub ca_secret_name: Option<String>,

    /// How long the certificates the operator issues are valid, in seconds.
    #[serde(default = "default_cert_validity_seconds")]
    #[schemars(range(min = 120, max = 157_680_000))]
    pub cert_validity_seconds: i64,

    /// How long before expiry a certificate is renewed, in seconds. Servers pick up renewed
    /// certificate files without a restart.
    #[serde(default = "default_renew_before_seconds")]
    #[schemars(range(min = 60, max = 157_680_000))]
    pub renew_before_seconds: i64,
}

impl Default for TlsSpec {
    fn default() -> Self {
        Self {
            mode: TlsMode::default(),
            ca_secret_name: None,
            cert_validity_seconds: default_cert_validity_seconds(),
            renew_before_seconds: default_renew_before_seconds(),
        }
    }
}

fn default_cert_validity_seconds() -> i64 {
    90 * 86_400
}

fn default_renew_before_seconds() -> i64 {
    30 * 86_400
}

/// When the kubelet pulls the container image.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ImagePullPolicy {
    /// Pull on every pod start.
    Always,
    /// Pull only when the image is not on the node.
    #[default]
    IfNotPresent,
    /// Never pull; the image must be on the node.
    Never,
}

impl ImagePullPolicy {
    /// The Kubernetes spelling of the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// The master Raft group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MastersSpec {
    /// Number of masters: 1, 3, 5 or 7 (2N+1 masters tolerate N failures). Changing it
    /// grows or shrinks the Raft group one member at a time.
    #[serde(default = "default_master_replicas")]
    #[schemars(extend("enum" = [1, 3, 5, 7]))]
    pub replicas: i32,

    /// Compute resources of each master container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Persistent volume of each master (Raft log and catalog).
    #[serde(default)]
    pub storage: StorageSpec,

    /// Extra flags for `kudu master run`, each `--name` or `--name=value`. Flags the
    /// operator sets (data dir, addresses, location command) are rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(regex(pattern = FLAG_PATTERN), length(max = 1024)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(f, !['--data-dir', '--rpc-addr', '--http-addr', '--master-addresses', '--location-mapping-cmd'].exists(r, f == r || f.startsWith(r + '=')))",
        "message": "flags set by the operator (--data-dir, --rpc-addr, --http-addr, --master-addresses, --location-mapping-cmd) cannot be overridden"
    }]))]
    pub flags: Vec<String>,

    /// Scheduling and metadata overrides for master pods.
    #[serde(default)]
    pub pod_overrides: PodOverrides,
}

impl Default for MastersSpec {
    fn default() -> Self {
        Self {
            replicas: default_master_replicas(),
            resources: None,
            storage: StorageSpec::default(),
            flags: Vec::new(),
            pod_overrides: PodOverrides::default(),
        }
    }
}

/// The tablet servers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TServersSpec {
    /// Number of tablet servers; at least the largest table replication factor.
    #[serde(default = "default_tserver_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,

    /// Compute resources of each tablet server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Persistent volume of each tablet server (tablet data and logs).
    #[serde(default)]
    pub storage: StorageSpec,

    /// Extra flags for `kudu tserver run`, each `--name` or `--name=value`. Flags the
    /// operator sets (data dir, addresses) are rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(regex(pattern = FLAG_PATTERN), length(max = 1024)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(f, !['--data-dir', '--rpc-addr', '--http-addr', '--master-addresses', '--location-mapping-cmd'].exists(r, f == r || f.startsWith(r + '=')))",
        "message": "flags set by the operator (--data-dir, --rpc-addr, --http-addr, --master-addresses, --location-mapping-cmd) cannot be overridden"
    }]))]
    pub flags: Vec<String>,

    /// Scheduling and metadata overrides for tablet server pods.
    #[serde(default)]
    pub pod_overrides: PodOverrides,
}

impl Default for TServersSpec {
    fn default() -> Self {
        Self {
            replicas: default_tserver_replicas(),
            resources: None,
            storage: StorageSpec::default(),
            flags: Vec::new(),
            pod_overrides: PodOverrides::default(),
        }
    }
}

/// A persistent volume claim template. Immutable once created, because a StatefulSet's
/// volume claim templates cannot change.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self == oldSelf",
    "message": "storage is immutable: StatefulSet volume claim templates cannot change"
}]))]
pub struct StorageSpec {
    /// Requested size, a positive quantity such as `10Gi`.
    #[serde(default = "default_storage_size")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",
        "message": "size must be greater than zero"
    }]))]
    pub size: String,

    /// Storage class of the claims; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub storage_class_name: Option<String>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self { size: default_storage_size(), storage_class_name: None }
    }
}

/// Pod scheduling and metadata overrides for one role.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations added to the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Affinity of the pods. The operator always adds topology spread constraints over
    /// zones and hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Annotations added to the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// How tablet server locations are derived from node labels.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopologySpec {
    /// Node label keys, outermost first; their values on a tablet server's node form its
    /// location, e.g. `/eu-west-1/eu-west-1a`. Use tiers whose scope matches the volumes:
    /// a pod rescheduled with its volume must keep its location.
    #[serde(default = "default_location_labels")]
    #[schemars(length(min = 1, max = 8))]
    #[schemars(inner(regex(pattern = LABEL_KEY_PATTERN), length(min = 1, max = 317)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub location_labels: Vec<String>,
}

impl Default for TopologySpec {
    fn default() -> Self {
        Self { location_labels: default_location_labels() }
    }
}

/// Automatic replacement of masters that cannot come back.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MasterReplacementSpec {
    /// Whether the operator replaces a truly lost master by deleting its claim and pod: the
    /// leader master reports it down, and Kubernetes cannot run its pod (its node is gone or
    /// NotReady, or it cannot be scheduled, for example because its volume is pinned to a
    /// node that is gone). A container that cannot start on a Ready node (image pull
    /// failure, crash loop) is never a reason. The pod is deleted by force only once its
    /// node object is gone.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// How long a master must have been unable to run before it is replaced.
    #[serde(default = "default_grace_period_seconds")]
    #[schemars(range(min = 60, max = 86400))]
    pub grace_period_seconds: i64,
}

impl Default for MasterReplacementSpec {
    fn default() -> Self {
        Self { enabled: true, grace_period_seconds: default_grace_period_seconds() }
    }
}

/// Observed state of a `KuduCluster`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KuduClusterStatus {
    /// `Available`, `Progressing` and `Degraded`, each with its observed generation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The generation of the spec last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Members of the master Raft group, as reported by the leader.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masters: Vec<MasterMemberStatus>,

    /// Voting masters over desired masters, e.g. `3/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_voters: Option<String>,

    /// Pod name of the leader master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,

    /// Number of ready tablet server pods.
    #[serde(default, rename = "readyTServers", skip_serializing_if = "Option::is_none")]
    pub ready_tservers: Option<i32>,

    /// The last master membership change the operator made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_membership_change: Option<MembershipChangeStatus>,

    /// Tablet servers as the leader master lists them, by uuid.
    #[serde(default, rename = "tabletServers", skip_serializing_if = "Vec::is_empty")]
    pub tablet_servers: Vec<TabletServerStatus>,

    /// The rolling restart: the revisions pods should run and the pod restarted last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
}

/// Where a rolling restart stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The revision the master pods should run (their StatefulSet's update revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_revision: Option<String>,
    /// The revision the tablet server pods should run.
    #[serde(default, rename = "tserverRevision", skip_serializing_if = "Option::is_none")]
    pub tserver_revision: Option<String>,
    /// The pod the rollout restarted last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restarted: Option<String>,
    /// When it was restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restarted_time: Option<Time>,
}

/// One tablet server as the leader master lists it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TabletServerStatus {
    /// The pod it runs in, if its address names one of the cluster's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Its uuid.
    pub uuid: String,
    /// Its location, if the masters assigned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Whether the leader master heard from it lately.
    pub live: bool,
    /// Replicas the catalog places on it.
    pub replicas: u32,
    /// Whether its replicas are being moved off (a scale-down, or `kudu tserver
    /// decommission`).
    pub decommissioning: bool,
    /// The revision its pod runs (`controller-revision-hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// One member of the master Raft group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MasterMemberStatus {
    /// Pod currently reporting this node id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Raft node id, in decimal (a string: ids exceed JSON's safe integer range).
    pub node_id: String,
    /// RPC address of the member.
    pub address: String,
    /// Raft role of the member.
    pub role: MasterRole,
    /// Whether the member votes.
    pub voter: bool,
    /// Whether the member's pod is ready and the leader hears from it.
    pub healthy: bool,
    /// The revision its pod runs (`controller-revision-hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// Raft role of a master.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MasterRole {
    /// Serves clients and replicates the catalog.
    Leader,
    /// Voting replica.
    Follower,
    /// Non-voting replica catching up.
    Learner,
}

/// A master membership change made by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MembershipChangeStatus {
    /// When the change was requested.
    pub time: Time,
    /// The action, e.g. `AddMember` or `RemoveMember`.
    pub action: String,
    /// What was changed and why.
    pub message: String,
}

fn default_master_replicas() -> i32 {
    3
}

fn default_tserver_replicas() -> i32 {
    3
}

fn default_storage_size() -> String {
    "10Gi".to_owned()
}

/// Default topology label keys: region, then zone.
pub fn default_location_labels() -> Vec<String> {
    vec!["topology.kubernetes.io/region".to_owned(), "topology.kubernetes.io/zone".to_owned()]
}

fn default_true() -> bool {
    true
}

fn default_grace_period_seconds() -> i64 {
    300
}

/// Errors producing the CRD manifest.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// The CRD could not be rendered as YAML.
    #[error("cannot render the CRD as YAML: {0}")]
    Yaml(#[from] serde_saphyr::SerializeError),
}

/// The `CustomResourceDefinition` generated from the Rust types.
pub fn crd() -> CustomResourceDefinition {
    KuduCluster::crd()
}

/// The CRD as YAML: the exact text of `crds/kudu.dev_kuduclusters.yaml`.
pub fn crd_yaml() -> Result<String, CrdError> {
    Ok(serde_saphyr::to_string(&crd())?)
}
