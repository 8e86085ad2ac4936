//! Reading the tablet server's requests: schemas with their column ids, row operations and
//! scan bounds as JSON. Every refusal is one line naming what is wrong.

use crate::catalog::{Column, Schema};
use crate::convert::column_type_from_pb;
use crate::pb::master as mpb;
use crate::pb::tserver as tpb;
use crate::tablet::{JsonRow, OpKind};

/// A request that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("missing schema")]
    MissingSchema,
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    #[error("row {row}: operation type {value} is not insert, upsert, update or delete")]
    OpType { row: usize, value: i32 },
    #[error("row {row}: not a JSON object of column values: {reason}")]
    RowJson { row: usize, reason: String },
    #[error("{which} key bound: not a JSON array of key column values: {reason}")]
    Bound { which: &'static str, reason: String },
}

/// A schema as the master sends it, column ids included (the tablet stores values under them).
pub fn schema_from_pb(schema: Option<mpb::Schema>) -> Result<Schema, WireError> {
    let schema = schema.ok_or(WireError::MissingSchema)?;
    let columns = schema
        .columns
        .into_iter()
        .map(|c| {
            let data_type = column_type_from_pb(c.data_type).map_err(|e| WireError::InvalidSchema(e.to_string()))?;
            Ok(Column { id: c.id, name: c.name, data_type, nullable: c.nullable })
        })
        .collect::<Result<Vec<_>, WireError>>()?;
    Ok(Schema { columns, primary_key: schema.primary_key })
}

/// The operations of a write as typed JSON rows.
pub fn write_rows(ops: &[tpb::RowOperation]) -> Result<Vec<(OpKind, JsonRow)>, WireError> {
    ops.iter()
        .enumerate()
        .map(|(row, op)| {
            let kind = match tpb::OpType::try_from(op.r#type) {
                Ok(tpb::OpType::Insert) => OpKind::Insert,
                Ok(tpb::OpType::Upsert) => OpKind::Upsert,
                Ok(tpb::OpType::Update) => OpKind::Update,
                Ok(tpb::OpType::Delete) => OpKind::Delete,
                Ok(tpb::OpType::Unspecified) | Err(_) => return Err(WireError::OpType { row, value: op.r#type }),
            };
            let values: JsonRow = serde_json::from_str(&op.row_json)
                .map_err(|e| WireError::RowJson { row, reason: one_line(&e.to_string()) })?;
            Ok((kind, values))
        })
        .collect()
}

/// A scan bound: empty for unbounded, otherwise a JSON array of leading key values.
pub fn bound(which: &'static str, json: &str) -> Result<Option<Vec<serde_json::Value>>, WireError> {
    if json.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str::<Vec<serde_json::Value>>(json)
        .map(Some)
        .map_err(|e| WireError::Bound { which, reason: one_line(&e.to_string()) })
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_keep_column_ids() {
        let pb = mpb::Schema {
            columns: vec![mpb::ColumnSchema {
                name: "k".into(),
                data_type: mpb::DataType::Int64 as i32,
                nullable: false,
                id: 7,
            }],
            primary_key: vec!["k".into()],
        };
        let schema = schema_from_pb(Some(pb)).unwrap();
        assert_eq!(schema.columns[0].id, 7);
        assert_eq!(schema_from_pb(None), Err(WireError::MissingSchema));
        let bad = mpb::Schema {
            columns: vec![mpb::ColumnSchema { name: "k".into(), data_type: 99, nullable: false, id: 0 }],
            primary_key: vec![],
        };
        assert!(matches!(schema_from_pb(Some(bad)), Err(WireError::InvalidSchema(_))));
    }

    #[test]
    fn garbage_rows_and_bounds_are_refused_in_one_line() {
        let op = |t: tpb::OpType, json: &str| tpb::RowOperation { r#type: t as i32, row_json: json.into() };
        let rows =
            write_rows(&[op(tpb::OpType::Insert, r#"{"k": 1}"#), op(tpb::OpType::Delete, r#"{"k": 2}"#)]).unwrap();
        assert_eq!(rows.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [OpKind::Insert, OpKind::Delete]);
        let err = write_rows(&[op(tpb::OpType::Insert, "{}"), op(tpb::OpType::Upsert, "[1,")]).unwrap_err();
        assert!(err.to_string().starts_with("row 1: not a JSON object"), "{err}");
        let err = write_rows(&[op(tpb::OpType::Insert, "[1]")]).unwrap_err();
        assert!(matches!(err, WireError::RowJson { row: 0, .. }), "{err}");
        let err = write_rows(&[op(tpb::OpType::Unspecified, "{}")]).unwrap_err();
        assert_eq!(err.to_string(), "row 0: operation type 0 is not insert, upsert, update or delete");
        assert_eq!(bound("lower", ""), Ok(None));
        assert_eq!(bound("lower", "[1, \"a\"]").unwrap().map(|v| v.len()), Some(2));
        assert!(bound("upper", "{\"k\":1}").unwrap_err().to_string().starts_with("upper key bound"));
        for e in [bound("upper", "\u{0}garbage").unwrap_err().to_string(), err.to_string()] {
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
