//! Opening the tablet server's one RocksDB (every column family of [`super::keys`]) and the
//! small helpers every store module shares.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};

use super::keys;

/// Storage of a tablet server failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open RocksDB at {path}: {source}")]
    Open { path: String, source: rocksdb::Error },
    #[error("RocksDB: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("column family {0} missing")]
    MissingCf(&'static str),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Opens (or creates) the tablet server's database under `dir`, with every column family.
/// The only place that opens it: whatever else needs the database shares this handle.
pub fn open_db(dir: &Path) -> Result<Arc<DB>, StoreError> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("tserver-db");
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = keys::ALL_CFS.iter().map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
    let db = DB::open_cf_descriptors(&opts, &path, cfs)
        .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
    Ok(Arc::new(db))
}

/// The handle of a column family that [`open_db`] created.
pub(super) fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily, io::Error> {
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

/// Writes a batch durably (fsync of the WAL) on the calling thread.
pub(super) fn write_sync_blocking(db: &DB, batch: WriteBatch) -> Result<(), io::Error> {
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    db.write_opt(batch, &opts).map_err(to_io)
}

/// Writes a batch durably (fsync of the WAL) off the async runtime.
pub(super) async fn write_sync(db: &Arc<DB>, batch: WriteBatch) -> Result<(), io::Error> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || write_sync_blocking(&db, batch)).await.map_err(io::Error::other)?
}
