//! What a rolling restart looks at: the pods of each role with their revision, the master
//! Raft group's replication progress and the tablets' voters and leaders. Plain data.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::membership::NodeId;

/// One pod of a role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Pod name.
    pub pod: String,
    /// StatefulSet ordinal.
    pub ordinal: i32,
    /// The pod's `controller-revision-hash` label.
    pub revision: Option<String>,
    /// Whether the pod is Ready (for a tablet server: registered and its replicas caught up).
    pub ready: bool,
    /// Whether the pod is being deleted.
    pub terminating: bool,
    /// When the pod was created.
    pub created: Option<Timestamp>,
}

/// The pods of one role and the revision they should run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleObserved {
    /// The StatefulSet's `status.updateRevision`, once its controller observed the latest
    /// generation; `None` before (nothing is restarted for a revision not yet computed).
    pub update_revision: Option<String>,
    /// Desired pods (the StatefulSet's replicas).
    pub replicas: i32,
    /// The pods, any order.
    pub members: Vec<Member>,
}

impl RoleObserved {
    /// Whether `member` runs the update revision.
    pub fn updated(&self, member: &Member) -> bool {
        self.update_revision.is_some() && member.revision == self.update_revision
    }

    /// Pods not running the update revision.
    pub fn outdated(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| !self.updated(m))
    }
}

/// A master's place in the Raft group, as the leader reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRaft {
    /// Its node id.
    pub node_id: NodeId,
    /// Whether it votes.
    pub voter: bool,
    /// Whether the leader heard from it lately.
    pub live: bool,
    /// Highest log index the leader knows it holds.
    pub matched_index: u64,
}

/// The master Raft group as its leader reports it, members keyed by pod name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MasterProgress {
    /// Pod of the leader.
    pub leader_pod: Option<String>,
    /// The leader's commit index.
    pub commit_index: u64,
    /// Members by pod name.
    pub members: BTreeMap<String, MemberRaft>,
    /// Whether a membership change is being committed.
    pub change_in_flight: bool,
}

/// How far behind the commit index a voter may be and still count as caught up: the
/// entries a busy leader has in flight to it.
pub const CAUGHT_UP_SLACK: u64 = 32;

impl MasterProgress {
    /// Whether the master in `pod` is a live voter holding (nearly) all committed entries.
    pub fn caught_up_voter(&self, pod: &str) -> bool {
        self.members
            .get(pod)
            .is_some_and(|m| m.voter && m.live && m.matched_index.saturating_add(CAUGHT_UP_SLACK) >= self.commit_index)
    }
}

/// One tablet: its voters and leader, by tablet server uuid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TabletView {
    /// Tablet id.
    pub tablet_id: String,
    /// Uuids of its voters.
    pub voters: Vec<String>,
    /// Uuid of its leader, if one is known.
    pub leader: Option<String>,
}

/// A tablet led from a server that is about to restart, and where to move its leadership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TabletLeader {
    /// Tablet id.
    pub tablet_id: String,
    /// Uuid of the voter to hand leadership to.
    pub to_uuid: String,
}

/// Tablet servers and tablets as the leader master reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TabletsView {
    /// Tablet server pod name -> (uuid, live).
    pub servers: BTreeMap<String, (String, bool)>,
    /// Every tablet.
    pub tablets: Vec<TabletView>,
}

/// Everything [`super::decide()`] looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutObserved {
    /// The master pods.
    pub masters: RoleObserved,
    /// The tablet server pods.
    pub tservers: RoleObserved,
    /// The master group's progress; `None` without a leader or when unreadable.
    pub master_progress: Option<MasterProgress>,
    /// The tablets; `None` when the masters could not be asked.
    pub tablets: Option<TabletsView>,
    /// Whether the membership loop has work of its own (a membership change or a
    /// replacement): the rollout waits for it.
    pub membership_busy: bool,
    /// The pod the rollout restarted last, from the status (what a stall refers to).
    pub last_restarted: Option<String>,
    /// How long a restarted pod may take to become healthy.
    pub member_timeout: Duration,
    /// The current time.
    pub now: Timestamp,
}
