//! The tablet server: a persistent uuid, the cluster it joined, and the tablet replicas the
//! leader master assigns it, each its own Raft group in the server's one RocksDB; writes and
//! scans served by tablet leaders; heartbeats to every master; web endpoints.
//!
//! - [`tablets`]: the replica manager (creation exactly once, tombstoning, reports, leader
//!   duties) and the router of incoming Raft RPCs.
//! - [`replica`]: one running replica and its status; [`config_change`]: its leader's
//!   steps of a replica move (re-replication); [`quiesce`]: idle groups stop their timers.
//! - [`readiness`]: `/ready` asks the tablet leaders whether this server's replicas are
//!   caught up; [`drain`]: tablet leaderships handed over before the server stops.
//! - `service`, `wire`, [`error`]: the gRPC service, reading its requests, its errors.
//! - `heartbeat`, [`cluster`]: heartbeats and the cluster id guard.
//! - `http`, `metrics`: web endpoints.

pub mod address_book;
pub mod cluster;
pub mod config;
pub mod config_change;
pub mod drain;
pub mod error;
mod heartbeat;
mod http;
mod metrics;
pub mod quiesce;
pub mod raft_types;
pub mod readiness;
pub mod replica;
mod server;
mod service;
pub mod store;
pub mod tablets;
mod wire;

pub use config::TabletRaftTimings;
pub use server::{TServerConfig, TServerError, TServerState, TabletServer, run};
pub use store::{ReplicaMeta, ReplicaState, TServerStore, TabletStateMachine, TabletStoreError};
pub use tablets::{CreateOutcome, DeleteOutcome, TabletManager};
