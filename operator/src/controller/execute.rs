//! Executing the one membership action [`crate::membership::decide()`] returned. Every
//! step is idempotent or guarded by the next observation, so dying half-way is safe. The
//! Lease is checked before any change; a replacement re-reads what it acts on first
//! ([`super::replace`]).

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use super::masters::{MasterAdmin, MasterAdminError};
use super::replace;
use crate::build::names::{self, FIELD_MANAGER, Role};
use crate::lease::{Leadership, NotLeading};
use crate::membership::{Action, NotLost, WaitReason};
use crate::validate::ValidatedSpec;

/// What executing an action came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Executed {
    /// The action was carried out.
    Done,
    /// A replacement was called off: the fresh read shows the master is not truly lost.
    NotLost(NotLost),
    /// A replacement waits: the pod is being deleted and its node, NotReady, must confirm
    /// (or be removed) before the StatefulSet can recreate it.
    AwaitingNode,
}

impl Executed {
    /// What `decided` came to, as an action: itself when done, else why it waits.
    pub fn as_action(self, decided: Action) -> Action {
        let ordinal = match &decided {
            Action::DeletePodAndPvc { ordinal, .. } => *ordinal,
            _ => return decided,
        };
        match self {
            Self::Done => decided,
            Self::NotLost(reason) => Action::Wait(WaitReason::CalledOff { ordinal, reason }),
            Self::AwaitingNode => Action::Wait(WaitReason::AwaitingNode { ordinal }),
        }
    }
}

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
    /// This replica may not act: it does not hold the leader Lease, or not for long enough.
    #[error("{action}: {source}")]
    NotLeading {
        /// The action.
        action: String,
        /// Why.
        #[source]
        source: NotLeading,
    },
}

/// Execute `action` for the cluster `spec` while `leadership` holds; `addresses` are the
/// master addresses to reach the leader through.
pub async fn execute<M: MasterAdmin>(
    client: &Client,
    masters: &M,
    leadership: &Leadership,
    spec: &ValidatedSpec,
    addresses: &[String],
    action: &Action,
) -> Result<Executed, ExecuteError> {
    fail::fail_point!(super::failpoints::BEFORE_ACTION);
    let executed = execute_steps(client, masters, leadership, spec, addresses, action).await?;
    fail::fail_point!(super::failpoints::AFTER_ACTION);
    Ok(executed)
}

async fn execute_steps<M: MasterAdmin>(
    client: &Client,
    masters: &M,
    leadership: &Leadership,
    spec: &ValidatedSpec,
    addresses: &[String],
    action: &Action,
) -> Result<Executed, ExecuteError> {
    let master_err = |source| ExecuteError::Master { action: action.to_string(), source };
    let kube_err = |source| ExecuteError::Kube { action: action.to_string(), source };
    if matches!(action, Action::None | Action::Wait(_)) {
        return Ok(Executed::Done);
    }
    // Every change (a shrinking StatefulSet deletes pods and claims too) only while leading.
    leadership.ensure().map_err(|source| ExecuteError::NotLeading { action: action.to_string(), source })?;
    let done = |result: Result<(), ExecuteError>| result.map(|()| Executed::Done);
    match action {
        Action::None | Action::Wait(_) => Ok(Executed::Done),
        // `AddMaster` is idempotent: for a learner already in the group it promotes it.
        Action::AddMember { address, .. } | Action::PromoteLearner { address, .. } => {
            done(masters.add_master(addresses, address).await.map_err(master_err))
        }
        Action::RemoveMember { node_id, is_leader, successor, .. } => {
            if *is_leader {
                masters.step_down(addresses, *node_id, *successor).await.map_err(master_err)?;
                fail::fail_point!(super::failpoints::AFTER_STEP_DOWN);
                // The next observation sees the new leader and decides again.
                return Ok(Executed::Done);
            }
            done(masters.remove_master(addresses, *node_id).await.map_err(master_err))
        }
        Action::DeletePodAndPvc { ordinal, .. } => {
            replace::replace_master(client, masters, leadership, spec, addresses, *ordinal, &action.to_string()).await
        }
        Action::ResizeStatefulSet { replicas } => {
            let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &spec.namespace);
            let name = names::statefulset_name(&spec.name, Role::Master);
            let patch = json!({"spec": {"replicas": replicas}});
            let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
            done(statefulsets.patch(&name, &params, &Patch::Merge(&patch)).await.map(|_| ()).map_err(kube_err))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use http::{Request, Response};
    use kube::client::Body;
    use tokio::sync::watch;

    use super::*;
    use crate::controller::masters::NoMasterAdmin;
    use crate::lease::{SystemClock, Validity};
    use crate::membership::{NodeId, RemoveReason};

    /// A client that records the paths it is asked for and answers nothing useful.
    fn recording_client() -> (Client, Arc<Mutex<Vec<String>>>) {
        let paths = Arc::new(Mutex::new(Vec::new()));
        let recorded = paths.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            recorded.lock().unwrap().push(request.uri().path().to_owned());
            async { Ok::<_, std::convert::Infallible>(Response::builder().status(500).body(Body::empty()).unwrap()) }
        });
        (Client::new(service, "db"), paths)
    }

    #[tokio::test]
    async fn nothing_is_changed_without_the_lease_or_with_too_little_of_it_left() {
        let mut cluster = crate::crd::KuduCluster::new("demo", serde_saphyr::from_str("image: kudu:1\n").unwrap());
        cluster.metadata.namespace = Some("db".to_owned());
        cluster.metadata.uid = Some("uid-1".to_owned());
        let spec = crate::validate::validate(&cluster).unwrap();
        let actions = [
            Action::RemoveMember {
                node_id: NodeId(7),
                address: "m2".to_owned(),
                is_leader: false,
                successor: None,
                reason: RemoveReason::ScaleDown { ordinal: 2 },
            },
            Action::DeletePodAndPvc { ordinal: 2, stuck_for: Duration::from_secs(600) },
            Action::ResizeStatefulSet { replicas: 1 },
            Action::AddMember { ordinal: 1, address: "m1".to_owned(), node_id: NodeId(8) },
        ];
        let guard = Duration::from_secs(3);
        for validity in [Validity::NotLeading, Validity::Until(Instant::now() + Duration::from_secs(1))] {
            let (_tx, rx) = watch::channel(validity);
            let leadership = Leadership::new(rx, Arc::new(SystemClock), guard);
            for action in &actions {
                let (client, paths) = recording_client();
                let result = execute(&client, &NoMasterAdmin, &leadership, &spec, &[], action).await;
                assert!(matches!(result, Err(ExecuteError::NotLeading { .. })), "{action}: {result:?}");
                assert!(paths.lock().unwrap().is_empty(), "{action}: {:?}", paths.lock().unwrap());
            }
        }
    }
}
