//! Every name, label, port and path the builders use, declared once.

use std::collections::BTreeMap;

use crate::validate::ValidatedSpec;

/// Field manager of the operator's server-side applies.
pub const FIELD_MANAGER: &str = "kudu-operator";
/// Cluster DNS domain used in the masters' stable addresses.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// `app.kubernetes.io/name` label key.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance` label key (the `KuduCluster` name).
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/component` label key (`master` or `tserver`).
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/managed-by` label key.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label on cluster-scoped objects naming the namespace of their `KuduCluster`.
pub const LABEL_CLUSTER_NAMESPACE: &str = "kudu.dev/cluster-namespace";
/// Value of [`LABEL_NAME`].
pub const APP_NAME: &str = "kudu";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "kudu-operator";

/// Master RPC port.
pub const MASTER_RPC_PORT: i32 = 7051;
/// Master HTTP port (`/healthz`).
pub const MASTER_HTTP_PORT: i32 = 8051;
/// Tablet server RPC port.
pub const TSERVER_RPC_PORT: i32 = 7050;
/// Tablet server HTTP port.
pub const TSERVER_HTTP_PORT: i32 = 8050;
/// Name of RPC container and service ports.
pub const RPC_PORT_NAME: &str = "rpc";
/// Name of HTTP container and service ports.
pub const HTTP_PORT_NAME: &str = "http";
/// Readiness endpoint of the master HTTP server.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Tablet server readiness path: registered with the leader master and every hosted
/// replica caught up with its leader.
pub const READY_PATH: &str = "/ready";
/// Annotation `kubectl rollout restart` writes; on a KuduCluster it restarts every pod.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";
/// Label the StatefulSet controller puts on each pod: the revision it was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// Name of the data volume claim template (claims are `data-<pod>`).
pub const DATA_VOLUME: &str = "data";
/// Where the data volume is mounted.
pub const DATA_DIR: &str = "/var/lib/kudu";
/// Group of the image's non-root `kudu` user (see the root `Dockerfile`): pods set it as
/// `fsGroup` so the data volume is writable without running as root.
pub const KUDU_GID: i64 = 10001;
/// User of the image's non-root `kudu` user (see the root `Dockerfile`): pods run as it.
pub const KUDU_UID: i64 = 10001;
/// Name of the writable scratch volume (an `emptyDir`): the root filesystem is read-only.
pub const TMP_VOLUME: &str = "tmp";
/// Where the scratch volume is mounted; `TMPDIR` points at it.
pub const TMP_DIR: &str = "/var/tmp/kudu";
/// Size limit of the scratch volume.
pub const TMP_SIZE_LIMIT: &str = "64Mi";
/// Name of the Kudu container in every pod.
pub const CONTAINER_NAME: &str = "kudu";
/// The Kudu binary inside the image.
pub const KUDU_BINARY: &str = "kudu";
/// The location mapping command masters run for each tablet server.
pub const LOCATION_MAPPING_CMD: &str = "kudu location";

/// ConfigMap key with the comma-separated master addresses.
pub const CONFIG_MASTER_ADDRESSES: &str = "master-addresses";
/// ConfigMap key with the comma-separated topology label keys.
pub const CONFIG_LOCATION_LABELS: &str = "location-labels";

/// Env var: the pod's name (downward API).
pub const ENV_POD_NAME: &str = "POD_NAME";
/// Env var: the pod's namespace (downward API), read by `kudu location`.
pub const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";
/// Env var: comma-separated master addresses (from the ConfigMap).
pub const ENV_MASTER_ADDRESSES: &str = "KUDU_MASTER_ADDRESSES";
/// Plaintext gRPC for every `kudu` command in the pod (`kubectl exec`, the preStop hook):
/// operator-managed certificates are a later step.
pub const ENV_INSECURE: &str = "KUDU_INSECURE";
/// Env var: the pod's IP (downward API), which the servers bind to.
pub const ENV_POD_IP: &str = "POD_IP";
/// Env var: this process's advertised RPC address (its stable DNS name).
pub const ENV_ADVERTISED_ADDR: &str = "KUDU_ADVERTISED_ADDR";
/// Env var: master addresses for the `kudu` CLI inside master pods (preStop, exec).
pub const ENV_CLI_MASTERS: &str = "KUDU_MASTERS";
/// Env var: topology label keys for `kudu location` (from the ConfigMap).
pub const ENV_LOCATION_LABELS: &str = "KUDU_LOCATION_LABELS";

