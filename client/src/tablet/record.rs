//! What a tablet persists: [`Mutation`]s returned by each application, and the
//! [`TabletRecord`]s that rebuild the in-memory state (schema and result tracker).

use serde::{Deserialize, Serialize};

use super::tracker::ClientRecord;
use crate::catalog::Schema;

/// The tablet's schema as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRecord {
    pub schema: Schema,
    pub version: u64,
}

/// One durable record of a tablet's in-memory state. A snapshot is these records plus every
/// stored row; start-up rebuilds the state from the records with
/// [`super::TabletState::from_records`] (rows stay in storage).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TabletRecord {
    Schema(SchemaRecord),
    Client(ClientRecord),
}

/// A change to durable state produced by applying a command. The caller writes all of one
/// application's mutations atomically with the applied log id.
#[derive(Clone, Debug, PartialEq)]
pub enum Mutation {
    /// Store `value` (a row value, see [`super::row`]) under the encoded `key`.
    PutRow {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Remove the row with this encoded key (it may already be absent).
    DeleteRow {
        key: Vec<u8>,
    },
    PutSchema(SchemaRecord),
    /// Store (replace) a client's result-tracker record.
    PutClient(ClientRecord),
    /// Forget a client (evicted from the result tracker).
    DeleteClient {
        client_id: String,
    },
}
