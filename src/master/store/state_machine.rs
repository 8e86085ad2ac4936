//! The catalog state machine: applies committed entries to the in-memory [`Catalog`] and
//! persists each change as individual records in RocksDB. A snapshot is a stream of records
//! (one JSON line each), never the whole catalog in one value.

use std::io::{self, BufRead, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::{DB, IteratorMode, WriteBatch};

use super::keys;
use crate::catalog::{Catalog, CatalogRecord, CatalogResponse, Mutation};
use crate::master::raft_types::{LogId, SnapshotMeta, StoredMembership, TypeConfig};
use crate::raft::rocks::{cf, decode, encode, to_io, write_sync};

type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Cursor<Vec<u8>>>;

/// The applied catalog, shared with the RPC service for reads.
#[derive(Clone, Default)]
pub struct SharedCatalog(Arc<RwLock<Catalog>>);

impl SharedCatalog {
    pub async fn read(&self) -> RwLockReadGuard<'_, Catalog> {
        self.0.read().await
    }

    async fn write(&self) -> RwLockWriteGuard<'_, Catalog> {
        self.0.write().await
    }
}

/// State machine storage of one master. Cheap to clone.
#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<DB>,
    catalog: SharedCatalog,
    snapshot_dir: PathBuf,
}

impl StateMachineStore {
    /// Loads the applied catalog from the database.
    pub fn open(db: Arc<DB>, data_dir: &Path) -> Result<Self, io::Error> {
        let snapshot_dir = data_dir.join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)?;
        let mut records = Vec::new();
        for item in db.iterator_cf(cf(&db, keys::CF_SM_DATA)?, IteratorMode::Start) {
            let (_, value) = item.map_err(to_io)?;
            records.push(decode::<CatalogRecord>(&value)?);
        }
        let catalog = SharedCatalog(Arc::new(RwLock::new(Catalog::from_records(records))));
        Ok(Self { db, catalog, snapshot_dir })
    }

    /// The applied catalog.
    pub fn catalog(&self) -> SharedCatalog {
        self.catalog.clone()
    }

    fn read_applied(&self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let cf = cf(&self.db, keys::CF_SM_META)?;
        let last_applied = self.db.get_cf(cf, keys::SM_LAST_APPLIED).map_err(to_io)?.map(|b| decode(&b)).transpose()?;
        let membership = self
            .db
            .get_cf(cf, keys::SM_MEMBERSHIP)
            .map_err(to_io)?
            .map(|b| decode(&b))
            .transpose()?
            .unwrap_or_default();
        Ok((last_applied, membership))
    }

    fn snapshot_path(&self) -> PathBuf {
        self.snapshot_dir.join("current")
    }

    /// Writes a snapshot file atomically: the metadata line, then one line per record.
    fn write_snapshot_file(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), io::Error> {
        let tmp = self.snapshot_dir.join("current.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&encode(meta)?)?;
        file.write_all(b"\n")?;
        file.write_all(data)?;
        file.sync_all()?;
        std::fs::rename(&tmp, self.snapshot_path())
    }
}

fn record_key(record: &CatalogRecord) -> Vec<u8> {
    match record {
        CatalogRecord::ClusterId(_) => keys::CLUSTER_ID_KEY.to_vec(),
        CatalogRecord::Table(t) => keys::table_key(t.id.as_str()),
        CatalogRecord::Tablet(t) => keys::tablet_key(t.id.as_str()),
        CatalogRecord::Request(r) => keys::request_key(&r.request_id),
    }
}

fn add_mutation(batch: &mut WriteBatch, data_cf: &rocksdb::ColumnFamily, mutation: Mutation) -> Result<(), io::Error> {
    match mutation {
        Mutation::Put(record) => batch.put_cf(data_cf, record_key(&record), encode(&record)?),
        Mutation::DeleteTable(id) => batch.delete_cf(data_cf, keys::table_key(id.as_str())),
        Mutation::DeleteTablet(id) => batch.delete_cf(data_cf, keys::tablet_key(id.as_str())),
        Mutation::DeleteRequest(id) => batch.delete_cf(data_cf, keys::request_key(&id)),
    }
    Ok(())
}

