//! The openraft type configuration of the master group.

use crate::catalog::{CatalogCommand, CatalogResponse};

openraft::declare_raft_types!(
    /// Masters replicate catalog commands; node ids are `u64`, nodes carry their RPC address.
    pub TypeConfig:
        D = CatalogCommand,
        R = CatalogResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
);

pub type Raft = openraft::Raft<TypeConfig, super::store::StateMachineStore>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;

/// Outgoing Raft RPCs of the master group: peers are reached at their `BasicNode` address.
pub type Network = crate::raft::Network<TypeConfig, crate::raft::BasicNodeAddress>;
