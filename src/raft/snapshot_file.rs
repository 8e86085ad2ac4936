//! The current snapshot of one Raft group on disk, shared by the masters' catalog and every
//! tablet replica.
//!
//! The file `<dir>/current` holds the snapshot's meta as one JSON line, then its data. It is
//! replaced safely:
//! - each save writes its own temporary file (`current.tmp.<pid>.<n>`), so two concurrent
//!   saves (a snapshot built while another is installed) never write the same file;
//! - under one lock per group, the last log index of the file in place is compared with the
//!   new one, and a snapshot never replaces a newer one;
//! - the temporary file is fsync'd before the rename and the directory after it (and the
//!   directory's parent when the directory is created), so a crash leaves either the old or
//!   the new snapshot, complete;
//! - temporary files a crash left behind (a process killed mid-save) are removed the first
//!   time the group's file is loaded or saved.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::RaftTypeConfig;
use openraft::alias::SnapshotMetaOf;

use super::rocks::{decode, encode};

/// Name of the current snapshot file inside a group's snapshot directory.
const CURRENT: &str = "current";

/// A snapshot's meta and data as read back from its file.
pub type Stored<C> = (SnapshotMetaOf<C>, Vec<u8>);

/// Makes temporary names unique within the process (the pid makes them unique across).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The current snapshot file of one group. Every user of a group's directory must share one
/// `SnapshotFile` (its lock orders the saves).
pub struct SnapshotFile<C: RaftTypeConfig> {
    dir: PathBuf,
    /// Serializes replacing `current`, so the newer-wins check and the rename are one step.
    /// Holds whether leftover temporary files were removed yet.
    lock: Mutex<bool>,
    _config: PhantomData<fn() -> C>,
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn last_index<C: RaftTypeConfig>(meta: &SnapshotMetaOf<C>) -> Option<u64> {
    meta.last_log_id.as_ref().map(|id| id.index())
}

impl<C: RaftTypeConfig> SnapshotFile<C> {
    /// The snapshot file in `dir`; creates nothing yet.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, lock: Mutex::new(false), _config: PhantomData }
    }

    /// The directory holding the file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn current(&self) -> PathBuf {
        self.dir.join(CURRENT)
    }

    /// Makes `meta` + `data` the current snapshot unless the current one has a higher last
    /// log index. Returns whether it was written. Blocking: call it off the async runtime.
    pub fn save(&self, meta: &SnapshotMetaOf<C>, data: &[u8]) -> Result<bool, io::Error> {
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.remove_leftovers_once(&mut guard);
        let new_index = last_index::<C>(meta);
        match self.read_meta() {
            Ok(Some(current)) if last_index::<C>(&current) > new_index => {
                tracing::debug!(?new_index, current = ?last_index::<C>(&current), "kept the newer snapshot");
                return Ok(false);
            }
            Ok(_) => {}
            // An unreadable file (damaged by hand: renames are atomic) holds nothing to keep.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "replacing an unreadable snapshot file");
            }
            Err(e) => return Err(e),
        }
        self.ensure_dir()?;
        let tmp = self.dir.join(format!(
            "{CURRENT}.tmp.{}.{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = write_file::<C>(&tmp, meta, data).and_then(|()| fs::rename(&tmp, self.current()));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        sync_dir(&self.dir)?;
        Ok(true)
    }

    /// The current snapshot's meta and data, if one was saved.
    pub fn load(&self) -> Result<Option<Stored<C>>, io::Error> {
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.remove_leftovers_once(&mut guard);
        let file = match File::open(self.current()) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(0);
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line)?;
        if line.pop() != Some(b'\n') {
            return Err(invalid("snapshot file has no meta line"));
        }
        let meta = decode(&line)?;
        // Read into a buffer of the data's size: a large catalog is not copied again.
        let mut data = Vec::with_capacity(len.saturating_sub(line.len() + 1));
        reader.read_to_end(&mut data)?;
        Ok(Some((meta, data)))
    }

    /// Removes the temporary files of saves that never finished (the process was killed
    /// between writing and renaming). Called under the lock: this file's own saves hold it
    /// while their temporary file exists, and no other user writes the directory, so every
    /// temporary file found is a leftover. Failures only cost disk space: they are logged.
    fn remove_leftovers_once(&self, removed: &mut bool) {
        if *removed {
            return;
        }
        *removed = true;
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot list the snapshot directory");
                return;
            }
        };
        let prefix = format!("{CURRENT}.tmp.");
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(&prefix) {
                continue;
            }
            let path = entry.path();
            match fs::remove_file(&path) {
                Ok(()) => tracing::info!(file = %path.display(), "removed a snapshot file an interrupted save left"),
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "cannot remove a leftover snapshot file"),
            }
        }
    }

    /// The meta line of the current file alone (the data may be large).
    fn read_meta(&self) -> Result<Option<SnapshotMetaOf<C>>, io::Error> {
        let file = match File::open(self.current()) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut line = Vec::new();
        BufReader::new(file).read_until(b'\n', &mut line)?;
        if line.pop() != Some(b'\n') {
            return Err(invalid("snapshot file has no meta line"));
        }
        decode(&line).map(Some)
    }

    /// Creates the directory if needed, making its new entry durable in the parent.
    fn ensure_dir(&self) -> Result<(), io::Error> {
        if self.dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&self.dir)?;
        match self.dir.parent() {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        }
    }
}

