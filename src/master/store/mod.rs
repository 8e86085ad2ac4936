//! Durable state of a master: one RocksDB with column families for the Raft log, the vote
//! and the catalog state machine.

mod db;
pub mod keys;
mod log_store;
mod state_machine;

pub use db::{StoreError, open};
pub use log_store::LogStore;
pub use state_machine::{SharedCatalog, StateMachineStore};

#[cfg(test)]
mod suite_tests;
