//! The last check before a master's claim and pod are deleted, on a fresh read of the pod,
//! its node and the Raft membership: the master must still be truly lost. A decision can
//! be seconds old by the time it is carried out (or come from a replica that no longer
//! leads); a claim, once deleted, is gone for good.

use std::fmt;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::observed::{CannotRun, MasterPod, NodeId, RaftView, ReplacementPolicy};

/// Why a replacement decided earlier is not carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotLost {
    /// The pod no longer exists (the StatefulSet is recreating it).
    PodGone,
    /// The pod can run where it is now.
    CanRun,
    /// It cannot run, but not for long enough yet.
    WithinGrace {
        /// Time left until the grace period ends.
        remaining: Duration,
    },
    /// Automatic replacement is disabled.
    Disabled,
    /// No leader reports the membership, so Raft cannot confirm the member is down.
    NoLeader,
    /// The leader hears from the member: its data is alive.
    RaftHearsIt {
        /// The member.
        node_id: NodeId,
    },
}

impl fmt::Display for NotLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PodGone => write!(f, "the pod is gone"),
            Self::CanRun => write!(f, "the pod can run where it is now"),
            Self::WithinGrace { remaining } => write!(f, "still {}s of grace left", remaining.as_secs()),
            Self::Disabled => write!(f, "automatic replacement is disabled"),
            Self::NoLeader => write!(f, "no master reports a leader, so Raft cannot confirm the member is down"),
            Self::RaftHearsIt { node_id } => write!(f, "the leader still hears from member {node_id}"),
        }
    }
}

/// Confirm that the master at `address`, whose pod is `pod` (as read just now), is truly
/// lost at `now`: Kubernetes cannot run its pod ([`MasterPod::cannot_run`]) and has not
/// for the grace period, and the leader of `raft` reports the member at that address down
/// (or no member is there). Returns why it cannot run, and for how long.
pub fn confirm_lost(
    pod: Option<&MasterPod>,
    raft: Option<&RaftView>,
    address: &str,
    policy: &ReplacementPolicy,
    now: Timestamp,
) -> Result<(CannotRun, Duration), NotLost> {
    let pod = pod.ok_or(NotLost::PodGone)?;
    let cause = pod.cannot_run().ok_or(NotLost::CanRun)?;
    let since = pod.unable_to_run_since.ok_or(NotLost::CanRun)?;
    let stuck_for = Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO);
    if stuck_for < policy.grace {
        return Err(NotLost::WithinGrace { remaining: policy.grace - stuck_for });
    }
    if !policy.enabled {
        return Err(NotLost::Disabled);
    }
    let raft = raft.filter(|r| r.leader.is_some()).ok_or(NotLost::NoLeader)?;
    if let Some(member) = raft.members.iter().find(|m| m.address == address && m.live) {
        return Err(NotLost::RaftHearsIt { node_id: member.node_id });
    }
    Ok((cause, stuck_for))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::SignedDuration;

    use super::*;
    use crate::membership::{NodeState, PodPhase, RaftMember};

    const ADDRESS: &str = "demo-master-2.demo-masters:7051";
    const POLICY: ReplacementPolicy = ReplacementPolicy { enabled: true, grace: Duration::from_secs(300) };

    fn now() -> Timestamp {
        Timestamp::from_second(1_000_000).unwrap()
    }

    fn ago(secs: i64) -> Timestamp {
        now() - SignedDuration::from_secs(secs)
    }

    fn pod(node: NodeState, since: i64) -> MasterPod {
        MasterPod {
            ordinal: 2,
            phase: PodPhase::Running,
            ready: false,
            node_id: None,
            node,
            unschedulable: false,
            terminating: false,
            unable_to_run_since: Some(ago(since)),
        }
    }

    fn raft(live: bool) -> RaftView {
        RaftView {
            leader: Some(NodeId(1)),
            members: vec![
                RaftMember { node_id: NodeId(1), address: "m0".to_owned(), voter: true, live: true },
                RaftMember { node_id: NodeId(3), address: ADDRESS.to_owned(), voter: true, live },
            ],
            change_in_flight: false,
        }
    }

    #[test]
    fn a_master_on_a_vanished_node_that_raft_reports_down_is_lost() {
        let lost = confirm_lost(Some(&pod(NodeState::Gone, 400)), Some(&raft(false)), ADDRESS, &POLICY, now());
        assert_eq!(lost, Ok((CannotRun::NodeGone, Duration::from_secs(400))));
    }

    #[test]
    fn anything_short_of_lost_cancels_the_replacement() {
        let down = raft(false);
        let check = |pod: Option<&MasterPod>, raft: Option<&RaftView>| confirm_lost(pod, raft, ADDRESS, &POLICY, now());
        assert_eq!(check(None, Some(&down)), Err(NotLost::PodGone));
        // The node came back.
        assert_eq!(check(Some(&pod(NodeState::Ready, 400)), Some(&down)), Err(NotLost::CanRun));
        // A container that cannot start on a Ready node.
        let pulling = MasterPod { phase: PodPhase::Pending, ..pod(NodeState::Ready, 4000) };
        assert_eq!(check(Some(&pulling), Some(&down)), Err(NotLost::CanRun));
        assert_eq!(
            check(Some(&pod(NodeState::NotReady, 100)), Some(&down)),
            Err(NotLost::WithinGrace { remaining: Duration::from_secs(200) })
        );
        assert_eq!(check(Some(&pod(NodeState::Gone, 400)), None), Err(NotLost::NoLeader));
        assert_eq!(
            check(Some(&pod(NodeState::Gone, 400)), Some(&raft(true))),
            Err(NotLost::RaftHearsIt { node_id: NodeId(3) })
        );
        let disabled = ReplacementPolicy { enabled: false, ..POLICY };
        assert_eq!(
            confirm_lost(Some(&pod(NodeState::Gone, 400)), Some(&down), ADDRESS, &disabled, now()),
            Err(NotLost::Disabled)
        );
    }
}
