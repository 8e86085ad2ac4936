use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::{AlterStep, CatalogCommand, CatalogOutcome, CatalogResponse};
use super::error::CatalogError;
use super::model::{Table, Tablet};
use super::schema::{Column, validate_name};
use crate::ids::{TableId, TabletId};

/// How many recent request outcomes are remembered for idempotent retries.
pub const REQUEST_HISTORY: usize = 10_000;

/// A remembered request outcome, keyed by request id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub request_id: String,
    pub log_index: u64,
    pub response: CatalogResponse,
}

/// One durable record of the catalog; the state machine stores each under its own key and a
/// snapshot is a stream of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CatalogRecord {
    Table(Table),
    Tablet(Tablet),
    Request(RequestRecord),
}

/// A change to durable state produced by applying a command.
#[derive(Clone, Debug, PartialEq)]
pub enum Mutation {
    Put(CatalogRecord),
    DeleteTable(TableId),
    DeleteTablet(TabletId),
    DeleteRequest(String),
}

/// The applied catalog: what every master's state machine holds.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    tables: BTreeMap<TableId, Table>,
    names: BTreeMap<String, TableId>,
    tablets: BTreeMap<TabletId, Tablet>,
    requests: BTreeMap<String, RequestRecord>,
    request_order: BTreeMap<u64, String>,
}

impl Catalog {
    /// Rebuilds a catalog from its durable records (start-up, snapshot install).
    pub fn from_records(records: impl IntoIterator<Item = CatalogRecord>) -> Catalog {
        let mut catalog = Catalog::default();
        for record in records {
            catalog.insert_record(record);
        }
        catalog
    }

    fn insert_record(&mut self, record: CatalogRecord) {
        match record {
            CatalogRecord::Table(mut table) => {
                table.assign_legacy_column_ids();
                self.names.insert(table.name.clone(), table.id.clone());
                self.tables.insert(table.id.clone(), table);
            }
            CatalogRecord::Tablet(tablet) => {
                self.tablets.insert(tablet.id.clone(), tablet);
            }
            CatalogRecord::Request(request) => {
                self.request_order.insert(request.log_index, request.request_id.clone());
                self.requests.insert(request.request_id.clone(), request);
            }
        }
    }

