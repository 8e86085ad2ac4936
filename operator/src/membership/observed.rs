//! What the membership loop observes: the Raft membership as the leader master reports
//! it, and the master pods as Kubernetes reports them. Plain data, no I/O.

use std::fmt;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// A master's Raft node id: random, persisted in its data directory. A master that lost
/// its disk comes back with a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One member of the master Raft group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftMember {
    /// The member's node id.
    pub node_id: NodeId,
    /// The member's RPC address.
    pub address: String,
    /// Voter, or learner catching up.
    pub voter: bool,
    /// Whether the leader heard from the member recently (always true for the leader).
    pub live: bool,
}

/// The Raft membership, from the leader master.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftView {
    /// The leader, if there is one.
    pub leader: Option<NodeId>,
    /// All members, voters and learners.
    pub members: Vec<RaftMember>,
    /// Whether a membership change is still being committed.
    pub change_in_flight: bool,
}

/// Kubernetes phase of a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodPhase {
    /// Not running yet: unscheduled, or waiting for its volume or image.
    Pending,
    /// Bound to a node with its container started.
    Running,
    /// Terminated (should not happen for a master).
    Failed,
    /// The node stopped reporting.
    Unknown,
}

/// State of the node a pod is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// The pod is not bound to a node.
    Unassigned,
    /// The node is Ready.
    Ready,
    /// The node is NotReady or Unknown.
    NotReady,
    /// The node object no longer exists.
    Gone,
}

/// A master pod of the StatefulSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterPod {
    /// StatefulSet ordinal.
    pub ordinal: i32,
    /// Pod phase.
    pub phase: PodPhase,
    /// Whether the pod is Ready.
    pub ready: bool,
    /// The node id the master in this pod reports, once it has started.
    pub node_id: Option<NodeId>,
    /// State of the pod's node.
    pub node: NodeState,
    /// Whether the scheduler reported that it cannot place the pod (`PodScheduled` False,
    /// reason `Unschedulable`), e.g. because its claim is pinned to a node that is gone.
    pub unschedulable: bool,
    /// Whether the pod is being deleted (it has a deletion timestamp).
    pub terminating: bool,
    /// Since when the pod has been unable to run (unschedulable, or on a NotReady or
    /// vanished node); `None` while it can run.
    pub unable_to_run_since: Option<Timestamp>,
}

/// Why Kubernetes cannot run a pod where it is: the causes a new volume elsewhere fixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CannotRun {
    /// The pod's node object no longer exists.
    NodeGone,
    /// The pod's node is NotReady or Unknown.
    NodeNotReady,
    /// The scheduler cannot place the pod.
    Unschedulable,
}

impl fmt::Display for CannotRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NodeGone => "its node is gone",
            Self::NodeNotReady => "its node is not ready",
            Self::Unschedulable => "it cannot be scheduled",
        })
    }
}

impl MasterPod {
    /// Why Kubernetes will not run the pod where it is, if that is the case. A pod whose
    /// container cannot start on a Ready node (image pull failure, crash loop, still
    /// creating) is not: a new disk would not fix it, so it is left to a person.
    pub fn cannot_run(&self) -> Option<CannotRun> {
        match self.node {
            NodeState::Gone => Some(CannotRun::NodeGone),
            NodeState::NotReady => Some(CannotRun::NodeNotReady),
            NodeState::Unassigned if self.unschedulable => Some(CannotRun::Unschedulable),
            NodeState::Unassigned | NodeState::Ready => None,
        }
    }

    /// Whether the pod cannot come back by itself ([`MasterPod::cannot_run`]).
    pub fn stuck(&self) -> bool {
        self.cannot_run().is_some()
    }
}

/// Automatic replacement settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplacementPolicy {
    /// Whether stuck masters are replaced at all.
    pub enabled: bool,
    /// How long a master must have been unable to run first.
    pub grace: Duration,
}

/// Everything [`super::decide()`] looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The membership, from the leader; `None` when no master answered.
    pub raft: Option<RaftView>,
    /// The master pods that exist.
    pub pods: Vec<MasterPod>,
    /// Stable RPC address of each ordinal (index = ordinal), for every ordinal that can
    /// exist. A member whose address is not in this list was added by someone else.
    pub addresses: Vec<String>,
    /// Desired masters (the spec).
    pub desired_replicas: i32,
    /// Current replicas of the master StatefulSet.
    pub statefulset_replicas: i32,
    /// Automatic replacement settings.
    pub replacement: ReplacementPolicy,
    /// The current time.
    pub now: Timestamp,
    /// Voters of the last membership a leader reported (kept in the status), so that with
    /// no leader a lost quorum can be told from a passing election.
    pub last_known_voters: Vec<RaftMember>,
}

impl Observed {
    /// The pod of `ordinal`, if it exists.
    pub fn pod(&self, ordinal: i32) -> Option<&MasterPod> {
        self.pods.iter().find(|p| p.ordinal == ordinal)
    }

    /// Ordinal whose stable address is `address`.
    pub fn ordinal_of(&self, address: &str) -> Option<i32> {
        self.addresses.iter().position(|a| a == address).and_then(|i| i32::try_from(i).ok())
    }

    /// Stable address of `ordinal`.
    pub fn address_of(&self, ordinal: i32) -> Option<&str> {
        usize::try_from(ordinal).ok().and_then(|i| self.addresses.get(i)).map(String::as_str)
    }
}
