//! Rows under faults: clients upsert, delete and read shared keys and insert fresh ones
//! while a nemesis kills (-9), pauses (SIGSTOP/SIGCONT) and restarts the tablet servers
//! hosting tablet leaders. At the end: every acknowledged insert is present, no insert was
//! applied twice (a retried batch answered ALREADY_PRESENT for a key only it wrote), and the
//! history of every shared key is linearizable. `KUDU_TABLET_STRESS_SECS` sets the duration.

mod common;
#[path = "common/register.rs"]
mod register;
#[path = "common/wing_gong.rs"]
mod wing_gong;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, WAIT, simple_row as row, simple_schema, wait_for};
use kudu::client::{ClientError, KuduClient, RowWrite, ScanSpec, WriteOutcome};
use kudu::tablet::OpKind;
use register::{Call, Op, Outcome};
use serde_json::json;

const CLIENTS: usize = 4;
const SHARED_KEYS: i64 = 12;
const FRESH_BASE: i64 = 1_000_000;

static CLOCK: AtomicU64 = AtomicU64::new(1);

fn tick() -> u64 {
    CLOCK.fetch_add(1, Ordering::SeqCst)
}

fn client(addrs: &[String]) -> KuduClient {
    common::kudu_client_for(addrs, Duration::from_secs(15), Duration::from_secs(3))
}

/// What the workers saw besides the register history.
#[derive(Default)]
struct Tally {
    fresh_acked: BTreeSet<i64>,
    fresh_unknown: BTreeSet<i64>,
    duplicates: Vec<String>,
    unexpected: Vec<String>,
}

/// The outcome of a one-row write: written, a row failure code, or unknown.
fn write_outcome(result: Result<WriteOutcome, ClientError>) -> Result<Option<String>, String> {
    match result {
        Ok(o) if o.failures.is_empty() => Ok(None),
        Ok(o) => Ok(Some(o.failures[0].code.clone())),
        Err(e) if e.outcome_unknown() => Err(e.to_string()),
        Err(e) => Ok(Some(format!("error {e}"))),
    }
}

