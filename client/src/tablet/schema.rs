//! The tablet's view of its table's schema: columns by id and name, the primary key, and
//! the catalog version it came from.

use serde::{Deserialize, Serialize};

use crate::catalog::{ColumnType, Schema};

/// One column as a tablet sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TabletColumn {
    /// Stable column id (the catalog's); values are stored under it.
    pub id: u32,
    pub name: String,
    pub data_type: ColumnType,
    pub nullable: bool,
    /// Position in the primary key, if the column is part of it.
    pub key_position: Option<usize>,
}

/// Why a catalog schema cannot be a tablet's schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum SchemaError {
    #[error("invalid schema: {0}")]
    Invalid(String),
}

/// A validated schema with lookups by name and id. Built from a catalog [`Schema`] whose
/// column ids the master assigned, and the table version it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TabletSchema {
    schema: Schema,
    version: u64,
    columns: Vec<TabletColumn>,
    /// Indexes into `columns`, in primary-key order.
    key: Vec<usize>,
}

impl TabletSchema {
    /// Validates `schema` (names, unique ids, primary key) and indexes it.
    pub fn new(schema: Schema, version: u64) -> Result<TabletSchema, SchemaError> {
        schema.validate().map_err(|e| SchemaError::Invalid(e.to_string()))?;
        let mut columns: Vec<TabletColumn> = schema
            .columns
            .iter()
            .map(|c| TabletColumn {
                id: c.id,
                name: c.name.clone(),
                data_type: c.data_type,
                nullable: c.nullable,
                key_position: None,
            })
            .collect();
        let mut key = Vec::with_capacity(schema.primary_key.len());
        for (position, name) in schema.primary_key.iter().enumerate() {
            // validate() guarantees every key name is a column.
            let index = columns
                .iter()
                .position(|c| &c.name == name)
                .ok_or_else(|| SchemaError::Invalid(format!("primary key column '{name}' is not a column")))?;
            if let Some(column) = columns.get_mut(index) {
                column.key_position = Some(position);
            }
            key.push(index);
        }
        Ok(TabletSchema { schema, version, columns, key })
    }

    /// The catalog table version this schema belongs to.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The catalog schema it was built from.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// All columns, in table order.
    pub fn columns(&self) -> &[TabletColumn] {
        &self.columns
    }

    /// Primary-key columns, in key order.
    pub fn key_columns(&self) -> impl Iterator<Item = &TabletColumn> {
        self.key.iter().filter_map(|&i| self.columns.get(i))
    }

    /// Columns that are not part of the primary key (stored in the row value), table order.
    pub fn value_columns(&self) -> impl Iterator<Item = &TabletColumn> {
        self.columns.iter().filter(|c| c.key_position.is_none())
    }

    /// Number of primary-key columns.
    pub fn num_key_columns(&self) -> usize {
        self.key.len()
    }

    /// Types of the primary-key columns, in key order (what [`super::key::decode_key`] needs).
    pub fn key_types(&self) -> Vec<ColumnType> {
        self.key_columns().map(|c| c.data_type).collect()
    }

    /// The column with this name.
    pub fn column(&self, name: &str) -> Option<&TabletColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column with this id.
    pub fn column_by_id(&self, id: u32) -> Option<&TabletColumn> {
        self.columns.iter().find(|c| c.id == id)
    }

    /// Whether `other` has the same primary key (ids, types, order): the only schema changes
    /// a tablet accepts keep it, since stored keys are encoded from it.
    pub fn same_key(&self, other: &TabletSchema) -> bool {
        let key = |s: &TabletSchema| s.key_columns().map(|c| (c.id, c.data_type)).collect::<Vec<_>>();
        key(self) == key(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Column;

    fn schema() -> Schema {
        Schema {
            columns: vec![
                Column::new("v", ColumnType::String, true),
                Column::new("b", ColumnType::Int32, false),
                Column::new("a", ColumnType::Int64, false),
            ],
            primary_key: vec!["a".into(), "b".into()],
        }
        .with_fresh_ids()
    }

    #[test]
    fn indexes_columns_by_name_id_and_key_order() {
        let s = TabletSchema::new(schema(), 3).expect("valid");
        assert_eq!(s.version(), 3);
        assert_eq!(s.key_columns().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(s.key_types(), vec![ColumnType::Int64, ColumnType::Int32]);
        assert_eq!(s.value_columns().map(|c| c.id).collect::<Vec<_>>(), [0]);
        assert_eq!(s.column("b").map(|c| (c.id, c.key_position)), Some((1, Some(1))));
        assert_eq!(s.column_by_id(2).map(|c| c.name.as_str()), Some("a"));
        assert!(s.column("zz").is_none() && s.column_by_id(9).is_none());
        assert_eq!(s.num_key_columns(), 2);
    }

    #[test]
    fn refuses_invalid_schemas_and_detects_key_changes() {
        let mut dup = schema();
        dup.columns[1].id = 0;
        let err = TabletSchema::new(dup, 1).unwrap_err().to_string();
        assert!(err.contains("column id 0 is used by more than one column"), "{err}");

        let a = TabletSchema::new(schema(), 1).expect("valid");
        let mut renamed = schema();
        renamed.columns[2].name = "a2".into();
        renamed.primary_key[0] = "a2".into();
        assert!(a.same_key(&TabletSchema::new(renamed, 2).expect("valid")));
        let mut swapped = schema();
        swapped.primary_key.reverse();
        assert!(!a.same_key(&TabletSchema::new(swapped, 2).expect("valid")));
    }
}
