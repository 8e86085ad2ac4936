//! The tablet server's own records: its uuid and the replicas it hosts.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{DB, IteratorMode};
use serde::{Deserialize, Serialize};

use super::db::{StoreError, open_db};
use super::keys::{CF_META, CF_REPLICAS, META_UUID};
use crate::ids::{TServerId, TableId, TabletId};

/// A replica this server hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaMeta {
    pub tablet_id: TabletId,
    pub table_id: TableId,
    pub table_name: String,
    pub partition: u32,
    pub peers: Vec<TServerId>,
}

/// The tablet server's database.
#[derive(Clone)]
pub struct TServerStore {
    db: Arc<DB>,
}

impl TServerStore {
    /// Opens the database under `dir` (see [`open_db`]).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Ok(Self { db: open_db(dir)? })
    }

    /// The database, shared with the tablet replicas' stores.
    pub fn db(&self) -> Arc<DB> {
        self.db.clone()
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or(StoreError::MissingCf(name))
    }

    fn sync_write(&self, batch: rocksdb::WriteBatch) -> Result<(), StoreError> {
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        Ok(self.db.write_opt(batch, &opts)?)
    }

    /// This server's uuid, created on first start.
    pub fn uuid(&self) -> Result<TServerId, StoreError> {
        let cf = self.cf(CF_META)?;
        if let Some(bytes) = self.db.get_cf(cf, META_UUID)? {
            return Ok(TServerId(String::from_utf8_lossy(&bytes).into_owned()));
        }
        let id = TServerId::random();
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(cf, META_UUID, id.as_str());
        self.sync_write(batch)?;
        Ok(id)
    }

    /// The replicas this server hosts.
    pub fn replicas(&self) -> Result<Vec<ReplicaMeta>, StoreError> {
        let cf = self.cf(CF_REPLICAS)?;
        self.db.iterator_cf(cf, IteratorMode::Start).map(|item| Ok(serde_json::from_slice(&item?.1)?)).collect()
    }

    /// Records (or replaces) a hosted replica.
    pub fn put_replica(&self, replica: &ReplicaMeta) -> Result<(), StoreError> {
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(self.cf(CF_REPLICAS)?, replica.tablet_id.as_str(), serde_json::to_vec(replica)?);
        self.sync_write(batch)
    }

    /// Forgets a hosted replica.
    pub fn delete_replica(&self, tablet_id: &str) -> Result<(), StoreError> {
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_cf(self.cf(CF_REPLICAS)?, tablet_id);
        self.sync_write(batch)
    }
}
