//! A tablet's rows: value types, key and row encodings, hash partitioning, write checking,
//! the replicated tablet state (rows, schema versions, exactly-once writes) and scans. Pure
//! domain code: it knows neither Raft, gRPC nor RocksDB. A tablet replica's state machine
//! applies [`TabletCommand`]s to a [`TabletState`] over a [`RowStore`] and persists the
//! [`Mutation`]s each application returns.

mod command;
pub mod key;
pub mod partition;
mod record;
pub mod row;
pub mod scan;
mod schema;
mod state;
mod store;
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod test_support;
mod tracker;
pub mod value;
pub mod write;

pub use command::{RowError, RowFailure, RowOp, TabletCommand, TabletError, TabletOutcome, TabletResponse};
pub use key::{decode_key, encode_key, encode_key_prefix};
pub use partition::partition_of;
pub use record::{Mutation, SchemaRecord, TabletRecord};
pub use scan::{KeyRange, Projection, ScanError, ScanRow, key_bound, row_to_json, scan};
pub use schema::{SchemaError, TabletColumn, TabletSchema};
pub use state::TabletState;
pub use store::{RowStore, StoreError};
pub use tracker::{ClientRecord, MAX_RESPONSES_PER_CLIENT, MAX_TRACKED_CLIENTS, ResultTracker, Seen};
pub use value::{Value, ValueError};
pub use write::{
    JsonRow, MAX_BATCH_BYTES, MAX_BATCH_OPS, MAX_CLIENT_ID_BYTES, MAX_KEY_BYTES, MAX_ROW_BYTES, OpKind, TypedRow,
    WriteError, check_client_id, encode_batch, encode_json_batch, encode_json_op, encode_op,
};
