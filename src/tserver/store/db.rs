//! Opening the tablet server's one RocksDB (the Raft column families and every column family
//! of [`super::keys`]); the value and write helpers are [`crate::raft::rocks`]'s.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rocksdb::DB;

use super::keys;
use crate::raft::rocks::{DbTuning, open_db_tuned};

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

/// Bytes of write-ahead log a tablet server's RocksDB keeps before it flushes the column
/// families holding its oldest file. RocksDB's default (4 times the memtables of every column
/// family, gigabytes here) would let a restart replay that much log record by record before
/// the server serves; rows are written far more than the catalog, so the bound is 4 times the
/// masters' (`crate::master::store::db::MASTER_MAX_WAL_BYTES`), to keep flushes few.
pub const TSERVER_MAX_WAL_BYTES: u64 = 64 << 20;

/// Opens (or creates) the tablet server's database under `dir`, with the Raft column
/// families of every hosted replica's log and every column family of [`keys`]. The only
/// place that opens it: whatever else needs the database shares this handle.
pub fn open_db(dir: &Path) -> Result<Arc<DB>, StoreError> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("tserver-db");
    let tuning = DbTuning { max_wal_bytes: Some(TSERVER_MAX_WAL_BYTES) };
    let db = open_db_tuned(&path, &keys::SERVER_CFS, tuning)
        .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
    Ok(Arc::new(db))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::rocks::{cf, wal_file_bytes};

    /// A column family written once (a replica's registration) pins every log file after
    /// it unless the bound makes RocksDB flush it: rows written far beyond the bound leave
    /// a log about the bound's size, and everything reopens.
    #[tokio::test]
    async fn a_rarely_written_column_family_does_not_pin_the_write_ahead_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let value = vec![b'r'; 8192];
        let records = 3 * TSERVER_MAX_WAL_BYTES / value.len() as u64;
        {
            let db = open_db(dir.path()).expect("open");
            db.put_cf(cf(&db, keys::CF_REPLICAS).expect("cf"), b"replica", b"registered").expect("put");
            let rows = cf(&db, keys::CF_TABLET_ROWS).expect("cf");
            for i in 0..records {
                db.put_cf(rows, format!("row/{i:08}"), &value).expect("put");
            }
            let bound = 2 * TSERVER_MAX_WAL_BYTES;
            kudu_testkit::wait_for("the write-ahead log to shrink to its bound", kudu_testkit::WAIT, || {
                let bytes = wal_file_bytes(&dir.path().join("tserver-db"));
                async move { (bytes <= bound).then_some(()) }
            })
            .await;
        }
        let db = open_db(dir.path()).expect("reopen");
        let replicas = cf(&db, keys::CF_REPLICAS).expect("cf");
        assert_eq!(db.get_cf(replicas, b"replica").expect("get").as_deref(), Some(&b"registered"[..]));
        let rows = cf(&db, keys::CF_TABLET_ROWS).expect("cf");
        let mut iter = db.raw_iterator_cf(rows);
        iter.seek_to_first();
        let mut found = 0;
        while iter.valid() {
            found += 1;
            iter.next();
        }
        assert_eq!(found, records, "every row is there after the reopen");
    }
}
