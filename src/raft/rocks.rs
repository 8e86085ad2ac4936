//! RocksDB helpers shared by Raft log stores and state machines: opening a database with
//! the Raft column families, column family handles, JSON values and synced writes.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, Options, WriteBatch};

use super::keys::RAFT_CFS;

/// Database-wide settings beyond RocksDB's defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct DbTuning {
    /// Bytes of write-ahead log after which RocksDB flushes the column families that keep its
    /// oldest file alive, so the WAL (which an open replays record by record into memtables,
    /// then flushes) stays about this small. `None`: RocksDB's default (4 times the
    /// memtables' size, hundreds of MB).
    pub max_wal_bytes: Option<u64>,
}

/// Opens (or creates) the database at `path` with the Raft column families and `extra_cfs`.
pub fn open_db(path: &Path, extra_cfs: &[&str]) -> Result<DB, rocksdb::Error> {
    open_db_tuned(path, extra_cfs, DbTuning::default())
}

/// [`open_db`] with `tuning`.
pub fn open_db_tuned(path: &Path, extra_cfs: &[&str], tuning: DbTuning) -> Result<DB, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    if let Some(bytes) = tuning.max_wal_bytes {
        opts.set_max_total_wal_size(bytes);
    }
    let cfs = RAFT_CFS.iter().chain(extra_cfs).map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
    DB::open_cf_descriptors(&opts, path, cfs)
}

/// Bytes of the write-ahead log files (`*.log`) of the database at `path` (tests of the
/// write-ahead log's bound).
#[cfg(test)]
pub fn wal_file_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .expect("database directory")
        .map(|entry| entry.expect("entry"))
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
        .map(|entry| entry.metadata().expect("metadata").len())
        .sum()
}

/// The handle of a column family the database was opened with.
pub fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily, io::Error> {
    db.cf_handle(name).ok_or_else(|| io::Error::other(format!("column family {name} missing")))
}

/// A RocksDB error as the `io::Error` openraft's storage traits return.
pub fn to_io(e: rocksdb::Error) -> io::Error {
    io::Error::other(e)
}

/// A stored value: JSON.
pub fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, io::Error> {
    serde_json::to_vec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Bytes of `value`'s JSON encoding ([`encode`]'s length), counted without building it.
pub fn encoded_len<T: serde::Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // A counter never fails; on a serializer error the bytes so far count.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// A value written by [`encode`].
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, io::Error> {
    serde_json::from_slice(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes a batch durably (fsync of the WAL) on the calling thread.
pub fn write_sync_blocking(db: &DB, batch: WriteBatch) -> Result<(), io::Error> {
    let mut opts = rocksdb::WriteOptions::default();
    opts.set_sync(true);
    db.write_opt(batch, &opts).map_err(to_io)
}

/// Writes a batch durably (fsync of the WAL) off the async runtime.
pub async fn write_sync(db: &Arc<DB>, batch: WriteBatch) -> Result<(), io::Error> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || write_sync_blocking(&db, batch)).await.map_err(io::Error::other)?
}
