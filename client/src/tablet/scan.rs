//! Scans: stored rows in key order, bounded by key range and limit, projected to columns.
//!
//! Key bounds are built from key values with [`key_bound`]: the values of the first key
//! columns, in primary-key order (the first column only, or all of them, or any leading
//! part). A range is `lower` inclusive, `upper` exclusive, so `--from K --to L` on the first
//! key column yields rows with `K <= first < L`: every row whose first column is `K`, none
//! whose first column is `L`.

use serde::{Deserialize, Serialize};

use super::key::encode_key_prefix;
use super::row::read_row;
use super::schema::TabletSchema;
use super::store::StoreError;
use super::value::{Value, ValueError, cell_to_json};

/// A scanned row: projected column names with their values (`None` is null).
pub type ScanRow = Vec<(String, Option<Value>)>;

/// Why a scan request is invalid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ScanError {
    #[error("unknown column '{0}'")]
    UnknownColumn(String),
    #[error("column '{0}' is named twice")]
    DuplicateColumn(String),
    #[error("the projection names no column")]
    EmptyProjection,
    #[error("a key bound needs between 1 and {key_columns} values, got {got}")]
    BoundArity { got: usize, key_columns: usize },
    #[error("key bound for column '{column}': {source}")]
    BoundValue { column: String, source: ValueError },
    #[error("key bound for column '{0}' cannot be null")]
    NullBound(String),
}

/// Which columns a scan returns, in which order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Projection {
    /// Indexes into the schema's columns.
    columns: Vec<usize>,
}

impl Projection {
    /// All columns in table order (`None`), or the named ones in the given order.
    pub fn new(schema: &TabletSchema, names: Option<&[String]>) -> Result<Projection, ScanError> {
        let Some(names) = names else { return Ok(Projection { columns: (0..schema.columns().len()).collect() }) };
        if names.is_empty() {
            return Err(ScanError::EmptyProjection);
        }
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            let index = schema
                .columns()
                .iter()
                .position(|c| &c.name == name)
                .ok_or_else(|| ScanError::UnknownColumn(name.clone()))?;
            if columns.contains(&index) {
                return Err(ScanError::DuplicateColumn(name.clone()));
            }
            columns.push(index);
        }
        Ok(Projection { columns })
    }
}

/// An encoded key range: `lower` inclusive, `upper` exclusive, `None` unbounded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRange {
    pub lower: Option<Vec<u8>>,
    pub upper: Option<Vec<u8>>,
}

/// The encoded bound for the leading key columns given as JSON (see the module docs).
pub fn key_bound(schema: &TabletSchema, values: &[serde_json::Value]) -> Result<Vec<u8>, ScanError> {
    let key_columns = schema.num_key_columns();
    if values.is_empty() || values.len() > key_columns {
        return Err(ScanError::BoundArity { got: values.len(), key_columns });
    }
    let mut typed = Vec::with_capacity(values.len());
    for (column, json) in schema.key_columns().zip(values) {
        let value = Value::from_json(json, column.data_type)
            .map_err(|source| ScanError::BoundValue { column: column.name.clone(), source })?
            .ok_or_else(|| ScanError::NullBound(column.name.clone()))?;
        typed.push(value);
    }
    Ok(encode_key_prefix(&typed, key_columns))
}

/// Reads rows from `rows` (stored `(key, value)` pairs in ascending key order, e.g. a
/// storage iterator positioned at `range.lower`), keeps those in `range`, projects them and
/// stops after `limit` rows.
pub fn scan<I, K, V, E>(
    schema: &TabletSchema,
    projection: &Projection,
    range: &KeyRange,
    limit: Option<usize>,
    rows: I,
) -> Result<Vec<ScanRow>, StoreError<E>>
where
    I: IntoIterator<Item = Result<(K, V), E>>,
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut out = Vec::new();
    if limit == Some(0) {
        return Ok(out);
    }
    for item in rows {
        let (key, value) = item.map_err(StoreError::Store)?;
        let key = key.as_ref();
        if range.lower.as_deref().is_some_and(|lower| key < lower) {
            continue;
        }
        if range.upper.as_deref().is_some_and(|upper| key >= upper) {
            break;
        }
        let mut row = read_row(schema, key, value.as_ref()).map_err(|e| StoreError::corrupt(key, e))?;
        let projected = projection
            .columns
            .iter()
            .filter_map(|&i| {
                let column = schema.columns().get(i)?;
                Some((column.name.clone(), row.get_mut(i).and_then(Option::take)))
            })
            .collect();
        out.push(projected);
        if limit.is_some_and(|limit| out.len() >= limit) {
            break;
        }
    }
    Ok(out)
}

