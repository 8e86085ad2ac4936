//! Conversions between protobuf messages and catalog types.

use crate::catalog::{AlterStep, CatalogError, Column, ColumnType, Schema, Table};
use crate::pb::master as pb;

pub fn column_type_to_pb(t: ColumnType) -> pb::DataType {
    match t {
        ColumnType::Int8 => pb::DataType::Int8,
        ColumnType::Int16 => pb::DataType::Int16,
        ColumnType::Int32 => pb::DataType::Int32,
        ColumnType::Int64 => pb::DataType::Int64,
        ColumnType::Float => pb::DataType::Float,
        ColumnType::Double => pb::DataType::Double,
        ColumnType::Bool => pb::DataType::Bool,
        ColumnType::String => pb::DataType::String,
        ColumnType::Binary => pb::DataType::Binary,
        ColumnType::UnixtimeMicros => pb::DataType::UnixtimeMicros,
    }
}

pub fn column_type_from_pb(value: i32) -> Result<ColumnType, CatalogError> {
    let t = match pb::DataType::try_from(value) {
        Ok(pb::DataType::Int8) => ColumnType::Int8,
        Ok(pb::DataType::Int16) => ColumnType::Int16,
        Ok(pb::DataType::Int32) => ColumnType::Int32,
        Ok(pb::DataType::Int64) => ColumnType::Int64,
        Ok(pb::DataType::Float) => ColumnType::Float,
        Ok(pb::DataType::Double) => ColumnType::Double,
        Ok(pb::DataType::Bool) => ColumnType::Bool,
        Ok(pb::DataType::String) => ColumnType::String,
        Ok(pb::DataType::Binary) => ColumnType::Binary,
        Ok(pb::DataType::UnixtimeMicros) => ColumnType::UnixtimeMicros,
        Ok(pb::DataType::Unspecified) | Err(_) => {
            return Err(CatalogError::InvalidSchema(format!("unknown column data type {value}")));
        }
    };
    Ok(t)
}

pub fn column_to_pb(c: &Column) -> pb::ColumnSchema {
    pb::ColumnSchema {
        name: c.name.clone(),
        data_type: column_type_to_pb(c.data_type) as i32,
        nullable: c.nullable,
        id: c.id,
    }
}

pub fn column_from_pb(c: pb::ColumnSchema) -> Result<Column, CatalogError> {
    // Ids in requests are ignored: the leader master assigns them.
    let mut column = Column::new(c.name, column_type_from_pb(c.data_type)?, c.nullable);
    column.id = c.id;
    Ok(column)
}

pub fn schema_to_pb(s: &Schema) -> pb::Schema {
    pb::Schema { columns: s.columns.iter().map(column_to_pb).collect(), primary_key: s.primary_key.clone() }
}

pub fn schema_from_pb(s: Option<pb::Schema>) -> Result<Schema, CatalogError> {
    let s = s.ok_or_else(|| CatalogError::InvalidSchema("missing schema".into()))?;
    Ok(Schema {
        columns: s.columns.into_iter().map(column_from_pb).collect::<Result<_, _>>()?,
        primary_key: s.primary_key,
    })
}

pub fn table_to_pb(t: &Table) -> pb::TableInfo {
    pb::TableInfo {
        id: t.id.to_string(),
        name: t.name.clone(),
        schema: Some(schema_to_pb(&t.schema)),
        num_partitions: t.num_partitions,
        replication_factor: t.replication_factor,
        state: t.state.name().to_string(),
        version: t.version,
    }
}

pub fn alter_step_from_pb(step: pb::AlterStep) -> Result<AlterStep, CatalogError> {
    use pb::alter_step::Step;
    match step.step {
        Some(Step::RenameTable(name)) => Ok(AlterStep::RenameTable(name)),
        Some(Step::AddColumn(c)) => Ok(AlterStep::AddColumn(column_from_pb(c)?)),
        Some(Step::DropColumn(name)) => Ok(AlterStep::DropColumn(name)),
        Some(Step::RenameColumn(r)) => Ok(AlterStep::RenameColumn { old_name: r.old_name, new_name: r.new_name }),
        None => Err(CatalogError::InvalidAlter("empty alteration step".into())),
    }
}

pub fn alter_step_to_pb(step: &AlterStep) -> pb::AlterStep {
    use pb::alter_step::Step;
    let step = match step {
        AlterStep::RenameTable(name) => Step::RenameTable(name.clone()),
        AlterStep::AddColumn(c) => Step::AddColumn(column_to_pb(c)),
        AlterStep::DropColumn(name) => Step::DropColumn(name.clone()),
        AlterStep::RenameColumn { old_name, new_name } => {
            Step::RenameColumn(pb::RenameColumn { old_name: old_name.clone(), new_name: new_name.clone() })
        }
    };
    pb::AlterStep { step: Some(step) }
}
