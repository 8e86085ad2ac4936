//! Group commit of the RocksDB WAL that many Raft groups of a process share: appends write
//! their entries without a sync and then hand a callback to the database's syncer thread;
//! the thread runs fsyncs back to back, each one for every callback queued before it
//! started, so N groups appending at once cost about two fsyncs rather than N.
//!
//! One thread per database serves all callbacks: no thread per append waits for the fsync
//! (a tablet server with many busy groups otherwise parks and wakes a blocking thread per
//! append, and every fsync woke all of them at once).

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;

use rocksdb::DB;

use super::rocks::to_io;

/// The WAL syncer of each open database, by the database's address. A syncer holds its
/// database, so an address cannot be reused while its entry upgrades.
static SYNCERS: LazyLock<Mutex<HashMap<usize, Weak<WalSync>>>> = LazyLock::new(Default::default);

/// What a syncer calls once the writes before its request are durable (or the fsync failed).
pub type Done = Box<dyn FnOnce(Result<(), io::Error>) + Send>;

/// Serves "make every write so far durable" requests on one database with shared fsyncs,
/// on a thread of its own that stops (and is joined) when the last user drops it.
pub struct WalSync {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Whether the syncer thread runs (else requests are served on the caller's thread).
    threaded: bool,
}

struct Shared {
    db: Arc<DB>,
    state: Mutex<SyncState>,
    /// Wakes the syncer thread when a request arrives or it must stop.
    wake: Condvar,
}

#[derive(Default)]
struct SyncState {
    /// Requests whose writes are done, waiting for the next fsync to start.
    waiting: Vec<Done>,
    stop: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The syncer thread: takes every queued request, runs one fsync for all of them, calls
    /// them back, and again; serves what is queued before it stops.
    fn run(&self) {
        loop {
            let mut state = self.lock();
            while state.waiting.is_empty() && !state.stop {
                state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.waiting.is_empty() {
                return;
            }
            // Their writes all finished before they were queued, so this fsync covers them.
            let batch = std::mem::take(&mut state.waiting);
            drop(state);
            let result = self.db.flush_wal(true).map_err(to_io);
            for done in batch {
                done(result.as_ref().map(drop).map_err(|e| io::Error::new(e.kind(), e.to_string())));
            }
        }
    }
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
        let shared = Arc::new(Shared { db: db.clone(), state: Mutex::default(), wake: Condvar::new() });
        let runner = shared.clone();
        let thread = match std::thread::Builder::new().name("wal-sync".into()).spawn(move || runner.run()) {
            Ok(thread) => Some(thread),
            Err(error) => {
                tracing::error!(%error, "cannot start the WAL syncer thread; appends will fsync one by one");
                None
            }
        };
        let threaded = thread.is_some();
        let created = Arc::new(WalSync { shared, thread: Mutex::new(thread), threaded });
        syncers.insert(key, Arc::downgrade(&created));
        created
    }

    /// Calls `done` once every write the caller finished before this call is durable (or
    /// with the error of the fsync that should have made it so). Does not block, unless the
    /// syncer thread could not be started: then it syncs on the caller's thread.
    pub fn sync_then(&self, done: Done) {
        if !self.threaded {
            done(self.shared.db.flush_wal(true).map_err(to_io));
            return;
        }
        let mut state = self.shared.lock();
        state.waiting.push(done);
        drop(state);
        self.shared.wake.notify_one();
    }

    /// Returns once every write this thread finished before the call is durable (tests).
    #[cfg(test)]
    fn sync_blocking(&self) -> Result<(), io::Error> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.sync_then(Box::new(move |result| {
            let _ = tx.send(result);
        }));
        rx.recv().map_err(|_| io::Error::other("the WAL syncer stopped"))?
    }
}

impl Drop for WalSync {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        // Joined so the database is released when the last user is gone (it may be reopened
        // right after, and RocksDB allows one opener per directory).
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
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
        assert!(syncer.shared.lock().waiting.is_empty(), "every request is served");
    }

    #[test]
    fn callbacks_run_and_the_database_is_released_when_the_syncer_drops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Arc::new(open_db(dir.path(), &[]).expect("open"));
        let syncer = WalSync::shared(&db);
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..8 {
            let tx = tx.clone();
            syncer.sync_then(Box::new(move |result| tx.send(result.is_ok()).expect("send")));
        }
        drop(tx);
        assert_eq!(rx.iter().filter(|ok| *ok).count(), 8);
        drop(syncer);
        drop(db);
        // Nothing holds the database any more: it opens again.
        open_db(dir.path(), &[]).expect("reopen after the syncer stopped");
    }
}