/// A process role: one StatefulSet, headless Service and PodDisruptionBudget each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Masters (the catalog Raft group).
    Master,
    /// Tablet servers.
    TServer,
}

impl Role {
    /// Value of the component label, and the `kudu` subcommand.
    pub fn component(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::TServer => "tserver",
        }
    }

    /// RPC port of the role.
    pub fn rpc_port(self) -> i32 {
        match self {
            Self::Master => MASTER_RPC_PORT,
            Self::TServer => TSERVER_RPC_PORT,
        }
    }

    /// HTTP port of the role.
    pub fn http_port(self) -> i32 {
        match self {
            Self::Master => MASTER_HTTP_PORT,
            Self::TServer => TSERVER_HTTP_PORT,
        }
    }
}

/// Name of the role's StatefulSet (pods are `<this>-<ordinal>`).
pub fn statefulset_name(cluster: &str, role: Role) -> String {
    format!("{cluster}-{}", role.component())
}

/// Name of the role's headless Service, the pods' DNS subdomain.
pub fn headless_service_name(cluster: &str, role: Role) -> String {
    format!("{cluster}-{}s", role.component())
}

/// Name of the role's PodDisruptionBudget.
pub fn pdb_name(cluster: &str, role: Role) -> String {
    statefulset_name(cluster, role)
}

/// Name of the client Service in front of the masters.
pub fn client_service_name(cluster: &str) -> String {
    format!("{cluster}-client")
}

/// Name of the cluster's NetworkPolicy.
pub fn network_policy_name(cluster: &str) -> String {
    cluster.to_owned()
}

/// Name of the cluster's ConfigMap.
pub fn config_map_name(cluster: &str) -> String {
    format!("{cluster}-config")
}

/// Name of the masters' ServiceAccount, namespaced Role and RoleBinding.
pub fn service_account_name(cluster: &str) -> String {
    format!("{cluster}-master")
}

/// Name of the cluster-scoped ClusterRole and ClusterRoleBinding (nodes, read only).
pub fn cluster_rbac_name(namespace: &str, cluster: &str) -> String {
    format!("kudu-location-{namespace}-{cluster}")
}

/// Name of master pod `ordinal`.
pub fn master_pod_name(cluster: &str, ordinal: i32) -> String {
    format!("{}-{ordinal}", statefulset_name(cluster, Role::Master))
}

/// Stable RPC address of master `ordinal`: its DNS name under the headless Service.
pub fn master_address(spec: &ValidatedSpec, ordinal: i32) -> String {
    format!(
        "{}.{}.{}.svc.{CLUSTER_DOMAIN}:{MASTER_RPC_PORT}",
        master_pod_name(&spec.name, ordinal),
        headless_service_name(&spec.name, Role::Master),
        spec.namespace,
    )
}

/// Stable RPC address of tablet server `ordinal` (what it advertises).
pub fn tserver_address(spec: &ValidatedSpec, ordinal: i32) -> String {
    format!(
        "{}-{ordinal}.{}.{}.svc.{CLUSTER_DOMAIN}:{TSERVER_RPC_PORT}",
        statefulset_name(&spec.name, Role::TServer),
        headless_service_name(&spec.name, Role::TServer),
        spec.namespace,
    )
}

/// Addresses of masters `0..replicas`, comma-separated.
pub fn master_addresses(spec: &ValidatedSpec, replicas: i32) -> String {
    (0..replicas).map(|ordinal| master_address(spec, ordinal)).collect::<Vec<_>>().join(",")
}

/// Labels selecting the pods of one role of one cluster.
pub fn selector_labels(cluster: &str, role: Role) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_owned(), APP_NAME.to_owned()),
        (LABEL_INSTANCE.to_owned(), cluster.to_owned()),
        (LABEL_COMPONENT.to_owned(), role.component().to_owned()),
    ])
}

/// Labels on every object built for a cluster (plus the component where there is one).
pub fn object_labels(cluster: &str, role: Option<Role>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (LABEL_NAME.to_owned(), APP_NAME.to_owned()),
        (LABEL_INSTANCE.to_owned(), cluster.to_owned()),
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
    ]);
    if let Some(role) = role {
        labels.insert(LABEL_COMPONENT.to_owned(), role.component().to_owned());
    }
    labels
}
