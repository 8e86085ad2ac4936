//! The tablet state machine's logic: applying [`TabletCommand`]s over stored rows.
//!
//! Write semantics (Kudu's): `insert` fails for its row if the key exists
//! (`ALREADY_PRESENT`), `update` and `delete` if it does not (`NOT_FOUND`); `upsert` always
//! succeeds and, on an existing row, changes only the columns it carries. A failed row does
//! not stop the others. Rows of one write see the effects of earlier rows of the same write.
//!
//! Schema versions: a write carries the schema version the leader encoded it with. Each row
//! is checked against the tablet's schema at apply time: a cell whose column id is not in
//! it (dropped since, or added in a version the tablet has not applied yet) fails that row
//! with `SCHEMA_MISMATCH`; renamed columns keep their id and apply normally. A stored row
//! keeps the cells of dropped columns (reads ignore them) until an update or upsert
//! rewrites it, which leaves them out.

use std::collections::BTreeMap;

use super::command::{RowError, RowFailure, RowOp, TabletCommand, TabletError, TabletOutcome, TabletResponse};
use super::key::decode_key;
use super::record::{Mutation, SchemaRecord, TabletRecord};
use super::row::{Cell, decode_cells, decode_row_value, encode_row_value, merge_cells};
use super::schema::{SchemaError, TabletSchema};
use super::store::{RowStore, StoreError};
use super::tracker::{ResultTracker, Seen};
use crate::catalog::Schema;

/// Rows written by the current command, over the stored rows (`None`: deleted).
type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A tablet's in-memory replicated state: its schema and result tracker. Rows live in the
/// [`RowStore`].
#[derive(Clone, Debug, Default)]
pub struct TabletState {
    schema: Option<TabletSchema>,
    tracker: ResultTracker,
}

impl TabletState {
    /// Rebuilds the state from its durable records (start-up, snapshot install). With several
    /// schema records the newest version wins.
    pub fn from_records(records: impl IntoIterator<Item = TabletRecord>) -> Result<TabletState, SchemaError> {
        let mut state = TabletState::default();
        for record in records {
            match record {
                TabletRecord::Schema(SchemaRecord { schema, version }) => {
                    if state.schema.as_ref().is_none_or(|s| s.version() < version) {
                        state.schema = Some(TabletSchema::new(schema, version)?);
                    }
                }
                TabletRecord::Client(client) => state.tracker.insert_record(client),
            }
        }
        Ok(state)
    }

    /// Every record (schema first, then clients by id): with the rows, a full snapshot.
    pub fn records(&self) -> impl Iterator<Item = TabletRecord> + '_ {
        let schema = self
            .schema
            .as_ref()
            .map(|s| TabletRecord::Schema(SchemaRecord { schema: s.schema().clone(), version: s.version() }));
        schema.into_iter().chain(self.tracker.records().cloned().map(TabletRecord::Client))
    }

    /// The current schema, once the first `AlterSchema` was applied.
    pub fn schema(&self) -> Option<&TabletSchema> {
        self.schema.as_ref()
    }

    /// The exactly-once bookkeeping.
    pub fn tracker(&self) -> &ResultTracker {
        &self.tracker
    }

    /// Applies one command at `log_index`, reading rows from `store`, and returns the
    /// response and the mutations to persist atomically with the applied log id.
    /// Deterministic. On `Err` nothing changed in memory; the caller must not skip the entry.
    pub fn apply<S: RowStore>(
        &mut self,
        store: &S,
        command: &TabletCommand,
        log_index: u64,
    ) -> Result<(TabletResponse, Vec<Mutation>), StoreError<S::Error>> {
        match command {
            TabletCommand::Write { client_id, seq_no, first_incomplete_seq_no, schema_version, ops } => {
                let tracked = !client_id.is_empty();
                if tracked {
                    match self.tracker.check(client_id, *seq_no, *first_incomplete_seq_no) {
                        Seen::New => {}
                        Seen::Retry(response) => return Ok((response, Vec::new())),
                        Seen::Stale { first_incomplete } => {
                            let stale =
                                TabletError::Stale { client_id: client_id.clone(), seq_no: *seq_no, first_incomplete };
                            return Ok((TabletResponse(Err(stale)), Vec::new()));
                        }
                    }
                }
                let (result, mut mutations) = self.write(store, *schema_version, ops)?;
                let response = TabletResponse(result);
                if tracked {
                    self.tracker.record(
                        client_id,
                        *seq_no,
                        *first_incomplete_seq_no,
                        log_index,
                        &response,
                        &mut mutations,
                    );
                }
                Ok((response, mutations))
            }
            TabletCommand::AlterSchema { schema, version } => {
                let mut mutations = Vec::new();
                let result = self.alter_schema(schema, *version, &mut mutations);
                Ok((TabletResponse(result), mutations))
            }
        }
    }

    fn alter_schema(
        &mut self,
        schema: &Schema,
        version: u64,
        out: &mut Vec<Mutation>,
    ) -> Result<TabletOutcome, TabletError> {
        if let Some(current) = &self.schema
            && version <= current.version()
        {
            return Ok(TabletOutcome::Schema { version: current.version() });
        }
        let new = TabletSchema::new(schema.clone(), version).map_err(|e| TabletError::InvalidSchema(e.to_string()))?;
        if let Some(current) = &self.schema {
            if !current.same_key(&new) {
                return Err(TabletError::KeyChanged { version });
            }
            for column in new.columns() {
                if let Some(old) = current.column_by_id(column.id)
                    && old.data_type != column.data_type
                {
                    return Err(TabletError::InvalidSchema(format!(
                        "column id {} ('{}') changes type from {} to {}",
                        column.id, column.name, old.data_type, column.data_type
                    )));
                }
            }
        }
        out.push(Mutation::PutSchema(SchemaRecord { schema: schema.clone(), version }));
        self.schema = Some(new);
        Ok(TabletOutcome::Schema { version })
    }

    #[allow(clippy::type_complexity)]
    fn write<S: RowStore>(
        &self,
        store: &S,
        write_version: u64,
        ops: &[RowOp],
    ) -> Result<(Result<TabletOutcome, TabletError>, Vec<Mutation>), StoreError<S::Error>> {
        let Some(schema) = &self.schema else { return Ok((Err(TabletError::NoSchema), Vec::new())) };
        let mut overlay = Overlay::new();
        let mut row_errors = Vec::new();
        for (index, op) in (0u32..).zip(ops) {
            if let Err(failure) = apply_op(schema, store, &mut overlay, op, write_version)? {
                row_errors.push(RowError { index, failure });
            }
        }
        let mutations = overlay
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => Mutation::PutRow { key, value },
                None => Mutation::DeleteRow { key },
            })
            .collect();
        Ok((Ok(TabletOutcome::Written { row_errors }), mutations))
    }
}

