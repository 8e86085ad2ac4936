//! Row values: the non-key columns of a row as `(column id, value)` cells, in a compact
//! binary format, and reading stored rows with the current schema.
//!
//! Format (version 1):
//! ```text
//! 0x01                                  format version
//! then per cell, ids strictly ascending:
//!   column id    LEB128 varint (u32)
//!   tag          1 byte: 0 null, 1 int8, 2 int16, 3 int32, 4 int64, 5 float, 6 double,
//!                7 bool, 8 string, 9 binary, 10 unixtime_micros
//!   payload      fixed width little-endian for numbers (1/2/4/8 bytes; floats as IEEE
//!                bits), 1 byte 0/1 for bool, LEB128 length + bytes for string/binary,
//!                nothing for null
//! ```
//! A stored row never holds a null cell: null is an absent id. Null cells appear only in
//! the change list of an update or upsert, where they mean "set to null". The tag makes
//! every cell skippable without a schema, so cells of dropped columns are read past (and
//! ignored), and cells of columns added later are simply absent (read as null).

use serde::{Deserialize, Serialize};

use super::key::{KeyError, decode_key};
use super::schema::TabletSchema;
use super::value::Value;

const FORMAT_V1: u8 = 1;

/// One cell of a row value or change list; `None` is null.
pub type Cell = (u32, Option<Value>);

/// Why bytes are not a valid row value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RowDecodeError {
    #[error("row value is empty")]
    Empty,
    #[error("unsupported row value format {0}")]
    UnsupportedFormat(u8),
    #[error("row value ends inside a cell")]
    Truncated,
    #[error("row value has an over-long varint")]
    VarintOverflow,
    #[error("row value has unknown type tag {tag} for column id {id}")]
    UnknownTag { id: u32, tag: u8 },
    #[error("row value has an invalid bool byte for column id {id}")]
    InvalidBool { id: u32 },
    #[error("row value has a string that is not UTF-8 for column id {id}")]
    InvalidUtf8 { id: u32 },
    #[error("row value has column id {id} out of order or twice")]
    Unordered { id: u32 },
    #[error("row key: {0}")]
    Key(#[from] KeyError),
}

/// Encodes cells (sorted by id here; a later duplicate id wins).
pub fn encode_cells(cells: &[Cell]) -> Vec<u8> {
    let mut sorted: Vec<&Cell> = cells.iter().collect();
    sorted.sort_by_key(|(id, _)| *id);
    let mut out = vec![FORMAT_V1];
    for (i, (id, value)) in sorted.iter().enumerate() {
        if sorted.get(i + 1).is_some_and(|(next, _)| next == id) {
            continue;
        }
        put_varint(&mut out, u64::from(*id));
        match value {
            None => out.push(0),
            Some(Value::Int8(v)) => put(&mut out, 1, &v.to_le_bytes()),
            Some(Value::Int16(v)) => put(&mut out, 2, &v.to_le_bytes()),
            Some(Value::Int32(v)) => put(&mut out, 3, &v.to_le_bytes()),
            Some(Value::Int64(v)) => put(&mut out, 4, &v.to_le_bytes()),
            Some(Value::Float(v)) => put(&mut out, 5, &v.to_bits().to_le_bytes()),
            Some(Value::Double(v)) => put(&mut out, 6, &v.to_bits().to_le_bytes()),
            Some(Value::Bool(v)) => put(&mut out, 7, &[u8::from(*v)]),
            Some(Value::String(s)) => put_bytes(&mut out, 8, s.as_bytes()),
            Some(Value::Binary(b)) => put_bytes(&mut out, 9, b),
            Some(Value::UnixtimeMicros(v)) => put(&mut out, 10, &v.to_le_bytes()),
        }
    }
    out
}

/// Encodes a stored row value: the non-null cells.
pub fn encode_row_value(cells: &[(u32, Value)]) -> Vec<u8> {
    let cells: Vec<Cell> = cells.iter().map(|(id, v)| (*id, Some(v.clone()))).collect();
    encode_cells(&cells)
}

