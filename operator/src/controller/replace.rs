//! Replacing a truly lost master: re-read its pod, its node, its claim and the Raft
//! membership just before acting, confirm the master is still lost
//! ([`membership::confirm_lost`]), then delete its claim and its pod. Each deletion applies
//! only to the object just read (uid precondition), the Lease is re-checked right before
//! each, and the pod is deleted by force only when its node is gone: a NotReady node may
//! still run it, and only its kubelet can confirm it stopped.

use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Preconditions};
use kube::{Api, Client};
use tracing::info;

use super::execute::{ExecuteError, Executed};
use super::masters::MasterAdmin;
use super::observe;
use crate::build::names::{self, Role};
use crate::lease::Leadership;
use crate::membership::{self, CannotRun, ReplacementPolicy};
use crate::validate::ValidatedSpec;

/// Replace master `ordinal` of the cluster `spec`: `addresses` are the master addresses to
/// ask for the membership; `action` names the action in errors.
pub async fn replace_master<M: MasterAdmin>(
    client: &Client,
    masters: &M,
    leadership: &Leadership,
    spec: &ValidatedSpec,
    addresses: &[String],
    ordinal: i32,
    action: &str,
) -> Result<Executed, ExecuteError> {
    let kube_err = |source| ExecuteError::Kube { action: action.to_owned(), source };
    let pod_name = names::master_pod_name(&spec.name, ordinal);
    let claim_name = format!("{}-{pod_name}", names::DATA_VOLUME);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &spec.namespace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &spec.namespace);

    // Fresh reads: the pod, its node, the membership, the claim.
    let Some(pod) = pods.get_opt(&pod_name).await.map_err(kube_err)? else {
        return Ok(Executed::NotLost(membership::NotLost::PodGone));
    };
    let node = match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty()) {
        Some(node_name) => {
            let nodes: Api<Node> = Api::all(client.clone());
            match nodes.get_opt(node_name).await {
                Ok(node) => Some(node),
                // Watching one namespace with Roles only: the node cannot be judged.
                Err(kube::Error::Api(status)) if status.code == 403 => None,
                Err(error) => return Err(kube_err(error)),
            }
        }
        None => Some(None),
    };
    let statefulset = names::statefulset_name(&spec.name, Role::Master);
    let node_view = match &node {
        Some(node) => observe::NodeView::Observed(node.as_ref()),
        None => observe::NodeView::Unobservable,
    };
    let master = observe::master_pod_seen(&pod, &statefulset, node_view, None);
    let raft = masters
        .membership(addresses)
        .await
        .map_err(|source| ExecuteError::Master { action: action.to_owned(), source })?;
    let policy = ReplacementPolicy { enabled: spec.replacement_enabled, grace: spec.replacement_grace };
    let address = names::master_address(spec, ordinal);
    let (cause, stuck_for) =
        match membership::confirm_lost(master.as_ref(), raft.as_ref(), &address, &policy, Timestamp::now()) {
            Ok(lost) => lost,
            Err(not_lost) => return Ok(Executed::NotLost(not_lost)),
        };
    let claim = claims.get_opt(&claim_name).await.map_err(kube_err)?;
    info!(ordinal, %cause, stuck_secs = stuck_for.as_secs(), "master confirmed lost");

    // Claim first: it stays until the pod is gone, then the recreated pod gets a fresh one
    // instead of being pinned to the old volume again.
    if let Some(claim) = claim.filter(|c| c.metadata.deletion_timestamp.is_none()) {
        leadership.ensure().map_err(|source| ExecuteError::NotLeading { action: action.to_owned(), source })?;
        let params = only(claim.metadata.uid.clone());
        ignore_not_found(claims.delete(&claim_name, &params).await).map_err(kube_err)?;
    }
    fail::fail_point!(super::failpoints::AFTER_CLAIM_DELETE);

    let force = cause == CannotRun::NodeGone;
    if pod.metadata.deletion_timestamp.is_some() && !force {
        return Ok(Executed::AwaitingNode);
    }
    leadership.ensure().map_err(|source| ExecuteError::NotLeading { action: action.to_owned(), source })?;
    // Without grace only when the node is gone: no kubelet will ever confirm a graceful
    // deletion there, so the StatefulSet could not recreate the pod.
    let params = DeleteParams { grace_period_seconds: force.then_some(0), ..only(pod.metadata.uid.clone()) };
    ignore_not_found(pods.delete(&pod_name, &params).await).map_err(kube_err)?;
    Ok(Executed::Done)
}

/// Delete parameters that apply only to the object with `uid`.
fn only(uid: Option<String>) -> DeleteParams {
    DeleteParams { preconditions: Some(Preconditions { uid, resource_version: None }), ..DeleteParams::default() }
}

fn ignore_not_found<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
