//! Turning Kubernetes pods and nodes into the membership loop's [`MasterPod`]s (pure).

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::build::names;
use crate::membership::{MasterPod, NodeId, NodeState, PodPhase};

/// Ordinal of a StatefulSet pod named `<statefulset>-<ordinal>`.
pub fn ordinal_of(pod_name: &str, statefulset: &str) -> Option<i32> {
    pod_name.strip_prefix(statefulset)?.strip_prefix('-')?.parse().ok().filter(|o: &i32| *o >= 0)
}

/// Resolution of the times Kubernetes records (`metav1.Time`: whole seconds, rounded down).
const RECORDED_TIME_RESOLUTION: SignedDuration = SignedDuration::from_secs(1);

/// The latest instant a recorded time may stand for: what happened at `12:00:00.9` is
/// recorded as `12:00:00`, so a grace period counted from the record itself could end up
/// to a second early.
fn latest_instant(recorded: Timestamp) -> Timestamp {
    recorded.checked_add(RECORDED_TIME_RESOLUTION).unwrap_or(recorded)
}

fn condition_since(pod: &Pod, type_: &str, status: &str) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// When the scheduler reported that it cannot place `pod`, if it did.
fn unschedulable_since(pod: &Pod) -> Option<Timestamp> {
    let condition =
        pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| {
            c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable")
        })?;
    condition.last_transition_time.as_ref().map(|t| t.0).or(pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// What the operator knows of a pod's node.
#[derive(Clone, Copy, Debug)]
pub enum NodeView<'a> {
    /// The node as read (`None`: it does not exist).
    Observed(Option<&'a Node>),
    /// Nodes cannot be read (the operator watches one namespace with Roles only): a bound
    /// pod's node counts as Ready, so no node failure is ever assumed.
    Unobservable,
}

fn node_state(pod: &Pod, node: NodeView<'_>) -> NodeState {
    let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    if !bound {
        return NodeState::Unassigned;
    }
    let NodeView::Observed(node) = node else {
        return NodeState::Ready;
    };
    let Some(node) = node else {
        return NodeState::Gone;
    };
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    if ready { NodeState::Ready } else { NodeState::NotReady }
}

fn node_not_ready_since(node: Option<&Node>) -> Option<Timestamp> {
    node?
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status != "True")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// The [`MasterPod`] for `pod` of master StatefulSet `statefulset`, given its node (if
/// the node object exists) and the node id its master reports. `None` for a pod that is
/// not one of the StatefulSet's.
pub fn master_pod(pod: &Pod, statefulset: &str, node: Option<&Node>, node_id: Option<NodeId>) -> Option<MasterPod> {
    master_pod_seen(pod, statefulset, NodeView::Observed(node), node_id)
}

/// [`master_pod`] for what is known of the node.
pub fn master_pod_seen(
    pod: &Pod,
    statefulset: &str,
    node_view: NodeView<'_>,
    node_id: Option<NodeId>,
) -> Option<MasterPod> {
    let node = match node_view {
        NodeView::Observed(node) => node,
        NodeView::Unobservable => None,
    };
    let name = pod.metadata.name.as_deref()?;
    let ordinal = ordinal_of(name, statefulset)?;
    let phase = match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Running") => PodPhase::Running,
        Some("Failed") | Some("Succeeded") => PodPhase::Failed,
        Some("Unknown") => PodPhase::Unknown,
        _ => PodPhase::Pending,
    };
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let node_state = node_state(pod, node_view);
    let unschedulable = node_state == NodeState::Unassigned && unschedulable_since(pod).is_some();
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    // Only the causes of [`MasterPod::cannot_run`]: a container that cannot start on a
    // Ready node (ImagePullBackOff, CrashLoopBackOff) is not unable to run in this sense.
    // Counted from the latest instant the record allows: never replaced before its grace.
    let unable_to_run_since = match node_state {
        NodeState::NotReady => {
            node_not_ready_since(node).or_else(|| condition_since(pod, "Ready", "False")).or(created)
        }
        NodeState::Gone => condition_since(pod, "Ready", "False").or(created),
        NodeState::Unassigned => unschedulable_since(pod),
        NodeState::Ready => None,
    }
    .map(latest_instant);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    Some(MasterPod {
        ordinal,
        phase,
        ready,
        node_id,
        node: node_state,
        unschedulable,
        terminating,
        unable_to_run_since,
    })
}

