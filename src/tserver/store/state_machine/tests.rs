//! Tablet state machines over a real RocksDB in a temporary directory.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use serde_json::{Value as Json, json};

use super::*;
use crate::tablet::test_support::{catalog_schema, schema};
use crate::tablet::write::{JsonRow, OpKind, encode_json_op};
use crate::tablet::{RowFailure, TabletOutcome, key_bound};
use crate::tserver::raft_types::{Membership, ReplicaNode};
use crate::tserver::store::open_db;

fn log_id(index: u64) -> LogId {
    openraft::testing::log_id::<TabletTypeConfig>(1, 7, index)
}

fn open(db: &Arc<DB>, dir: &Path, tablet: &str) -> TabletStateMachine {
    TabletStateMachine::open(db.clone(), dir, TabletId::from(tablet)).expect("opens")
}

fn blank(index: u64) -> Entry {
    Entry::new_blank(log_id(index))
}

fn membership(index: u64, voters: &[u64]) -> Entry {
    Entry::new_membership(log_id(index), membership_of(voters))
}

fn membership_of(voters: &[u64]) -> Membership {
    let nodes: BTreeMap<u64, ReplicaNode> =
        voters.iter().map(|id| (*id, ReplicaNode { uuid: format!("ts-{id}") })).collect();
    Membership::new(vec![voters.iter().copied().collect::<BTreeSet<_>>()], nodes).expect("valid membership")
}

fn alter(index: u64) -> Entry {
    Entry::new_normal(log_id(index), TabletCommand::AlterSchema { schema: catalog_schema(), version: 1 })
}

/// A write of `client` (seq_no `seq`) with rows `(kind, {"id": .., ...})`.
fn write(index: u64, client: &str, seq: u64, rows: &[(OpKind, Json)]) -> Entry {
    let s = schema();
    let ops = rows
        .iter()
        .enumerate()
        .map(|(i, (kind, row))| {
            let row: JsonRow = serde_json::from_value(row.clone()).expect("row object");
            encode_json_op(&s, *kind, i, &row).expect("valid row")
        })
        .collect();
    let command = TabletCommand::Write {
        client_id: client.into(),
        seq_no: seq,
        first_incomplete_seq_no: 1,
        schema_version: 1,
        ops,
    };
    Entry::new_normal(log_id(index), command)
}

fn insert(id: i64, count: i32) -> (OpKind, Json) {
    (OpKind::Insert, json!({"id": id, "count": count}))
}

/// Applies through openraft's trait, as the Raft core does (no client waiting).
async fn apply(sm: &mut TabletStateMachine, entries: Vec<Entry>) {
    let stream = futures::stream::iter(entries.into_iter().map(|e| Ok::<_, io::Error>((e, None))));
    sm.apply(stream).await.expect("applies");
}

/// Applies through the same path and returns the responses.
async fn apply_answers(sm: &TabletStateMachine, entries: Vec<Entry>) -> Vec<TabletResponse> {
    let stream = futures::stream::iter(entries.into_iter().map(|e| Ok::<_, io::Error>((e, ()))));
    sm.apply_entries(stream).await.expect("applies").into_iter().map(|(_, r)| r).collect()
}

fn written(row_errors: Vec<(u32, RowFailure)>) -> TabletResponse {
    let row_errors = row_errors.into_iter().map(|(index, failure)| tablet::RowError { index, failure }).collect();
    TabletResponse(Ok(TabletOutcome::Written { row_errors }))
}

/// Every row as JSON, in scan order.
async fn scan_all(sm: &TabletStateMachine) -> Vec<Json> {
    scan_range(sm, KeyRange::default()).await
}

async fn scan_range(sm: &TabletStateMachine, range: KeyRange) -> Vec<Json> {
    let rows = sm.scan(None, range, None).await.expect("scans");
    rows.iter().map(|r| Json::Object(tablet::row_to_json(r))).collect()
}

