//! Reading what the membership loop looks at: master pods, their nodes and node ids, and
//! the Raft membership (I/O; the conversions are in [`super::observe`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::ListParams;
use tracing::warn;

use super::masters::MasterAdmin;
use super::{Context, Error, kube_err, observe};
use crate::build::names::{self, Role};
use crate::membership::{self, Observed, ReplacementPolicy};
use crate::validate::ValidatedSpec;

/// Read the master pods, their nodes and node ids, and the Raft membership.
pub async fn observe_membership<M: MasterAdmin>(
    ctx: &Context<M>,
    spec: &ValidatedSpec,
    statefulset_replicas: i32,
    now: Timestamp,
) -> Result<Observed, Error> {
    let addresses = observe::all_master_addresses(spec);
    let pod_list = list_master_pods(ctx, spec).await?;
    let nodes_api: Api<Node> = Api::all(ctx.client.clone());
    let mut nodes: BTreeMap<String, Option<Node>> = BTreeMap::new();
    let sts_name = names::statefulset_name(&spec.name, Role::Master);
    let mut master_pods = Vec::new();
    for pod in &pod_list {
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        // Watching one namespace, the operator cannot read nodes.
        if let Some(node_name) = node_name.filter(|n| !n.is_empty() && ctx.env.cluster_scoped())
            && !nodes.contains_key(&node_name)
        {
            let node = nodes_api.get_opt(&node_name).await.map_err(kube_err("reading a node"))?;
            nodes.insert(node_name, node);
        }
        let node =
            pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).and_then(|n| nodes.get(n)).and_then(Option::as_ref);
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let ordinal = pod.metadata.name.as_deref().and_then(|n| observe::ordinal_of(n, &sts_name));
        let node_id = match ordinal.and_then(|o| addresses.get(usize::try_from(o).ok()?)) {
            Some(address) if running => ctx.masters.node_id(address).await.unwrap_or_else(|error| {
                tracing::debug!(%error, %address, "no node id");
                None
            }),
            _ => None,
        };
        let node_view =
            if ctx.env.cluster_scoped() { observe::NodeView::Observed(node) } else { observe::NodeView::Unobservable };
        if let Some(master) = observe::master_pod_seen(pod, &sts_name, node_view, node_id) {
            master_pods.push(master);
        }
    }
    // No master runs: nobody to ask (the reconciler logs that state once, see `backoff`).
    let running = running_master_addresses(&master_pods, &addresses);
    let raft = if running.is_empty() {
        None
    } else {
        ctx.masters.membership(&running).await.unwrap_or_else(|error| {
            warn!(%error, "cannot read the master membership");
            None
        })
    };
    Ok(Observed {
        raft,
        pods: master_pods,
        addresses,
        desired_replicas: spec.masters.replicas,
        statefulset_replicas,
        replacement: ReplacementPolicy { enabled: spec.replacement_enabled, grace: spec.replacement_grace },
        now,
        last_known_voters: Vec::new(),
    })
}

/// The cluster's master pods.
pub async fn list_master_pods<M>(ctx: &Context<M>, spec: &ValidatedSpec) -> Result<Vec<Pod>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &spec.namespace);
    let selector = names::selector_labels(&spec.name, Role::Master)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let list = pods.list(&ListParams::default().labels(&selector)).await.map_err(kube_err("listing master pods"))?;
    Ok(list.items)
}

/// Addresses of the master pods in phase Running (lowest ordinal first), read before the
/// objects are applied: the masters worth asking about tablet servers. Empty when none
/// runs (all Pending, say), and then no master is called at all: a name without a running
/// pod behind it only costs DNS lookups, connection attempts and their timeouts.
pub async fn running_masters<M>(ctx: &Context<M>, spec: &ValidatedSpec) -> Result<Vec<String>, Error> {
    let addresses = observe::all_master_addresses(spec);
    let sts_name = names::statefulset_name(&spec.name, Role::Master);
    let mut ordinals: Vec<usize> = list_master_pods(ctx, spec)
        .await?
        .iter()
        .filter(|pod| pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|pod| observe::ordinal_of(pod.metadata.name.as_deref()?, &sts_name))
        .filter_map(|ordinal| usize::try_from(ordinal).ok())
        .collect();
    ordinals.sort_unstable();
    ordinals.dedup();
    Ok(ordinals.into_iter().filter_map(|o| addresses.get(o).cloned()).collect())
}

/// Addresses of the master pods that run, lowest ordinal first: the ones worth asking
/// (looking up names of pods that do not exist only costs time).
pub fn running_master_addresses(pods: &[membership::MasterPod], addresses: &[String]) -> Vec<String> {
    let mut ordinals: Vec<i32> =
        pods.iter().filter(|p| p.phase == membership::PodPhase::Running).map(|p| p.ordinal).collect();
    ordinals.sort_unstable();
    ordinals.iter().filter_map(|o| addresses.get(usize::try_from(*o).ok()?).cloned()).collect()
}
