//! Raft plumbing shared by every openraft group of a process, generic over the type config:
//! the masters' one group (catalog commands) and, on tablet servers, one group per tablet
//! replica, many of them in one RocksDB.
//!
//! - [`keys`]: column families, group key prefixes and every key encoding of Raft state.
//! - [`log_store`]: the RocksDB log store of one group, and [`log_store::delete_group`].
//! - [`network`]: outgoing Raft RPCs, addressed by group id and target node id.
//! - [`batch`]: coalesced heartbeats, many groups' AppendEntries to one server in one call.
//! - [`service`]: the incoming Raft gRPC service, routing each request to its group.
//! - [`rocks`]: opening the shared RocksDB, JSON values and synced writes.
//! - [`snapshot_file`]: a group's current snapshot on disk, replaced safely.
//! - [`wal_sync`]: group commit of the shared WAL, one fsync for concurrent appends.
//!
//! Groups are named by a string id on the wire; [`DEFAULT_GROUP`] (empty) names a
//! process's only group, the masters' group, whose keys carry no prefix.

pub mod batch;
pub mod keys;
pub mod log_store;
pub mod network;
pub mod rocks;
pub mod service;
pub mod snapshot_file;
pub mod wal_sync;

pub use batch::Coalescer;
pub use keys::{GroupPrefix, KeyError};
pub use log_store::{LogStore, delete_group, delete_group_keep_vote};
pub use network::{BasicNodeAddress, Network, NodeAddress, PeerClient};
pub use service::{GroupRouter, Incoming, RaftRpc};
pub use snapshot_file::SnapshotFile;

/// Group id of a process's only Raft group (the masters' group); its keys have no prefix.
pub const DEFAULT_GROUP: &str = "";

/// Largest gRPC message a Raft peer sends or accepts, both ways on both sides. Snapshots
/// are chunked well below it; a group's entries must be capped so that a full AppendEntries
/// batch fits (the masters' cap: `crate::master::limits`).
pub const MAX_MESSAGE: usize = 64 << 20;
