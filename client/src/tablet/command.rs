//! What a tablet's Raft log carries ([`TabletCommand`]) and what applying it answers
//! ([`TabletResponse`]). Rows arrive already encoded by the leader, so applying is
//! deterministic.

use serde::{Deserialize, Serialize};

use crate::catalog::Schema;

/// One row operation of a write, encoded by the leader (see [`super::write`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowOp {
    /// Fails with `ALREADY_PRESENT` if the key exists. `cells`: the non-null cells.
    Insert {
        #[serde(with = "base64_bytes")]
        key: Vec<u8>,
        #[serde(with = "base64_bytes")]
        cells: Vec<u8>,
    },
    /// Inserts, or merges `cells` (null cells clear) into the existing row.
    Upsert {
        #[serde(with = "base64_bytes")]
        key: Vec<u8>,
        #[serde(with = "base64_bytes")]
        cells: Vec<u8>,
    },
    /// Merges `cells` (null cells clear) into the existing row; `NOT_FOUND` if missing.
    Update {
        #[serde(with = "base64_bytes")]
        key: Vec<u8>,
        #[serde(with = "base64_bytes")]
        cells: Vec<u8>,
    },
    /// Deletes the row; `NOT_FOUND` if missing.
    Delete {
        #[serde(with = "base64_bytes")]
        key: Vec<u8>,
    },
}

impl RowOp {
    /// The encoded primary key.
    pub fn key(&self) -> &[u8] {
        match self {
            RowOp::Insert { key, .. }
            | RowOp::Upsert { key, .. }
            | RowOp::Update { key, .. }
            | RowOp::Delete { key } => key,
        }
    }

    /// Encoded size (key plus cells), what the size limits count.
    pub fn encoded_len(&self) -> usize {
        match self {
            RowOp::Insert { key, cells } | RowOp::Upsert { key, cells } | RowOp::Update { key, cells } => {
                key.len() + cells.len()
            }
            RowOp::Delete { key } => key.len(),
        }
    }
}

/// One entry of a tablet's Raft log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TabletCommand {
    /// A client's batch of row operations. `(client_id, seq_no)` makes it exactly-once: the
    /// client promises it has the answers of all its seq_nos below
    /// `first_incomplete_seq_no`. An empty `client_id` opts out of exactly-once.
    Write {
        client_id: String,
        seq_no: u64,
        first_incomplete_seq_no: u64,
        /// Version of the schema the leader encoded the rows with.
        schema_version: u64,
        ops: Vec<RowOp>,
    },
    /// Installs the table's schema at `version` (the catalog table version). Older or equal
    /// versions are ignored, so replays and reordered deliveries are harmless.
    AlterSchema { schema: Schema, version: u64 },
}

/// Why one row of a write failed; the other rows are applied (Kudu semantics).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RowFailure {
    #[error("key already present")]
    AlreadyPresent,
    #[error("key not found")]
    NotFound,
    #[error(
        "column id {id} is not in the tablet's schema version {tablet_version} (the row was \
         encoded with version {write_version}); the table was altered, retry the row"
    )]
    UnknownColumnId { id: u32, tablet_version: u64, write_version: u64 },
    #[error("column '{column}' expects {expected}, the row carries {found}")]
    TypeMismatch { column: String, expected: String, found: String },
    #[error("column '{column}' is not nullable")]
    NullNotAllowed { column: String },
    #[error("column '{column}' is not nullable and has no value")]
    MissingColumn { column: String },
    #[error("key column '{column}' cannot be changed")]
    KeyColumnInCells { column: String },
    #[error("malformed row: {0}")]
    Malformed(String),
}

impl RowFailure {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            RowFailure::AlreadyPresent => "ALREADY_PRESENT",
            RowFailure::NotFound => "NOT_FOUND",
            RowFailure::UnknownColumnId { .. } => "SCHEMA_MISMATCH",
            RowFailure::TypeMismatch { .. }
            | RowFailure::NullNotAllowed { .. }
            | RowFailure::MissingColumn { .. }
            | RowFailure::KeyColumnInCells { .. }
            | RowFailure::Malformed(_) => "INVALID_ROW",
        }
    }
}

