//! The state machine of one tablet replica: applies committed [`TabletCommand`]s to the
//! tablet's [`TabletState`] (schema and result tracker, in memory) and rows (in RocksDB),
//! persisting each apply call as one synced `WriteBatch` under the tablet's group prefix.
//!
//! Consistency: `apply` and `install_snapshot` hold the state's write lock until their batch
//! is written, so whoever holds the read lock sees memory and RocksDB describe one applied
//! state. Snapshots and scans read one RocksDB snapshot (taken under the read lock), which
//! holds rows, records and the applied log id of one batch boundary.

use std::io::{self, Cursor};
use std::path::Path;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::{ColumnFamily, DB, IteratorMode, ReadOptions, WriteBatch};
use tokio::sync::{RwLock, RwLockReadGuard};

use super::keys::{self, KeyError};
use super::rows::{Overlay, OverlayRows, StoredRow, iter_range, range_read_options};
use super::snapshot::{SnapshotWriter, decode_snapshot, snapshot_dir};
use crate::ids::TabletId;
use crate::raft::SnapshotFile;
use crate::raft::rocks::{cf, decode, encode, to_io, write_sync, write_sync_blocking};
use crate::tablet::{
    self, KeyRange, Mutation, Projection, ScanError, ScanRow, SchemaError, TabletCommand, TabletRecord, TabletResponse,
    TabletState,
};
use crate::tserver::raft_types::{Entry, LogId, Snapshot, SnapshotMeta, StoredMembership, TabletTypeConfig};

/// Opening, reading or destroying a tablet replica's stored state failed.
#[derive(Debug, thiserror::Error)]
pub enum TabletStoreError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("tablet {tablet_id}: {what}: {source}")]
    Io { tablet_id: String, what: &'static str, source: io::Error },
    #[error("tablet {tablet_id}: stored records hold an invalid schema: {source}")]
    Schema { tablet_id: String, source: SchemaError },
    #[error("tablet {tablet_id} has no schema yet")]
    NoSchema { tablet_id: String },
    #[error("tablet {tablet_id}: {source}")]
    Scan { tablet_id: String, source: ScanError },
    #[error("tablet {tablet_id}: {source}")]
    Rows { tablet_id: String, source: tablet::StoreError<rocksdb::Error> },
}

/// State machine storage of one tablet replica. Cheap to clone (clones share everything).
#[derive(Clone)]
pub struct TabletStateMachine {
    inner: Arc<Inner>,
}

struct Inner {
    tablet_id: TabletId,
    prefix: Vec<u8>,
    db: Arc<DB>,
    state: RwLock<TabletState>,
    snapshot_file: SnapshotFile<TabletTypeConfig>,
}

/// What one apply call produced, before it is written.
struct Applied<R> {
    batch: WriteBatch,
    responses: Vec<(R, TabletResponse)>,
}

impl TabletStateMachine {
    /// Opens the replica of `tablet_id` in the tablet server's database `db` (see
    /// [`super::open_db`]), rebuilding its in-memory state from its stored records. A tablet
    /// with nothing stored opens empty. Snapshots live under `data_dir/snapshots/<tablet>`.
    pub fn open(db: Arc<DB>, data_dir: &Path, tablet_id: TabletId) -> Result<Self, TabletStoreError> {
        let prefix = keys::group_prefix(tablet_id.as_str())?;
        let records = load_records(&db, &prefix).map_err(|source| TabletStoreError::Io {
            tablet_id: tablet_id.to_string(),
            what: "reading records",
            source,
        })?;
        let state = TabletState::from_records(records)
            .map_err(|source| TabletStoreError::Schema { tablet_id: tablet_id.to_string(), source })?;
        let snapshot_file = SnapshotFile::new(snapshot_dir(data_dir, tablet_id.as_str()));
        Ok(Self { inner: Arc::new(Inner { tablet_id, prefix, db, state: RwLock::new(state), snapshot_file }) })
    }

    /// The tablet this replica belongs to.
    pub fn tablet_id(&self) -> &TabletId {
        &self.inner.tablet_id
    }