    /// Every record, in a stable order (tables, tablets, requests).
    pub fn records(&self) -> impl Iterator<Item = CatalogRecord> + '_ {
        self.tables
            .values()
            .cloned()
            .map(CatalogRecord::Table)
            .chain(self.tablets.values().cloned().map(CatalogRecord::Tablet))
            .chain(self.requests.values().cloned().map(CatalogRecord::Request))
    }

    pub fn table_by_name(&self, name: &str) -> Option<&Table> {
        self.names.get(name).and_then(|id| self.tables.get(id))
    }

    /// Tables ordered by name.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.names.values().filter_map(|id| self.tables.get(id))
    }

    /// Tablets of a table ordered by partition.
    pub fn tablets_of(&self, table_id: &TableId) -> Vec<&Tablet> {
        let mut tablets: Vec<&Tablet> = self.tablets.values().filter(|t| &t.table_id == table_id).collect();
        tablets.sort_by_key(|t| t.partition);
        tablets
    }

    pub fn tablets(&self) -> impl Iterator<Item = &Tablet> {
        self.tablets.values()
    }

    pub fn table(&self, id: &TableId) -> Option<&Table> {
        self.tables.get(id)
    }

    pub fn num_tables(&self) -> usize {
        self.tables.len()
    }

    pub fn num_tablets(&self) -> usize {
        self.tablets.len()
    }

    /// The remembered outcome of a request, if it was already applied.
    pub fn request_outcome(&self, request_id: &str) -> Option<&CatalogResponse> {
        self.requests.get(request_id).map(|r| &r.response)
    }

    /// Applies one command at `log_index`. Deterministic: the same commands in the same order
    /// give the same catalog and responses on every master.
    pub fn apply(&mut self, command: &CatalogCommand, log_index: u64) -> (CatalogResponse, Vec<Mutation>) {
        if let Some(request_id) = command.request_id()
            && let Some(previous) = self.requests.get(request_id)
        {
            return (previous.response.clone(), Vec::new());
        }
        let mut mutations = Vec::new();
        let result = match command {
            CatalogCommand::CreateTable { table, tablets, .. } => self.create_table(table, tablets, &mut mutations),
            CatalogCommand::DeleteTable { name, .. } => self.delete_table(name, &mut mutations),
            CatalogCommand::AlterTable { name, steps, .. } => self.alter_table(name, steps, &mut mutations),
            CatalogCommand::UpdateTabletConfig { tablet_id, replicas, leader } => {
                if let Some(tablet) = self.tablets.get_mut(tablet_id) {
                    tablet.replicas = replicas.clone();
                    tablet.leader = leader.clone();
                    mutations.push(Mutation::Put(CatalogRecord::Tablet(tablet.clone())));
                }
                Ok(CatalogOutcome::Done)
            }
        };
        let response = CatalogResponse(result);
        if let Some(request_id) = command.request_id() {
            self.remember(request_id, log_index, &response, &mut mutations);
        }
        (response, mutations)
    }

    fn remember(&mut self, request_id: &str, log_index: u64, response: &CatalogResponse, out: &mut Vec<Mutation>) {
        let record = RequestRecord { request_id: request_id.to_string(), log_index, response: response.clone() };
        self.requests.insert(request_id.to_string(), record.clone());
        self.request_order.insert(log_index, request_id.to_string());
        out.push(Mutation::Put(CatalogRecord::Request(record)));
        while self.request_order.len() > REQUEST_HISTORY {
            let Some((_, oldest)) = self.request_order.pop_first() else { break };
            self.requests.remove(&oldest);
            out.push(Mutation::DeleteRequest(oldest));
        }
    }

    fn create_table(
        &mut self,
        table: &Table,
        tablets: &[Tablet],
        out: &mut Vec<Mutation>,
    ) -> Result<CatalogOutcome, CatalogError> {
        validate_name("table", &table.name)?;
        let mut table = table.clone();
        table.assign_legacy_column_ids();
        table.schema.validate()?;
        table.validate_column_ids()?;
        if self.names.contains_key(&table.name) {
            return Err(CatalogError::TableAlreadyExists(table.name.clone()));
        }
        if self.tables.contains_key(&table.id) || tablets.iter().any(|t| self.tablets.contains_key(&t.id)) {
            return Err(CatalogError::InvalidArgument(format!("table or tablet id of '{}' reused", table.name)));
        }
        self.names.insert(table.name.clone(), table.id.clone());
        self.tables.insert(table.id.clone(), table.clone());
        out.push(Mutation::Put(CatalogRecord::Table(table.clone())));
        for tablet in tablets {
            self.tablets.insert(tablet.id.clone(), tablet.clone());
            out.push(Mutation::Put(CatalogRecord::Tablet(tablet.clone())));
        }
        Ok(CatalogOutcome::Table(table))
    }

    fn delete_table(&mut self, name: &str, out: &mut Vec<Mutation>) -> Result<CatalogOutcome, CatalogError> {
        let id = self.names.remove(name).ok_or_else(|| CatalogError::TableNotFound(name.to_string()))?;
        self.tables.remove(&id);
        out.push(Mutation::DeleteTable(id.clone()));
        let doomed: Vec<TabletId> = self.tablets.values().filter(|t| t.table_id == id).map(|t| t.id.clone()).collect();
        for tablet_id in doomed {
            self.tablets.remove(&tablet_id);
            out.push(Mutation::DeleteTablet(tablet_id));
        }
        Ok(CatalogOutcome::Deleted(id))
    }

    fn alter_table(
        &mut self,
        name: &str,
        steps: &[AlterStep],
        out: &mut Vec<Mutation>,
    ) -> Result<CatalogOutcome, CatalogError> {
        let id = self.names.get(name).ok_or_else(|| CatalogError::TableNotFound(name.to_string()))?;
        let current = self.tables.get(id).ok_or_else(|| CatalogError::TableNotFound(name.to_string()))?;
        if steps.is_empty() {
            return Err(CatalogError::InvalidAlter("no alteration steps given".into()));
        }
        let mut altered = current.clone();
        for step in steps {
            apply_step(&mut altered, step)?;
        }
        altered.schema.validate()?;
        if altered.name != current.name && self.names.contains_key(&altered.name) {
            return Err(CatalogError::TableAlreadyExists(altered.name.clone()));
        }
        altered.version += 1;
        self.names.remove(&current.name);
        self.names.insert(altered.name.clone(), altered.id.clone());
        self.tables.insert(altered.id.clone(), altered.clone());
        out.push(Mutation::Put(CatalogRecord::Table(altered.clone())));
        Ok(CatalogOutcome::Table(altered))
    }
}

