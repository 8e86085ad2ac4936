//! Leader-side checking and encoding of client rows into [`RowOp`]s, before proposing.
//!
//! Limits (counted on the encoded form, key plus cells):
//! - a key at most [`MAX_KEY_BYTES`] (16 KiB), a row at most [`MAX_ROW_BYTES`] (64 KiB);
//! - a batch at most [`MAX_BATCH_OPS`] (10 000) rows and [`MAX_BATCH_BYTES`] (8 MiB).
//!
//! Per operation: every key column must be given and not null. `insert` and `upsert` must
//! give every non-nullable column; `update` changes only the columns it names (null clears a
//! nullable column); `delete` names key columns only. Rows are counted from 0. The first
//! problem of a batch refuses the whole batch, naming the row and column.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::RowOp;
use super::key::encode_key;
use super::row::{Cell, encode_cells};
use super::schema::TabletSchema;
use super::value::{Value, ValueError};

/// Longest encoded primary key.
pub const MAX_KEY_BYTES: usize = 16 * 1024;
/// Largest encoded row (key plus cells).
pub const MAX_ROW_BYTES: usize = 64 * 1024;
/// Most rows in one write.
pub const MAX_BATCH_OPS: usize = 10_000;
/// Largest encoded write (sum of its rows).
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Longest client id of a write (clients send UUIDs); the tablet remembers it with every
/// remembered outcome.
pub const MAX_CLIENT_ID_BYTES: usize = 128;

/// The kind of a row operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Insert,
    Upsert,
    Update,
    Delete,
}

/// Why a client's write was refused before proposing. `row` counts from 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WriteError {
    #[error("the write has no rows")]
    Empty,
    #[error("{ops} rows exceed the limit of {limit} per write")]
    TooManyOps { ops: usize, limit: usize },
    #[error("the write's rows take {bytes} bytes encoded, over the limit of {limit}")]
    BatchTooLarge { bytes: usize, limit: usize },
    #[error("the write's client id of {bytes} bytes is longer than the limit of {limit}")]
    ClientIdTooLong { bytes: usize, limit: usize },
    #[error("row {row}: unknown column '{column}'")]
    UnknownColumn { row: usize, column: String },
    #[error("row {row}: key column '{column}' is missing or null")]
    MissingKey { row: usize, column: String },
    #[error("row {row}: column '{column}' is not nullable and has no value")]
    MissingColumn { row: usize, column: String },
    #[error("row {row}: column '{column}' is not nullable and cannot be set to null")]
    NullNotAllowed { row: usize, column: String },
    #[error("row {row}: column '{column}': {source}")]
    InvalidValue { row: usize, column: String, source: ValueError },
    #[error("row {row}: a delete names only key columns, not '{column}'")]
    ValueInDelete { row: usize, column: String },
    #[error("row {row}: the key takes {bytes} bytes encoded, over the limit of {limit}")]
    KeyTooLarge { row: usize, bytes: usize, limit: usize },
    #[error("row {row}: the row takes {bytes} bytes encoded, over the limit of {limit}")]
    RowTooLarge { row: usize, bytes: usize, limit: usize },
}

impl WriteError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            WriteError::Empty
            | WriteError::TooManyOps { .. }
            | WriteError::BatchTooLarge { .. }
            | WriteError::ClientIdTooLong { .. } => "INVALID_WRITE",
            _ => "INVALID_ROW",
        }
    }
}

/// A row as a client sends it: column name to JSON value (`null` is NULL).
pub type JsonRow = BTreeMap<String, serde_json::Value>;
/// A row of typed values: column name to value (`None` is NULL).
pub type TypedRow = BTreeMap<String, Option<Value>>;

/// Checks and encodes one JSON row (number `row` of its write).
pub fn encode_json_op(schema: &TabletSchema, kind: OpKind, row: usize, values: &JsonRow) -> Result<RowOp, WriteError> {
    let mut typed = TypedRow::new();
    for (name, json) in values {
        let column = schema.column(name).ok_or_else(|| WriteError::UnknownColumn { row, column: name.clone() })?;
        let value = Value::from_json(json, column.data_type).map_err(|source| WriteError::InvalidValue {
            row,
            column: name.clone(),
            source,
        })?;
        typed.insert(name.clone(), value);
    }
    encode_op(schema, kind, row, &typed)
}

