//! Durable state of a tablet server: its uuid and the replicas it hosts.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options};
use serde::{Deserialize, Serialize};

use crate::ids::{TServerId, TableId, TabletId};

const CF_META: &str = "meta";
const CF_REPLICAS: &str = "replicas";
const UUID_KEY: &[u8] = b"uuid";

/// Storage of a tablet server failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("RocksDB: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("column family {0} missing")]
    MissingCf(&'static str),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

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
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = [CF_META, CF_REPLICAS].map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, dir.join("tserver-db"), cfs)?;
        Ok(Self { db: Arc::new(db) })
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
        if let Some(bytes) = self.db.get_cf(cf, UUID_KEY)? {
            return Ok(TServerId(String::from_utf8_lossy(&bytes).into_owned()));
        }
        let id = TServerId::random();
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(cf, UUID_KEY, id.as_str());
        self.sync_write(batch)?;
        Ok(id)
    }

    pub fn replicas(&self) -> Result<Vec<ReplicaMeta>, StoreError> {
        let cf = self.cf(CF_REPLICAS)?;
        self.db.iterator_cf(cf, IteratorMode::Start).map(|item| Ok(serde_json::from_slice(&item?.1)?)).collect()
    }

    pub fn put_replica(&self, replica: &ReplicaMeta) -> Result<(), StoreError> {
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(self.cf(CF_REPLICAS)?, replica.tablet_id.as_str(), serde_json::to_vec(replica)?);
        self.sync_write(batch)
    }

    pub fn delete_replica(&self, tablet_id: &str) -> Result<(), StoreError> {
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_cf(self.cf(CF_REPLICAS)?, tablet_id);
        self.sync_write(batch)
    }
}