    /// The applied in-memory state (schema, result tracker). While the guard lives no entry
    /// is applied, so stored rows match it.
    pub async fn state(&self) -> RwLockReadGuard<'_, TabletState> {
        self.inner.state.read().await
    }

    /// The tablet's stored rows inside `range` as `(encoded key, row value)`, in key order,
    /// from the latest applied state (RocksDB pins it when the iterator is created). Feed it
    /// to [`tablet::scan`]; [`Self::scan`] does both under one consistent view.
    pub fn rows(
        &self,
        range: &KeyRange,
    ) -> Result<impl Iterator<Item = Result<StoredRow, rocksdb::Error>> + '_, TabletStoreError> {
        let rows_cf = cf(&self.inner.db, keys::CF_TABLET_ROWS).map_err(|e| self.io_error("reading rows", e))?;
        Ok(iter_range(&self.inner.db, rows_cf, &self.inner.prefix, range))
    }

    /// Scans the applied rows inside `range` with the applied schema: `columns` projects
    /// (`None`: all, in table order), `limit` caps the row count. Runs off the async runtime.
    pub async fn scan(
        &self,
        columns: Option<Vec<String>>,
        range: KeyRange,
        limit: Option<usize>,
    ) -> Result<Vec<ScanRow>, TabletStoreError> {
        let inner = self.inner.clone();
        let joined = tokio::task::spawn_blocking(move || inner.scan_blocking(columns.as_deref(), &range, limit)).await;
        joined.map_err(|e| self.io_error("scanning", io::Error::other(e)))?
    }

    /// Deletes every stored key of `tablet_id` (rows, records, applied state) and its
    /// snapshots: the replica is gone. The replica's Raft must be stopped first; its Raft
    /// log (another store's column families, same group prefix) is deleted by the log store.
    /// Idempotent. Snapshots go first, so a crash in between never leaves a snapshot beside
    /// deleted state.
    pub fn destroy(db: &DB, data_dir: &Path, tablet_id: &TabletId) -> Result<(), TabletStoreError> {
        let prefix = keys::group_prefix(tablet_id.as_str())?;
        let io = |what, source| TabletStoreError::Io { tablet_id: tablet_id.to_string(), what, source };
        let dir = snapshot_dir(data_dir, tablet_id.as_str());
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => sync_dir(dir.parent()).map_err(|e| io("syncing the snapshots directory", e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("deleting snapshots", e)),
        }
        let mut batch = WriteBatch::default();
        delete_tablet_keys(db, &mut batch, &prefix).map_err(|e| io("deleting stored state", e))?;
        write_sync_blocking(db, batch).map_err(|e| io("deleting stored state", e))?;
        tracing::info!(tablet = %tablet_id, "destroyed tablet replica state");
        Ok(())
    }

    fn io_error(&self, what: &'static str, source: io::Error) -> TabletStoreError {
        TabletStoreError::Io { tablet_id: self.inner.tablet_id.to_string(), what, source }
    }

    /// Applies `entries` (each with a caller token, e.g. openraft's responder) and writes the
    /// result (durable with the next synced write); returns each entry's token with its response. The one apply path of
    /// both the openraft trait and tests.
    async fn apply_entries<R, S>(&self, entries: S) -> Result<Vec<(R, TabletResponse)>, io::Error>
    where
        S: Stream<Item = Result<(Entry, R), io::Error>> + Unpin,
    {
        let inner = &self.inner;
        let mut state = inner.state.write().await;
        let mut applied = inner.apply_to(&mut state, entries).await;
        if let Ok(Applied { batch, .. }) = &mut applied {
            let batch = std::mem::take(batch);
            // Not synced: the entries are durable in the Raft log (same RocksDB, same WAL), and
            // openraft re-applies a lost tail up to the commit index it reads on start or learns
            // from the leader (the batch carries its position); the next synced write makes this
            // one durable too.
            if let Err(e) = inner.db.write(batch).map_err(to_io) {
                applied = Err(e);
            }
        }
        match applied {
            Ok(applied) => Ok(applied.responses),
            Err(e) => {
                // Memory may hold effects that never reached the disk: go back to the disk's.
                match inner.reload() {
                    Ok(reloaded) => *state = reloaded,
                    Err(reload) => {
                        tracing::error!(tablet = %inner.tablet_id, error = %reload, "reloading after a failed apply")
                    }
                }
                Err(e)
            }
        }
    }
}