fn stored_rows(sm: &TabletStateMachine) -> Vec<(Vec<u8>, Vec<u8>)> {
    sm.rows(&KeyRange::default()).expect("iterates").collect::<Result<_, _>>().expect("reads")
}

async fn records(sm: &TabletStateMachine) -> Vec<TabletRecord> {
    sm.state().await.records().collect()
}

fn row(id: i64, count: i32) -> Json {
    json!({"id": id, "name": null, "count": count, "data": null})
}

#[tokio::test]
async fn applied_writes_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path()).expect("db");
    let mut sm = open(&db, dir.path(), "t1");
    assert_eq!(sm.applied_state().await.expect("reads"), (None, StoredMembership::default()));
    apply(&mut sm, vec![blank(1), membership(2, &[1, 2, 3]), alter(3)]).await;
    apply(
        &mut sm,
        vec![
            write(4, "c", 1, &[insert(1, 10), insert(2, 20)]),
            write(5, "c", 2, &[(OpKind::Update, json!({"id": 1, "count": 11})), (OpKind::Delete, json!({"id": 2}))]),
            write(6, "", 0, &[insert(3, 30)]),
        ],
    )
    .await;
    let expected_rows = vec![row(1, 11), row(3, 30)];
    assert_eq!(scan_all(&sm).await, expected_rows);
    let (applied, stored_membership) = sm.applied_state().await.expect("reads");
    assert_eq!(applied, Some(log_id(6)));
    assert_eq!(stored_membership, StoredMembership::new(Some(log_id(2)), membership_of(&[1, 2, 3])));
    let before = records(&sm).await;
    assert_eq!(before.len(), 2, "schema and client c: {before:?}");

    drop(sm);
    drop(db);
    let db = open_db(dir.path()).expect("reopens");
    let mut sm = open(&db, dir.path(), "t1");
    assert_eq!(scan_all(&sm).await, expected_rows);
    assert_eq!(sm.applied_state().await.expect("reads"), (Some(log_id(6)), stored_membership));
    assert_eq!(records(&sm).await, before);
    assert_eq!(sm.state().await.schema().map(|s| s.version()), Some(1));
    // The tracker came back: a retry answers the first response and changes nothing.
    let retry = apply_answers(&sm, vec![write(7, "c", 1, &[insert(1, 99), insert(2, 99)])]).await;
    assert_eq!(retry, vec![written(vec![])]);
    assert_eq!(scan_all(&sm).await, expected_rows);
    assert_eq!(sm.applied_state().await.expect("reads").0, Some(log_id(7)));
}

#[tokio::test]
async fn entries_of_one_apply_call_see_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path()).expect("db");
    let sm = open(&db, dir.path(), "t1");
    let answers = apply_answers(
        &sm,
        vec![
            alter(1),
            write(2, "", 0, &[insert(1, 1)]),
            write(3, "", 0, &[(OpKind::Update, json!({"id": 1, "count": 2})), insert(1, 3)]),
            write(4, "", 0, &[(OpKind::Delete, json!({"id": 1}))]),
            write(5, "", 0, &[(OpKind::Update, json!({"id": 1, "count": 4})), insert(5, 5)]),
            membership(6, &[1]),
        ],
    )
    .await;
    assert_eq!(
        answers,
        vec![
            TabletResponse(Ok(TabletOutcome::Schema { version: 1 })),
            written(vec![]),
            written(vec![(1, RowFailure::AlreadyPresent)]),
            written(vec![]),
            written(vec![(0, RowFailure::NotFound)]),
            TabletResponse::raft_internal(),
        ]
    );
    assert_eq!(scan_all(&sm).await, vec![row(5, 5)]);
}

