//! The tablet server: a persistent uuid, replicas assigned by the leader master (stored
//! durably and reported back), and heartbeats to every master.

mod heartbeat;
mod server;
mod service;
mod store;

pub use server::{TServerConfig, TServerError, TabletServer, run};
pub use store::{ReplicaMeta, TServerStore};