impl Inner {
    fn cfs(&self) -> Result<(&ColumnFamily, &ColumnFamily, &ColumnFamily), io::Error> {
        Ok((
            cf(&self.db, keys::CF_TABLET_SM_META)?,
            cf(&self.db, keys::CF_TABLET_ROWS)?,
            cf(&self.db, keys::CF_TABLET_RECORDS)?,
        ))
    }

    fn context<'a>(&'a self, what: impl std::fmt::Display + 'a) -> impl FnOnce(io::Error) -> io::Error + 'a {
        move |e| io::Error::new(e.kind(), format!("tablet {}: {what}: {e}", self.tablet_id))
    }

    /// Applies entries to `state` and collects their writes in one batch (not yet written).
    async fn apply_to<R, S>(&self, state: &mut TabletState, mut entries: S) -> Result<Applied<R>, io::Error>
    where
        S: Stream<Item = Result<(Entry, R), io::Error>> + Unpin,
    {
        let (meta_cf, rows_cf, records_cf) = self.cfs()?;
        let mut batch = WriteBatch::default();
        let mut overlay = Overlay::new();
        let mut responses = Vec::new();
        let mut last_applied: Option<LogId> = None;
        while let Some((entry, token)) = entries.try_next().await? {
            let log_id = entry.log_id();
            let response = match &entry.payload {
                EntryPayload::Blank => TabletResponse::raft_internal(),
                EntryPayload::Normal(command) => {
                    let view = OverlayRows { db: &self.db, cf: rows_cf, prefix: &self.prefix, overlay: &overlay };
                    let (response, mutations) = apply_command(state, &view, command, log_id.index())
                        .map_err(self.context(format_args!("applying log entry {log_id}")))?;
                    for mutation in mutations {
                        self.add_mutation(&mut batch, &mut overlay, records_cf, mutation)?;
                    }
                    response
                }
                EntryPayload::Membership(membership) => {
                    let stored = StoredMembership::new(Some(log_id), membership.clone());
                    batch.put_cf(meta_cf, keys::prefixed(&self.prefix, keys::SM_MEMBERSHIP), encode(&stored)?);
                    TabletResponse::raft_internal()
                }
            };
            last_applied = Some(log_id);
            responses.push((token, response));
        }
        for (key, value) in overlay {
            let key = keys::row_key(&self.prefix, &key);
            match value {
                Some(value) => batch.put_cf(rows_cf, key, value),
                None => batch.delete_cf(rows_cf, key),
            }
        }
        if let Some(log_id) = &last_applied {
            batch.put_cf(meta_cf, keys::prefixed(&self.prefix, keys::SM_LAST_APPLIED), encode(log_id)?);
        }
        Ok(Applied { batch, responses })
    }

    /// Rows go to the overlay (later entries read them, the batch gets the last value);
    /// records straight to the batch (a later put of the same key wins).
    fn add_mutation(
        &self,
        batch: &mut WriteBatch,
        overlay: &mut Overlay,
        records_cf: &ColumnFamily,
        mutation: Mutation,
    ) -> Result<(), io::Error> {
        let (_, key) = keys::mutation_target(&self.prefix, &mutation);
        match mutation {
            Mutation::PutRow { key, value } => {
                overlay.insert(key, Some(value));
            }
            Mutation::DeleteRow { key } => {
                overlay.insert(key, None);
            }
            Mutation::PutSchema(schema) => batch.put_cf(records_cf, key, encode(&TabletRecord::Schema(schema))?),
            Mutation::PutClient(client) => batch.put_cf(records_cf, key, encode(&TabletRecord::Client(client))?),
            Mutation::DeleteClient { .. } => batch.delete_cf(records_cf, key),
        }
        Ok(())
    }

