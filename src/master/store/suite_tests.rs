//! openraft's storage conformance suite against the RocksDB store.

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;

use super::{LogStore, StateMachineStore, open};
use crate::master::raft_types::TypeConfig;

struct RocksBuilder;

fn setup_error(e: &(impl std::error::Error + 'static)) -> StorageError<TypeConfig> {
    StorageError::read(TypeConfig::err_from_error(e))
}

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().map_err(|e| setup_error(&e))?;
        let (db, _) = open(dir.path()).map_err(|e| setup_error(&e))?;
        let sm = StateMachineStore::open(db.clone(), dir.path()).map_err(|e| setup_error(&e))?;
        Ok((dir, LogStore::new(db), sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(RocksBuilder).await
}
