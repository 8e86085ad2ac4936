//! Durable state of a tablet server: one RocksDB holding the server's own records (uuid,
//! hosted replicas) and the state machine of every tablet replica it hosts, each under its
//! tablet's group prefix (layout in [`keys`]).

mod db;
pub mod keys;
mod rows;
mod server_meta;
mod snapshot;
mod state_machine;

pub use db::{StoreError, open_db};
pub use rows::StoredRow;
pub use server_meta::{ReplicaMeta, ReplicaState, TServerStore};
pub use state_machine::{TabletStateMachine, TabletStoreError};

#[cfg(test)]
mod suite_tests;
