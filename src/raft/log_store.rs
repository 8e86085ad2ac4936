//! The Raft log, vote and committed/purged marks of one group, in a RocksDB shared with other
//! groups. Every key of the group starts with its [`GroupPrefix`]; see [`super::keys`].

use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::alias::{LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, RaftTypeConfig};
use rocksdb::{DB, DBIteratorWithThreadMode, Direction, IteratorMode, ReadOptions, WriteBatch};

use super::keys::{self, GroupPrefix};
use super::rocks::{cf, decode, encode, to_io, write_sync};
use super::wal_sync::WalSync;

/// Raft log storage of one group. Cheap to clone (shares the database).
pub struct LogStore<C> {
    db: Arc<DB>,
    /// Group commit of the WAL with every other group of this database.
    wal: Arc<WalSync>,
    prefix: GroupPrefix,
    _config: PhantomData<fn() -> C>,
}

impl<C> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        Self { db: self.db.clone(), wal: self.wal.clone(), prefix: self.prefix.clone(), _config: PhantomData }
    }
}

impl<C: RaftTypeConfig> LogStore<C> {
    /// The log store of the group with key prefix `prefix` in `db`, which must have the
    /// column families of [`keys::RAFT_CFS`].
    pub fn new(db: Arc<DB>, prefix: GroupPrefix) -> Self {
        let wal = WalSync::shared(&db);
        Self { db, wal, prefix, _config: PhantomData }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, name: &[u8]) -> Result<Option<T>, io::Error> {
        let cf = cf(&self.db, keys::CF_META)?;
        self.db.get_cf(cf, self.prefix.meta_key(name)).map_err(to_io)?.map(|bytes| decode(&bytes)).transpose()
    }

    async fn put_meta_sync<T: serde::Serialize>(&self, name: &[u8], value: &T) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, keys::CF_META)?, self.prefix.meta_key(name), encode(value)?);
        write_sync(&self.db, batch).await
    }

    /// Iterates this group's log entries from index `from` on, in `direction`; the iterator
    /// never leaves the group's key range.
    fn log_iter(&self, from: u64, direction: Direction) -> Result<DBIteratorWithThreadMode<'_, DB>, io::Error> {
        let range = self.prefix.log_keys_from(from);
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(range.start.clone());
        opts.set_iterate_upper_bound(range.end);
        let mode = match direction {
            Direction::Forward => IteratorMode::From(&range.start, Direction::Forward),
            Direction::Reverse => IteratorMode::End,
        };
        Ok(self.db.iterator_cf_opt(cf(&self.db, keys::CF_LOGS)?, opts, mode))
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let mut entries = Vec::new();
        for item in self.log_iter(start, Direction::Forward)? {
            let (key, value) = item.map_err(to_io)?;
            let index = self
                .prefix
                .log_index(&key)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed log key"))?;
            if !range.contains(&index) {
                break;
            }
            entries.push(decode(&value)?);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        self.get_meta(keys::META_VOTE)
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for LogStore<C> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let last = match self.log_iter(0, Direction::Reverse)?.next() {
            Some(item) => {
                let (_, value) = item.map_err(to_io)?;
                Some(decode::<C::Entry>(&value)?.log_id())
            }
            None => None,
        };
        let last_purged_log_id: Option<LogIdOf<C>> = self.get_meta(keys::META_LAST_PURGED)?;
        let last_log_id = last.or_else(|| last_purged_log_id.clone());
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        self.put_meta_sync(keys::META_VOTE, vote).await
    }

    /// Not synced: the mark only saves re-applying after a restart (openraft learns the commit
    /// index again from the leader, and copes with a mark behind the applied state), and the
    /// next synced write of the shared WAL (every append is one) makes it durable in order.
    /// An fsync of its own would cost every write one more on leader and followers alike.
    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, keys::CF_META)?, self.prefix.meta_key(keys::META_COMMITTED), encode(&committed)?);
        self.db.write(batch).map_err(to_io)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.get_meta::<Option<LogIdOf<C>>>(keys::META_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
    {
        let cf = cf(&self.db, keys::CF_LOGS)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(cf, self.prefix.log_key(entry.index()), encode(&entry)?);
        }
        // Entries must be readable when this returns; durability is signalled by the callback,
        // once an fsync shared with the other groups' appends has run.
        self.db.write(batch).map_err(to_io)?;
        self.wal.sync_then(Box::new(move |result| callback.io_completed(result)));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index().saturating_add(1));
        let range = self.prefix.log_keys_from(from);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(&self.db, keys::CF_LOGS)?, range.start, range.end);
        write_sync(&self.db, batch).await
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        // Record the purge point first: entries up to it are ignored from then on.
        self.put_meta_sync(keys::META_LAST_PURGED, &log_id).await?;
        let range = match log_id.index().checked_add(1) {
            Some(end) => self.prefix.log_keys_below(end),
            None => self.prefix.log_keys_from(0),
        };
        self.db.delete_range_cf(cf(&self.db, keys::CF_LOGS)?, range.start, range.end).map_err(to_io)
    }
}