fn write_file<C: RaftTypeConfig>(path: &Path, meta: &SnapshotMetaOf<C>, data: &[u8]) -> Result<(), io::Error> {
    let mut file = File::create(path)?;
    file.write_all(&encode(meta)?)?;
    file.write_all(b"\n")?;
    file.write_all(data)?;
    file.sync_all()
}

/// Makes a directory's entries (a rename, a new file) durable.
pub fn sync_dir(dir: &Path) -> Result<(), io::Error> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::master::raft_types::{SnapshotMeta, StoredMembership, TypeConfig};

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(openraft::testing::log_id::<TypeConfig>(1, 7, index)),
            last_membership: StoredMembership::default(),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn files_keep_the_newest_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = SnapshotFile::<TypeConfig>::new(dir.path().join("snapshots").join("g"));
        assert!(file.load().expect("reads").is_none());
        assert!(file.save(&meta(5), b"five").expect("writes"));
        assert!(!file.save(&meta(4), b"four").expect("writes"), "an older snapshot is not kept");
        assert_eq!(file.load().expect("reads"), Some((meta(5), b"five".to_vec())));
        assert!(file.save(&meta(6), b"six\nwith lines").expect("writes"));
        assert_eq!(file.load().expect("reads"), Some((meta(6), b"six\nwith lines".to_vec())));
        assert_eq!(names(file.dir()), vec![CURRENT.to_string()], "no temporary files left");
        // A damaged file does not block new snapshots.
        fs::write(file.dir().join(CURRENT), b"not a snapshot").expect("damage");
        assert!(file.save(&meta(2), b"two").expect("writes"));
        assert_eq!(file.load().expect("reads"), Some((meta(2), b"two".to_vec())));
    }

    /// Temporary files of a save that a crash interrupted are removed when the group's file
    /// is first used again; the current snapshot stays.
    #[test]
    fn leftovers_of_an_interrupted_save_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = SnapshotFile::<TypeConfig>::new(dir.path().to_path_buf());
        assert!(first.save(&meta(3), b"three").expect("writes"));
        for leftover in ["current.tmp.1.0", "current.tmp.4242.7"] {
            fs::write(dir.path().join(leftover), b"half a snapshot").expect("leftover");
        }
        fs::write(dir.path().join("unrelated"), b"kept").expect("other file");
        // A restarted process opens the group again.
        let reopened = SnapshotFile::<TypeConfig>::new(dir.path().to_path_buf());
        assert_eq!(reopened.load().expect("reads"), Some((meta(3), b"three".to_vec())));
        assert_eq!(names(dir.path()), vec![CURRENT.to_string(), "unrelated".to_string()]);
    }

    /// Many threads save snapshots of shuffled indexes at once: none fails (no two write
    /// one temporary file), and the newest one is what stays.
    #[test]
    fn concurrent_saves_never_collide_and_the_newest_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = Arc::new(SnapshotFile::<TypeConfig>::new(dir.path().to_path_buf()));
        let data = |index: u64| format!("data of {index}").repeat(1000).into_bytes();
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let file = file.clone();
                std::thread::spawn(move || {
                    for round in 0..10u64 {
                        let index = (round * 8 + t * 5) % 80 + 1;
                        file.save(&meta(index), &data(index)).expect("save");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        let (meta_now, data_now) = file.load().expect("reads").expect("a snapshot");
        let best = (0..8u64).flat_map(|t| (0..10u64).map(move |r| (r * 8 + t * 5) % 80 + 1)).max().expect("max");
        assert_eq!(meta_now, meta(best));
        assert_eq!(data_now, data(best));
        assert_eq!(names(file.dir()), vec![CURRENT.to_string()]);
    }
}