/// Checks and encodes one typed row (number `row` of its write).
pub fn encode_op(schema: &TabletSchema, kind: OpKind, row: usize, values: &TypedRow) -> Result<RowOp, WriteError> {
    for (name, value) in values {
        let column = schema.column(name).ok_or_else(|| WriteError::UnknownColumn { row, column: name.clone() })?;
        if let Some(value) = value
            && value.data_type() != column.data_type
        {
            let source = ValueError::WrongType { expected: column.data_type, found: value.data_type().to_string() };
            return Err(WriteError::InvalidValue { row, column: name.clone(), source });
        }
    }
    let mut key_values = Vec::with_capacity(schema.num_key_columns());
    for column in schema.key_columns() {
        match values.get(&column.name) {
            Some(Some(value)) => key_values.push(value.clone()),
            _ => return Err(WriteError::MissingKey { row, column: column.name.clone() }),
        }
    }
    let key = encode_key(&key_values);
    if key.len() > MAX_KEY_BYTES {
        return Err(WriteError::KeyTooLarge { row, bytes: key.len(), limit: MAX_KEY_BYTES });
    }
    let mut cells: Vec<Cell> = Vec::new();
    for column in schema.value_columns() {
        match (values.get(&column.name), kind) {
            (Some(_), OpKind::Delete) => return Err(WriteError::ValueInDelete { row, column: column.name.clone() }),
            (Some(None), _) if !column.nullable => {
                return Err(WriteError::NullNotAllowed { row, column: column.name.clone() });
            }
            (Some(value), _) => cells.push((column.id, value.clone())),
            (None, OpKind::Insert | OpKind::Upsert) if !column.nullable => {
                return Err(WriteError::MissingColumn { row, column: column.name.clone() });
            }
            (None, _) => {}
        }
    }
    if kind == OpKind::Insert {
        // A new row stores no null cells.
        cells.retain(|(_, value)| value.is_some());
    }
    let op = match kind {
        OpKind::Insert => RowOp::Insert { key, cells: encode_cells(&cells) },
        OpKind::Upsert => RowOp::Upsert { key, cells: encode_cells(&cells) },
        OpKind::Update => RowOp::Update { key, cells: encode_cells(&cells) },
        OpKind::Delete => RowOp::Delete { key },
    };
    if op.encoded_len() > MAX_ROW_BYTES {
        return Err(WriteError::RowTooLarge { row, bytes: op.encoded_len(), limit: MAX_ROW_BYTES });
    }
    Ok(op)
}

/// Checks and encodes a whole write of JSON rows, enforcing the batch limits.
pub fn encode_json_batch(schema: &TabletSchema, rows: &[(OpKind, JsonRow)]) -> Result<Vec<RowOp>, WriteError> {
    check_count(rows.len())?;
    let ops = rows
        .iter()
        .enumerate()
        .map(|(i, (kind, row))| encode_json_op(schema, *kind, i, row))
        .collect::<Result<Vec<_>, _>>()?;
    check_bytes(&ops)?;
    Ok(ops)
}

/// Checks and encodes a whole write of typed rows, enforcing the batch limits.
pub fn encode_batch(schema: &TabletSchema, rows: &[(OpKind, TypedRow)]) -> Result<Vec<RowOp>, WriteError> {
    check_count(rows.len())?;
    let ops = rows
        .iter()
        .enumerate()
        .map(|(i, (kind, row))| encode_op(schema, *kind, i, row))
        .collect::<Result<Vec<_>, _>>()?;
    check_bytes(&ops)?;
    Ok(ops)
}

/// Checks a write's client id against [`MAX_CLIENT_ID_BYTES`].
pub fn check_client_id(client_id: &str) -> Result<(), WriteError> {
    match client_id.len() {
        bytes if bytes > MAX_CLIENT_ID_BYTES => Err(WriteError::ClientIdTooLong { bytes, limit: MAX_CLIENT_ID_BYTES }),
        _ => Ok(()),
    }
}

fn check_count(ops: usize) -> Result<(), WriteError> {
    match ops {
        0 => Err(WriteError::Empty),
        n if n > MAX_BATCH_OPS => Err(WriteError::TooManyOps { ops: n, limit: MAX_BATCH_OPS }),
        _ => Ok(()),
    }
}