/// Durably removes every Raft key of the group with `prefix` (log entries, vote, committed
/// and purge marks), e.g. when a tablet replica is deleted. The group must not be running.
pub async fn delete_group(db: &Arc<DB>, prefix: &GroupPrefix) -> Result<(), io::Error> {
    delete_keys(db, prefix, &keys::GROUP_META_NAMES).await
}

/// Durably removes the group's log entries and its committed and purge marks but keeps its
/// vote: a tombstoned tablet replica that later joins its group again (re-replication onto
/// the same server) then never votes twice in one term. The group must not be running.
pub async fn delete_group_keep_vote(db: &Arc<DB>, prefix: &GroupPrefix) -> Result<(), io::Error> {
    delete_keys(db, prefix, &[keys::META_LAST_PURGED, keys::META_COMMITTED]).await
}

async fn delete_keys(db: &Arc<DB>, prefix: &GroupPrefix, meta_names: &[&[u8]]) -> Result<(), io::Error> {
    let mut batch = WriteBatch::default();
    let logs = prefix.log_keys_from(0);
    batch.delete_range_cf(cf(db, keys::CF_LOGS)?, logs.start, logs.end);
    let meta = cf(db, keys::CF_META)?;
    for name in meta_names {
        batch.delete_cf(meta, prefix.meta_key(name));
    }
    write_sync(db, batch).await
}

#[cfg(test)]
mod tests {
    use openraft::testing::{blank_ent, log_id};

    use super::*;
    use crate::raft::rocks::open_db;

    openraft::declare_raft_types!(TestConfig: D = u64, R = u64);

    type C = TestConfig;
    type Store = LogStore<C>;

    fn ent(index: u64) -> openraft::alias::EntryOf<C> {
        blank_ent::<C>(1, 1, index)
    }

    struct Db {
        db: Arc<DB>,
        _dir: tempfile::TempDir,
    }

