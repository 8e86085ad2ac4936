use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::alter::apply_steps;
use super::command::{AlterStep, CatalogCommand, CatalogOutcome, CatalogResponse};
use super::error::CatalogError;
use super::model::{Table, Tablet, TabletConfigUpdate, TabletMove, TabletState};
use super::schema::validate_name;
use crate::ids::{TServerId, TableId, TabletId};

/// How many recent request outcomes are remembered for idempotent retries.
pub const REQUEST_HISTORY: usize = 10_000;

/// How many bytes of remembered request outcomes (their stored JSON) are kept at most. Beyond
/// it, or beyond [`REQUEST_HISTORY`] outcomes, the oldest (lowest log index) are forgotten
/// first; the newest is always kept. A retry arriving after its outcome was forgotten runs
/// again (a CreateTable then finds its table exists). With tables of the widest schema
/// (about 100 KB an outcome) this still remembers several hundred requests.
pub const REQUEST_HISTORY_BYTES: usize = 64 << 20;

/// How many deleted tablets the catalog remembers as tombstones; the oldest deletions are
/// forgotten beyond it. Consequence: a tablet server that comes back after more than this
/// many newer tablet deletions still holds replicas the catalog no longer knows; those are
/// never deleted automatically (an unknown tablet is kept, with a warning) and an operator
/// must remove them by hand.
pub const MAX_TOMBSTONES: usize = 100_000;

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
    /// The cluster's id, set once.
    ClusterId(String),
    Table(Table),
    Tablet(Tablet),
    Request(RequestRecord),
    /// A tablet server marked as decommissioning (only marked servers have a record).
    Decommissioning(TServerId),
}

/// A change to durable state produced by applying a command.
#[derive(Clone, Debug, PartialEq)]
pub enum Mutation {
    Put(CatalogRecord),
    DeleteTable(TableId),
    DeleteTablet(TabletId),
    DeleteRequest(String),
    /// The server's decommissioning mark was cleared.
    DeleteDecommissioning(TServerId),
}