fn check_bytes(ops: &[RowOp]) -> Result<(), WriteError> {
    let bytes: usize = ops.iter().map(RowOp::encoded_len).sum();
    if bytes > MAX_BATCH_BYTES {
        return Err(WriteError::BatchTooLarge { bytes, limit: MAX_BATCH_BYTES });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tablet::row::decode_cells;
    use crate::tablet::test_support::{schema, strings_schema};

    fn row(pairs: serde_json::Value) -> JsonRow {
        serde_json::from_value(pairs).expect("object")
    }

    fn one(kind: OpKind, pairs: serde_json::Value) -> Result<RowOp, WriteError> {
        encode_json_op(&schema(), kind, 3, &row(pairs))
    }

    #[test]
    fn encodes_each_kind() {
        let RowOp::Insert { key, cells } = one(OpKind::Insert, json!({"id": 1, "count": 2, "name": null})).expect("ok")
        else {
            panic!("not an insert")
        };
        assert_eq!(key, encode_key(&[Value::Int64(1)]));
        assert_eq!(decode_cells(&cells), Ok(vec![(2, Some(Value::Int32(2)))]), "nulls are not stored");
        let RowOp::Update { cells, .. } = one(OpKind::Update, json!({"id": 1, "name": null})).expect("ok") else {
            panic!("not an update")
        };
        assert_eq!(decode_cells(&cells), Ok(vec![(1, None)]), "an update's null clears");
        assert!(matches!(one(OpKind::Upsert, json!({"id": 1, "count": 2})), Ok(RowOp::Upsert { .. })));
        assert_eq!(one(OpKind::Delete, json!({"id": 1})), Ok(RowOp::Delete { key: encode_key(&[Value::Int64(1)]) }));
    }

    #[test]
    fn every_row_error_names_row_and_column() {
        let cases = [
            (OpKind::Insert, json!({"id": 1, "count": 1, "nope": 1}), "row 3: unknown column 'nope'"),
            (OpKind::Insert, json!({"count": 1}), "row 3: key column 'id' is missing or null"),
            (OpKind::Delete, json!({"id": null}), "row 3: key column 'id' is missing or null"),
            (OpKind::Insert, json!({"id": 1}), "row 3: column 'count' is not nullable and has no value"),
            (OpKind::Upsert, json!({"id": 1}), "row 3: column 'count' is not nullable and has no value"),
            (
                OpKind::Update,
                json!({"id": 1, "count": null}),
                "row 3: column 'count' is not nullable and cannot be set to null",
            ),
            (
                OpKind::Insert,
                json!({"id": 1, "count": "x"}),
                "row 3: column 'count': expected int32, found a string \"x\"",
            ),
            (
                OpKind::Insert,
                json!({"id": 1, "count": 1e10}),
                "row 3: column 'count': expected int32, found a fractional number 10000000000.0",
            ),
            (
                OpKind::Insert,
                json!({"id": 1, "count": 3000000000i64}),
                "row 3: column 'count': 3000000000 is out of range for int32",
            ),
            (OpKind::Delete, json!({"id": 1, "name": "x"}), "row 3: a delete names only key columns, not 'name'"),
        ];
        for (kind, pairs, message) in cases {
            let err = one(kind, pairs.clone()).expect_err("accepted");
            assert_eq!(err.to_string(), message, "{kind:?} {pairs}");
            assert_eq!(err.code(), "INVALID_ROW");
        }
    }

    #[test]
    fn typed_rows_are_type_checked() {
        let mut typed = TypedRow::new();
        typed.insert("id".into(), Some(Value::Int32(1)));
        let err = encode_op(&schema(), OpKind::Delete, 0, &typed).expect_err("int32 for int64 accepted");
        assert_eq!(err.to_string(), "row 0: column 'id': expected int64, found int32");
        typed.insert("id".into(), Some(Value::Int64(1)));
        assert!(encode_op(&schema(), OpKind::Delete, 0, &typed).is_ok());
    }

    #[test]
    fn size_limits() {
        check_client_id(&"c".repeat(MAX_CLIENT_ID_BYTES)).expect("longest client id");
        assert_eq!(
            check_client_id(&"c".repeat(1 << 20)),
            Err(WriteError::ClientIdTooLong { bytes: 1 << 20, limit: MAX_CLIENT_ID_BYTES })
        );
        let s = strings_schema();
        let key = |n: usize| row(json!({"k": "x".repeat(n)}));
        assert!(encode_json_op(&s, OpKind::Delete, 0, &key(MAX_KEY_BYTES)).is_ok());
        assert_eq!(
            encode_json_op(&s, OpKind::Delete, 1, &key(MAX_KEY_BYTES + 1)),
            Err(WriteError::KeyTooLarge { row: 1, bytes: MAX_KEY_BYTES + 1, limit: MAX_KEY_BYTES })
        );
        let big = row(json!({"k": "a", "v": "x".repeat(MAX_ROW_BYTES)}));
        let err = encode_json_op(&s, OpKind::Insert, 2, &big).expect_err("big row accepted");
        assert!(matches!(err, WriteError::RowTooLarge { row: 2, limit: MAX_ROW_BYTES, .. }), "{err}");

        assert_eq!(encode_json_batch(&s, &[]), Err(WriteError::Empty));
        let many = vec![(OpKind::Delete, key(1)); MAX_BATCH_OPS + 1];
        assert_eq!(
            encode_json_batch(&s, &many),
            Err(WriteError::TooManyOps { ops: MAX_BATCH_OPS + 1, limit: MAX_BATCH_OPS })
        );
        assert_eq!(encode_json_batch(&s, &many[..MAX_BATCH_OPS]).map(|ops| ops.len()), Ok(MAX_BATCH_OPS));
        let fat: Vec<(OpKind, JsonRow)> =
            (0..200).map(|i| (OpKind::Insert, row(json!({"k": i.to_string(), "v": "x".repeat(60_000)})))).collect();
        let err = encode_json_batch(&s, &fat).expect_err("12 MB accepted");
        assert!(matches!(err, WriteError::BatchTooLarge { limit: MAX_BATCH_BYTES, .. }), "{err}");
        assert_eq!(err.code(), "INVALID_WRITE");
        // The first bad row refuses the batch and is named.
        let mixed = vec![(OpKind::Delete, key(1)), (OpKind::Delete, row(json!({"k": 5})))];
        assert!(encode_json_batch(&s, &mixed).expect_err("bad row").to_string().starts_with("row 1: column 'k'"));
    }
}