    fn db() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(open_db(&dir.path().join("db"), &[]).unwrap());
        Db { db, _dir: dir }
    }

    fn group(db: &Db, id: &str) -> Store {
        LogStore::new(db.db.clone(), GroupPrefix::new(id).unwrap())
    }

    async fn indexes(store: &mut Store) -> Vec<u64> {
        store.try_get_log_entries(..).await.unwrap().iter().map(|e| e.log_id.index).collect()
    }

    async fn fill(store: &mut Store, entries: std::ops::RangeInclusive<u64>, vote_term: u64) {
        store.append(entries.map(ent), IOFlushed::noop()).await.unwrap();
        store.save_vote(&VoteOf::<C>::new(vote_term, 1)).await.unwrap();
        store.save_committed(Some(log_id::<C>(1, 1, 2))).await.unwrap();
    }

    #[tokio::test]
    async fn groups_in_one_db_are_isolated() {
        let db = db();
        // "a" and "ab": one group id is a string prefix of the other.
        let (mut a, mut b) = (group(&db, "a"), group(&db, "ab"));
        fill(&mut a, 1..=10, 3).await;
        fill(&mut b, 1..=20, 5).await;
        b.purge(log_id::<C>(1, 1, 4)).await.unwrap();

        a.truncate_after(Some(log_id::<C>(1, 1, 7))).await.unwrap();
        a.purge(log_id::<C>(1, 1, 2)).await.unwrap();
        a.append((8..=9).map(ent), IOFlushed::noop()).await.unwrap();
        assert_eq!(indexes(&mut a).await, (3..=9).collect::<Vec<_>>());
        let state = a.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id::<C>(1, 1, 9)));
        assert_eq!(state.last_purged_log_id, Some(log_id::<C>(1, 1, 2)));

        let b_state = |last| LogState::<C> {
            last_purged_log_id: Some(log_id::<C>(1, 1, 4)),
            last_log_id: Some(log_id::<C>(1, 1, last)),
        };
        assert_eq!(indexes(&mut b).await, (5..=20).collect::<Vec<_>>());
        assert_eq!(b.get_log_state().await.unwrap(), b_state(20));
        assert_eq!(b.read_vote().await.unwrap(), Some(VoteOf::<C>::new(5, 1)));

        delete_group(&db.db, &GroupPrefix::new("a").unwrap()).await.unwrap();
        let mut a = group(&db, "a");
        assert_eq!(indexes(&mut a).await, Vec::<u64>::new());
        assert_eq!(a.get_log_state().await.unwrap(), LogState::<C> { last_purged_log_id: None, last_log_id: None });
        assert_eq!(a.read_vote().await.unwrap(), None);
        assert_eq!(a.read_committed().await.unwrap(), None);

        assert_eq!(indexes(&mut b).await, (5..=20).collect::<Vec<_>>());
        assert_eq!(b.get_log_state().await.unwrap(), b_state(20));
        assert_eq!(b.read_vote().await.unwrap(), Some(VoteOf::<C>::new(5, 1)));
        assert_eq!(b.read_committed().await.unwrap(), Some(log_id::<C>(1, 1, 2)));
    }

    #[tokio::test]
    async fn deleting_a_group_but_its_vote_keeps_only_the_vote() {
        let db = db();
        let (mut a, mut b) = (group(&db, "a"), group(&db, "b"));
        fill(&mut a, 1..=10, 3).await;
        fill(&mut b, 1..=4, 2).await;
        a.purge(log_id::<C>(1, 1, 2)).await.unwrap();
        delete_group_keep_vote(&db.db, &GroupPrefix::new("a").unwrap()).await.unwrap();
        let mut a = group(&db, "a");
        assert_eq!(indexes(&mut a).await, Vec::<u64>::new());
        assert_eq!(a.get_log_state().await.unwrap(), LogState::<C> { last_purged_log_id: None, last_log_id: None });
        assert_eq!(a.read_committed().await.unwrap(), None);
        assert_eq!(a.read_vote().await.unwrap(), Some(VoteOf::<C>::new(3, 1)));
        assert_eq!(indexes(&mut b).await, (1..=4).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_group_below_another_in_key_order_sees_only_its_entries() {
        let db = db();
        // Group "b" sorts after "a"; a reverse scan of "a" must not land in "b".
        let (mut a, mut b) = (group(&db, "a"), group(&db, "b"));
        fill(&mut b, 1..=5, 1).await;
        assert_eq!(a.get_log_state().await.unwrap(), LogState::<C> { last_purged_log_id: None, last_log_id: None });
        fill(&mut a, 1..=3, 1).await;
        assert_eq!(a.get_log_state().await.unwrap().last_log_id, Some(log_id::<C>(1, 1, 3)));
        a.truncate_after(None).await.unwrap();
        assert_eq!(indexes(&mut a).await, Vec::<u64>::new());
        assert_eq!(indexes(&mut b).await, (1..=5).collect::<Vec<_>>());
    }
}
