use std::io;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, Options};

use super::keys;
use crate::ids::{MasterId, random_master_id};

/// Opening or reading a master's data directory failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open RocksDB at {path}: {source}")]
    Open { path: String, source: rocksdb::Error },
    #[error("RocksDB error: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record under {key}: {source}")]
    Corrupt { key: String, source: serde_json::Error },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Opens (or creates) the master database under `dir` and returns it with this master's
/// node id, generating and persisting a random id on first start.
pub fn open(dir: &Path) -> Result<(Arc<DB>, MasterId), StoreError> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("raft-db");
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = keys::ALL_CFS.iter().map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
    let db = DB::open_cf_descriptors(&opts, &path, cfs)
        .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
    let db = Arc::new(db);
    let node_id = load_or_create_node_id(&db)?;
    Ok((db, node_id))
}

fn load_or_create_node_id(db: &DB) -> Result<MasterId, StoreError> {
    let cf = cf(db, keys::CF_META)?;
    if let Some(bytes) = db.get_cf(cf, keys::META_NODE_ID)? {
        let raw: [u8; 8] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Io(io::Error::new(io::ErrorKind::InvalidData, "node id record is not 8 bytes")))?;
        return Ok(u64::from_be_bytes(raw));
    }
    let id = random_master_id();
    let mut write = rocksdb::WriteOptions::default();
    write.set_sync(true);
    db.put_cf_opt(cf, keys::META_NODE_ID, id.to_be_bytes(), &write)?;
    Ok(id)
}

/// The handle of a column family that [`open`] created.
pub(super) fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily, io::Error> {
    db.cf_handle(name).ok_or_else(|| io::Error::other(format!("column family {name} missing")))
}

pub(super) fn to_io(e: rocksdb::Error) -> io::Error {
    io::Error::other(e)
}

pub(super) fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, io::Error> {
    serde_json::to_vec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, io::Error> {
    serde_json::from_slice(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes a batch durably (fsync of the WAL) off the async runtime.
pub(super) async fn write_sync(db: &Arc<DB>, batch: rocksdb::WriteBatch) -> Result<(), io::Error> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        db.write_opt(batch, &opts).map_err(to_io)
    })
    .await
    .map_err(io::Error::other)?
}
