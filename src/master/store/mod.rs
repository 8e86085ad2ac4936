//! Durable state of a master: one RocksDB with the Raft log and vote of the master group
//! (see [`crate::raft`]) and the catalog state machine.

mod db;
pub mod keys;
pub mod recover;
mod state_machine;

pub use db::{StoreError, open, open_existing};
pub use state_machine::{SharedCatalog, StateMachineStore};

/// The Raft log store of the master group (the default group: keys without prefix).
pub type LogStore = crate::raft::LogStore<crate::master::raft_types::TypeConfig>;

#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod suite_tests;
#[cfg(test)]
mod wal_tests;
