//! The catalog state machine's snapshots: labelled with the position their contents reflect,
//! written to their own temporary files, and never replacing a newer snapshot on disk.

use std::io::{self, BufRead, Cursor};
use std::path::Path;
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use rocksdb::DB;

use super::{StateMachineStore, open};
use crate::catalog::{Catalog, CatalogCommand, CatalogRecord, Column, ColumnType, Schema, Table, Tablet};
use crate::ids::{TServerId, TableId, TabletId};
use crate::master::raft_types::{Entry, SnapshotMeta, StoredMembership, TypeConfig};

fn log_id(index: u64) -> crate::master::raft_types::LogId {
    openraft::testing::log_id::<TypeConfig>(1, 7, index)
}

fn create(index: u64, name: &str) -> Entry {
    let table_id = TableId::random();
    let table = Table::new(
        table_id.clone(),
        name.into(),
        Schema { columns: vec![Column::new("id", ColumnType::Int64, false)], primary_key: vec!["id".into()] }
            .with_fresh_ids(),
        1,
        1,
    );
    let tablets = vec![Tablet::new(TabletId::random(), table_id, 0, vec![TServerId::from("ts")])];
    Entry::new_normal(log_id(index), CatalogCommand::CreateTable { request_id: format!("r{index}"), table, tablets })
}

fn store(dir: &Path) -> (Arc<DB>, StateMachineStore) {
    let (db, _) = open(dir).expect("db");
    let sm = StateMachineStore::open(db.clone(), dir).expect("state machine");
    (db, sm)
}

async fn apply(sm: &mut StateMachineStore, entries: Vec<Entry>) {
    let stream = futures::stream::iter(entries.into_iter().map(|e| Ok::<_, io::Error>((e, None))));
    sm.apply(stream).await.expect("applies");
}

/// The catalog a snapshot's data holds.
fn catalog_of(data: &[u8]) -> Catalog {
    let records = data.lines().map(|l| l.expect("line")).filter(|l| !l.is_empty());
    Catalog::from_records(records.map(|l| serde_json::from_str::<CatalogRecord>(&l).expect("record")))
}

fn snapshot_index(meta: &SnapshotMeta) -> Option<u64> {
    meta.last_log_id.as_ref().map(|id| id.index())
}

/// A snapshot built while an apply's batch is still being written holds the applied
/// catalog and says so: its log id is the one the catalog reflects, not the older one
/// still on disk. The runtime's only blocking thread is held, so the batch (written off
/// the runtime) is stuck exactly in that window.
#[test]
fn a_snapshot_never_holds_state_ahead_of_its_log_id() {
    let runtime =
        tokio::runtime::Builder::new_current_thread().max_blocking_threads(1).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_db, mut sm) = store(dir.path());
        apply(&mut sm, vec![Entry::new_blank(log_id(1))]).await;

        let (release, held) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::task::spawn_blocking(move || held.recv());
        let mut applying = sm.clone();
        let apply_task = tokio::spawn(async move { apply(&mut applying, vec![create(2, "t")]).await });
        // The catalog shows the table once the apply released its lock; its batch waits.
        while sm.catalog().read().await.table_by_name("t").is_none() {
            tokio::task::yield_now().await;
        }
        let mut builder = sm.clone();
        let build_task = tokio::spawn(async move { builder.build_snapshot().await });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.send(()).expect("release");
        blocker.await.expect("blocker").expect("held");
        apply_task.await.expect("apply task");
        let snapshot = build_task.await.expect("build task").expect("snapshot");

        let holds_table = catalog_of(snapshot.snapshot.get_ref()).table_by_name("t").is_some();
        assert_eq!(
            (snapshot_index(&snapshot.meta), holds_table),
            (Some(2), true),
            "the snapshot's log id and contents disagree"
        );
    });
}

/// Another writer's temporary file (a concurrent build or install) is never written over:
/// each save has its own.
#[tokio::test]
async fn snapshot_builds_use_their_own_temporary_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_db, mut sm) = store(dir.path());
    apply(&mut sm, vec![create(1, "t")]).await;
    let snapshots = dir.path().join("snapshots");
    std::fs::create_dir_all(&snapshots).expect("dir");
    let other = snapshots.join("current.tmp");
    std::fs::write(&other, b"another writer's half-written snapshot").expect("write");

    let built = sm.build_snapshot().await.expect("build");
    assert_eq!(snapshot_index(&built.meta), Some(1));
    assert_eq!(std::fs::read(&other).expect("still there"), b"another writer's half-written snapshot");
    let current = sm.get_current_snapshot().await.expect("reads").expect("a snapshot");
    assert_eq!((current.meta, current.snapshot.into_inner()), (built.meta, built.snapshot.into_inner()));
}

/// A snapshot built from an older state does not replace a newer one already on disk (one
/// installed while it was being built).
#[tokio::test]
async fn an_older_snapshot_never_replaces_a_newer_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_db, mut sm) = store(dir.path());
    apply(&mut sm, vec![create(1, "old")]).await;

    // What a concurrent install at index 100 left on disk.
    let newer = SnapshotMeta { last_log_id: Some(log_id(100)), last_membership: StoredMembership::default() };
    crate::raft::SnapshotFile::<TypeConfig>::new(dir.path().join("snapshots"))
        .save(&newer, b"")
        .expect("newer snapshot");

    let built = sm.build_snapshot().await.expect("build");
    assert_eq!(snapshot_index(&built.meta), Some(1), "the build itself describes its own state");
    let current = sm.get_current_snapshot().await.expect("reads").expect("a snapshot");
    assert_eq!(snapshot_index(&current.meta), Some(100), "the newer snapshot stays current");

    // Installing it makes the state match the file, and the next build supersedes it.
    let mut installed = sm.clone();
    installed.install_snapshot(&newer, Cursor::new(Vec::new())).await.expect("install");
    assert_eq!(installed.applied_state().await.expect("applied").0, Some(log_id(100)));
    assert!(installed.catalog().read().await.table_by_name("old").is_none());
}