/// Stable addresses of every possible master ordinal of the cluster.
pub fn all_master_addresses(spec: &crate::validate::ValidatedSpec) -> Vec<String> {
    (0..crate::crd::MAX_MASTER_REPLICAS).map(|ordinal| names::master_address(spec, ordinal)).collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, NodeCondition, NodeStatus, PodCondition, PodSpec,
        PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;
    use crate::membership::CannotRun;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn pod(name: &str, phase: &str, node: Option<&str>, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                creation_timestamp: Some(Time(at(0))),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec { node_name: node.map(str::to_owned), ..PodSpec::default() }),
            status: Some(PodStatus {
                phase: Some(phase.to_owned()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".to_owned(),
                    status: if ready { "True" } else { "False" }.to_owned(),
                    last_transition_time: Some(Time(at(50))),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    fn node(ready: bool, since: i64) -> Node {
        Node {
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".to_owned(),
                    status: if ready { "True" } else { "Unknown" }.to_owned(),
                    last_transition_time: Some(Time(at(since))),
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    #[test]
    fn ordinals_parse_only_for_the_statefulset() {
        assert_eq!(ordinal_of("demo-master-2", "demo-master"), Some(2));
        assert_eq!(ordinal_of("demo-master-x", "demo-master"), None);
        assert_eq!(ordinal_of("demo-master2", "demo-master"), None);
        assert_eq!(ordinal_of("demo-tserver-0", "demo-master"), None);
    }

    #[test]
    fn running_ready_pod_on_ready_node_can_run() {
        let p = master_pod(
            &pod("demo-master-1", "Running", Some("n1"), true),
            "demo-master",
            Some(&node(true, 0)),
            Some(NodeId(5)),
        )
        .unwrap();
        assert_eq!(p.ordinal, 1);
        assert_eq!(p.phase, PodPhase::Running);
        assert!(p.ready);
        assert_eq!(p.node, NodeState::Ready);
        assert_eq!(p.node_id, Some(NodeId(5)));
        assert_eq!(p.unable_to_run_since, None);
    }

    #[test]
    fn pod_on_not_ready_node_is_stuck_since_the_node_went_down() {
        let p = master_pod(
            &pod("demo-master-0", "Running", Some("n1"), false),
            "demo-master",
            Some(&node(false, 30)),
            None,
        )
        .unwrap();
        assert_eq!(p.node, NodeState::NotReady);
        assert!(p.stuck());
        assert_eq!(p.unable_to_run_since, Some(at(31)), "the end of the recorded second");
    }

    #[test]
    fn pod_on_an_unobservable_node_is_never_judged_by_its_node() {
        let pending = pod("demo-master-0", "Pending", Some("n1"), false);
        let p = master_pod_seen(&pending, "demo-master", NodeView::Unobservable, None).unwrap();
        assert_eq!(p.node, NodeState::Ready);
        assert_eq!(p.unable_to_run_since, None);
        assert_eq!(p.cannot_run(), None);
        // The same pod with its node observed gone is stuck.
        let seen = master_pod_seen(&pending, "demo-master", NodeView::Observed(None), None).unwrap();
        assert_eq!(seen.node, NodeState::Gone);
    }

    #[test]
    fn pod_whose_node_vanished_is_stuck() {
        let p = master_pod(&pod("demo-master-0", "Unknown", Some("gone"), false), "demo-master", None, None).unwrap();
        assert_eq!(p.node, NodeState::Gone);
        assert_eq!(p.unable_to_run_since, Some(at(51)));
    }

    #[test]
    fn unschedulable_pod_is_stuck_since_the_scheduler_said_so() {
        let mut pending = pod("demo-master-2", "Pending", None, false);
        pending.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "PodScheduled".to_owned(),
            status: "False".to_owned(),
            reason: Some("Unschedulable".to_owned()),
            last_transition_time: Some(Time(at(20))),
            ..PodCondition::default()
        }]);
        let p = master_pod(&pending, "demo-master", None, None).unwrap();
        assert_eq!(p.node, NodeState::Unassigned);
        assert_eq!(p.phase, PodPhase::Pending);
        assert_eq!(p.cannot_run(), Some(CannotRun::Unschedulable));
        assert_eq!(p.unable_to_run_since, Some(at(21)));
    }

    #[test]
    fn pending_pod_the_scheduler_has_not_seen_yet_is_not_stuck() {
        let mut pending = pod("demo-master-2", "Pending", None, false);
        pending.status.as_mut().unwrap().conditions = None;
        let p = master_pod(&pending, "demo-master", None, None).unwrap();
        assert_eq!(p.node, NodeState::Unassigned);
        assert!(!p.stuck());
        assert_eq!(p.unable_to_run_since, None);
    }

    #[test]
    fn image_pull_failure_on_a_ready_node_is_not_stuck() {
        let mut pulling = pod("demo-master-1", "Pending", Some("n1"), false);
        let status = pulling.status.as_mut().unwrap();
        status.container_statuses = Some(vec![ContainerStatus {
            name: "kudu".to_owned(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ImagePullBackOff".to_owned()),
                    ..ContainerStateWaiting::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]);
        let p = master_pod(&pulling, "demo-master", Some(&node(true, 0)), None).unwrap();
        assert_eq!(p.node, NodeState::Ready);
        assert_eq!(p.cannot_run(), None);
        assert_eq!(p.unable_to_run_since, None);
        // Its node going away makes it stuck.
        let p = master_pod(&pulling, "demo-master", None, None).unwrap();
        assert_eq!(p.cannot_run(), Some(CannotRun::NodeGone));
    }
}
