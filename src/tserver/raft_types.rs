//! The openraft type configuration of tablet Raft groups: every replica of one tablet is a
//! member of that tablet's group, identified by [`crate::ids::TServerId::raft_node_id`].

use std::fmt;

use serde::{Deserialize, Serialize};

use super::store::TabletStateMachine;
use crate::tablet::{TabletCommand, TabletResponse};

/// A member of a tablet's Raft group: the tablet server hosting the replica. Its address is
/// looked up from the uuid (the master's registry), so a moved server keeps its membership.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaNode {
    /// The tablet server's persistent uuid.
    pub uuid: String,
}

impl fmt::Display for ReplicaNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tserver {}", self.uuid)
    }
}

openraft::declare_raft_types!(
    /// Tablet replicas replicate tablet commands; node ids are derived from tablet server
    /// uuids, nodes carry the uuid.
    pub TabletTypeConfig:
        D = TabletCommand,
        R = TabletResponse,
        NodeId = u64,
        Node = ReplicaNode,
);

/// The Raft instance of one tablet replica.
pub type TabletRaft = openraft::Raft<TabletTypeConfig, TabletStateMachine>;
/// A log id of a tablet group.
pub type LogId = openraft::alias::LogIdOf<TabletTypeConfig>;
/// A vote of a tablet group.
pub type Vote = openraft::alias::VoteOf<TabletTypeConfig>;
/// A log entry of a tablet group.
pub type Entry = openraft::alias::EntryOf<TabletTypeConfig>;
/// Snapshot metadata of a tablet group.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TabletTypeConfig>;
/// The membership a tablet replica has applied, with the log id that set it.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TabletTypeConfig>;
/// A membership of a tablet group.
pub type Membership = openraft::Membership<u64, ReplicaNode>;
/// A snapshot of a tablet replica, held in memory.
pub type Snapshot = openraft::alias::SnapshotOf<TabletTypeConfig, std::io::Cursor<Vec<u8>>>;
