//! Group commit of the RocksDB WAL that many Raft groups of a process share: appends write
//! their entries without a sync and then ask for the WAL to be made durable; requests that
//! arrive while an fsync runs are served together by the next one, so N groups appending at
//! once cost about two fsyncs rather than N.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, Weak};

use rocksdb::DB;

use super::rocks::to_io;

/// The WAL syncer of each open database, by the database's address. A syncer holds its
/// database, so an address cannot be reused while its entry upgrades.
static SYNCERS: LazyLock<Mutex<HashMap<usize, Weak<WalSync>>>> = LazyLock::new(Default::default);

/// Serves "make every write so far durable" requests on one database with shared fsyncs.
pub struct WalSync {
    db: Arc<DB>,
    state: Mutex<SyncState>,
    synced_cv: Condvar,
}

#[derive(Default)]
struct SyncState {
    /// Tickets handed out: ticket `t` is served by any fsync that starts after it was taken.
    requested: u64,
    /// Every ticket up to this one is durable.
    synced: u64,
    /// An fsync is running.
    syncing: bool,
}

impl WalSync {
    /// The syncer shared by every user of `db` in this process.
    pub fn shared(db: &Arc<DB>) -> Arc<WalSync> {
        let key = Arc::as_ptr(db) as usize;
        let mut syncers = SYNCERS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = syncers.get(&key).and_then(Weak::upgrade) {
            return existing;
        }
        syncers.retain(|_, weak| weak.strong_count() > 0);
        let created = Arc::new(WalSync { db: db.clone(), state: Mutex::default(), synced_cv: Condvar::new() });
        syncers.insert(key, Arc::downgrade(&created));
        created
    }

    fn lock(&self) -> MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns once every write this thread finished before the call is durable: joins the
    /// next fsync, or runs it. Blocking: call it off the async runtime.
    pub fn sync_blocking(&self) -> Result<(), io::Error> {
        let mut state = self.lock();
        state.requested += 1;
        let ticket = state.requested;
        loop {
            if state.synced >= ticket {
                return Ok(());
            }
            if state.syncing {
                state = self.synced_cv.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Run the fsync for every ticket taken so far (their writes are all done).
            state.syncing = true;
            let covered = state.requested;
            drop(state);
            let result = self.db.flush_wal(true).map_err(to_io);
            state = self.lock();
            state.syncing = false;
            if result.is_ok() {
                state.synced = state.synced.max(covered);
            }
            self.synced_cv.notify_all();
            // On failure the waiters run an fsync of their own and see their own error.
            result?;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use rocksdb::WriteBatch;

    use super::*;
    use crate::raft::rocks::open_db;

    #[test]
    fn one_syncer_per_database_and_concurrent_syncs_all_return() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Arc::new(open_db(dir.path(), &[]).expect("open"));
        let syncer = WalSync::shared(&db);
        assert!(Arc::ptr_eq(&syncer, &WalSync::shared(&db)));
        let other_dir = tempfile::tempdir().expect("tempdir");
        let other = Arc::new(open_db(other_dir.path(), &[]).expect("open"));
        assert!(!Arc::ptr_eq(&syncer, &WalSync::shared(&other)));

        let threads: Vec<_> = (0..16)
            .map(|i| {
                let db = db.clone();
                thread::spawn(move || {
                    let mut batch = WriteBatch::default();
                    batch.put(format!("k{i}"), b"v");
                    db.write(batch).expect("write");
                    WalSync::shared(&db).sync_blocking().expect("sync");
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let state = syncer.lock();
        assert_eq!(state.requested, 16);
        assert_eq!(state.synced, 16, "every ticket is served");
        assert!(!state.syncing);
    }
}