    /// The in-memory state as the database holds it.
    fn reload(&self) -> Result<TabletState, io::Error> {
        let records = load_records(&self.db, &self.prefix)?;
        TabletState::from_records(records).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn read_applied(&self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let meta_cf = cf(&self.db, keys::CF_TABLET_SM_META)?;
        read_applied_with(&self.prefix, |key| self.db.get_cf(meta_cf, key))
    }

    fn scan_blocking(
        &self,
        columns: Option<&[String]>,
        range: &KeyRange,
        limit: Option<usize>,
    ) -> Result<Vec<ScanRow>, TabletStoreError> {
        let tablet_id = || self.tablet_id.to_string();
        let rows_cf = cf(&self.db, keys::CF_TABLET_ROWS).map_err(|source| TabletStoreError::Io {
            tablet_id: tablet_id(),
            what: "scanning",
            source,
        })?;
        let (schema, snapshot) = {
            let state = self.state.blocking_read();
            let schema =
                state.schema().cloned().ok_or_else(|| TabletStoreError::NoSchema { tablet_id: tablet_id() })?;
            (schema, self.db.snapshot())
        };
        let projection = Projection::new(&schema, columns)
            .map_err(|source| TabletStoreError::Scan { tablet_id: tablet_id(), source })?;
        let rows = snapshot
            .iterator_cf_opt(rows_cf, range_read_options(&self.prefix, range), IteratorMode::Start)
            .map(|item| item.map(|(key, value)| (key.get(self.prefix.len()..).unwrap_or_default().to_vec(), value)));
        tablet::scan(&schema, &projection, range, limit, rows)
            .map_err(|source| TabletStoreError::Rows { tablet_id: tablet_id(), source })
    }

    /// Meta and data of a snapshot of the applied state, read from one RocksDB snapshot.
    fn build_snapshot_blocking(&self) -> Result<(SnapshotMeta, Vec<u8>), io::Error> {
        let (meta_cf, rows_cf, records_cf) = self.cfs()?;
        let snapshot = {
            let _state = self.state.blocking_read();
            self.db.snapshot()
        };
        let (last_log_id, last_membership) = read_applied_with(&self.prefix, |key| snapshot.get_cf(meta_cf, key))?;
        let mut writer = SnapshotWriter::new(self.tablet_id.as_str())?;
        let all = KeyRange::default();
        for item in snapshot.iterator_cf_opt(rows_cf, range_read_options(&self.prefix, &all), IteratorMode::Start) {
            let (key, value) = item.map_err(to_io)?;
            writer.row(key.get(self.prefix.len()..).unwrap_or_default(), &value)?;
        }
        for item in snapshot.iterator_cf_opt(records_cf, prefix_read_options(&self.prefix), IteratorMode::Start) {
            let (_, value) = item.map_err(to_io)?;
            writer.record_json(&value)?;
        }
        Ok((SnapshotMeta { last_log_id, last_membership }, writer.finish()))
    }

    /// The batch that replaces the tablet's whole stored state by a snapshot's.
    fn install_batch(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(WriteBatch, TabletState), io::Error> {
        let contents = decode_snapshot(self.tablet_id.as_str(), data)?;
        let (meta_cf, rows_cf, records_cf) = self.cfs()?;
        let mut batch = WriteBatch::default();
        delete_tablet_keys(&self.db, &mut batch, &self.prefix)?;
        for (key, value) in &contents.rows {
            batch.put_cf(rows_cf, keys::row_key(&self.prefix, key), value);
        }
        for record in &contents.records {
            batch.put_cf(records_cf, keys::record_key(&self.prefix, record), encode(record)?);
        }
        if let Some(log_id) = &meta.last_log_id {
            batch.put_cf(meta_cf, keys::prefixed(&self.prefix, keys::SM_LAST_APPLIED), encode(log_id)?);
        }
        batch.put_cf(meta_cf, keys::prefixed(&self.prefix, keys::SM_MEMBERSHIP), encode(&meta.last_membership)?);
        let state = TabletState::from_records(contents.records)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("snapshot schema: {e}")))?;
        Ok((batch, state))
    }
}

/// [`TabletState::apply`] with its storage error as an `io::Error`: fatal for the replica.
fn apply_command(
    state: &mut TabletState,
    rows: &OverlayRows<'_>,
    command: &TabletCommand,
    log_index: u64,
) -> Result<(TabletResponse, Vec<Mutation>), io::Error> {
    state.apply(rows, command, log_index).map_err(io::Error::other)
}