#[tokio::test]
async fn a_failing_entry_stops_the_call_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path()).expect("db");
    let mut sm = open(&db, dir.path(), "t1");
    apply(&mut sm, vec![alter(1)]).await;
    // A corrupt stored row makes reading it a storage error: fatal, not a row failure.
    let key = match &write(0, "", 0, &[insert(1, 1)]).payload {
        EntryPayload::Normal(TabletCommand::Write { ops, .. }) => ops[0].key().to_vec(),
        _ => unreachable!(),
    };
    let rows_cf = db.cf_handle(keys::CF_TABLET_ROWS).expect("cf");
    db.put_cf(rows_cf, keys::row_key(&keys::group_prefix("t1").expect("prefix"), &key), [0xee]).expect("puts");
    let entries =
        vec![write(2, "c", 1, &[insert(7, 7)]), write(3, "", 0, &[(OpKind::Update, json!({"id": 1, "count": 2}))])];
    let stream = futures::stream::iter(entries.into_iter().map(|e| Ok::<_, io::Error>((e, None))));
    let err = sm.apply(stream).await.expect_err("a corrupt row is fatal");
    assert!(err.to_string().contains("tablet t1: applying log entry"), "{err}");
    assert_eq!(sm.applied_state().await.expect("reads").0, Some(log_id(1)), "nothing of the call was written");
    assert_eq!(records(&sm).await.len(), 1, "the tracker forgot client c's unwritten write");
}

#[tokio::test]
async fn tablets_in_one_db_are_isolated_and_destroyed_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path()).expect("db");
    // "a" and "b" are neighbours in key order; "a1" starts with "a".
    let mut a = open(&db, dir.path(), "a");
    let mut b = open(&db, dir.path(), "b");
    let mut a1 = open(&db, dir.path(), "a1");
    apply(&mut a, vec![membership(1, &[1]), alter(2), write(3, "ca", 1, &[insert(1, 1), insert(2, 2)])]).await;
    apply(&mut b, vec![membership(1, &[2, 3]), alter(2), write(3, "cb", 1, &[insert(1, 100)])]).await;
    apply(&mut b, vec![write(4, "cb", 2, &[insert(3, 300)])]).await;
    apply(&mut a1, vec![blank(1)]).await;
    assert_eq!(scan_all(&a).await, vec![row(1, 1), row(2, 2)]);
    assert_eq!(scan_all(&b).await, vec![row(1, 100), row(3, 300)]);
    assert!(a1.state().await.schema().is_none());
    assert!(stored_rows(&a1).is_empty());
    assert_eq!(a.applied_state().await.expect("reads").0, Some(log_id(3)));
    assert_eq!(b.applied_state().await.expect("reads").0, Some(log_id(4)));
    assert_eq!(a1.applied_state().await.expect("reads"), (Some(log_id(1)), StoredMembership::default()));
    assert_eq!(b.applied_state().await.expect("reads").1.membership(), &membership_of(&[2, 3]));
    let a_records = records(&a).await;
    assert!(matches!(&a_records[1], TabletRecord::Client(c) if c.client_id == "ca"), "{a_records:?}");
    assert!(matches!(&records(&b).await[1], TabletRecord::Client(c) if c.client_id == "cb"));
    a.get_snapshot_builder().await.build_snapshot().await.expect("builds");
    b.get_snapshot_builder().await.build_snapshot().await.expect("builds");
    let b_rows = stored_rows(&b);
    let b_records = records(&b).await;

    drop(a);
    TabletStateMachine::destroy(&db, dir.path(), &TabletId::from("a")).expect("destroys");
    TabletStateMachine::destroy(&db, dir.path(), &TabletId::from("a")).expect("destroy is idempotent");
    let mut a = open(&db, dir.path(), "a");
    assert_eq!(a.applied_state().await.expect("reads"), (None, StoredMembership::default()));
    assert!(stored_rows(&a).is_empty());
    assert!(records(&a).await.is_empty());
    assert!(a.get_current_snapshot().await.expect("reads").is_none());
    assert!(!dir.path().join("snapshots").join("a").exists());
    // The neighbours kept everything.
    assert_eq!(stored_rows(&b), b_rows);
    assert_eq!(records(&b).await, b_records);
    assert_eq!(b.applied_state().await.expect("reads").0, Some(log_id(4)));
    assert!(b.get_current_snapshot().await.expect("reads").is_some());
    assert_eq!(a1.applied_state().await.expect("reads").0, Some(log_id(1)));
    let b = open(&db, dir.path(), "b");
    assert_eq!(records(&b).await, b_records, "b reopens with its records");
}

