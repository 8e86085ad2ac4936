//! Opening the tablet server's one RocksDB (the Raft column families and every column family
//! of [`super::keys`]); the value and write helpers are [`crate::raft::rocks`]'s.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rocksdb::DB;

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

/// Opens (or creates) the tablet server's database under `dir`, with the Raft column
/// families of every hosted replica's log and every column family of [`keys`]. The only
/// place that opens it: whatever else needs the database shares this handle.
pub fn open_db(dir: &Path) -> Result<Arc<DB>, StoreError> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("tserver-db");
    let db = crate::raft::rocks::open_db(&path, &keys::SERVER_CFS)
        .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
    Ok(Arc::new(db))
}