fn read_applied_with(
    prefix: &[u8],
    get: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, rocksdb::Error>,
) -> Result<(Option<LogId>, StoredMembership), io::Error> {
    let last_applied = get(&keys::prefixed(prefix, keys::SM_LAST_APPLIED)).map_err(to_io)?;
    let membership = get(&keys::prefixed(prefix, keys::SM_MEMBERSHIP)).map_err(to_io)?;
    Ok((last_applied.map(|b| decode(&b)).transpose()?, membership.map(|b| decode(&b)).transpose()?.unwrap_or_default()))
}

/// Read options bounding an iterator to the keys starting with `prefix`.
fn prefix_read_options(prefix: &[u8]) -> ReadOptions {
    let mut opts = ReadOptions::default();
    opts.set_iterate_lower_bound(prefix.to_vec());
    if let Some(end) = keys::prefix_end(prefix) {
        opts.set_iterate_upper_bound(end);
    }
    opts
}

fn load_records(db: &DB, prefix: &[u8]) -> Result<Vec<TabletRecord>, io::Error> {
    let records_cf = cf(db, keys::CF_TABLET_RECORDS)?;
    db.iterator_cf_opt(records_cf, prefix_read_options(prefix), IteratorMode::Start)
        .map(|item| decode(&item.map_err(to_io)?.1))
        .collect()
}

/// Adds range deletions of every key under `prefix` in the tablet's column families.
fn delete_tablet_keys(db: &DB, batch: &mut WriteBatch, prefix: &[u8]) -> Result<(), io::Error> {
    // A group prefix is a length byte and UTF-8, which never holds 0xff: the end exists.
    let end = keys::prefix_end(prefix).ok_or_else(|| io::Error::other("group prefix has no upper bound"))?;
    for name in keys::TABLET_SM_CFS {
        batch.delete_range_cf(cf(db, name)?, prefix, end.as_slice());
    }
    Ok(())
}

fn sync_dir(dir: Option<&Path>) -> Result<(), io::Error> {
    match dir {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

impl RaftSnapshotBuilder<TabletTypeConfig> for TabletStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let inner = self.inner.clone();
        let built = tokio::task::spawn_blocking(move || {
            let (meta, data) = inner.build_snapshot_blocking()?;
            inner.snapshot_file.save(&meta, &data)?;
            Ok::<_, io::Error>((meta, data))
        })
        .await
        .map_err(io::Error::other)?;
        let (meta, data) = built.map_err(self.inner.context("building a snapshot"))?;
        tracing::info!(tablet = %self.inner.tablet_id, last_log_id = ?meta.last_log_id, bytes = data.len(), "built tablet snapshot");
        Ok(Snapshot { meta, snapshot: Cursor::new(data) })
    }
}

impl RaftStateMachine<TabletTypeConfig> for TabletStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        self.inner.read_applied()
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TabletTypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        for (responder, response) in self.apply_entries(entries).await? {
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Cursor<Vec<u8>>) -> Result<(), io::Error> {
        let inner = &self.inner;
        let data = snapshot.into_inner();
        let (batch, state) = inner.install_batch(meta, &data).map_err(inner.context("installing a snapshot"))?;
        {
            let mut current = inner.state.write().await;
            write_sync(&inner.db, batch).await.map_err(inner.context("installing a snapshot"))?;
            *current = state;
        }
        let (inner, meta_owned) = (inner.clone(), meta.clone());
        tokio::task::spawn_blocking(move || inner.snapshot_file.save(&meta_owned, &data))
            .await
            .map_err(io::Error::other)?
            .map_err(self.inner.context("saving an installed snapshot"))?;
        tracing::info!(tablet = %self.inner.tablet_id, last_log_id = ?meta.last_log_id, "installed tablet snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let loaded = self.inner.snapshot_file.load().map_err(self.inner.context("reading the current snapshot"))?;
        Ok(loaded.map(|(meta, data)| Snapshot { meta, snapshot: Cursor::new(data) }))
    }
}

#[cfg(test)]
mod tests;