/// Serializes records as JSON lines.
fn encode_records(records: impl Iterator<Item = CatalogRecord>) -> Result<Vec<u8>, io::Error> {
    let mut out = Vec::new();
    for record in records {
        out.extend_from_slice(&encode(&record)?);
        out.push(b'\n');
    }
    Ok(out)
}

fn decode_records(data: &[u8]) -> Result<Vec<CatalogRecord>, io::Error> {
    data.lines().filter(|l| !matches!(l, Ok(l) if l.is_empty())).map(|line| decode(line?.as_bytes())).collect()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        // Hold the catalog lock while reading the applied position so both describe one state.
        let (meta, data) = {
            let catalog = self.catalog.read().await;
            let (last_log_id, last_membership) = self.read_applied()?;
            (SnapshotMeta { last_log_id, last_membership }, encode_records(catalog.records())?)
        };
        self.write_snapshot_file(&meta, &data)?;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes = data.len(), "built catalog snapshot");
        Ok(Snapshot { meta, snapshot: Cursor::new(data) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        self.read_applied()
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let data_cf = cf(&self.db, keys::CF_SM_DATA)?;
        let meta_cf = cf(&self.db, keys::CF_SM_META)?;
        let mut batch = WriteBatch::default();
        let mut responses = Vec::new();
        let mut last_applied = None;
        {
            let mut catalog = self.catalog.write().await;
            while let Some((entry, responder)) = entries.try_next().await? {
                let log_id = entry.log_id();
                let response = match &entry.payload {
                    EntryPayload::Blank => CatalogResponse::default(),
                    EntryPayload::Normal(command) => {
                        let (response, mutations) = catalog.apply(command, log_id.index());
                        for mutation in mutations {
                            add_mutation(&mut batch, data_cf, mutation)?;
                        }
                        response
                    }
                    EntryPayload::Membership(membership) => {
                        let stored = StoredMembership::new(Some(log_id), membership.clone());
                        batch.put_cf(meta_cf, keys::SM_MEMBERSHIP, encode(&stored)?);
                        CatalogResponse::default()
                    }
                };
                last_applied = Some(log_id);
                if let Some(responder) = responder {
                    responses.push((responder, response));
                }
            }
        }
        if let Some(log_id) = &last_applied {
            batch.put_cf(meta_cf, keys::SM_LAST_APPLIED, encode(log_id)?);
        }
        write_sync(&self.db, batch).await?;
        for (responder, response) in responses {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Cursor<Vec<u8>>) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        let records = decode_records(&data)?;
        let data_cf = cf(&self.db, keys::CF_SM_DATA)?;
        let meta_cf = cf(&self.db, keys::CF_SM_META)?;
        let mut batch = WriteBatch::default();
        // Records use the prefixes c/, t/, b/ and r/; 0x00..0xff spans them all.
        batch.delete_range_cf(data_cf, [0u8].as_slice(), [0xffu8; 8].as_slice());
        for record in &records {
            batch.put_cf(data_cf, record_key(record), encode(record)?);
        }
        match &meta.last_log_id {
            Some(log_id) => batch.put_cf(meta_cf, keys::SM_LAST_APPLIED, encode(log_id)?),
            None => batch.delete_cf(meta_cf, keys::SM_LAST_APPLIED),
        }
        batch.put_cf(meta_cf, keys::SM_MEMBERSHIP, encode(&meta.last_membership)?);
        {
            let mut catalog = self.catalog.write().await;
            write_sync(&self.db, batch).await?;
            *catalog = Catalog::from_records(records);
        }
        self.write_snapshot_file(meta, &data)?;
        tracing::info!(last_log_id = ?meta.last_log_id, "installed catalog snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let bytes = match std::fs::read(self.snapshot_path()) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let split = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
        let meta: SnapshotMeta = decode(&bytes[..split])?;
        let data = bytes.get(split + 1..).unwrap_or_default().to_vec();
        Ok(Some(Snapshot { meta, snapshot: Cursor::new(data) }))
    }
}
