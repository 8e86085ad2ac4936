use std::io;
use std::path::Path;
use std::sync::Arc;

use rocksdb::DB;

use super::keys;
use crate::ids::{MasterId, random_master_id};
use crate::raft::keys::{CF_META, RAFT_CFS};
use crate::raft::rocks::{DbTuning, cf, open_db_tuned};

/// How a master's RocksDB is tuned. A restart replays the write-ahead log into memtables
/// before Raft starts, and RocksDB's default lets the log grow to hundreds of MB (a catalog of
/// 100 000 tablets and the entries that created it stayed entirely in a 38 MB log, no table
/// file written): bounding it makes RocksDB flush the catalog to table files as it grows, which
/// a restart reads far cheaper than it replays a log.
pub const MASTER_DB: DbTuning = DbTuning { max_wal_bytes: Some(MASTER_MAX_WAL_BYTES) };

/// Bytes of write-ahead log a master's RocksDB keeps before it flushes (see [`MASTER_DB`]).
pub const MASTER_MAX_WAL_BYTES: u64 = 16 << 20;

/// Opening or reading a master's data directory failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open RocksDB at {path}: {source}")]
    Open { path: String, source: rocksdb::Error },
    #[error("RocksDB error: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record under {key}: {source}")]
    Corrupt { key: String, source: serde_json::Error },
    #[error("{path} is not a master's data directory: {reason}")]
    NotAMasterDir { path: String, reason: String },
    #[error("{path} is in use (is the master still running? stop it first): {message}")]
    Locked { path: String, message: String },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Opens (or creates) the master database under `dir` and returns it with this master's
/// node id, generating and persisting a random id on first start.
pub fn open(dir: &Path) -> Result<(Arc<DB>, MasterId), StoreError> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("raft-db");
    let db = open_db_tuned(&path, &keys::SM_CFS, MASTER_DB)
        .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
    let db = Arc::new(db);
    let node_id = load_or_create_node_id(&db)?;
    Ok((db, node_id))
}

/// Opens an existing master database under `dir` without creating anything: refuses a
/// directory that holds no master database (missing, or another program's RocksDB) and one
/// a running process has open (RocksDB's lock).
pub fn open_existing(dir: &Path) -> Result<(Arc<DB>, MasterId), StoreError> {
    let path = dir.join("raft-db");
    let not_master = |reason: String| StoreError::NotAMasterDir { path: dir.display().to_string(), reason };
    if !path.join("CURRENT").is_file() {
        return Err(not_master(format!("{} holds no RocksDB", path.display())));
    }
    let families = DB::list_cf(&rocksdb::Options::default(), &path)
        .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
    let missing: Vec<&str> =
        RAFT_CFS.iter().chain(&keys::SM_CFS).copied().filter(|f| !families.iter().any(|have| have == f)).collect();
    if !missing.is_empty() {
        return Err(not_master(format!("its RocksDB lacks the master column families {missing:?}")));
    }
    let db = open_db_tuned(&path, &keys::SM_CFS, MASTER_DB).map_err(|source| {
        if source.to_string().to_lowercase().contains("lock") {
            StoreError::Locked { path: path.display().to_string(), message: source.to_string() }
        } else {
            StoreError::Open { path: path.display().to_string(), source }
        }
    })?;
    let raw = db
        .get_cf(cf(&db, CF_META)?, keys::META_NODE_ID)?
        .ok_or_else(|| not_master("it has no master node id".into()))?;
    let raw: [u8; 8] = raw.as_slice().try_into().map_err(|_| not_master("its node id record is not 8 bytes".into()))?;
    Ok((Arc::new(db), u64::from_be_bytes(raw)))
}

fn load_or_create_node_id(db: &DB) -> Result<MasterId, StoreError> {
    let cf = cf(db, CF_META)?;
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
