use std::io;
use std::path::Path;
use std::sync::Arc;

use rocksdb::DB;

use super::keys;
use crate::ids::{MasterId, random_master_id};
use crate::raft::keys::CF_META;
use crate::raft::rocks::{cf, open_db};

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
    let db = open_db(&path, &keys::SM_CFS)
        .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
    let db = Arc::new(db);
    let node_id = load_or_create_node_id(&db)?;
    Ok((db, node_id))
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
