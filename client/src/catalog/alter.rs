//! Applying an AlterTable's steps to a table, in time linear in the steps and columns:
//! columns are found by name through an index, dropped ones are marked and removed once at
//! the end, the primary key is tracked by position, and the column count is checked at
//! every added column (so a long alteration fails at the first step over the limit).

use std::collections::{HashMap, HashSet};

use super::command::AlterStep;
use super::error::CatalogError;
use super::model::Table;
use super::schema::{Column, MAX_COLUMNS, Schema, shown, validate_name};

/// A schema being altered.
struct SchemaEdit {
    /// Columns in table order; `None` once dropped.
    columns: Vec<Option<Column>>,
    /// Position of every live column by name.
    by_name: HashMap<String, usize>,
    /// Primary key columns by position, in key order.
    key: Vec<usize>,
    key_set: HashSet<usize>,
}

impl SchemaEdit {
    fn new(schema: Schema) -> Result<SchemaEdit, CatalogError> {
        let by_name: HashMap<String, usize> =
            schema.columns.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
        let key = schema
            .primary_key
            .iter()
            .map(|name| {
                by_name.get(name).copied().ok_or_else(|| {
                    CatalogError::InvalidSchema(format!(
                        "primary key column '{}' is not a column of the table",
                        shown(name)
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key_set = key.iter().copied().collect();
        Ok(SchemaEdit { columns: schema.columns.into_iter().map(Some).collect(), by_name, key, key_set })
    }

    fn position(&self, name: &str) -> Result<usize, CatalogError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| CatalogError::InvalidAlter(format!("column '{}' does not exist", shown(name))))
    }

    fn refuse_existing(&self, name: &str) -> Result<(), CatalogError> {
        match self.by_name.contains_key(name) {
            true => Err(CatalogError::InvalidAlter(format!("column '{}' already exists", shown(name)))),
            false => Ok(()),
        }
    }

    fn add(&mut self, column: Column) -> Result<(), CatalogError> {
        if self.by_name.len() >= MAX_COLUMNS {
            return Err(CatalogError::InvalidSchema(format!(
                "{} columns exceed the limit of {MAX_COLUMNS}",
                self.by_name.len() + 1
            )));
        }
        self.by_name.insert(column.name.clone(), self.columns.len());
        self.columns.push(Some(column));
        Ok(())
    }

    fn drop_column(&mut self, name: &str) -> Result<(), CatalogError> {
        if let Some(i) = self.by_name.get(name)
            && self.key_set.contains(i)
        {
            return Err(CatalogError::InvalidAlter(format!("cannot drop primary key column '{}'", shown(name))));
        }
        let i = self.position(name)?;
        self.by_name.remove(name);
        self.columns[i] = None;
        Ok(())
    }

    fn rename(&mut self, old_name: &str, new_name: &str) -> Result<(), CatalogError> {
        self.refuse_existing(new_name)?;
        let i = self.position(old_name)?;
        self.by_name.remove(old_name);
        self.by_name.insert(new_name.to_string(), i);
        if let Some(column) = self.columns[i].as_mut() {
            column.name = new_name.to_string();
        }
        Ok(())
    }

    fn into_schema(self) -> Schema {
        let primary_key =
            self.key.iter().filter_map(|&i| self.columns[i].as_ref().map(|c| c.name.clone())).collect::<Vec<_>>();
        Schema { columns: self.columns.into_iter().flatten().collect(), primary_key }
    }
}

/// `current` with `steps` applied in order; the first invalid step fails the whole
/// alteration. The result's schema is not yet validated as a whole and its version is not
/// bumped (the caller does both).
pub(super) fn apply_steps(current: &Table, steps: &[AlterStep]) -> Result<Table, CatalogError> {
    let mut table = Table { schema: Schema { columns: Vec::new(), primary_key: Vec::new() }, ..current.clone() };
    let mut edit = SchemaEdit::new(current.schema.clone())?;
    for step in steps {
        match step {
            AlterStep::RenameTable(new_name) => {
                validate_name("table", new_name)?;
                table.name = new_name.clone();
            }
            AlterStep::AddColumn(column) => {
                validate_name("column", &column.name)?;
                edit.refuse_existing(&column.name)?;
                if !column.nullable {
                    return Err(CatalogError::InvalidAlter(format!(
                        "column '{}' added to an existing table must be nullable",
                        shown(&column.name)
                    )));
                }
                // The id comes from the table, not the command: ids are never reused, so a
                // dropped and re-added name never sees the old column's values.
                let id = table.next_column_id;
                table.next_column_id = id
                    .checked_add(1)
                    .ok_or_else(|| CatalogError::InvalidAlter("the table has used up its column ids".into()))?;
                edit.add(Column { id, ..column.clone() })?;
            }
            AlterStep::DropColumn(name) => edit.drop_column(name)?,
            AlterStep::RenameColumn { old_name, new_name } => {
                validate_name("column", new_name)?;
                edit.rename(old_name, new_name)?;
            }
        }
    }
    table.schema = edit.into_schema();
    Ok(table)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::catalog::{ColumnType, TableState};
    use crate::ids::TableId;

    fn table() -> Table {
        Table {
            id: TableId::from("t-id"),
            name: "t".into(),
            schema: Schema {
                columns: vec![Column::new("id", ColumnType::Int64, false), Column::new("v", ColumnType::String, true)],
                primary_key: vec!["id".into()],
            }
            .with_fresh_ids(),
            num_partitions: 1,
            replication_factor: 1,
            state: TableState::Running,
            version: 0,
            next_column_id: 2,
        }
    }

    fn add(name: &str) -> AlterStep {
        AlterStep::AddColumn(Column::new(name, ColumnType::Int32, true))
    }

    fn rename(old: &str, new: &str) -> AlterStep {
        AlterStep::RenameColumn { old_name: old.into(), new_name: new.into() }
    }

    #[test]
    fn steps_apply_in_order() {
        let steps = [
            rename("id", "key"),
            add("a"),
            AlterStep::DropColumn("v".into()),
            add("v"),
            rename("a", "b"),
            AlterStep::RenameTable("t2".into()),
        ];
        let altered = apply_steps(&table(), &steps).expect("alter");
        let columns: Vec<(&str, u32)> = altered.schema.columns.iter().map(|c| (c.name.as_str(), c.id)).collect();
        assert_eq!(columns, vec![("key", 0), ("b", 2), ("v", 3)]);
        assert_eq!(altered.schema.primary_key, vec!["key".to_string()]);
        assert_eq!((altered.name.as_str(), altered.next_column_id), ("t2", 4));
    }

    #[test]
    fn invalid_steps_are_refused() {
        let t = table();
        let refused = |steps: &[AlterStep]| apply_steps(&t, steps).expect_err("accepted").to_string();
        assert!(refused(&[AlterStep::DropColumn("id".into())]).contains("cannot drop primary key column 'id'"));
        assert!(refused(&[AlterStep::DropColumn("nope".into())]).contains("column 'nope' does not exist"));
        assert!(refused(&[add("v")]).contains("column 'v' already exists"));
        assert!(refused(&[rename("v", "id")]).contains("column 'id' already exists"));
        assert!(refused(&[rename("v", "v")]).contains("column 'v' already exists"));
        assert!(refused(&[rename("nope", "w")]).contains("column 'nope' does not exist"));
        assert!(refused(&[AlterStep::DropColumn("v".into()), rename("v", "w")]).contains("'v' does not exist"));
        let huge = "x".repeat(1 << 20);
        let message = refused(&[AlterStep::DropColumn(huge.clone())]);
        assert!(message.len() < 1000, "a huge name is not echoed whole: {} bytes", message.len());
    }

    /// Columns are capped at every added column, so a million additions stop at the limit
    /// instead of growing a million-column schema (and searching it at every step).
    #[test]
    fn a_million_added_columns_stop_at_the_limit() {
        let steps: Vec<AlterStep> = (0..1_000_000).map(|i| add(&format!("c{i}"))).collect();
        let started = Instant::now();
        let err = apply_steps(&table(), &steps).expect_err("a million columns accepted");
        assert_eq!(err, CatalogError::InvalidSchema(format!("{} columns exceed the limit of {MAX_COLUMNS}", 301)));
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    /// Renames, drops and re-adds over a full-width table cost the same per step whatever
    /// the width: the run below is linear (hash lookups), where a scan per step would
    /// compare names 300 times per step.
    #[test]
    fn long_alterations_are_linear() {
        let mut t = table();
        let wide: Vec<AlterStep> = (2..MAX_COLUMNS).map(|i| add(&format!("c{i}"))).collect();
        t = apply_steps(&t, &wide).expect("widen");
        assert_eq!(t.schema.columns.len(), MAX_COLUMNS);
        let mut steps = Vec::new();
        for i in 0..100_000 {
            steps.push(rename("v", "w"));
            steps.push(rename("w", "v"));
            steps.push(AlterStep::DropColumn(format!("c{}", 2 + i % (MAX_COLUMNS - 2))));
            steps.push(add(&format!("c{}", 2 + i % (MAX_COLUMNS - 2))));
        }
        let altered = apply_steps(&t, &steps).expect("alter");
        assert_eq!(altered.schema.columns.len(), MAX_COLUMNS);
        assert_eq!(altered.next_column_id, MAX_COLUMNS as u32 + 100_000);
        assert_eq!(altered.schema.primary_key, vec!["id".to_string()]);
    }
}