#[tokio::test]
async fn snapshots_reproduce_the_state_in_another_db() {
    let src_dir = tempfile::tempdir().expect("tempdir");
    let src_db = open_db(src_dir.path()).expect("db");
    let mut src = open(&src_db, src_dir.path(), "t1");
    apply(&mut src, vec![membership(1, &[1, 2, 3]), alter(2)]).await;
    apply(&mut src, vec![write(3, "c", 1, &[insert(1, 1), insert(2, 2), insert(4, 4)])]).await;
    apply(&mut src, vec![write(4, "d", 1, &[(OpKind::Upsert, json!({"id": 2, "count": 22, "name": "two"}))])]).await;
    let snapshot = src.get_snapshot_builder().await.build_snapshot().await.expect("builds");
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(4)));
    assert_eq!(snapshot.meta.last_membership, StoredMembership::new(Some(log_id(1)), membership_of(&[1, 2, 3])));
    let current = src.get_current_snapshot().await.expect("reads").expect("saved");
    assert_eq!(current.meta, snapshot.meta);
    assert_eq!(current.snapshot.get_ref(), snapshot.snapshot.get_ref());
    // Later writes do not change a built snapshot.
    apply(&mut src, vec![write(5, "", 0, &[insert(9, 9)])]).await;

    // The follower has stale state: other rows, another schema history, another membership.
    let dst_dir = tempfile::tempdir().expect("tempdir");
    let dst_db = open_db(dst_dir.path()).expect("db");
    let mut dst = open(&dst_db, dst_dir.path(), "t1");
    apply(&mut dst, vec![membership(1, &[5]), alter(2), write(3, "x", 1, &[insert(1, 100), insert(3, 300)])]).await;
    let mut other = open(&dst_db, dst_dir.path(), "t2");
    apply(&mut other, vec![alter(1), write(2, "", 0, &[insert(1, 7)])]).await;

    dst.install_snapshot(&snapshot.meta, snapshot.snapshot.clone()).await.expect("installs");
    let expect_rows = vec![row(1, 1), json!({"id": 2, "name": "two", "count": 22, "data": null}), row(4, 4)];
    assert_eq!(scan_all(&dst).await, expect_rows);
    assert_eq!(
        dst.applied_state().await.expect("reads"),
        (snapshot.meta.last_log_id, snapshot.meta.last_membership.clone())
    );
    let dst_records = records(&dst).await;
    assert_eq!(dst_records.len(), 3, "schema, c and d; x is gone: {dst_records:?}");
    // Exactly the source's state at the snapshot: rebuild the source at index 4 to compare.
    let rebuilt_dir = tempfile::tempdir().expect("tempdir");
    let rebuilt_db = open_db(rebuilt_dir.path()).expect("db");
    let mut rebuilt = open(&rebuilt_db, rebuilt_dir.path(), "t1");
    rebuilt.install_snapshot(&snapshot.meta, snapshot.snapshot.clone()).await.expect("installs");
    assert_eq!(stored_rows(&dst), stored_rows(&rebuilt));
    let src_rows: Vec<_> =
        stored_rows(&src).into_iter().filter(|(k, _)| stored_rows(&dst).iter().any(|(d, _)| d == k)).collect();
    assert_eq!(src_rows, stored_rows(&dst), "row bytes equal the source's");
    assert_eq!(stored_rows(&src).len(), 4, "the source moved on to row 9");
    let current = dst.get_current_snapshot().await.expect("reads").expect("saved on install");
    assert_eq!(current.meta, snapshot.meta);
    // The other tablet of the follower's DB is untouched.
    assert_eq!(scan_all(&other).await, vec![row(1, 7)]);

    // Durable: after a restart the follower has the installed state, and retries of the
    // source's clients are answered from the installed tracker.
    drop((dst, other, rebuilt));
    drop(dst_db);
    let dst_db = open_db(dst_dir.path()).expect("reopens");
    let dst = open(&dst_db, dst_dir.path(), "t1");
    assert_eq!(scan_all(&dst).await, expect_rows);
    assert_eq!(records(&dst).await, dst_records);
    let retry = apply_answers(&dst, vec![write(5, "c", 1, &[insert(1, 0)])]).await;
    assert_eq!(retry, vec![written(vec![])]);
    assert_eq!(scan_all(&dst).await, expect_rows);
}

