//! Executing the one membership action [`crate::membership::decide()`] returned. Every
//! step is idempotent or guarded by the next observation, so dying half-way is safe.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use super::failpoints;
use super::masters::{MasterAdmin, MasterAdminError};
use crate::build::names::{self, FIELD_MANAGER, Role};
use crate::membership::Action;
use crate::validate::ValidatedSpec;

/// Why an action could not be executed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// A master RPC failed.
    #[error("{action}: {source}")]
    Master {
        /// The action.
        action: String,
        /// The failure.
        #[source]
        source: MasterAdminError,
    },
    /// A Kubernetes call failed.
    #[error("{action}: {source}")]
    Kube {
        /// The action.
        action: String,
        /// The failure.
        #[source]
        source: kube::Error,
    },
}

/// Execute `action` for the cluster `spec`; `addresses` are all master addresses.
pub async fn execute<M: MasterAdmin>(
    client: &Client,
    masters: &M,
    spec: &ValidatedSpec,
    addresses: &[String],
    action: &Action,
) -> Result<(), ExecuteError> {
    fail::fail_point!(failpoints::BEFORE_ACTION);
    execute_steps(client, masters, spec, addresses, action).await?;
    fail::fail_point!(failpoints::AFTER_ACTION);
    Ok(())
}

async fn execute_steps<M: MasterAdmin>(
    client: &Client,
    masters: &M,
    spec: &ValidatedSpec,
    addresses: &[String],
    action: &Action,
) -> Result<(), ExecuteError> {
    let master_err = |source| ExecuteError::Master { action: action.to_string(), source };
    let kube_err = |source| ExecuteError::Kube { action: action.to_string(), source };
    match action {
        Action::None | Action::Wait(_) => Ok(()),
        // `AddMaster` is idempotent: for a learner already in the group it promotes it.
        Action::AddMember { address, .. } | Action::PromoteLearner { address, .. } => {
            masters.add_master(addresses, address).await.map_err(master_err)
        }
        Action::RemoveMember { node_id, is_leader, successor, .. } => {
            if *is_leader {
                masters.step_down(addresses, *node_id, *successor).await.map_err(master_err)?;
                fail::fail_point!(failpoints::AFTER_STEP_DOWN);
                // The next observation sees the new leader and decides again.
                return Ok(());
            }
            masters.remove_master(addresses, *node_id).await.map_err(master_err)
        }
        Action::DeletePodAndPvc { ordinal, .. } => {
            let pod = names::master_pod_name(&spec.name, *ordinal);
            let claim = format!("{}-{pod}", names::DATA_VOLUME);
            // Claim first: it stays until the pod is gone, then the recreated pod gets a
            // fresh one instead of being pinned to the old volume again.
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &spec.namespace);
            ignore_not_found(claims.delete(&claim, &DeleteParams::default()).await).map_err(kube_err)?;
            fail::fail_point!(failpoints::AFTER_CLAIM_DELETE);
            // Without grace: the pod sits on a lost node (or was never scheduled), whose
            // kubelet would never confirm a graceful deletion, so the StatefulSet could not
            // recreate it. Its master is replaced under a new identity anyway.
            let pods: Api<Pod> = Api::namespaced(client.clone(), &spec.namespace);
            let force = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() };
            ignore_not_found(pods.delete(&pod, &force).await).map_err(kube_err)
        }
        Action::ResizeStatefulSet { replicas } => {
            let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &spec.namespace);
            let name = names::statefulset_name(&spec.name, Role::Master);
            let patch = json!({"spec": {"replicas": replicas}});
            let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
            statefulsets.patch(&name, &params, &Patch::Merge(&patch)).await.map(|_| ()).map_err(kube_err)
        }
    }
}

fn ignore_not_found<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
