//! openraft's storage conformance suite for the tablet type config, against the RocksDB
//! [`TabletStateMachine`].
//!
//! The suite needs a log store too. The tablet servers' RocksDB log store (generic over the
//! type config and keyed by the group prefix) is built in `src/raft/`, which this tree does
//! not have yet; until it is merged, the log side is a minimal in-memory store, so only the
//! state-machine half of the suite tests our code. At merge time, replace [`MemLog`] by the
//! generic RocksDB log store opened on the same database and tablet prefix.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::{LogState, OptionalSend, RaftLogReader, StorageError};

use super::{TabletStateMachine, open_db};
use crate::ids::TabletId;
use crate::tserver::raft_types::{Entry, LogId, TabletTypeConfig, Vote};

#[derive(Default)]
struct MemLogState {
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    entries: BTreeMap<u64, Entry>,
}

/// An in-memory Raft log: a stand-in until the generic RocksDB log store is merged.
#[derive(Clone, Default)]
struct MemLog(Arc<Mutex<MemLogState>>);

impl MemLog {
    fn lock(&self) -> MutexGuard<'_, MemLogState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RaftLogReader<TabletTypeConfig> for MemLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self.lock().entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.lock().vote)
    }
}

impl RaftLogStorage<TabletTypeConfig> for MemLog {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TabletTypeConfig>, io::Error> {
        let state = self.lock();
        let last = state.entries.values().next_back().map(|e| e.log_id());
        Ok(LogState { last_purged_log_id: state.last_purged, last_log_id: last.or(state.last_purged) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TabletTypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
    {
        {
            let mut state = self.lock();
            for entry in entries {
                state.entries.insert(entry.index(), entry);
            }
        }
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map(|id| id.index() + 1).unwrap_or(0);
        self.lock().entries.retain(|index, _| *index < from);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let mut state = self.lock();
        state.entries.retain(|index, _| *index > log_id.index());
        state.last_purged = Some(log_id);
        Ok(())
    }
}

struct Builder;

fn setup_error(e: &(impl std::error::Error + 'static)) -> StorageError<TabletTypeConfig> {
    StorageError::read(TabletTypeConfig::err_from_error(e))
}

impl StoreBuilder<TabletTypeConfig, MemLog, TabletStateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, MemLog, TabletStateMachine), StorageError<TabletTypeConfig>> {
        let dir = tempfile::tempdir().map_err(|e| setup_error(&e))?;
        let db = open_db(dir.path()).map_err(|e| setup_error(&e))?;
        // Another tablet in the same DB, with state, must not leak into the tested one.
        let mut neighbour = TabletStateMachine::open(db.clone(), dir.path(), TabletId::from("neighbour"))
            .map_err(|e| setup_error(&e))?;
        let entry = Entry::new_blank(openraft::testing::log_id::<TabletTypeConfig>(9, 9, 99));
        let stream = futures::stream::iter([Ok::<_, io::Error>((entry, None))]);
        openraft::storage::RaftStateMachine::apply(&mut neighbour, stream).await.map_err(|e| setup_error(&e))?;
        let sm = TabletStateMachine::open(db, dir.path(), TabletId::from("tested")).map_err(|e| setup_error(&e))?;
        Ok((dir, MemLog::default(), sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() -> Result<(), StorageError<TabletTypeConfig>> {
    Suite::test_all(Builder).await
}
