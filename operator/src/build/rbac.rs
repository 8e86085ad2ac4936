//! ServiceAccount and RBAC for the location mapping command `kudu location`, which the
//! leader master runs to read a tablet server pod (namespaced) and its node
//! (cluster-scoped). Read only: `get` and `list`, nothing else.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::names::{self, LABEL_CLUSTER_NAMESPACE};
use super::owned_meta;
use crate::validate::ValidatedSpec;

const READ_VERBS: [&str; 2] = ["get", "list"];

fn read_rule(resource: &str) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec![resource.to_owned()]),
        verbs: READ_VERBS.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

fn subject(spec: &ValidatedSpec) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: names::service_account_name(&spec.name),
        namespace: Some(spec.namespace.clone()),
        ..Subject::default()
    }
}

/// Metadata of the cluster-scoped objects: no namespace, no owner reference, labelled
/// with the cluster's name and namespace so the finalizer can find them.
fn cluster_scoped_meta(spec: &ValidatedSpec) -> ObjectMeta {
    let mut labels = names::object_labels(&spec.name, None);
    labels.insert(LABEL_CLUSTER_NAMESPACE.to_owned(), spec.namespace.clone());
    ObjectMeta {
        name: Some(names::cluster_rbac_name(&spec.namespace, &spec.name)),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

/// The masters' ServiceAccount.
pub fn service_account(spec: &ValidatedSpec) -> ServiceAccount {
    ServiceAccount {
        metadata: owned_meta(spec, names::service_account_name(&spec.name), None),
        ..ServiceAccount::default()
    }
}

/// Pods: get, list (in the cluster's namespace).
pub fn role(spec: &ValidatedSpec) -> Role {
    Role {
        metadata: owned_meta(spec, names::service_account_name(&spec.name), None),
        rules: Some(vec![read_rule("pods")]),
    }
}

/// Binds [`role`] to [`service_account`].
pub fn role_binding(spec: &ValidatedSpec) -> RoleBinding {
    RoleBinding {
        metadata: owned_meta(spec, names::service_account_name(&spec.name), None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: names::service_account_name(&spec.name),
        },
        subjects: Some(vec![subject(spec)]),
    }
}

/// Nodes: get, list.
pub fn cluster_role(spec: &ValidatedSpec) -> ClusterRole {
    ClusterRole { metadata: cluster_scoped_meta(spec), rules: Some(vec![read_rule("nodes")]), ..ClusterRole::default() }
}

/// Binds [`cluster_role`] to [`service_account`].
pub fn cluster_role_binding(spec: &ValidatedSpec) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: cluster_scoped_meta(spec),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: names::cluster_rbac_name(&spec.namespace, &spec.name),
        },
        subjects: Some(vec![subject(spec)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::spec;

    fn rules_of(rules: &[PolicyRule]) -> Vec<(String, Vec<String>)> {
        rules
            .iter()
            .map(|r| {
                assert_eq!(r.api_groups.as_deref(), Some(&[String::new()][..]));
                (r.resources.clone().unwrap().join(","), r.verbs.clone())
            })
            .collect()
    }

    #[test]
    fn pods_and_nodes_are_read_only() {
        let spec = spec("image: kudu:1\n");
        let role = role(&spec);
        assert_eq!(
            rules_of(role.rules.as_ref().unwrap()),
            vec![("pods".to_owned(), vec!["get".to_owned(), "list".to_owned()])]
        );
        let cluster_role = cluster_role(&spec);
        assert_eq!(
            rules_of(cluster_role.rules.as_ref().unwrap()),
            vec![("nodes".to_owned(), vec!["get".to_owned(), "list".to_owned()])]
        );
    }

    #[test]
    fn bindings_point_at_the_master_service_account() {
        let spec = spec("image: kudu:1\n");
        let sa = service_account(&spec);
        let expected_subject = Subject {
            kind: "ServiceAccount".to_owned(),
            name: sa.metadata.name.clone().unwrap(),
            namespace: Some("db".to_owned()),
            ..Subject::default()
        };
        let rb = role_binding(&spec);
        assert_eq!(rb.subjects, Some(vec![expected_subject.clone()]));
        assert_eq!(rb.role_ref.kind, "Role");
        assert_eq!(Some(rb.role_ref.name), role(&spec).metadata.name);
        let crb = cluster_role_binding(&spec);
        assert_eq!(crb.subjects, Some(vec![expected_subject]));
        assert_eq!(crb.role_ref.kind, "ClusterRole");
        assert_eq!(Some(crb.role_ref.name), cluster_role(&spec).metadata.name);
    }
}