fn put(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    out.push(tag);
    out.extend_from_slice(payload);
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes cells, checking ids are strictly ascending.
pub fn decode_cells(bytes: &[u8]) -> Result<Vec<Cell>, RowDecodeError> {
    let (&format, mut rest) = bytes.split_first().ok_or(RowDecodeError::Empty)?;
    if format != FORMAT_V1 {
        return Err(RowDecodeError::UnsupportedFormat(format));
    }
    let mut cells = Vec::new();
    let mut previous: Option<u32> = None;
    while !rest.is_empty() {
        let id = u32::try_from(take_varint(&mut rest)?).map_err(|_| RowDecodeError::VarintOverflow)?;
        if previous.is_some_and(|p| p >= id) {
            return Err(RowDecodeError::Unordered { id });
        }
        previous = Some(id);
        let [tag] = take::<1>(&mut rest)?;
        let value = match tag {
            0 => None,
            1 => Some(Value::Int8(i8::from_le_bytes(take(&mut rest)?))),
            2 => Some(Value::Int16(i16::from_le_bytes(take(&mut rest)?))),
            3 => Some(Value::Int32(i32::from_le_bytes(take(&mut rest)?))),
            4 => Some(Value::Int64(i64::from_le_bytes(take(&mut rest)?))),
            5 => Some(Value::Float(f32::from_bits(u32::from_le_bytes(take(&mut rest)?)))),
            6 => Some(Value::Double(f64::from_bits(u64::from_le_bytes(take(&mut rest)?)))),
            7 => match take::<1>(&mut rest)? {
                [0] => Some(Value::Bool(false)),
                [1] => Some(Value::Bool(true)),
                _ => return Err(RowDecodeError::InvalidBool { id }),
            },
            8 => {
                let bytes = take_bytes(&mut rest)?;
                Some(Value::String(String::from_utf8(bytes).map_err(|_| RowDecodeError::InvalidUtf8 { id })?))
            }
            9 => Some(Value::Binary(take_bytes(&mut rest)?)),
            10 => Some(Value::UnixtimeMicros(i64::from_le_bytes(take(&mut rest)?))),
            tag => return Err(RowDecodeError::UnknownTag { id, tag }),
        };
        cells.push((id, value));
    }
    Ok(cells)
}

/// Decodes a stored row value: its non-null cells (null cells, never written, are skipped).
pub fn decode_row_value(bytes: &[u8]) -> Result<Vec<(u32, Value)>, RowDecodeError> {
    Ok(decode_cells(bytes)?.into_iter().filter_map(|(id, v)| v.map(|v| (id, v))).collect())
}

fn take<'a, const N: usize>(rest: &mut &'a [u8]) -> Result<[u8; N], RowDecodeError> {
    let src: &'a [u8] = rest;
    let (head, tail) = src.split_first_chunk::<N>().ok_or(RowDecodeError::Truncated)?;
    *rest = tail;
    Ok(*head)
}

fn take_varint(rest: &mut &[u8]) -> Result<u64, RowDecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let [byte] = take::<1>(rest)?;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(RowDecodeError::VarintOverflow)
}

fn take_bytes<'a>(rest: &mut &'a [u8]) -> Result<Vec<u8>, RowDecodeError> {
    let len = usize::try_from(take_varint(rest)?).map_err(|_| RowDecodeError::Truncated)?;
    let src: &'a [u8] = rest;
    if src.len() < len {
        return Err(RowDecodeError::Truncated);
    }
    let (head, tail) = src.split_at(len);
    *rest = tail;
    Ok(head.to_vec())
}

/// Applies a change list to a stored row's cells: `Some` sets, `None` clears. Cells whose
/// id is not in `schema` (dropped columns) are removed on the way.
pub fn merge_cells(stored: Vec<(u32, Value)>, changes: &[Cell], schema: &TabletSchema) -> Vec<(u32, Value)> {
    let mut cells: std::collections::BTreeMap<u32, Value> =
        stored.into_iter().filter(|(id, _)| schema.column_by_id(*id).is_some()).collect();
    for (id, change) in changes {
        match change {
            Some(value) => cells.insert(*id, value.clone()),
            None => cells.remove(id),
        };
    }
    cells.into_iter().collect()
}

