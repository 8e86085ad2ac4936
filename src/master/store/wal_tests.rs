//! A master's RocksDB keeps its write-ahead log bounded (see [`super::db::MASTER_DB`]): a
//! restart replays the log record by record, so a catalog left in the log makes every
//! restart slow.

use std::path::Path;

use kudu_testkit::{WAIT, wait_for};

use super::db::MASTER_MAX_WAL_BYTES;
use super::keys::CF_SM_DATA;
use crate::raft::rocks::{cf, wal_file_bytes};

/// Bytes of the write-ahead log files (`*.log`) of a master's database.
fn wal_bytes(data_dir: &Path) -> u64 {
    wal_file_bytes(&data_dir.join("raft-db"))
}

#[tokio::test]
async fn catalog_writes_beyond_the_wal_bound_are_flushed_and_reopen_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let value = vec![b'x'; 4096];
    // Three times the bound, well under one memtable (64 MB): without the bound all of it
    // would stay in the log.
    let records = 3 * MASTER_MAX_WAL_BYTES / value.len() as u64;
    {
        let (db, _) = super::open(dir.path()).expect("open");
        let data = cf(&db, CF_SM_DATA).expect("column family");
        for i in 0..records {
            db.put_cf(data, format!("b/{i:08}"), &value).expect("put");
        }
        // Flushes run in the background; the log files they free are deleted after them.
        let bound = 2 * MASTER_MAX_WAL_BYTES;
        wait_for("the write-ahead log to shrink to its bound", WAIT, || {
            let bytes = wal_bytes(dir.path());
            async move { (bytes <= bound).then_some(()) }
        })
        .await;
    }
    let (db, _) = super::open(dir.path()).expect("reopen");
    let data = cf(&db, CF_SM_DATA).expect("column family");
    let mut iter = db.raw_iterator_cf(data);
    iter.seek_to_first();
    let mut found = 0;
    while let Some(stored) = iter.value() {
        assert_eq!(stored, value.as_slice());
        found += 1;
        iter.next();
    }
    assert_eq!(found, records, "every record is there after the reopen");
}