/// A scanned row as a JSON object (column order kept when serde_json preserves order,
/// otherwise sorted by name).
pub fn row_to_json(row: &ScanRow) -> serde_json::Map<String, serde_json::Value> {
    row.iter().map(|(name, value)| (name.clone(), cell_to_json(value.as_ref()))).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::convert::Infallible;

    use serde_json::json;

    use super::*;
    use crate::catalog::{Column, ColumnType, Schema};
    use crate::tablet::key::encode_key;
    use crate::tablet::row::encode_row_value;

    /// Key (g string, n int32), value v int64 (nullable).
    fn schema() -> TabletSchema {
        let schema = Schema {
            columns: vec![
                Column::new("g", ColumnType::String, false),
                Column::new("n", ColumnType::Int32, false),
                Column::new("v", ColumnType::Int64, true),
            ],
            primary_key: vec!["g".into(), "n".into()],
        }
        .with_fresh_ids();
        TabletSchema::new(schema, 1).expect("valid")
    }

    fn rows() -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut rows = BTreeMap::new();
        for g in ["a", "b", "c"] {
            for n in [1, 2, 3] {
                let key = encode_key(&[Value::String(g.into()), Value::Int32(n)]);
                let value =
                    if n == 2 { encode_row_value(&[]) } else { encode_row_value(&[(2, Value::Int64(n.into()))]) };
                rows.insert(key, value);
            }
        }
        rows
    }

    fn run(range: &KeyRange, names: Option<&[String]>, limit: Option<usize>) -> Vec<serde_json::Value> {
        let s = schema();
        let projection = Projection::new(&s, names).expect("valid projection");
        let items = rows().into_iter().map(Ok::<_, Infallible>);
        let out = scan(&s, &projection, range, limit, items).expect("scans");
        out.iter().map(|r| serde_json::Value::Object(row_to_json(r))).collect()
    }

    #[test]
    fn scans_everything_in_key_order_with_nulls() {
        let out = run(&KeyRange::default(), None, None);
        assert_eq!(out.len(), 9);
        assert_eq!(out[0], json!({"g": "a", "n": 1, "v": 1}));
        assert_eq!(out[1], json!({"g": "a", "n": 2, "v": null}));
        assert_eq!(out[8], json!({"g": "c", "n": 3, "v": 3}));
    }

    #[test]
    fn bounds_on_the_first_key_column_or_all() {
        let s = schema();
        let range = KeyRange {
            lower: Some(key_bound(&s, &[json!("b")]).expect("bound")),
            upper: Some(key_bound(&s, &[json!("c")]).expect("bound")),
        };
        let names = ["n".to_string()];
        let out = run(&range, Some(&names), None);
        assert_eq!(out, vec![json!({"n": 1}), json!({"n": 2}), json!({"n": 3})], "all of b, none of c");
        let range = KeyRange {
            lower: Some(key_bound(&s, &[json!("a"), json!(3)]).expect("bound")),
            upper: Some(key_bound(&s, &[json!("b"), json!(2)]).expect("bound")),
        };
        let names = ["g".to_string(), "n".to_string()];
        assert_eq!(run(&range, Some(&names), None), vec![json!({"g": "a", "n": 3}), json!({"g": "b", "n": 1})]);
        assert_eq!(run(&KeyRange::default(), None, Some(2)).len(), 2);
        assert!(run(&KeyRange::default(), None, Some(0)).is_empty());
    }

    #[test]
    fn invalid_requests_are_refused() {
        let s = schema();
        assert_eq!(Projection::new(&s, Some(&["zz".to_string()])), Err(ScanError::UnknownColumn("zz".into())));
        assert_eq!(
            Projection::new(&s, Some(&["v".to_string(), "v".to_string()])),
            Err(ScanError::DuplicateColumn("v".into()))
        );
        assert_eq!(Projection::new(&s, Some(&[])), Err(ScanError::EmptyProjection));
        assert_eq!(key_bound(&s, &[]), Err(ScanError::BoundArity { got: 0, key_columns: 2 }));
        assert_eq!(
            key_bound(&s, &[json!("a"), json!(1), json!(2)]),
            Err(ScanError::BoundArity { got: 3, key_columns: 2 })
        );
        assert_eq!(key_bound(&s, &[json!(null)]), Err(ScanError::NullBound("g".into())));
        let err = key_bound(&s, &[json!("a"), json!("x")]).unwrap_err();
        assert_eq!(err.to_string(), "key bound for column 'n': expected int32, found a string \"x\"");
    }

    #[test]
    fn storage_errors_and_corrupt_rows_surface() {
        let s = schema();
        let all = Projection::new(&s, None).expect("valid");
        let failing = vec![Err::<(Vec<u8>, Vec<u8>), _>(std::fmt::Error)];
        assert!(matches!(scan(&s, &all, &KeyRange::default(), None, failing), Err(StoreError::Store(_))));
        let corrupt = vec![Ok::<_, Infallible>((encode_key(&[Value::String("a".into()), Value::Int32(1)]), vec![9]))];
        assert!(matches!(scan(&s, &all, &KeyRange::default(), None, corrupt), Err(StoreError::CorruptRow { .. })));
    }
}