/// A failed row: its index in the write's `ops` and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub index: u32,
    pub failure: RowFailure,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "row {}: {}", self.index, self.failure)
    }
}

/// Why a whole command was refused. Part of the replicated output: deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TabletError {
    #[error(
        "write {seq_no} of client '{client_id}' is stale: it is below {first_incomplete}, whose \
         answers are forgotten; it was not applied again"
    )]
    Stale { client_id: String, seq_no: u64, first_incomplete: u64 },
    #[error("the tablet has no schema yet")]
    NoSchema,
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    #[error("schema version {version} changes the primary key, which a tablet cannot do")]
    KeyChanged { version: u64 },
}

impl TabletError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TabletError::Stale { .. } => "STALE",
            TabletError::NoSchema => "NO_SCHEMA",
            TabletError::InvalidSchema(_) => "INVALID_SCHEMA",
            TabletError::KeyChanged { .. } => "INVALID_ALTER",
        }
    }
}

/// Successful outcome of a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TabletOutcome {
    /// A write was applied; rows not listed in `row_errors` took effect.
    Written { row_errors: Vec<RowError> },
    /// The schema is now at `version` (already was, if the command was older or a replay).
    Schema { version: u64 },
    /// A Raft-internal entry (blank or membership change) was applied; it carried no
    /// tablet command.
    RaftInternal,
}

impl TabletResponse {
    /// The answer to a Raft-internal entry (blank or membership change).
    pub fn raft_internal() -> TabletResponse {
        TabletResponse(Ok(TabletOutcome::RaftInternal))
    }
}

/// What applying a command answered; replicated, so the same on every replica, and
/// remembered for retries of the same write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TabletResponse(pub Result<TabletOutcome, TabletError>);

impl std::fmt::Display for TabletCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TabletCommand::Write { client_id, seq_no, ops, .. } => {
                write!(f, "Write({client_id}#{seq_no}, {} ops)", ops.len())
            }
            TabletCommand::AlterSchema { version, .. } => write!(f, "AlterSchema(v{version})"),
        }
    }
}

/// Bytes as a base64 string in serialized commands: the Raft log is JSON, where a byte
/// array would take about four times the space.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_through_json_with_compact_bytes() {
        let cmd = TabletCommand::Write {
            client_id: "c".into(),
            seq_no: 3,
            first_incomplete_seq_no: 1,
            schema_version: 2,
            ops: vec![RowOp::Insert { key: vec![0, 1, 255], cells: vec![1] }, RowOp::Delete { key: vec![7] }],
        };
        let json = serde_json::to_string(&cmd).expect("serializes");
        assert!(json.contains(r#""key":"AAH/""#), "{json}");
        assert_eq!(serde_json::from_str::<TabletCommand>(&json).expect("parses"), cmd);
        assert_eq!(cmd.to_string(), "Write(c#3, 2 ops)");
        let bad = json.replace("AAH/", "!!");
        assert!(serde_json::from_str::<TabletCommand>(&bad).is_err());
    }

    #[test]
    fn errors_have_codes_and_readable_messages() {
        let e = RowError { index: 4, failure: RowFailure::AlreadyPresent };
        assert_eq!(e.to_string(), "row 4: key already present");
        assert_eq!(e.failure.code(), "ALREADY_PRESENT");
        let stale = TabletError::Stale { client_id: "c".into(), seq_no: 1, first_incomplete: 5 };
        assert_eq!(stale.code(), "STALE");
        assert!(stale.to_string().contains("write 1 of client 'c' is stale"));
        let ops = [RowOp::Update { key: vec![1, 2], cells: vec![1, 2, 3] }, RowOp::Delete { key: vec![1] }];
        assert_eq!(ops.iter().map(RowOp::encoded_len).collect::<Vec<_>>(), [5, 1]);
        assert_eq!(ops[0].key(), &[1, 2]);
    }
}
