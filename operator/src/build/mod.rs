//! The build step: a [`ValidatedSpec`] -> the Kubernetes objects a cluster owns.
//!
//! Pure functions, one file per kind. Namespaced objects carry a controller owner
//! reference to the `KuduCluster`, so deleting it cascades. The ClusterRole and
//! ClusterRoleBinding cannot: Kubernetes forbids a namespaced owner for a cluster-scoped
//! object, so they are labelled with the cluster's name and namespace and removed by the
//! reconciler's finalizer instead.

pub mod configmap;
pub mod names;
pub mod networkpolicy;
pub mod pdb;
pub mod rbac;
pub mod service;
pub mod statefulset;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::crd::{GROUP, VERSION};
use crate::validate::ValidatedSpec;

/// One object owned by a `KuduCluster`, in apply order.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Object {
    /// The masters' ServiceAccount.
    ServiceAccount(ServiceAccount),
    /// Read access to pods, for `kudu location`.
    Role(Role),
    /// Binds [`Object::Role`] to the ServiceAccount.
    RoleBinding(RoleBinding),
    /// Read access to nodes, for `kudu location` (cluster-scoped, no owner reference).
    ClusterRole(ClusterRole),
    /// Binds [`Object::ClusterRole`] to the ServiceAccount (cluster-scoped).
    ClusterRoleBinding(ClusterRoleBinding),
    /// Master addresses and topology label keys.
    ConfigMap(ConfigMap),
    /// A headless or client Service.
    Service(Service),
    /// A PodDisruptionBudget.
    PodDisruptionBudget(PodDisruptionBudget),
    /// Who may reach the cluster's pods.
    NetworkPolicy(NetworkPolicy),
    /// A StatefulSet.
    StatefulSet(StatefulSet),
}

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ServiceAccount(_) => "ServiceAccount",
            Self::Role(_) => "Role",
            Self::RoleBinding(_) => "RoleBinding",
            Self::ClusterRole(_) => "ClusterRole",
            Self::ClusterRoleBinding(_) => "ClusterRoleBinding",
            Self::ConfigMap(_) => "ConfigMap",
            Self::Service(_) => "Service",
            Self::PodDisruptionBudget(_) => "PodDisruptionBudget",
            Self::NetworkPolicy(_) => "NetworkPolicy",
            Self::StatefulSet(_) => "StatefulSet",
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::ServiceAccount(o) => &o.metadata,
            Self::Role(o) => &o.metadata,
            Self::RoleBinding(o) => &o.metadata,
            Self::ClusterRole(o) => &o.metadata,
            Self::ClusterRoleBinding(o) => &o.metadata,
            Self::ConfigMap(o) => &o.metadata,
            Self::Service(o) => &o.metadata,
            Self::PodDisruptionBudget(o) => &o.metadata,
            Self::NetworkPolicy(o) => &o.metadata,
            Self::StatefulSet(o) => &o.metadata,
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }
}

/// Why the objects of a cluster cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The master StatefulSet size asked for is not a valid master count.
    #[error("master StatefulSet replicas {0} is outside 1..=7")]
    MasterReplicas(i32),
}

/// What the build step needs besides the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildInputs {
    /// Replicas of the master StatefulSet. The membership loop owns this number: the
    /// spec's count when the StatefulSet is first created, afterwards whatever the loop
    /// last resized it to, so that applying the objects never races a membership change.
    pub master_statefulset_replicas: i32,
    /// Replicas of the tablet server StatefulSet: the spec's, except while a scale-down
    /// waits for the leaving servers to be drained (see [`crate::tservers::plan_scale`]).
    pub tserver_statefulset_replicas: i32,
    /// Whether no two masters may share a zone (the cluster has a zone per master, see
    /// [`crate::zones::hard_master_spread`]); otherwise the zone spread is soft.
    pub hard_master_zone_spread: bool,
}

impl BuildInputs {
    /// Inputs for a cluster whose master StatefulSet does not exist yet: all desired
    /// masters start together and bootstrap one Raft group.
    pub fn initial(spec: &ValidatedSpec) -> Self {
        Self {
            master_statefulset_replicas: spec.masters.replicas,
            tserver_statefulset_replicas: spec.tservers.replicas,
            hard_master_zone_spread: false,
        }
    }
}