async fn worker(
    w: usize,
    addrs: Vec<String>,
    stop: Arc<AtomicBool>,
    ops: Arc<Mutex<Vec<Op>>>,
    tally: Arc<Mutex<Tally>>,
) {
    let client = client(&addrs);
    let mut n: i64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let seed = (w as u64 + 1).wrapping_mul(2654435761).wrapping_add((n as u64).wrapping_mul(40503));
        let key = (seed >> 7) as i64 % SHARED_KEYS;
        let invoked = tick();
        match (seed >> 13) % 10 {
            0..=3 => {
                let value = format!("w{w}-{n}");
                let result =
                    client.write("stress", &[RowWrite { kind: OpKind::Upsert, row: row(key, Some(&value)) }]).await;
                let outcome = match write_outcome(result) {
                    Ok(None) => Outcome::Written,
                    Ok(Some(code)) => {
                        tally.lock().expect("tally").unexpected.push(format!("upsert {key}: {code}"));
                        continue;
                    }
                    Err(_) => Outcome::Unknown,
                };
                let returned = if outcome == Outcome::Unknown { u64::MAX } else { tick() };
                ops.lock().expect("ops").push(Op { key, call: Call::Upsert(value), outcome, invoked, returned });
            }
            4 => {
                let result = client.write("stress", &[RowWrite { kind: OpKind::Delete, row: row(key, None) }]).await;
                let outcome = match write_outcome(result) {
                    Ok(None) => Outcome::Written,
                    Ok(Some(code)) if code == "NOT_FOUND" => Outcome::NotFound,
                    Ok(Some(code)) => {
                        tally.lock().expect("tally").unexpected.push(format!("delete {key}: {code}"));
                        continue;
                    }
                    Err(_) => Outcome::Unknown,
                };
                let returned = if outcome == Outcome::Unknown { u64::MAX } else { tick() };
                ops.lock().expect("ops").push(Op { key, call: Call::Delete, outcome, invoked, returned });
            }
            5..=7 => {
                let spec = ScanSpec {
                    columns: vec!["id".into(), "v".into()],
                    lower: vec![json!(key)],
                    upper: vec![json!(key + 1)],
                    limit: None,
                };
                let outcome = match client.scan("stress", &spec).await {
                    Ok(rows) => Outcome::Read(rows.first().and_then(|r| r["v"].as_str()).map(str::to_string)),
                    Err(_) => Outcome::Unknown,
                };
                let returned = if outcome == Outcome::Unknown { u64::MAX } else { tick() };
                ops.lock().expect("ops").push(Op { key, call: Call::Read, outcome, invoked, returned });
            }
            _ => {
                // A fresh key only this worker ever writes: ALREADY_PRESENT means the same
                // batch was applied twice.
                let id = FRESH_BASE + (w as i64) * 1_000_000 + n;
                let result =
                    client.write("stress", &[RowWrite { kind: OpKind::Insert, row: row(id, Some("fresh")) }]).await;
                let mut t = tally.lock().expect("tally");
                match write_outcome(result) {
                    Ok(None) => {
                        t.fresh_acked.insert(id);
                    }
                    Ok(Some(code)) if code == "ALREADY_PRESENT" => {
                        t.duplicates.push(format!("insert {id} applied twice"))
                    }
                    Ok(Some(code)) => t.unexpected.push(format!("insert {id}: {code}")),
                    Err(_) => {
                        t.fresh_unknown.insert(id);
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_stay_exactly_once_and_linearizable_under_tablet_server_faults() {
    let secs: u64 = std::env::var("KUDU_TABLET_STRESS_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let mut cluster = Cluster::start(1, 4);
    cluster.wait_leader().await;
    cluster.wait_tservers(4).await;
    let addrs = cluster.master_addrs();
    let setup = client(&addrs);
    setup.masters().create_table("stress", &simple_schema(), 3, 3).await.expect("create");
    setup.wait_for_leaders("stress", WAIT).await.expect("leaders");

    let ops: Arc<Mutex<Vec<Op>>> = Arc::default();
    let tally: Arc<Mutex<Tally>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|w| tokio::spawn(worker(w, addrs.clone(), stop.clone(), ops.clone(), tally.clone())))
        .collect();

    // The nemesis: each round picks a tablet server that leads some tablet.
    let started = Instant::now();
    let (mut kills, mut pauses, mut restarts, mut round) = (0, 0, 0, 0usize);
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let Ok(locations) = setup.masters().get_table_locations("stress").await else { continue };
        let leaders: BTreeSet<String> = locations
            .tablets
            .iter()
            .filter_map(|t| t.replicas.iter().find(|r| r.ts_uuid == t.leader_ts_uuid).map(|r| r.rpc_address.clone()))
            .collect();
        let Some(victim) = leaders.iter().nth(round % leaders.len().max(1)).cloned() else { continue };
        let Some(p) = cluster.tservers.iter_mut().find(|t| t.addr == victim) else { continue };
        match round % 3 {
            0 => {
                p.kill();
                tokio::time::sleep(Duration::from_millis(1500)).await;
                p.restart();
                kills += 1;
            }
            1 => {
                p.pause();
                tokio::time::sleep(Duration::from_millis(4000)).await;
                p.resume();
                pauses += 1;
            }
            _ => {
                p.restart();
                restarts += 1;
            }
        }
        round += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }

    // Final reads of every shared key, and a scan of every fresh key.
    let reader = client(&addrs);
    for key in 0..SHARED_KEYS {
        let spec = ScanSpec {
            columns: vec!["id".into(), "v".into()],
            lower: vec![json!(key)],
            upper: vec![json!(key + 1)],
            limit: None,
        };
        let invoked = tick();
        let rows = wait_for("a final read", WAIT, || async { reader.scan("stress", &spec).await.ok() }).await;
        let outcome = Outcome::Read(rows.first().and_then(|r| r["v"].as_str()).map(str::to_string));
        ops.lock().expect("ops").push(Op { key, call: Call::Read, outcome, invoked, returned: tick() });
    }
    let spec = ScanSpec { columns: vec!["id".into()], lower: vec![json!(FRESH_BASE)], ..Default::default() };
    let present: BTreeSet<i64> = wait_for("the final scan", WAIT, || async { reader.scan("stress", &spec).await.ok() })
        .await
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();

    let ops = ops.lock().expect("ops").clone();
    let tally = tally.lock().expect("tally");
    let lost: Vec<&i64> = tally.fresh_acked.iter().filter(|id| !present.contains(id)).collect();
    let phantom: Vec<&i64> =
        present.iter().filter(|id| !tally.fresh_acked.contains(id) && !tally.fresh_unknown.contains(id)).collect();
    let bad = register::check(&ops);
    let count = |f: &dyn Fn(&Op) -> bool| ops.iter().filter(|o| f(o)).count();
    println!(
        "tablet stress: {secs}s; nemesis {kills} kill -9, {pauses} SIGSTOP, {restarts} restarts of tablet servers leading tablets; \
         shared keys: {} operations ({} writes acknowledged, {} reads, {} unknown); fresh inserts: {} acknowledged, {} unknown, \
         {} of the acknowledged missing, {} applied twice; history linearizable: {}",
        ops.len(),
        count(&|o| o.outcome == Outcome::Written || o.outcome == Outcome::NotFound),
        count(&|o| matches!(o.outcome, Outcome::Read(_))),
        count(&|o| o.outcome == Outcome::Unknown),
        tally.fresh_acked.len(),
        tally.fresh_unknown.len(),
        lost.len(),
        tally.duplicates.len(),
        if bad.is_empty() { "yes" } else { "NO" },
    );
    for report in &bad {
        eprintln!("not linearizable: {report}");
    }
    if !bad.is_empty() || !lost.is_empty() || !tally.duplicates.is_empty() || !tally.unexpected.is_empty() {
        cluster.dump_logs();
    }
    assert!(tally.unexpected.is_empty(), "unexpected answers: {:?}", tally.unexpected);
    assert!(lost.is_empty(), "acknowledged inserts lost: {lost:?}");
    assert!(phantom.is_empty(), "rows nobody wrote: {phantom:?}");
    assert!(tally.duplicates.is_empty(), "{:?}", tally.duplicates);
    assert!(bad.is_empty(), "history not linearizable: {bad:?}");
    assert!(kills + pauses + restarts >= 3, "the nemesis did too little");
    assert!(
        tally.fresh_acked.len() > 10 && count(&|o| o.outcome == Outcome::Written) > 10,
        "too little work got through"
    );
}
