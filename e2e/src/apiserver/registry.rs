//! The table of resource kinds the server knows: built-ins plus CRD-defined kinds.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// Storage identity of a resource: group and plural (all versions share storage).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResKey {
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource name.
    pub plural: String,
}

impl ResKey {
    /// Builds a key.
    pub fn new(group: &str, plural: &str) -> Self {
        Self { group: group.to_string(), plural: plural.to_string() }
    }
}

/// What a CRD adds to a resource type.
#[derive(Debug, Clone, Default)]
pub struct CustomInfo {
    /// Name of the defining CRD (`plural.group`).
    pub crd_name: String,
    /// `openAPIV3Schema` per served version.
    pub schemas: BTreeMap<String, Value>,
    /// `additionalPrinterColumns` per served version.
    pub printer_columns: BTreeMap<String, Vec<Value>>,
    /// `spec.replicas`-style paths of the scale subresource, if enabled.
    pub scale: Option<ScalePaths>,
    /// Compiled `x-kubernetes-validations` rules per served version.
    pub rules: BTreeMap<String, Arc<super::cel::Rules>>,
}

/// JSON paths used by a CRD's scale subresource.
#[derive(Debug, Clone, Default)]
pub struct ScalePaths {
    /// e.g. `.spec.replicas`.
    pub spec_replicas: String,
    /// e.g. `.status.replicas`.
    pub status_replicas: String,
    /// e.g. `.status.selector`.
    pub label_selector: Option<String>,
}

/// One resource kind as served over HTTP.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group (`""` for core).
    pub group: String,
    /// Served versions; the first is the preferred one.
    pub versions: Vec<String>,
    /// Kind, e.g. `StatefulSet`.
    pub kind: String,
    /// Plural resource name, e.g. `statefulsets`.
    pub plural: String,
    /// Singular resource name.
    pub singular: String,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl (`sts`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Has a `/status` subresource.
    pub has_status: bool,
    /// Has a `/scale` subresource.
    pub has_scale: bool,
    /// Set for CRD-defined kinds.
    pub custom: Option<CustomInfo>,
}

impl ResourceType {
    /// The storage key.
    pub fn key(&self) -> ResKey {
        ResKey::new(&self.group, &self.plural)
    }

    /// `apiVersion` for `version` (`v1` or `apps/v1`).
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() { version.to_string() } else { format!("{}/{version}", self.group) }
    }

    /// The preferred version.
    pub fn preferred_version(&self) -> &str {
        self.versions.first().map(String::as_str).unwrap_or("v1")
    }

    /// Whether strategic merge patch is accepted (built-in kinds only).
    pub fn supports_strategic_merge(&self) -> bool {
        self.custom.is_none()
    }

    /// The schema for `version`, for CRD kinds.
    pub fn schema(&self, version: &str) -> Option<&Value> {
        self.custom.as_ref()?.schemas.get(version)
    }

    /// The compiled CEL validation rules for `version`, for CRD kinds.
    pub fn rules(&self, version: &str) -> Option<&super::cel::Rules> {
        self.custom.as_ref()?.rules.get(version).map(Arc::as_ref)
    }
}

/// (group, version, kind, plural, namespaced, short names, status, scale, in "all")
type Builtin =
    (&'static str, &'static str, &'static str, &'static str, bool, &'static [&'static str], bool, bool, bool);

const BUILTINS: &[Builtin] = &[
    ("", "v1", "Namespace", "namespaces", false, &["ns"], true, false, false),
    ("", "v1", "Node", "nodes", false, &["no"], true, false, false),
    ("", "v1", "Pod", "pods", true, &["po"], true, false, true),
    ("", "v1", "Service", "services", true, &["svc"], true, false, true),
    ("", "v1", "Endpoints", "endpoints", true, &["ep"], false, false, false),
    ("", "v1", "ConfigMap", "configmaps", true, &["cm"], false, false, false),
    ("", "v1", "Secret", "secrets", true, &[], false, false, false),
    ("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"], false, false, false),
    ("", "v1", "Event", "events", true, &["ev"], false, false, false),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, &["pvc"], true, false, false),
    ("", "v1", "PersistentVolume", "persistentvolumes", false, &["pv"], true, false, false),
    ("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"], true, true, true),
    ("apps", "v1", "Deployment", "deployments", true, &["deploy"], true, true, true),
    ("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"], true, true, true),
    ("apps", "v1", "ControllerRevision", "controllerrevisions", true, &[], false, false, false),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, &["pdb"], true, false, false),
    // Stored and served only: nothing here enforces NetworkPolicies (pods share loopback).
    ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, &["netpol"], false, false, false),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[], false, false, false),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, &[], false, false, false),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, &[], false, false, false),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, &[], false, false, false),
    ("coordination.k8s.io", "v1", "Lease", "leases", true, &[], false, false, false),
    ("events.k8s.io", "v1", "Event", "events", true, &["ev"], false, false, false),
    ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, &[], false, false, false),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        true,
        false,
        false,
    ),
];

/// Thread-safe registry of resource types.
#[derive(Debug)]
pub struct Registry {
    types: RwLock<Vec<Arc<ResourceType>>>,
}

impl Registry {
    /// A registry holding the built-in kinds.
    pub fn with_builtins() -> Self {
        let types = BUILTINS
            .iter()
            .map(|&(group, version, kind, plural, namespaced, short, status, scale, all)| {
                Arc::new(ResourceType {
                    group: group.into(),
                    versions: vec![version.into()],
                    kind: kind.into(),
                    plural: plural.into(),
                    singular: kind.to_lowercase(),
                    namespaced,
                    short_names: short.iter().map(|s| s.to_string()).collect(),
                    categories: if all { vec!["all".into()] } else { vec![] },
                    has_status: status,
                    has_scale: scale,
                    custom: None,
                })
            })
            .collect();
        Self { types: RwLock::new(types) }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<ResourceType>>> {
        self.types.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The type served at `/…/{group}/{version}/{plural}`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.read()
            .iter()
            .find(|t| t.group == group && t.plural == plural && t.versions.iter().any(|v| v == version))
            .cloned()
    }

    /// The type stored under `key`.
    pub fn by_key(&self, key: &ResKey) -> Option<Arc<ResourceType>> {
        self.read().iter().find(|t| t.group == key.group && t.plural == key.plural).cloned()
    }

    /// The type of `kind` in `group`.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.read().iter().find(|t| t.group == group && t.kind == kind).cloned()
    }

    /// All types, built-ins first.
    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        self.read().clone()
    }

    /// Adds or replaces a CRD-defined type.
    pub fn upsert_custom(&self, rt: ResourceType) {
        let mut types = self.types.write().unwrap_or_else(|e| e.into_inner());
        types.retain(|t| !(t.group == rt.group && t.plural == rt.plural));
        types.push(Arc::new(rt));
    }

    /// Removes the type defined by CRD `crd_name`; returns it.
    pub fn remove_custom(&self, crd_name: &str) -> Option<Arc<ResourceType>> {
        let mut types = self.types.write().unwrap_or_else(|e| e.into_inner());
        let pos = types.iter().position(|t| t.custom.as_ref().is_some_and(|c| c.crd_name == crd_name))?;
        Some(types.remove(pos))
    }
}
