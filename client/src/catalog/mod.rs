//! The replicated catalog: the cluster id, tables and tablets (with tombstones). Pure domain code: it knows neither Raft,
//! gRPC nor RocksDB. The master's state machine applies [`CatalogCommand`]s to a
//! [`Catalog`] and persists the [`Mutation`]s each application returns.

mod alter;
mod command;
mod error;
mod model;
pub mod schema;
mod state;

pub use command::{AlterStep, CatalogCommand, CatalogOutcome, CatalogResponse};
pub use error::CatalogError;
pub use model::{ReplicaMove, Table, TableState, Tablet, TabletConfigUpdate, TabletMove, TabletState};
pub use schema::{Column, ColumnType, Schema};
pub use state::{Catalog, CatalogRecord, MAX_TOMBSTONES, Mutation, REQUEST_HISTORY, REQUEST_HISTORY_BYTES};