/// Build every object of the cluster, in apply order: RBAC and configuration, Services,
/// budgets, then the master StatefulSet before the tablet servers'.
pub fn build_all(spec: &ValidatedSpec, inputs: BuildInputs) -> Result<Vec<Object>, BuildError> {
    let master_replicas = inputs.master_statefulset_replicas;
    if !(1..=7).contains(&master_replicas) {
        return Err(BuildError::MasterReplicas(master_replicas));
    }
    Ok(vec![
        Object::ServiceAccount(rbac::service_account(spec)),
        Object::Role(rbac::role(spec)),
        Object::RoleBinding(rbac::role_binding(spec)),
        Object::ClusterRole(rbac::cluster_role(spec)),
        Object::ClusterRoleBinding(rbac::cluster_role_binding(spec)),
        Object::ConfigMap(configmap::config_map(spec)),
        Object::Service(service::headless_service(spec, names::Role::Master)),
        Object::Service(service::headless_service(spec, names::Role::TServer)),
        Object::Service(service::client_service(spec)),
        Object::PodDisruptionBudget(pdb::pod_disruption_budget(spec, names::Role::Master)),
        Object::PodDisruptionBudget(pdb::pod_disruption_budget(spec, names::Role::TServer)),
        Object::StatefulSet(statefulset::master_statefulset_spread(
            spec,
            master_replicas,
            inputs.hard_master_zone_spread,
        )),
        Object::StatefulSet(statefulset::tserver_statefulset_with(spec, inputs.tserver_statefulset_replicas)),
    ])
}

/// The `app.kubernetes.io/name` label of the operator's pods in its chart.
pub const DEFAULT_OPERATOR_NAME: &str = "kudu-operator";

/// What the objects depend on besides the cluster: where the operator runs and what it may
/// create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorEnv {
    /// The operator's pods, admitted by the cluster's NetworkPolicy.
    pub peer: networkpolicy::OperatorPeer,
    /// The one namespace the operator watches with Roles only, or `None` for every
    /// namespace (a ClusterRole).
    pub watch_namespace: Option<String>,
}

impl OperatorEnv {
    /// The operator in `namespace` managing every namespace, its pods labelled
    /// `app.kubernetes.io/name=kudu-operator` (the chart's default).
    pub fn cluster_wide(namespace: &str) -> Self {
        Self {
            peer: networkpolicy::OperatorPeer {
                namespace: namespace.to_owned(),
                pod_labels: std::collections::BTreeMap::from([(
                    names::LABEL_NAME.to_owned(),
                    DEFAULT_OPERATOR_NAME.to_owned(),
                )]),
            },
            watch_namespace: None,
        }
    }

    /// Whether the operator may read nodes and create cluster-scoped objects. Without (it
    /// watches one namespace), the masters get no ClusterRole to read nodes, so they run no
    /// location mapping command and every tablet server is in the default location.
    pub fn cluster_scoped(&self) -> bool {
        self.watch_namespace.is_none()
    }
}

/// Every object of the cluster as [`build_all`] builds them, plus its NetworkPolicy
/// (before the StatefulSets), adapted to what the operator may do (see [`OperatorEnv`]).
pub fn build_for(spec: &ValidatedSpec, inputs: BuildInputs, env: &OperatorEnv) -> Result<Vec<Object>, BuildError> {
    let mut objects = build_all(spec, inputs)?;
    if !env.cluster_scoped() {
        objects.retain(|o| !matches!(o, Object::ClusterRole(_) | Object::ClusterRoleBinding(_)));
        for object in &mut objects {
            if let Object::StatefulSet(sts) = object {
                statefulset::drop_location_mapping(sts);
            }
        }
    }
    let first_statefulset = objects.iter().position(|o| matches!(o, Object::StatefulSet(_))).unwrap_or(objects.len());
    objects.insert(first_statefulset, Object::NetworkPolicy(networkpolicy::network_policy(spec, &env.peer)));
    Ok(objects)
}