#[tokio::test]
async fn snapshots_of_another_tablet_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path()).expect("db");
    let mut a = open(&db, dir.path(), "a");
    let mut b = open(&db, dir.path(), "b");
    apply(&mut a, vec![alter(1), write(2, "", 0, &[insert(1, 1)])]).await;
    apply(&mut b, vec![alter(1)]).await;
    let snapshot = a.get_snapshot_builder().await.build_snapshot().await.expect("builds");
    let err = b.install_snapshot(&snapshot.meta, snapshot.snapshot).await.expect_err("refused");
    assert!(err.to_string().contains("snapshot of tablet a offered to tablet b"), "{err}");
    assert_eq!(b.applied_state().await.expect("reads").0, Some(log_id(1)));
}

#[tokio::test]
async fn scans_read_a_key_range_in_order_from_one_tablet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(dir.path()).expect("db");
    let mut a = open(&db, dir.path(), "a");
    let mut b = open(&db, dir.path(), "b");
    let ids = [5, -3, 9, 0, 2, 7, 1, -10, 4];
    let rows: Vec<_> = ids.iter().map(|id| insert(*id, 1)).collect();
    apply(&mut a, vec![alter(1), write(2, "", 0, &rows)]).await;
    apply(&mut b, vec![alter(1), write(2, "", 0, &[insert(3, 2), insert(100, 2)])]).await;
    let ids_of = |rows: Vec<Json>| rows.iter().map(|r| r["id"].as_i64().expect("id")).collect::<Vec<_>>();
    assert_eq!(ids_of(scan_all(&a).await), vec![-10, -3, 0, 1, 2, 4, 5, 7, 9]);
    let s = schema();
    let range = KeyRange {
        lower: Some(key_bound(&s, &[json!(0)]).expect("bound")),
        upper: Some(key_bound(&s, &[json!(5)]).expect("bound")),
    };
    assert_eq!(ids_of(scan_range(&a, range.clone()).await), vec![0, 1, 2, 4]);
    let from_3 = KeyRange { lower: Some(key_bound(&s, &[json!(3)]).expect("bound")), upper: None };
    assert_eq!(ids_of(scan_range(&a, from_3.clone()).await), vec![4, 5, 7, 9], "b's rows 3 and 100 stay out");
    assert_eq!(ids_of(scan_range(&b, from_3).await), vec![3, 100]);
    let limited = a.scan(Some(vec!["count".into(), "id".into()]), range.clone(), Some(2)).await.expect("scans");
    let limited: Vec<Json> = limited.iter().map(|r| Json::Object(tablet::row_to_json(r))).collect();
    assert_eq!(limited, vec![json!({"count": 1, "id": 0}), json!({"count": 1, "id": 1})]);
    // The raw iterator feeds tablet::scan the same way.
    let keys: Vec<Vec<u8>> = a.rows(&range).expect("iterates").map(|r| r.expect("reads").0).collect();
    assert_eq!(keys.len(), 4);
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    let err = a.scan(Some(vec!["nope".into()]), KeyRange::default(), None).await.expect_err("unknown column");
    assert!(matches!(err, TabletStoreError::Scan { source: ScanError::UnknownColumn(_), .. }), "{err}");
    let empty = open(&db, dir.path(), "c");
    assert!(matches!(empty.scan(None, KeyRange::default(), None).await, Err(TabletStoreError::NoSchema { .. })));
}