fn apply_step(table: &mut Table, step: &AlterStep) -> Result<(), CatalogError> {
    let schema = &mut table.schema;
    match step {
        AlterStep::RenameTable(new_name) => {
            validate_name("table", new_name)?;
            table.name = new_name.clone();
        }
        AlterStep::AddColumn(column) => {
            validate_name("column", &column.name)?;
            if schema.column(&column.name).is_some() {
                return Err(CatalogError::InvalidAlter(format!("column '{}' already exists", column.name)));
            }
            if !column.nullable {
                return Err(CatalogError::InvalidAlter(format!(
                    "column '{}' added to an existing table must be nullable",
                    column.name
                )));
            }
            // The id comes from the table, not the command: ids are never reused, so a
            // dropped and re-added name never sees the old column's values.
            let id = table.next_column_id;
            table.next_column_id = id
                .checked_add(1)
                .ok_or_else(|| CatalogError::InvalidAlter("the table has used up its column ids".into()))?;
            schema.columns.push(Column { id, ..column.clone() });
        }
        AlterStep::DropColumn(name) => {
            if schema.primary_key.iter().any(|k| k == name) {
                return Err(CatalogError::InvalidAlter(format!("cannot drop primary key column '{name}'")));
            }
            let before = schema.columns.len();
            schema.columns.retain(|c| &c.name != name);
            if schema.columns.len() == before {
                return Err(CatalogError::InvalidAlter(format!("column '{name}' does not exist")));
            }
        }
        AlterStep::RenameColumn { old_name, new_name } => {
            validate_name("column", new_name)?;
            if schema.column(new_name).is_some() {
                return Err(CatalogError::InvalidAlter(format!("column '{new_name}' already exists")));
            }
            let column = schema
                .columns
                .iter_mut()
                .find(|c| &c.name == old_name)
                .ok_or_else(|| CatalogError::InvalidAlter(format!("column '{old_name}' does not exist")))?;
            column.name = new_name.clone();
            for key in schema.primary_key.iter_mut().filter(|k| *k == old_name) {
                *key = new_name.clone();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::model::TableState;
    use crate::catalog::schema::{Column, ColumnType, Schema};
    use crate::ids::TServerId;

    fn table(name: &str) -> (Table, Vec<Tablet>) {
        let id = TableId::random();
        let t = Table {
            id: id.clone(),
            name: name.into(),
            schema: Schema {
                columns: vec![Column::new("id", ColumnType::Int64, false), Column::new("v", ColumnType::String, true)],
                primary_key: vec!["id".into()],
            }
            .with_fresh_ids(),
            num_partitions: 2,
            replication_factor: 1,
            state: TableState::Running,
            version: 0,
            next_column_id: 2,
        };
        let tablets = (0..2)
            .map(|p| Tablet {
                id: TabletId::random(),
                table_id: id.clone(),
                partition: p,
                replicas: vec![TServerId::from("ts")],
                leader: None,
            })
            .collect();
        (t, tablets)
    }

    fn create(name: &str, request_id: &str) -> CatalogCommand {
        let (table, tablets) = table(name);
        CatalogCommand::CreateTable { request_id: request_id.into(), table, tablets }
    }

    #[test]
    fn create_alter_delete_round_trip() {
        let mut c = Catalog::default();
        let (resp, muts) = c.apply(&create("t1", "r1"), 1);
        assert!(matches!(resp.0, Ok(CatalogOutcome::Table(_))));
        assert_eq!(muts.len(), 4, "table, two tablets, request record");
        assert_eq!(c.num_tablets(), 2);

        let alter = CatalogCommand::AlterTable {
            request_id: "r2".into(),
            name: "t1".into(),
            steps: vec![
                AlterStep::AddColumn(Column::new("w", ColumnType::Int32, true)),
                AlterStep::RenameTable("t2".into()),
            ],
        };
        let (resp, _) = c.apply(&alter, 2);
        let Ok(CatalogOutcome::Table(t)) = resp.0 else { panic!("alter failed: {resp:?}") };
        assert_eq!((t.name.as_str(), t.version, t.schema.columns.len()), ("t2", 1, 3));
        assert!(c.table_by_name("t1").is_none());

        let (resp, _) = c.apply(&CatalogCommand::DeleteTable { request_id: "r3".into(), name: "t2".into() }, 3);
        assert!(matches!(resp.0, Ok(CatalogOutcome::Deleted(_))));
        assert_eq!((c.num_tables(), c.num_tablets()), (0, 0));
    }

    #[test]
    fn retried_request_returns_first_outcome() {
        let mut c = Catalog::default();
        let first = c.apply(&create("t", "same"), 1).0;
        // A retry carries the same request id (and, being re-planned, other ids).
        let (again, muts) = c.apply(&create("t", "same"), 2);
        assert_eq!(first, again);
        assert!(muts.is_empty());
        assert_eq!(c.num_tables(), 1);
        // A different request for the same name is refused.
        let other = c.apply(&create("t", "other"), 3).0;
        assert_eq!(other.0, Err(CatalogError::TableAlreadyExists("t".into())));
    }

    #[test]
    fn alter_errors_leave_table_unchanged() {
        let mut c = Catalog::default();
        c.apply(&create("t", "r1"), 1);
        let bad = CatalogCommand::AlterTable {
            request_id: "r2".into(),
            name: "t".into(),
            steps: vec![AlterStep::DropColumn("v".into()), AlterStep::DropColumn("id".into())],
        };
        let resp = c.apply(&bad, 2).0;
        assert!(matches!(resp.0, Err(CatalogError::InvalidAlter(_))), "{resp:?}");
        assert_eq!(c.table_by_name("t").map(|t| (t.version, t.schema.columns.len())), Some((0, 2)));
        let missing = CatalogCommand::AlterTable {
            request_id: "r3".into(),
            name: "nope".into(),
            steps: vec![AlterStep::DropColumn("v".into())],
        };
        assert_eq!(c.apply(&missing, 3).0.0, Err(CatalogError::TableNotFound("nope".into())));
    }

    #[test]
    fn records_rebuild_the_same_catalog() {
        let mut c = Catalog::default();
        c.apply(&create("a", "r1"), 1);
        c.apply(&create("b", "r2"), 2);
        let rebuilt = Catalog::from_records(c.records());
        assert_eq!(rebuilt.records().collect::<Vec<_>>(), c.records().collect::<Vec<_>>());
        assert!(rebuilt.request_outcome("r2").is_some());
    }

    fn alter(c: &mut Catalog, request_id: &str, log_index: u64, steps: Vec<AlterStep>) -> Result<Table, CatalogError> {
        let cmd = CatalogCommand::AlterTable { request_id: request_id.into(), name: "t".into(), steps };
        match c.apply(&cmd, log_index).0.0? {
            CatalogOutcome::Table(t) => Ok(t),
            other => panic!("unexpected outcome {other:?}"),
        }
    }

    fn ids(t: &Table) -> Vec<(String, u32)> {
        t.schema.columns.iter().map(|c| (c.name.clone(), c.id)).collect()
    }

    #[test]
    fn column_ids_survive_renames_and_are_never_reused() {
        let mut c = Catalog::default();
        c.apply(&create("t", "r1"), 1);
        let t =
            alter(&mut c, "r2", 2, vec![AlterStep::AddColumn(Column::new("w", ColumnType::Int32, true))]).expect("add");
        assert_eq!(ids(&t), vec![("id".into(), 0), ("v".into(), 1), ("w".into(), 2)]);
        assert_eq!(t.next_column_id, 3);
        let t = alter(
            &mut c,
            "r3",
            3,
            vec![
                AlterStep::RenameColumn { old_name: "v".into(), new_name: "v2".into() },
                AlterStep::DropColumn("w".into()),
                AlterStep::AddColumn(Column::new("w", ColumnType::Int32, true)),
            ],
        )
        .expect("rename, drop, re-add");
        assert_eq!(ids(&t), vec![("id".into(), 0), ("v2".into(), 1), ("w".into(), 3)]);
        assert_eq!(t.next_column_id, 4);
        // The id in the command is ignored: the table decides.
        let mut sneaky = Column::new("x", ColumnType::Int8, true);
        sneaky.id = 1;
        let t = alter(&mut c, "r4", 4, vec![AlterStep::AddColumn(sneaky)]).expect("add x");
        assert_eq!(t.schema.column("x").map(|col| col.id), Some(4));
    }

    #[test]
    fn added_columns_must_be_nullable() {
        let mut c = Catalog::default();
        c.apply(&create("t", "r1"), 1);
        let err = alter(&mut c, "r2", 2, vec![AlterStep::AddColumn(Column::new("x", ColumnType::Int32, false))])
            .expect_err("non-nullable add accepted");
        assert_eq!(err, CatalogError::InvalidAlter("column 'x' added to an existing table must be nullable".into()));
        assert_eq!(c.table_by_name("t").map(|t| (t.version, t.next_column_id)), Some((0, 2)));
    }

    #[test]
    fn create_rejects_bad_ids_and_numbers_legacy_tables() {
        let mut c = Catalog::default();
        let (mut t, tablets) = table("dup");
        t.schema.columns[1].id = 0;
        let cmd = CatalogCommand::CreateTable { request_id: "r1".into(), table: t, tablets };
        let resp = c.apply(&cmd, 1).0;
        assert!(matches!(resp.0, Err(CatalogError::InvalidSchema(ref m)) if m.contains("column id 0")), "{resp:?}");

        let (mut t, tablets) = table("high");
        t.schema.columns[1].id = 7;
        let cmd = CatalogCommand::CreateTable { request_id: "r2".into(), table: t, tablets };
        let resp = c.apply(&cmd, 2).0;
        assert!(
            matches!(resp.0, Err(CatalogError::InvalidSchema(ref m)) if m.contains("next column id is 2")),
            "{resp:?}"
        );

        // A command from before column ids existed: all ids 0, no next id.
        let (mut t, tablets) = table("legacy");
        t.next_column_id = 0;
        t.schema.columns.iter_mut().for_each(|col| col.id = 0);
        let cmd = CatalogCommand::CreateTable { request_id: "r3".into(), table: t, tablets };
        let Ok(CatalogOutcome::Table(created)) = c.apply(&cmd, 3).0.0 else { panic!("legacy create failed") };
        assert_eq!((ids(&created), created.next_column_id), (vec![("id".into(), 0), ("v".into(), 1)], 2));
    }

    #[test]
    fn legacy_records_get_ids_on_load() {
        let (mut t, _) = table("old");
        t.next_column_id = 0;
        t.schema.columns.iter_mut().for_each(|col| col.id = 0);
        let mut json = serde_json::to_value(CatalogRecord::Table(t)).expect("json");
        // Records written before ids existed have neither field.
        if let Some(table) = json["Table"].as_object_mut() {
            table.remove("next_column_id");
        }
        for column in json["Table"]["schema"]["columns"].as_array_mut().into_iter().flatten() {
            if let Some(column) = column.as_object_mut() {
                column.remove("id");
            }
        }
        let record: CatalogRecord = serde_json::from_value(json).expect("old record parses");
        let c = Catalog::from_records([record]);
        let loaded = c.table_by_name("old").expect("loaded");
        assert_eq!((ids(loaded), loaded.next_column_id), (vec![("id".into(), 0), ("v".into(), 1)], 2));
    }

    #[test]
    fn request_history_is_bounded() {
        let mut c = Catalog::default();
        let mut evicted = 0;
        for i in 0..(REQUEST_HISTORY as u64 + 5) {
            let cmd = CatalogCommand::DeleteTable { request_id: format!("r{i}"), name: "missing".into() };
            let (_, muts) = c.apply(&cmd, i + 1);
            evicted += muts.iter().filter(|m| matches!(m, Mutation::DeleteRequest(_))).count();
        }
        assert_eq!(evicted, 5);
        assert!(c.request_outcome("r0").is_none());
        assert!(c.request_outcome(&format!("r{}", REQUEST_HISTORY + 4)).is_some());
    }
}
