//! Row traffic for tests that move replicas while clients work: a writer inserting fresh
//! ids, and the helpers to write and read ids back. Included with
//! `#[path = "common/traffic.rs"] mod traffic;` by the tests that use it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kudu::client::{KuduClient, RowWrite, ScanSpec};
use kudu::tablet::OpKind;

use crate::common::{WAIT, simple_row, wait_for};

/// Inserts of `ids` into a `simple_schema` table.
pub fn inserts(ids: impl IntoIterator<Item = i64>) -> Vec<RowWrite> {
    ids.into_iter().map(|id| RowWrite { kind: OpKind::Insert, row: simple_row(id, Some("x")) }).collect()
}

/// Every id of `table`, scanned back (retried until a scan succeeds).
pub async fn scan_ids(client: &KuduClient, table: &str) -> BTreeSet<i64> {
    let rows = wait_for("a full scan", WAIT, || async { client.scan(table, &ScanSpec::default()).await.ok() }).await;
    rows.iter().filter_map(|r| r["id"].as_i64()).collect()
}

/// A task inserting batches of 10 fresh ids every 50 ms until finished; remembers the
/// acknowledged ones.
pub struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeSet<i64>>>,
    task: tokio::task::JoinHandle<usize>,
}

impl Writer {
    /// Starts writing ids from `first_id` on into `table`.
    pub fn start(client: KuduClient, table: &str, first_id: i64) -> Writer {
        Self::start_with(client, table, first_id, BTreeSet::new())
    }

    /// Like [`Writer::start`], counting `acked` (rows written before) as acknowledged.
    pub fn start_with(client: KuduClient, table: &str, first_id: i64, acked: BTreeSet<i64>) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(acked));
        let (table, stop2, acked2) = (table.to_string(), stop.clone(), acked.clone());
        let task = tokio::spawn(async move {
            let (mut next, mut failures) = (first_id, 0usize);
            while !stop2.load(Ordering::Relaxed) {
                let ids: Vec<i64> = (next..next + 10).collect();
                next += 10;
                match client.write(&table, &inserts(ids.clone())).await {
                    Ok(outcome) if outcome.failures.is_empty() => acked2.lock().expect("acked").extend(ids),
                    _ => failures += 1,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            failures
        });
        Writer { stop, acked, task }
    }

    /// The ids acknowledged so far (shared: readers compare scans against it).
    pub fn acked(&self) -> Arc<Mutex<BTreeSet<i64>>> {
        self.acked.clone()
    }

    /// Whether [`Writer::finish`] was called (readers beside it stop too).
    pub fn stopping(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Stops it; returns the acknowledged ids and the number of failed batches.
    pub async fn finish(self) -> (BTreeSet<i64>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.task.await.expect("writer");
        let acked = self.acked.lock().expect("acked").clone();
        (acked, failures)
    }
}
