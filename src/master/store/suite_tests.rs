//! openraft's storage conformance suite against the master's stores: the shared RocksDB log
//! store (as the master's default group, and as a prefixed group among other groups) and the
//! catalog state machine.

use std::sync::Arc;

use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::testing::{blank_ent, log_id};
use openraft::type_config::TypeConfigExt;
use openraft::{RaftLogReader, StorageError};
use rocksdb::DB;

use super::{LogStore, StateMachineStore, open};
use crate::master::raft_types::{TypeConfig, Vote};
use crate::raft::{DEFAULT_GROUP, GroupPrefix};

/// Neighbours whose ids extend or shorten the group's id, on both sides of it in key order.
const NEIGHBOURS: &[&str] = &["tablet-", "tablet-10", "tablet-0", "tablet-2"];

/// Builds stores in a fresh database; the log store is the group `group_id`, and the groups
/// `neighbours` already hold entries, a vote and a purge point there.
struct RocksBuilder {
    group_id: &'static str,
    neighbours: &'static [&'static str],
}

/// Keeps the database of one suite test and, when the test is done, checks that the
/// neighbour groups were left as they were.
struct Guard {
    db: Arc<DB>,
    neighbours: &'static [&'static str],
    _dir: tempfile::TempDir,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for neighbour in self.neighbours {
            futures::executor::block_on(check_neighbour(&self.db, neighbour));
        }
    }
}

fn setup_error(e: &(impl std::error::Error + 'static)) -> StorageError<TypeConfig> {
    StorageError::read(TypeConfig::err_from_error(e))
}

fn store(db: &Arc<DB>, group_id: &str) -> LogStore {
    LogStore::new(db.clone(), GroupPrefix::new(group_id).unwrap())
}

/// Fills group `group_id` with entries 1..=10, purged up to 2, and a vote.
async fn fill_neighbour(db: &Arc<DB>, group_id: &str) -> Result<(), std::io::Error> {
    let mut store = store(db, group_id);
    store.append((1..=10).map(|i| blank_ent::<TypeConfig>(7, 9, i)), IOFlushed::noop()).await?;
    store.purge(log_id::<TypeConfig>(7, 9, 2)).await?;
    store.save_vote(&Vote::new(7, 9)).await
}

/// Asserts that group `group_id` still holds what [`fill_neighbour`] wrote.
async fn check_neighbour(db: &Arc<DB>, group_id: &str) {
    let mut store = store(db, group_id);
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id::<TypeConfig>(7, 9, 2)), "group {group_id}");
    assert_eq!(state.last_log_id, Some(log_id::<TypeConfig>(7, 9, 10)), "group {group_id}");
    let indexes: Vec<u64> = store.try_get_log_entries(0..100).await.unwrap().iter().map(|e| e.log_id.index).collect();
    assert_eq!(indexes, (3..=10).collect::<Vec<_>>(), "group {group_id}");
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(7, 9)), "group {group_id}");
}

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, Guard> for RocksBuilder {
    async fn build(&self) -> Result<(Guard, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().map_err(|e| setup_error(&e))?;
        let (db, _) = open(dir.path()).map_err(|e| setup_error(&e))?;
        for neighbour in self.neighbours {
            fill_neighbour(&db, neighbour).await.map_err(|e| setup_error(&e))?;
        }
        let sm = StateMachineStore::open(db.clone(), dir.path()).map_err(|e| setup_error(&e))?;
        let prefix = GroupPrefix::new(self.group_id).map_err(|e| setup_error(&e))?;
        let log_store = LogStore::new(db.clone(), prefix);
        Ok((Guard { db, neighbours: self.neighbours, _dir: dir }, log_store, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_master_group() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(RocksBuilder { group_id: DEFAULT_GROUP, neighbours: &[] }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_prefixed_group_among_others() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(RocksBuilder { group_id: "tablet-1", neighbours: NEIGHBOURS }).await
}