/// Controller owner reference to the `KuduCluster`.
pub fn owner_reference(spec: &ValidatedSpec) -> OwnerReference {
    OwnerReference {
        api_version: format!("{GROUP}/{VERSION}"),
        kind: "KuduCluster".to_owned(),
        name: spec.name.clone(),
        uid: spec.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Metadata of a namespaced object owned by the cluster.
pub(crate) fn owned_meta(spec: &ValidatedSpec, name: String, role: Option<names::Role>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(spec.namespace.clone()),
        labels: Some(names::object_labels(&spec.name, role)),
        owner_references: Some(vec![owner_reference(spec)]),
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A validated spec for builder tests.

    use kube::api::ObjectMeta;

    use crate::crd::{KuduCluster, KuduClusterSpec};
    use crate::validate::{ValidatedSpec, validate};

    /// A `KuduCluster` named `demo` in namespace `db` with the given spec YAML.
    pub fn cluster(spec_yaml: &str) -> KuduCluster {
        let spec: KuduClusterSpec = serde_saphyr::from_str(spec_yaml).expect("test spec YAML parses");
        let mut cluster = KuduCluster::new("demo", spec);
        cluster.metadata = ObjectMeta {
            name: Some("demo".to_owned()),
            namespace: Some("db".to_owned()),
            uid: Some("uid-1".to_owned()),
            ..ObjectMeta::default()
        };
        cluster
    }

    /// The validated spec of [`cluster`].
    pub fn spec(spec_yaml: &str) -> ValidatedSpec {
        validate(&cluster(spec_yaml)).expect("test spec validates")
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::spec;
    use super::*;

    #[test]
    fn builds_every_kind_in_apply_order_with_owner_references() {
        let spec = spec("image: kudu:1\n");
        let objects = build_all(&spec, BuildInputs::initial(&spec)).unwrap();
        let kinds: Vec<_> = objects.iter().map(|o| (o.kind(), o.name().to_owned())).collect();
        let expected = [
            ("ServiceAccount", "demo-master"),
            ("Role", "demo-master"),
            ("RoleBinding", "demo-master"),
            ("ClusterRole", "kudu-location-db-demo"),
            ("ClusterRoleBinding", "kudu-location-db-demo"),
            ("ConfigMap", "demo-config"),
            ("Service", "demo-masters"),
            ("Service", "demo-tservers"),
            ("Service", "demo-client"),
            ("PodDisruptionBudget", "demo-master"),
            ("PodDisruptionBudget", "demo-tserver"),
            ("StatefulSet", "demo-master"),
            ("StatefulSet", "demo-tserver"),
        ];
        let expected: Vec<_> = expected.iter().map(|(k, n)| (*k, (*n).to_owned())).collect();
        assert_eq!(kinds, expected);

        for object in &objects {
            let meta = object.metadata();
            let labels = meta.labels.as_ref().unwrap();
            assert_eq!(labels[names::LABEL_INSTANCE], "demo", "{}", object.kind());
            assert_eq!(labels[names::LABEL_MANAGED_BY], "kudu-operator");
            let cluster_scoped = matches!(object, Object::ClusterRole(_) | Object::ClusterRoleBinding(_));
            if cluster_scoped {
                assert_eq!(meta.namespace, None);
                assert_eq!(meta.owner_references, None);
                assert_eq!(labels[names::LABEL_CLUSTER_NAMESPACE], "db");
            } else {
                assert_eq!(meta.namespace.as_deref(), Some("db"));
                let owners = meta.owner_references.as_ref().unwrap();
                assert_eq!(owners.len(), 1);
                assert_eq!(owners[0].api_version, "kudu.dev/v1alpha1");
                assert_eq!(owners[0].kind, "KuduCluster");
                assert_eq!(owners[0].uid, "uid-1");
                assert_eq!(owners[0].controller, Some(true));
            }
        }
    }

    fn env(cluster_scoped: bool) -> OperatorEnv {
        OperatorEnv {
            peer: networkpolicy::OperatorPeer {
                namespace: "ops".to_owned(),
                pod_labels: std::collections::BTreeMap::from([("app".to_owned(), "op".to_owned())]),
            },
            watch_namespace: (!cluster_scoped).then(|| "db".to_owned()),
        }
    }

    fn master_args(objects: &[Object]) -> Vec<String> {
        objects
            .iter()
            .find_map(|o| match o {
                Object::StatefulSet(s) if s.metadata.name.as_deref() == Some("demo-master") => {
                    s.spec.as_ref()?.template.spec.as_ref()?.containers[0].args.clone()
                }
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn build_for_adds_the_network_policy_before_the_statefulsets() {
        let spec = spec("image: kudu:1\n");
        let objects = build_for(&spec, BuildInputs::initial(&spec), &env(true)).unwrap();
        let kinds: Vec<_> = objects.iter().map(Object::kind).collect();
        let policy = kinds.iter().position(|k| *k == "NetworkPolicy").unwrap();
        assert_eq!(kinds[policy + 1..], ["StatefulSet", "StatefulSet"]);
        assert_eq!(objects.len(), build_all(&spec, BuildInputs::initial(&spec)).unwrap().len() + 1);
        assert!(kinds.contains(&"ClusterRole") && kinds.contains(&"ClusterRoleBinding"));
        assert!(master_args(&objects).iter().any(|a| a.starts_with("--location-mapping-cmd=")));
        let Object::NetworkPolicy(np) = &objects[policy] else { unreachable!() };
        assert_eq!(np.metadata.owner_references.as_ref().unwrap()[0].uid, "uid-1");
    }

    #[test]
    fn namespace_scope_builds_nothing_cluster_scoped_and_no_location_command() {
        let spec = spec("image: kudu:1\n");
        let objects = build_for(&spec, BuildInputs::initial(&spec), &env(false)).unwrap();
        for object in &objects {
            assert!(object.metadata().namespace.is_some(), "{} {} is cluster-scoped", object.kind(), object.name());
        }
        assert!(!master_args(&objects).iter().any(|a| a.starts_with("--location-mapping-cmd")));
    }

    #[test]
    fn master_replicas_input_must_be_a_master_count() {
        let spec = spec("image: kudu:1\n");
        for bad in [0, 8, -1] {
            let inputs = BuildInputs { master_statefulset_replicas: bad, ..BuildInputs::initial(&spec) };
            assert_eq!(build_all(&spec, inputs), Err(BuildError::MasterReplicas(bad)));
        }
    }
}
