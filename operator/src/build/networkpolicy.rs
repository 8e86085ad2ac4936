//! The cluster's NetworkPolicy: masters and tablet servers admit only the cluster's own
//! pods, the operator's pods, and the peers the spec names (RPC ports for clients, HTTP
//! ports for metrics scrapers). Egress is not restricted.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names;
use super::owned_meta;
use crate::validate::ValidatedSpec;

/// Label every namespace carries with its own name (set by the API server).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Where the operator's pods run, so the policy can admit them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorPeer {
    /// The operator's namespace.
    pub namespace: String,
    /// Labels selecting the operator's pods in that namespace.
    pub pod_labels: BTreeMap<String, String>,
}

impl OperatorPeer {
    fn peer(&self) -> NetworkPolicyPeer {
        NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), self.namespace.clone())])),
                ..LabelSelector::default()
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(self.pod_labels.clone()),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        }
    }
}

/// Labels of every pod of the cluster (both roles).
fn cluster_pod_labels(spec: &ValidatedSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (names::LABEL_NAME.to_owned(), names::APP_NAME.to_owned()),
        (names::LABEL_INSTANCE.to_owned(), spec.name.clone()),
    ])
}

fn named_port(name: &str) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..NetworkPolicyPort::default()
    }
}

/// The policy: own pods and the operator on every port; `allowedClients` on the RPC
/// ports; `metricsClients` on the HTTP ports. A rule is left out when it names no peer (a
/// rule without peers would admit everyone).
pub fn network_policy(spec: &ValidatedSpec, operator: &OperatorPeer) -> NetworkPolicy {
    let own = cluster_pod_labels(spec);
    let mut ingress = vec![NetworkPolicyIngressRule {
        from: Some(vec![
            NetworkPolicyPeer {
                pod_selector: Some(LabelSelector { match_labels: Some(own.clone()), ..LabelSelector::default() }),
                ..NetworkPolicyPeer::default()
            },
            operator.peer(),
        ]),
        ports: None,
    }];
    let limited =
        [(&spec.network.allowed_clients, names::RPC_PORT_NAME), (&spec.network.metrics_clients, names::HTTP_PORT_NAME)];
    for (peers, port) in limited {
        if !peers.is_empty() {
            ingress.push(NetworkPolicyIngressRule { from: Some(peers.clone()), ports: Some(vec![named_port(port)]) });
        }
    }
    NetworkPolicy {
        metadata: owned_meta(spec, names::network_policy_name(&spec.name), None),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector { match_labels: Some(own), ..LabelSelector::default() }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(ingress),
            egress: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::spec;

    fn operator() -> OperatorPeer {
        OperatorPeer {
            namespace: "kudu-system".to_owned(),
            pod_labels: BTreeMap::from([("app.kubernetes.io/name".to_owned(), "kudu-operator".to_owned())]),
        }
    }

    #[test]
    fn admits_own_pods_and_the_operator_only_by_default() {
        let policy = network_policy(&spec("image: kudu:1\n"), &operator());
        assert_eq!(policy.metadata.name.as_deref(), Some("demo"));
        let s = policy.spec.unwrap();
        let selected = s.pod_selector.unwrap().match_labels.unwrap();
        assert_eq!(selected["app.kubernetes.io/instance"], "demo");
        assert_eq!(selected["app.kubernetes.io/name"], "kudu");
        assert!(!selected.contains_key(names::LABEL_COMPONENT), "both roles are selected");
        assert_eq!(s.policy_types, Some(vec!["Ingress".to_owned()]));
        let ingress = s.ingress.unwrap();
        assert_eq!(ingress.len(), 1);
        let from = ingress[0].from.as_ref().unwrap();
        assert_eq!(from.len(), 2);
        // Own pods: same namespace (no namespace selector), same cluster.
        assert_eq!(from[0].namespace_selector, None);
        assert_eq!(from[0].pod_selector.as_ref().unwrap().match_labels.as_ref(), Some(&selected));
        // The operator: its namespace and its pods.
        let ns = from[1].namespace_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
        assert_eq!(ns[NAMESPACE_NAME_LABEL], "kudu-system");
        assert_eq!(from[1].pod_selector.as_ref().unwrap().match_labels.as_ref(), Some(&operator().pod_labels));
        assert_eq!(ingress[0].ports, None);
    }

    #[test]
    fn named_clients_reach_rpc_and_scrapers_reach_http_only() {
        let named = spec(
            "image: kudu:1\nnetwork:\n  allowedClients: [{podSelector: {matchLabels: {app: ingest}}}]\n  metricsClients: [{namespaceSelector: {matchLabels: {team: monitoring}}}]\n",
        );
        let ingress = network_policy(&named, &operator()).spec.unwrap().ingress.unwrap();
        assert_eq!(ingress.len(), 3);
        let port_names = |rule: &NetworkPolicyIngressRule| -> Vec<IntOrString> {
            rule.ports.iter().flatten().filter_map(|p| p.port.clone()).collect()
        };
        assert_eq!(ingress[1].from, Some(named.network.allowed_clients.clone()));
        assert_eq!(port_names(&ingress[1]), [IntOrString::String("rpc".to_owned())]);
        assert_eq!(ingress[2].from, Some(named.network.metrics_clients.clone()));
        assert_eq!(port_names(&ingress[2]), [IntOrString::String("http".to_owned())]);
        // Only scrapers: no RPC rule at all (an empty `from` would admit everyone).
        let scrapers = spec("image: kudu:1\nnetwork: {metricsClients: [{podSelector: {}}]}\n");
        let ingress = network_policy(&scrapers, &operator()).spec.unwrap().ingress.unwrap();
        assert_eq!(ingress.len(), 2);
        assert!(ingress.iter().all(|r| r.from.as_ref().is_some_and(|f| !f.is_empty())));
        assert_eq!(port_names(&ingress[1]), [IntOrString::String("http".to_owned())]);
    }
}