/// Applies one row operation into `overlay`; the inner `Err` is that row's failure.
fn apply_op<S: RowStore>(
    schema: &TabletSchema,
    store: &S,
    overlay: &mut Overlay,
    op: &RowOp,
    write_version: u64,
) -> Result<Result<(), RowFailure>, StoreError<S::Error>> {
    let key = op.key();
    if let Err(e) = decode_key(key, &schema.key_types()) {
        return Ok(Err(RowFailure::Malformed(format!("key: {e}"))));
    }
    let changes = match op {
        RowOp::Insert { cells, .. } | RowOp::Upsert { cells, .. } | RowOp::Update { cells, .. } => {
            match decode_cells(cells) {
                Ok(changes) => changes,
                Err(e) => return Ok(Err(RowFailure::Malformed(e.to_string()))),
            }
        }
        RowOp::Delete { .. } => Vec::new(),
    };
    if let Err(failure) = check_cells(schema, &changes, write_version) {
        return Ok(Err(failure));
    }
    let existing = match overlay.get(key) {
        Some(value) => value.clone(),
        None => store.get(key).map_err(StoreError::Store)?,
    };
    let new_value = match (op, existing) {
        (RowOp::Insert { .. }, Some(_)) => return Ok(Err(RowFailure::AlreadyPresent)),
        (RowOp::Update { .. } | RowOp::Delete { .. }, None) => return Ok(Err(RowFailure::NotFound)),
        (RowOp::Delete { .. }, Some(_)) => None,
        (RowOp::Insert { .. } | RowOp::Upsert { .. }, None) => {
            if let Err(failure) = check_complete(schema, &changes) {
                return Ok(Err(failure));
            }
            let cells: Vec<(u32, _)> = changes.into_iter().filter_map(|(id, v)| v.map(|v| (id, v))).collect();
            Some(encode_row_value(&cells))
        }
        (RowOp::Upsert { .. } | RowOp::Update { .. }, Some(stored)) => {
            let stored = decode_row_value(&stored).map_err(|e| StoreError::corrupt(key, e))?;
            Some(encode_row_value(&merge_cells(stored, &changes, schema)))
        }
    };
    overlay.insert(key.to_vec(), new_value);
    Ok(Ok(()))
}

/// Every cell must name a non-key column of the current schema, with its type, and may be
/// null only where the column is nullable.
fn check_cells(schema: &TabletSchema, cells: &[Cell], write_version: u64) -> Result<(), RowFailure> {
    for (id, value) in cells {
        let column = schema.column_by_id(*id).ok_or(RowFailure::UnknownColumnId {
            id: *id,
            tablet_version: schema.version(),
            write_version,
        })?;
        if column.key_position.is_some() {
            return Err(RowFailure::KeyColumnInCells { column: column.name.clone() });
        }
        match value {
            None if !column.nullable => return Err(RowFailure::NullNotAllowed { column: column.name.clone() }),
            Some(value) if value.data_type() != column.data_type => {
                return Err(RowFailure::TypeMismatch {
                    column: column.name.clone(),
                    expected: column.data_type.to_string(),
                    found: value.data_type().to_string(),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// A new row must carry every non-nullable column.
fn check_complete(schema: &TabletSchema, cells: &[Cell]) -> Result<(), RowFailure> {
    match schema
        .value_columns()
        .find(|c| !c.nullable && !cells.iter().any(|(id, value)| *id == c.id && value.is_some()))
    {
        Some(column) => Err(RowFailure::MissingColumn { column: column.name.clone() }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