/// Reads a stored row (encoded key and row value) as values in the schema's column order:
/// key columns from the key, others from their cells, null where a column has no cell
/// (added after the row was written, or null). Cells of dropped columns are ignored.
pub fn read_row(schema: &TabletSchema, key: &[u8], value: &[u8]) -> Result<Vec<Option<Value>>, RowDecodeError> {
    let mut key_values = decode_key(key, &schema.key_types())?.into_iter().map(Some).collect::<Vec<_>>();
    let mut cells = decode_row_value(value)?;
    Ok(schema
        .columns()
        .iter()
        .map(|column| match column.key_position {
            Some(position) => key_values.get_mut(position).and_then(Option::take),
            None => cells.iter().position(|(id, _)| *id == column.id).map(|i| cells.swap_remove(i).1),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, ColumnType, Schema};
    use crate::tablet::key::encode_key;

    fn every_type() -> Vec<Cell> {
        vec![
            (0, Some(Value::Int8(-5))),
            (1, Some(Value::Int16(-300))),
            (2, Some(Value::Int32(70_000))),
            (3, Some(Value::Int64(i64::MIN))),
            (4, Some(Value::Float(1.25))),
            (5, Some(Value::Double(-0.5))),
            (6, Some(Value::Bool(true))),
            (7, Some(Value::String("héllo".into()))),
            (8, Some(Value::Binary(vec![0, 255]))),
            (200, Some(Value::UnixtimeMicros(1_700_000_000_000_000))),
            (70_000, None),
        ]
    }

    #[test]
    fn cells_round_trip_and_are_sorted() {
        let mut cells = every_type();
        cells.reverse();
        let bytes = encode_cells(&cells);
        assert_eq!(decode_cells(&bytes), Ok(every_type()));
        assert_eq!(encode_cells(&[]), vec![FORMAT_V1]);
        // id 1, int32 tag, 4 bytes: compact.
        assert_eq!(encode_row_value(&[(1, Value::Int32(7))]), vec![1, 1, 3, 7, 0, 0, 0]);
        // Stored rows skip nulls.
        let stored = decode_row_value(&bytes).expect("decodes");
        assert_eq!(stored.len(), 10);
    }

    #[test]
    fn malformed_values_are_refused() {
        assert_eq!(decode_cells(&[]), Err(RowDecodeError::Empty));
        assert_eq!(decode_cells(&[2]), Err(RowDecodeError::UnsupportedFormat(2)));
        assert_eq!(decode_cells(&[1, 0, 3, 1]), Err(RowDecodeError::Truncated));
        assert_eq!(decode_cells(&[1, 0, 42]), Err(RowDecodeError::UnknownTag { id: 0, tag: 42 }));
        assert_eq!(decode_cells(&[1, 0, 7, 2]), Err(RowDecodeError::InvalidBool { id: 0 }));
        assert_eq!(decode_cells(&[1, 0, 8, 1, 0xff]), Err(RowDecodeError::InvalidUtf8 { id: 0 }));
        assert_eq!(decode_cells(&[1, 0, 8, 5, b'a']), Err(RowDecodeError::Truncated));
        assert_eq!(decode_cells(&[1, 3, 0, 2, 0]), Err(RowDecodeError::Unordered { id: 2 }));
        assert_eq!(decode_cells(&[1, 0xff, 0xff, 0xff, 0xff, 0x7f, 0]), Err(RowDecodeError::VarintOverflow));
    }

    fn table(columns: Vec<Column>) -> TabletSchema {
        TabletSchema::new(Schema { columns, primary_key: vec!["k".into()] }, 1).expect("valid")
    }

    fn col(id: u32, name: &str, t: ColumnType) -> Column {
        Column { id, ..Column::new(name, t, name != "k") }
    }

    #[test]
    fn reading_follows_the_current_schema() {
        let key = encode_key(&[Value::Int32(9)]);
        let value = encode_row_value(&[(1, Value::String("old".into())), (2, Value::Int8(1))]);
        // Written with k(0), a(1), b(2); now b is dropped, a renamed, c(3) added.
        let now = table(vec![
            col(0, "k", ColumnType::Int32),
            col(3, "c", ColumnType::Bool),
            col(1, "renamed", ColumnType::String),
        ]);
        let row = read_row(&now, &key, &value).expect("reads");
        assert_eq!(row, vec![Some(Value::Int32(9)), None, Some(Value::String("old".into()))]);
        // A re-added "b" has a new id and does not see the old value.
        let readded = table(vec![col(0, "k", ColumnType::Int32), col(4, "b", ColumnType::Int8)]);
        assert_eq!(read_row(&readded, &key, &value).expect("reads"), vec![Some(Value::Int32(9)), None]);
        assert!(matches!(read_row(&now, &[1], &value), Err(RowDecodeError::Key(_))));
    }

    #[test]
    fn merging_sets_clears_and_drops_gone_columns() {
        let s =
            table(vec![col(0, "k", ColumnType::Int32), col(1, "a", ColumnType::Int8), col(3, "c", ColumnType::Int8)]);
        let stored = vec![(1, Value::Int8(1)), (2, Value::Int8(2)), (3, Value::Int8(3))];
        let merged = merge_cells(stored, &[(1, None), (3, Some(Value::Int8(30)))], &s);
        assert_eq!(merged, vec![(3, Value::Int8(30))]);
    }
}
