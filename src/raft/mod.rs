//! Raft plumbing shared by every openraft group of a process, generic over the type config:
//! the masters' one group (catalog commands) and, on tablet servers, one group per tablet
//! replica, many of them in one RocksDB.
//!
//! - [`keys`]: column families, group key prefixes and every key encoding of Raft state.
//! - [`log_store`]: the RocksDB log store of one group, and [`log_store::delete_group`].
//! - [`rocks`]: opening the shared RocksDB, JSON values and synced writes.
//!
//! Groups are named by a string id on the wire; [`DEFAULT_GROUP`] (empty) names a
//! process's only group, the masters' group, whose keys carry no prefix.

pub mod keys;
pub mod log_store;
pub mod rocks;

pub use keys::{GroupPrefix, KeyError};
pub use log_store::{LogStore, delete_group};

/// Group id of a process's only Raft group (the masters' group); its keys have no prefix.
pub const DEFAULT_GROUP: &str = "";
