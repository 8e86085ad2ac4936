//! The Kudu master: an openraft group replicating the catalog, served over gRPC. The Raft
//! plumbing (log store, network, peer service) is the shared [`crate::raft`] module.

mod bootstrap;
mod cluster_id;
pub mod config;
mod ddl;
mod decommission;
pub mod error;
pub mod heartbeat;
mod heartbeat_sender;
mod housekeeping;
mod http;
pub mod leader_balance;
pub mod limits;
pub mod location_mapping;
pub mod membership;
mod metrics;
mod node;
pub mod raft_types;
mod read_batch;
pub mod rebalance;
mod registration;
mod rereplication;
mod router;
mod schema_push;
mod server;
mod service;
pub mod store;
mod tablet_index;
mod tservers;

pub use config::{LocationMappingConfig, MasterConfig};
pub use error::MasterError;
pub use node::MasterNode;
pub use server::{MasterServer, run};