/// The applied catalog: what every master's state machine holds.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    cluster_id: Option<String>,
    tables: BTreeMap<TableId, Table>,
    names: BTreeMap<String, TableId>,
    tablets: BTreeMap<TabletId, Tablet>,
    /// Running tablets by table: `tablets_of` and DeleteTable read one table's tablets
    /// without scanning the catalog.
    running_by_table: BTreeMap<TableId, BTreeSet<TabletId>>,
    requests: BTreeMap<String, RequestRecord>,
    /// Remembered requests by log index, oldest first, with their stored sizes.
    request_order: BTreeMap<u64, (String, usize)>,
    /// Sum of the stored sizes of the remembered requests.
    request_bytes: usize,
    /// Deleted tablets by deletion log index, oldest first.
    tombstones: BTreeSet<(u64, TabletId)>,
    /// Tablet servers being decommissioned.
    decommissioning: BTreeSet<TServerId>,
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
            CatalogRecord::ClusterId(id) => self.cluster_id = Some(id),
            CatalogRecord::Table(mut table) => {
                table.assign_legacy_column_ids();
                self.names.insert(table.name.clone(), table.id.clone());
                self.tables.insert(table.id.clone(), table);
            }
            CatalogRecord::Tablet(tablet) => {
                if let TabletState::Deleted { log_index } = tablet.state {
                    self.tombstones.insert((log_index, tablet.id.clone()));
                }
                self.insert_tablet(tablet);
            }
            CatalogRecord::Request(request) => {
                self.add_request(request);
            }
            CatalogRecord::Decommissioning(id) => {
                self.decommissioning.insert(id);
            }
        }
    }

    /// Stores `tablet`, keeping the index of running tablets by table in step.
    fn insert_tablet(&mut self, tablet: Tablet) {
        if let Some(replaced) = self.tablets.get(&tablet.id) {
            let (table_id, id) = (replaced.table_id.clone(), replaced.id.clone());
            self.unindex(&table_id, &id);
        }
        if !tablet.is_deleted() {
            self.running_by_table.entry(tablet.table_id.clone()).or_default().insert(tablet.id.clone());
        }
        self.tablets.insert(tablet.id.clone(), tablet);
    }

    fn unindex(&mut self, table_id: &TableId, tablet_id: &TabletId) {
        if let Some(ids) = self.running_by_table.get_mut(table_id) {
            ids.remove(tablet_id);
            if ids.is_empty() {
                self.running_by_table.remove(table_id);
            }
        }
    }

    /// Every record, in a stable order (cluster id, tables, tablets with tombstones,
    /// requests, decommissioning servers).
    pub fn records(&self) -> impl Iterator<Item = CatalogRecord> + '_ {
        self.cluster_id
            .iter()
            .cloned()
            .map(CatalogRecord::ClusterId)
            .chain(self.tables.values().cloned().map(CatalogRecord::Table))
            .chain(self.tablets.values().cloned().map(CatalogRecord::Tablet))
            .chain(self.requests.values().cloned().map(CatalogRecord::Request))
            .chain(self.decommissioning.iter().cloned().map(CatalogRecord::Decommissioning))
    }

    /// Tablet servers marked as decommissioning, ordered by uuid.
    pub fn decommissioning(&self) -> &BTreeSet<TServerId> {
        &self.decommissioning
    }

    /// Whether `id` is marked as decommissioning.
    pub fn is_decommissioning(&self, id: &TServerId) -> bool {
        self.decommissioning.contains(id)
    }

    /// The largest replication factor of any table (0 without tables).
    pub fn max_replication_factor(&self) -> usize {
        self.tables.values().map(|t| t.replication_factor as usize).max().unwrap_or(0)
    }

    pub fn table_by_name(&self, name: &str) -> Option<&Table> {
        self.names.get(name).and_then(|id| self.tables.get(id))
    }

    /// Tables ordered by name.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.names.values().filter_map(|id| self.tables.get(id))
    }

    /// The cluster's id, once set.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// Running tablets of a table ordered by partition.
    pub fn tablets_of(&self, table_id: &TableId) -> Vec<&Tablet> {
        let ids = self.running_by_table.get(table_id).into_iter().flatten();
        let mut tablets: Vec<&Tablet> = ids.filter_map(|id| self.tablets.get(id)).collect();
        tablets.sort_by_key(|t| t.partition);
        tablets
    }

    /// Running tablets (tombstones left out), ordered by id.
    pub fn tablets(&self) -> impl Iterator<Item = &Tablet> {
        self.tablets.values().filter(|t| !t.is_deleted())
    }

    /// A tablet by id, running or tombstoned.
    pub fn tablet(&self, id: &TabletId) -> Option<&Tablet> {
        self.tablets.get(id)
    }

    /// How many deleted tablets are remembered (at most [`MAX_TOMBSTONES`]).
    pub fn num_tombstones(&self) -> usize {
        self.tombstones.len()
    }

    pub fn table(&self, id: &TableId) -> Option<&Table> {
        self.tables.get(id)
    }

    pub fn num_tables(&self) -> usize {
        self.tables.len()
    }

    /// Number of running tablets.
    pub fn num_tablets(&self) -> usize {
        self.tablets.len() - self.tombstones.len()
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
            CatalogCommand::DeleteTable { name, .. } => self.delete_table(name, log_index, &mut mutations),
            CatalogCommand::AlterTable { name, steps, .. } => self.alter_table(name, steps, &mut mutations),
            CatalogCommand::UpdateTabletConfigs(updates) => {
                self.update_tablet_configs(updates, &mut mutations);
                Ok(CatalogOutcome::Done)
            }
            CatalogCommand::StartReplicaMoves(moves) => {
                self.start_replica_moves(moves, &mut mutations);
                Ok(CatalogOutcome::Done)
            }
            CatalogCommand::CancelReplicaMoves(moves) => {
                self.cancel_replica_moves(moves, &mut mutations);
                Ok(CatalogOutcome::Done)
            }
            CatalogCommand::SetClusterId { cluster_id } => self.set_cluster_id(cluster_id, &mut mutations),
            CatalogCommand::SetTServerState { uuid, decommissioning } => {
                self.set_tserver_state(uuid, *decommissioning, &mut mutations);
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
        self.add_request(record.clone());
        out.push(Mutation::Put(CatalogRecord::Request(record)));
        while self.request_order.len() > 1
            && (self.request_order.len() > REQUEST_HISTORY || self.request_bytes > REQUEST_HISTORY_BYTES)
        {
            let Some((_, (oldest, size))) = self.request_order.pop_first() else { break };
            self.request_bytes = self.request_bytes.saturating_sub(size);
            self.requests.remove(&oldest);
            out.push(Mutation::DeleteRequest(oldest));
        }
    }

    fn add_request(&mut self, record: RequestRecord) {
        let size = stored_size(&record);
        self.request_bytes += size;
        self.request_order.insert(record.log_index, (record.request_id.clone(), size));
        if let Some(replaced) = self.requests.insert(record.request_id.clone(), record)
            && let Some((_, size)) = self.request_order.remove(&replaced.log_index)
        {
            self.request_bytes = self.request_bytes.saturating_sub(size);
        }
    }

    /// How many request outcomes are remembered, and their stored bytes.
    pub fn request_history(&self) -> (usize, usize) {
        (self.requests.len(), self.request_bytes)
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
            self.insert_tablet(tablet.clone());
            out.push(Mutation::Put(CatalogRecord::Tablet(tablet.clone())));
        }
        Ok(CatalogOutcome::Table(table))
    }

    fn set_cluster_id(&mut self, cluster_id: &str, out: &mut Vec<Mutation>) -> Result<CatalogOutcome, CatalogError> {
        if let Some(existing) = &self.cluster_id {
            return Ok(CatalogOutcome::ClusterId(existing.clone()));
        }
        if cluster_id.is_empty() {
            return Err(CatalogError::InvalidArgument("empty cluster id".into()));
        }
        self.cluster_id = Some(cluster_id.to_string());
        out.push(Mutation::Put(CatalogRecord::ClusterId(cluster_id.to_string())));
        Ok(CatalogOutcome::ClusterId(cluster_id.to_string()))
    }

    /// Records what each update brings that is newer than the catalog's view (the
    /// configuration by log index, the leader by term); others (older reports, unknown or
    /// deleted tablets) are ignored. A configuration showing the outcome of the tablet's
    /// move in progress ends the move.
    fn update_tablet_configs(&mut self, updates: &[TabletConfigUpdate], out: &mut Vec<Mutation>) {
        for update in updates {
            let Some(tablet) = self.tablets.get_mut(&update.tablet_id) else { continue };
            let (config, leader) = (update.newer_config(tablet), update.newer_leader(tablet));
            if !config && !leader {
                continue;
            }
            if config {
                tablet.replicas = update.replicas.clone();
                tablet.config_index = update.config_index.or(tablet.config_index);
                if tablet.pending_move.as_ref().is_some_and(|m| m.is_complete_in(&tablet.replicas)) {
                    tablet.pending_move = None;
                }
            }
            if leader {
                tablet.term = update.term;
                tablet.leader = update.leader.clone();
            }
            out.push(Mutation::Put(CatalogRecord::Tablet(tablet.clone())));
        }
    }

    /// Starts each move whose tablet runs without a move in progress, lists `from` (if
    /// any) and does not list `to`.
    fn start_replica_moves(&mut self, moves: &[TabletMove], out: &mut Vec<Mutation>) {
        for TabletMove { tablet_id, replica_move } in moves {
            let Some(tablet) = self.tablets.get_mut(tablet_id) else { continue };
            let from_listed = replica_move.from.as_ref().is_none_or(|from| tablet.replicas.contains(from));
            if tablet.is_deleted()
                || tablet.pending_move.is_some()
                || !from_listed
                || tablet.replicas.contains(&replica_move.to)
                || replica_move.from.as_ref() == Some(&replica_move.to)
            {
                continue;
            }
            tablet.pending_move = Some(replica_move.clone());
            out.push(Mutation::Put(CatalogRecord::Tablet(tablet.clone())));
        }
    }

    /// Ends each move that is still its tablet's move in progress.
    fn cancel_replica_moves(&mut self, moves: &[TabletMove], out: &mut Vec<Mutation>) {
        for TabletMove { tablet_id, replica_move } in moves {
            let Some(tablet) = self.tablets.get_mut(tablet_id) else { continue };
            if tablet.pending_move.as_ref() != Some(replica_move) {
                continue;
            }
            tablet.pending_move = None;
            out.push(Mutation::Put(CatalogRecord::Tablet(tablet.clone())));
        }
    }

    /// Marks `uuid` as decommissioning, or clears the mark.
    fn set_tserver_state(&mut self, uuid: &TServerId, decommissioning: bool, out: &mut Vec<Mutation>) {
        if decommissioning {
            if self.decommissioning.insert(uuid.clone()) {
                out.push(Mutation::Put(CatalogRecord::Decommissioning(uuid.clone())));
            }
        } else if self.decommissioning.remove(uuid) {
            out.push(Mutation::DeleteDecommissioning(uuid.clone()));
        }
    }

    /// Tablets with a move in progress.
    pub fn num_pending_moves(&self) -> usize {
        self.tablets().filter(|t| t.pending_move.is_some()).count()
    }

    /// Removes the table and tombstones its tablets, forgetting the oldest tombstones
    /// beyond [`MAX_TOMBSTONES`].
    fn delete_table(
        &mut self,
        name: &str,
        log_index: u64,
        out: &mut Vec<Mutation>,
    ) -> Result<CatalogOutcome, CatalogError> {
        let id = self.names.remove(name).ok_or_else(|| CatalogError::TableNotFound(name.to_string()))?;
        self.tables.remove(&id);
        out.push(Mutation::DeleteTable(id.clone()));
        let running = self.running_by_table.remove(&id).unwrap_or_default();
        for tablet_id in &running {
            let Some(tablet) = self.tablets.get_mut(tablet_id) else { continue };
            tablet.state = TabletState::Deleted { log_index };
            tablet.leader = None;
            tablet.pending_move = None;
            self.tombstones.insert((log_index, tablet.id.clone()));
            out.push(Mutation::Put(CatalogRecord::Tablet(tablet.clone())));
        }
        while self.tombstones.len() > MAX_TOMBSTONES {
            let Some((_, oldest)) = self.tombstones.pop_first() else { break };
            self.tablets.remove(&oldest);
            out.push(Mutation::DeleteTablet(oldest));
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
        let mut altered = apply_steps(current, steps)?;
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

/// The size of a request record as stored (its JSON), deterministic on every master.
fn stored_size(record: &RequestRecord) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail; on a serializer error the bytes so far count.
    let _ = serde_json::to_writer(&mut count, record);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::model::{ReplicaMove, TableState};
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
        let tablets =
            (0..2).map(|p| Tablet::new(TabletId::random(), id.clone(), p, vec![TServerId::from("ts")])).collect();
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

    /// Outcomes are bounded by bytes too, oldest first, and a catalog rebuilt from its
    /// records counts the same bytes (so every master forgets the same requests).
    #[test]
    fn request_history_is_bounded_by_bytes_oldest_first() {
        let mut c = Catalog::default();
        let name = "n".repeat(1 << 20);
        let mut forgotten = Vec::new();
        let delete = |c: &mut Catalog, i: u64, forgotten: &mut Vec<String>| {
            let cmd = CatalogCommand::DeleteTable { request_id: format!("r{i}"), name: name.clone() };
            let (resp, muts) = c.apply(&cmd, i + 1);
            assert!(matches!(resp.0, Err(CatalogError::TableNotFound(_))));
            forgotten.extend(muts.into_iter().filter_map(|m| match m {
                Mutation::DeleteRequest(id) => Some(id),
                _ => None,
            }));
        };
        for i in 0..80 {
            delete(&mut c, i, &mut forgotten);
        }
        let (count, bytes) = c.request_history();
        assert!(bytes <= REQUEST_HISTORY_BYTES, "{bytes} bytes remembered");
        assert!((60..80).contains(&count), "{count} outcomes remembered");
        let expected: Vec<String> = (0..80 - count).map(|i| format!("r{i}")).collect();
        assert_eq!(forgotten, expected, "the oldest are forgotten first");
        assert!(c.request_outcome("r0").is_none() && c.request_outcome("r79").is_some());

        let mut rebuilt = Catalog::from_records(c.records());
        assert_eq!(rebuilt.request_history(), (count, bytes));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        delete(&mut c, 80, &mut a);
        delete(&mut rebuilt, 80, &mut b);
        assert_eq!((a.clone(), c.request_history()), (b, rebuilt.request_history()));
        assert_eq!(a, vec![format!("r{}", 80 - count)]);
    }

    fn update(tablet: &TabletId, term: u64, replicas: &[&str], leader: Option<&str>) -> TabletConfigUpdate {
        TabletConfigUpdate {
            tablet_id: tablet.clone(),
            term,
            replicas: replicas.iter().map(|r| TServerId::from(*r)).collect(),
            leader: leader.map(TServerId::from),
            config_index: None,
        }
    }

    fn view(c: &Catalog, id: &TabletId) -> (u64, Vec<TServerId>, Option<TServerId>) {
        let t = c.tablet(id).expect("tablet");
        (t.term, t.replicas.clone(), t.leader.clone())
    }

    fn first_tablet(c: &Catalog) -> TabletId {
        c.tablets().next().map(|t| t.id.clone()).expect("a tablet")
    }

    #[test]
    fn newer_terms_apply_and_older_ones_are_ignored() {
        let mut c = Catalog::default();
        c.apply(&create("t", "r1"), 1);
        let id = first_tablet(&c);
        let newer = update(&id, 5, &["a", "b", "c"], Some("a"));
        let (_, muts) = c.apply(&CatalogCommand::UpdateTabletConfigs(vec![newer]), 2);
        assert_eq!(muts.len(), 1);
        assert_eq!(view(&c, &id), (5, vec!["a".into(), "b".into(), "c".into()], Some("a".into())));

        // Older term: ignored, nothing written.
        let older = update(&id, 4, &["x", "y", "z"], Some("x"));
        let (_, muts) = c.apply(&CatalogCommand::UpdateTabletConfigs(vec![older]), 3);
        assert!(muts.is_empty());
        assert_eq!(view(&c, &id).0, 5);
        // Same term, leader already known: ignored.
        let same = update(&id, 5, &["a", "b"], Some("b"));
        assert!(c.apply(&CatalogCommand::UpdateTabletConfigs(vec![same]), 4).1.is_empty());
        // A newer term without a leader (an election in progress) is recorded ...
        c.apply(&CatalogCommand::UpdateTabletConfigs(vec![update(&id, 6, &["a", "b", "c"], None)]), 5);
        assert_eq!(view(&c, &id).2, None);
        // ... and the same term's leader fills it in.
        c.apply(&CatalogCommand::UpdateTabletConfigs(vec![update(&id, 6, &["a", "b", "c"], Some("c"))]), 6);
        assert_eq!(view(&c, &id), (6, vec!["a".into(), "b".into(), "c".into()], Some("c".into())));
        // A report without voters carries no configuration.
        assert!(c.apply(&CatalogCommand::UpdateTabletConfigs(vec![update(&id, 9, &[], Some("a"))]), 7).1.is_empty());
        // Unknown tablets are ignored.
        let unknown = update(&TabletId::from("nope"), 9, &["a"], Some("a"));
        assert!(c.apply(&CatalogCommand::UpdateTabletConfigs(vec![unknown]), 8).1.is_empty());
    }

    #[test]
    fn reordered_reports_give_the_same_catalog() {
        let mut base = Catalog::default();
        base.apply(&create("t", "r1"), 1);
        let id = first_tablet(&base);
        let reports = [
            update(&id, 3, &["a", "b", "c"], Some("a")),
            update(&id, 7, &["b", "c", "d"], Some("d")),
            update(&id, 5, &["a", "c", "d"], None),
            update(&id, 7, &["b", "c", "d"], None),
        ];
        let orders: [[usize; 4]; 4] = [[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, 3, 2], [2, 3, 0, 1]];
        let mut outcomes = BTreeSet::new();
        for order in orders {
            let mut c = base.clone();
            // One report per command, and all in one batch: both orders of application.
            for (i, &r) in order.iter().enumerate() {
                c.apply(&CatalogCommand::UpdateTabletConfigs(vec![reports[r].clone()]), 2 + i as u64);
            }
            outcomes.insert(view(&c, &id));
            let mut batched = base.clone();
            batched.apply(&CatalogCommand::UpdateTabletConfigs(order.iter().map(|&r| reports[r].clone()).collect()), 2);
            assert_eq!(view(&batched, &id), view(&c, &id));
        }
        // The term-7 leader wins whatever the order (a leaderless term-7 report applied
        // first is completed by the term-7 report naming the leader).
        assert_eq!(
            outcomes.into_iter().collect::<Vec<_>>(),
            vec![(7, vec!["b".into(), "c".into(), "d".into()], Some("d".into()))]
        );
    }

    fn indexed(
        tablet: &TabletId,
        term: u64,
        index: u64,
        replicas: &[&str],
        leader: Option<&str>,
    ) -> TabletConfigUpdate {
        TabletConfigUpdate { config_index: Some(index), ..update(tablet, term, replicas, leader) }
    }

    fn mv(tablet: &TabletId, from: Option<&str>, to: &str) -> TabletMove {
        TabletMove {
            tablet_id: tablet.clone(),
            replica_move: ReplicaMove { from: from.map(TServerId::from), to: TServerId::from(to) },
        }
    }

    fn pending(c: &Catalog, id: &TabletId) -> Option<ReplicaMove> {
        c.tablet(id).and_then(|t| t.pending_move.clone())
    }

    #[test]
    fn configurations_follow_the_log_index_and_leaders_the_term() {
        let mut c = Catalog::default();
        c.apply(&create("t", "r1"), 1);
        let id = first_tablet(&c);
        let apply =
            |c: &mut Catalog, u: TabletConfigUpdate, i| c.apply(&CatalogCommand::UpdateTabletConfigs(vec![u]), i).1;
        // The first indexed report replaces the placed configuration.
        assert_eq!(apply(&mut c, indexed(&id, 2, 5, &["a", "b", "c"], Some("a")), 2).len(), 1);
        // A newer term from a replica that has not seen the newest configuration moves the
        // leader only.
        apply(&mut c, indexed(&id, 3, 4, &["a", "b", "x"], Some("b")), 3);
        assert_eq!(view(&c, &id), (3, vec!["a".into(), "b".into(), "c".into()], Some("b".into())));
        // A newer configuration in an older term moves the configuration only.
        apply(&mut c, indexed(&id, 2, 9, &["a", "b", "c", "d"], Some("a")), 4);
        assert_eq!(view(&c, &id), (3, vec!["a".into(), "b".into(), "c".into(), "d".into()], Some("b".into())));
        assert_eq!(c.tablet(&id).and_then(|t| t.config_index), Some(9));
        // The same index again, or a report without an index, changes nothing.
        assert!(apply(&mut c, indexed(&id, 3, 9, &["z"], Some("b")), 5).is_empty());
        assert!(apply(&mut c, update(&id, 3, &["z"], Some("b")), 6).is_empty());
        // A report without an index still brings a newer leader.
        apply(&mut c, update(&id, 4, &["z"], Some("c")), 7);
        assert_eq!(view(&c, &id), (4, vec!["a".into(), "b".into(), "c".into(), "d".into()], Some("c".into())));
    }

    #[test]
    fn one_move_per_tablet_ends_with_the_configuration_showing_it() {
        let mut c = Catalog::default();
        c.apply(&create("t", "r1"), 1);
        let id = first_tablet(&c);
        let cmd = |u: TabletConfigUpdate| CatalogCommand::UpdateTabletConfigs(vec![u]);
        c.apply(&cmd(indexed(&id, 1, 1, &["a", "b", "c"], Some("a"))), 2);
        // Refused: `from` not a replica, `to` already one, and from == to.
        for refused in [mv(&id, Some("x"), "d"), mv(&id, Some("a"), "b"), mv(&id, Some("d"), "d")] {
            assert!(c.apply(&CatalogCommand::StartReplicaMoves(vec![refused]), 3).1.is_empty());
        }
        let first = mv(&id, Some("c"), "d");
        assert_eq!(c.apply(&CatalogCommand::StartReplicaMoves(vec![first.clone()]), 4).1.len(), 1);
        assert_eq!(c.num_pending_moves(), 1);
        // A second move of the same tablet waits for the first to end.
        assert!(c.apply(&CatalogCommand::StartReplicaMoves(vec![mv(&id, Some("b"), "e")]), 5).1.is_empty());
        assert_eq!(pending(&c, &id), Some(first.replica_move.clone()));
        // Promoted: four voters, the move goes on; removed: the move is done.
        c.apply(&cmd(indexed(&id, 1, 3, &["a", "b", "c", "d"], Some("a"))), 6);
        assert_eq!(pending(&c, &id), Some(first.replica_move.clone()));
        assert!(c.tablet(&id).is_some_and(|t| t.wants_replica_on(&"d".into()) && t.wants_replica_on(&"c".into())));
        c.apply(&cmd(indexed(&id, 1, 5, &["a", "b", "d"], Some("a"))), 7);
        assert_eq!(pending(&c, &id), None);
        assert!(c.tablet(&id).is_some_and(|t| !t.wants_replica_on(&"c".into())));
        // Cancelling applies to the move in progress only.
        let second = mv(&id, Some("b"), "e");
        c.apply(&CatalogCommand::StartReplicaMoves(vec![second.clone()]), 8);
        assert!(c.tablet(&id).is_some_and(|t| t.wants_replica_on(&"e".into())));
        assert!(c.apply(&CatalogCommand::CancelReplicaMoves(vec![first]), 9).1.is_empty());
        assert_eq!(c.apply(&CatalogCommand::CancelReplicaMoves(vec![second]), 10).1.len(), 1);
        assert_eq!(c.num_pending_moves(), 0);
        // A move that only adds a replica ends once `to` is a voter; deleting the table ends
        // any move.
        let add = mv(&id, None, "f");
        c.apply(&CatalogCommand::StartReplicaMoves(vec![add]), 11);
        c.apply(&cmd(indexed(&id, 1, 7, &["a", "b", "d", "f"], Some("a"))), 12);
        assert_eq!(pending(&c, &id), None);
        c.apply(&CatalogCommand::StartReplicaMoves(vec![mv(&id, Some("f"), "g")]), 13);
        c.apply(&CatalogCommand::DeleteTable { request_id: "d".into(), name: "t".into() }, 14);
        assert_eq!(pending(&c, &id), None);
        // Moves survive a restart (records) and a snapshot.
        let mut c = Catalog::default();
        c.apply(&create("t", "r1"), 1);
        let id = first_tablet(&c);
        c.apply(&CatalogCommand::StartReplicaMoves(vec![mv(&id, Some("ts"), "d")]), 2);
        let stored: Vec<String> = c.records().map(|r| serde_json::to_string(&r).expect("json")).collect();
        let rebuilt = Catalog::from_records(stored.iter().map(|r| serde_json::from_str(r).expect("parses")));
        assert_eq!(pending(&rebuilt, &id), pending(&c, &id));
        assert!(pending(&rebuilt, &id).is_some());
    }

    #[test]
    fn delete_table_tombstones_its_tablets() {
        let mut c = Catalog::default();
        c.apply(&create("t", "r1"), 1);
        c.apply(&create("keep", "r2"), 2);
        let doomed: Vec<TabletId> =
            c.tablets_of(&c.table_by_name("t").expect("t").id).iter().map(|t| t.id.clone()).collect();
        let (resp, muts) = c.apply(&CatalogCommand::DeleteTable { request_id: "r3".into(), name: "t".into() }, 3);
        assert!(matches!(resp.0, Ok(CatalogOutcome::Deleted(_))));
        assert!(!muts.iter().any(|m| matches!(m, Mutation::DeleteTablet(_))), "tablets are kept: {muts:?}");
        for id in &doomed {
            let t = c.tablet(id).expect("tombstone kept");
            assert_eq!(t.state, TabletState::Deleted { log_index: 3 });
        }
        assert_eq!((c.num_tablets(), c.num_tombstones()), (2, 2));
        assert!(c.tablets().all(|t| !doomed.contains(&t.id)), "running tablets leave tombstones out");
        assert!(c.table_by_name("t").is_none());
        // A tombstone ignores reports.
        let late = update(&doomed[0], 99, &["a"], Some("a"));
        assert!(c.apply(&CatalogCommand::UpdateTabletConfigs(vec![late]), 4).1.is_empty());
        // Re-creating the name makes new tablets, the tombstones stay.
        c.apply(&create("t", "r5"), 5);
        assert_eq!((c.num_tablets(), c.num_tombstones()), (4, 2));
    }

    /// The by-table index answers what a scan of every tablet would, through creates,
    /// deletes, a re-created name and a rebuild from the stored records.
    #[test]
    fn tablets_of_matches_a_scan_of_the_catalog() {
        fn scan(c: &Catalog, id: &TableId) -> Vec<TabletId> {
            let mut tablets: Vec<&Tablet> = c.tablets().filter(|t| &t.table_id == id).collect();
            tablets.sort_by_key(|t| t.partition);
            tablets.iter().map(|t| t.id.clone()).collect()
        }
        fn check(c: &Catalog, ids: &[TableId]) {
            for id in ids {
                let indexed: Vec<TabletId> = c.tablets_of(id).iter().map(|t| t.id.clone()).collect();
                assert_eq!(indexed, scan(c, id), "table {id:?}");
            }
        }
        let mut c = Catalog::default();
        c.apply(&create("a", "r1"), 1);
        c.apply(&create("b", "r2"), 2);
        let a = c.table_by_name("a").expect("a").id.clone();
        let b = c.table_by_name("b").expect("b").id.clone();
        assert_eq!(c.tablets_of(&a).len(), 2);
        check(&c, &[a.clone(), b.clone()]);
        c.apply(&CatalogCommand::DeleteTable { request_id: "r3".into(), name: "a".into() }, 3);
        assert!(c.tablets_of(&a).is_empty(), "a deleted table has no running tablets");
        c.apply(&create("a", "r4"), 4);
        let a2 = c.table_by_name("a").expect("a again").id.clone();
        assert_eq!(c.tablets_of(&a2).len(), 2);
        check(&c, &[a.clone(), b.clone(), a2.clone()]);
        let rebuilt = Catalog::from_records(c.records());
        check(&rebuilt, &[a, b.clone(), a2.clone()]);
        assert_eq!(rebuilt.tablets_of(&b).len() + rebuilt.tablets_of(&a2).len(), 4);
    }

    #[test]
    fn tombstones_are_bounded_oldest_first() {
        let mut c = Catalog::default();
        let (mut old, mut old_tablets) = table("old");
        old_tablets.truncate(1);
        old.num_partitions = 1;
        let old_id = old_tablets[0].id.clone();
        c.apply(&CatalogCommand::CreateTable { request_id: "r1".into(), table: old, tablets: old_tablets }, 1);
        c.apply(&CatalogCommand::DeleteTable { request_id: "r2".into(), name: "old".into() }, 2);
        let (mut big, _) = table("big");
        let tablets: Vec<Tablet> = (0..MAX_TOMBSTONES as u32)
            .map(|p| Tablet::new(TabletId(format!("big-{p}")), big.id.clone(), p, vec![TServerId::from("ts")]))
            .collect();
        big.num_partitions = MAX_TOMBSTONES as u32;
        c.apply(&CatalogCommand::CreateTable { request_id: "r3".into(), table: big, tablets }, 3);
        let (_, muts) = c.apply(&CatalogCommand::DeleteTable { request_id: "r4".into(), name: "big".into() }, 4);
        assert_eq!(c.num_tombstones(), MAX_TOMBSTONES);
        assert!(c.tablet(&old_id).is_none(), "the oldest tombstone is forgotten");
        assert!(muts.contains(&Mutation::DeleteTablet(old_id)));
        assert!(c.tablet(&TabletId::from("big-0")).is_some_and(Tablet::is_deleted));
    }

    #[test]
    fn cluster_id_is_set_once() {
        let mut c = Catalog::default();
        assert_eq!(c.cluster_id(), None);
        let set =
            |c: &mut Catalog, id: &str, index| c.apply(&CatalogCommand::SetClusterId { cluster_id: id.into() }, index);
        let (resp, muts) = set(&mut c, "first", 1);
        assert_eq!(resp.0, Ok(CatalogOutcome::ClusterId("first".into())));
        assert_eq!(muts, vec![Mutation::Put(CatalogRecord::ClusterId("first".into()))]);
        // A second proposal (another leader's) answers the id in effect and writes nothing.
        let (resp, muts) = set(&mut c, "second", 2);
        assert_eq!(resp.0, Ok(CatalogOutcome::ClusterId("first".into())));
        assert!(muts.is_empty());
        assert_eq!(c.cluster_id(), Some("first"));
        let mut empty = Catalog::default();
        assert!(matches!(set(&mut empty, "", 1).0.0, Err(CatalogError::InvalidArgument(_))));
        assert_eq!(empty.cluster_id(), None);
    }

    #[test]
    fn records_keep_cluster_id_terms_and_tombstones() {
        let mut c = Catalog::default();
        c.apply(&CatalogCommand::SetClusterId { cluster_id: "cid".into() }, 1);
        c.apply(&create("a", "r1"), 2);
        c.apply(&create("b", "r2"), 3);
        let id = first_tablet(&c);
        c.apply(&CatalogCommand::UpdateTabletConfigs(vec![update(&id, 4, &["x"], Some("x"))]), 4);
        c.apply(&CatalogCommand::DeleteTable { request_id: "r3".into(), name: "b".into() }, 5);
        // Through JSON, as the state machine stores records and snapshots.
        let stored: Vec<String> = c.records().map(|r| serde_json::to_string(&r).expect("json")).collect();
        let rebuilt = Catalog::from_records(stored.iter().map(|r| serde_json::from_str(r).expect("parses")));
        assert_eq!(rebuilt.records().collect::<Vec<_>>(), c.records().collect::<Vec<_>>());
        assert_eq!(rebuilt.cluster_id(), Some("cid"));
        assert_eq!(rebuilt.num_tombstones(), 2);
        assert_eq!(view(&rebuilt, &id), view(&c, &id));
        // The rebuilt catalog keeps behaving the same: the id stays, stale reports lose.
        let mut rebuilt = rebuilt;
        assert_eq!(
            rebuilt.apply(&CatalogCommand::SetClusterId { cluster_id: "other".into() }, 6).0.0,
            Ok(CatalogOutcome::ClusterId("cid".into()))
        );
    }

    #[test]
    fn tablet_records_from_before_terms_parse() {
        let (_, tablets) = table("old");
        let mut json = serde_json::to_value(CatalogRecord::Tablet(tablets[0].clone())).expect("json");
        if let Some(t) = json["Tablet"].as_object_mut() {
            t.remove("term");
            t.remove("state");
        }
        let CatalogRecord::Tablet(t) = serde_json::from_value(json).expect("old record parses") else { panic!() };
        assert_eq!((t.term, t.state), (0, TabletState::Running));
    }

    #[test]
    fn decommissioning_marks_are_replicated_records_and_idempotent() {
        let mut c = Catalog::default();
        let set = |c: &mut Catalog, uuid: &str, on: bool, index| {
            c.apply(&CatalogCommand::SetTServerState { uuid: uuid.into(), decommissioning: on }, index).1
        };
        let ts = TServerId::from("ts1");
        assert_eq!(set(&mut c, "ts1", true, 1), vec![Mutation::Put(CatalogRecord::Decommissioning(ts.clone()))]);
        assert!(set(&mut c, "ts1", true, 2).is_empty(), "marking twice changes nothing");
        assert!(c.is_decommissioning(&ts));
        // The mark survives a rebuild from the stored records (restart, snapshot).
        let stored: Vec<String> = c.records().map(|r| serde_json::to_string(&r).expect("serializes")).collect();
        let rebuilt = Catalog::from_records(stored.iter().map(|r| serde_json::from_str(r).expect("parses")));
        assert_eq!(rebuilt.decommissioning().iter().collect::<Vec<_>>(), vec![&ts]);
        assert_eq!(set(&mut c, "ts1", false, 3), vec![Mutation::DeleteDecommissioning(ts.clone())]);
        assert!(set(&mut c, "ts1", false, 4).is_empty());
        assert!(!c.is_decommissioning(&ts));
    }
}
