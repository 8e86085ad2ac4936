//! The tablet server: a persistent uuid, replicas assigned by the leader master (stored
//! durably and reported back), heartbeats to every master, and the state machine of each
//! hosted tablet replica.

mod heartbeat;
pub mod raft_types;
mod server;
mod service;
pub mod store;

pub use server::{TServerConfig, TServerError, TabletServer, run};
pub use store::{ReplicaMeta, TServerStore, TabletStateMachine, TabletStoreError};
