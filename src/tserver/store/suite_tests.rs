//! openraft's storage conformance suite for the tablet type config: the shared RocksDB log
//! store and the [`TabletStateMachine`] of one tablet, in a database that also holds a
//! neighbouring tablet's state.

use std::io;

use openraft::StorageError;
use openraft::entry::RaftEntry;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;

use super::{TabletStateMachine, open_db};
use crate::ids::TabletId;
use crate::raft::{GroupPrefix, LogStore};
use crate::tserver::raft_types::{Entry, TabletTypeConfig};

type TabletLog = LogStore<TabletTypeConfig>;

struct Builder;

fn setup_error(e: &(impl std::error::Error + 'static)) -> StorageError<TabletTypeConfig> {
    StorageError::read(TabletTypeConfig::err_from_error(e))
}

impl StoreBuilder<TabletTypeConfig, TabletLog, TabletStateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, TabletLog, TabletStateMachine), StorageError<TabletTypeConfig>> {
        let dir = tempfile::tempdir().map_err(|e| setup_error(&e))?;
        let db = open_db(dir.path()).map_err(|e| setup_error(&e))?;
        // Another tablet in the same DB, with state, must not leak into the tested one.
        let mut neighbour = TabletStateMachine::open(db.clone(), dir.path(), TabletId::from("neighbour"))
            .map_err(|e| setup_error(&e))?;
        let entry = Entry::new_blank(openraft::testing::log_id::<TabletTypeConfig>(9, 9, 99));
        let stream = futures::stream::iter([Ok::<_, io::Error>((entry, None))]);
        openraft::storage::RaftStateMachine::apply(&mut neighbour, stream).await.map_err(|e| setup_error(&e))?;
        let sm =
            TabletStateMachine::open(db.clone(), dir.path(), TabletId::from("tested")).map_err(|e| setup_error(&e))?;
        let log = LogStore::new(db, GroupPrefix::new("tested").map_err(|e| setup_error(&e))?);
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() -> Result<(), StorageError<TabletTypeConfig>> {
    Suite::test_all(Builder).await
}
