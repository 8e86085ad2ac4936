//! Client library: configured with the masters' addresses, finds the leader, follows
//! NOT_THE_LEADER hints and retries transport errors with backoff until a deadline. It
//! learns the current membership from the masters, so masters added later are found.
//! Rows go straight to tablet leaders, routed by the table's hash partitioning.

mod error;
mod master_client;
mod rows;
mod tables;

pub use error::ClientError;
pub use master_client::{ClientOptions, MasterClient};
pub use rows::{KuduClient, RowFailure, RowWrite, ScanSpec, WriteOutcome};
pub use tables::{Replica, TableRoutes, TabletRoute};
