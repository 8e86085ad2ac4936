//! The Raft log and vote, in RocksDB.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};

use super::db::{cf, decode, encode, to_io, write_sync};
use super::keys;
use crate::master::raft_types::{Entry, LogId, TypeConfig, Vote};

/// Raft log storage of one master. Cheap to clone (shares the database).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

impl LogStore {
    pub fn new(db: Arc<DB>) -> Self {
        Self { db }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, io::Error> {
        let cf = cf(&self.db, keys::CF_META)?;
        self.db.get_cf(cf, key).map_err(to_io)?.map(|bytes| decode(&bytes)).transpose()
    }

    async fn put_meta_sync<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, keys::CF_META)?, key, encode(value)?);
        write_sync(&self.db, batch).await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let cf = cf(&self.db, keys::CF_LOGS)?;
        let mut entries = Vec::new();
        let start_key = keys::log_key(start);
        for item in self.db.iterator_cf(cf, IteratorMode::From(&start_key, Direction::Forward)) {
            let (key, value) = item.map_err(to_io)?;
            let index =
                keys::log_index(&key).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed log key"))?;
            if !range.contains(&index) {
                break;
            }
            entries.push(decode(&value)?);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.get_meta(keys::META_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let cf = cf(&self.db, keys::CF_LOGS)?;
        let last = match self.db.iterator_cf(cf, IteratorMode::End).next() {
            Some(item) => {
                let (_, value) = item.map_err(to_io)?;
                Some(decode::<Entry>(&value)?.log_id())
            }
            None => None,
        };
        let last_purged_log_id: Option<LogId> = self.get_meta(keys::META_LAST_PURGED)?;
        let last_log_id = last.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.put_meta_sync(keys::META_VOTE, vote).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.put_meta_sync(keys::META_COMMITTED, &committed).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.get_meta::<Option<LogId>>(keys::META_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
    {
        let cf = cf(&self.db, keys::CF_LOGS)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(cf, keys::log_key(entry.index()), encode(&entry)?);
        }
        // Entries must be readable when this returns; durability is signalled by the callback.
        self.db.write(batch).map_err(to_io)?;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || callback.io_completed(db.flush_wal(true).map_err(to_io)));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map(|id| id.index() + 1).unwrap_or(0);
        let cf = cf(&self.db, keys::CF_LOGS)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, keys::log_key(from), keys::log_key(u64::MAX));
        write_sync(&self.db, batch).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // Record the purge point first: entries up to it are ignored from then on.
        self.put_meta_sync(keys::META_LAST_PURGED, &log_id).await?;
        let cf = cf(&self.db, keys::CF_LOGS)?;
        self.db.delete_range_cf(cf, keys::log_key(0), keys::log_key(log_id.index() + 1)).map_err(to_io)
    }
}
