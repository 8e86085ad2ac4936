//! Schemas shared by the tablet module's tests and, through the `test-support` feature,
//! the tablet server's.

use crate::catalog::{Column, ColumnType, Schema};
use crate::tablet::schema::TabletSchema;

/// `id int64` key (id 0), `name string null` (1), `count int32 not null` (2),
/// `data binary null` (3); version 1.
pub fn catalog_schema() -> Schema {
    Schema {
        columns: vec![
            Column::new("id", ColumnType::Int64, false),
            Column::new("name", ColumnType::String, true),
            Column::new("count", ColumnType::Int32, false),
            Column::new("data", ColumnType::Binary, true),
        ],
        primary_key: vec!["id".into()],
    }
    .with_fresh_ids()
}

pub fn schema() -> TabletSchema {
    TabletSchema::new(catalog_schema(), 1).expect("valid test schema")
}

/// `k string` key (id 0), `v string null` (1).
pub fn strings_schema() -> TabletSchema {
    let schema = Schema {
        columns: vec![Column::new("k", ColumnType::String, false), Column::new("v", ColumnType::String, true)],
        primary_key: vec!["k".into()],
    }
    .with_fresh_ids();
    TabletSchema::new(schema, 1).expect("valid test schema")
}
