//! The seed's robustness test: clients run CreateTable / AlterTable / DeleteTable / reads
//! continuously while a nemesis forces leader elections (kill -9, SIGSTOP/SIGCONT,
//! step-down). At the end the recorded history must be linearizable: no acknowledged
//! operation lost, no table created twice. `KUDU_STRESS_SECS` sets the duration.

mod common;
#[path = "common/history.rs"]
mod history;
#[path = "common/wing_gong.rs"]
mod wing_gong;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, simple_schema};
use history::{Call, Op, Outcome};
use kudu::catalog::{AlterStep, Column, ColumnType};
use kudu::client::{ClientError, ClientOptions, MasterClient};
use kudu::pb::master as pb;

const CLIENTS: usize = 4;
const KEYS: usize = 5;

static CLOCK: AtomicU64 = AtomicU64::new(1);

fn tick() -> u64 {
    CLOCK.fetch_add(1, Ordering::SeqCst)
}

fn columns_of(t: &pb::TableInfo) -> BTreeSet<String> {
    t.schema.as_ref().map(|s| s.columns.iter().map(|c| c.name.clone()).collect()).unwrap_or_default()
}

fn outcome_of(result: Result<pb::TableInfo, ClientError>, definite: &str) -> Outcome {
    match result {
        Ok(t) => Outcome::Ok { columns: columns_of(&t), id: t.id },
        Err(e) => match e.code() {
            Some("TABLE_NOT_FOUND") if definite == "TABLE_NOT_FOUND" => Outcome::NotFound,
            Some("TABLE_ALREADY_EXISTS") if definite == "TABLE_ALREADY_EXISTS" => Outcome::AlreadyExists,
            Some("TIMED_OUT" | "NOT_THE_LEADER") => Outcome::Unknown,
            Some("NOT_ENOUGH_TABLET_SERVERS") => Outcome::NoEffect,
            Some(code) => Outcome::Unexpected(format!("{code}: {e}")),
            None => Outcome::Unknown,
        },
    }
}

fn stress_client(addrs: &[String]) -> MasterClient {
    MasterClient::new(
        addrs.to_vec(),
        ClientOptions { timeout: Duration::from_secs(15), rpc_timeout: Duration::from_secs(3), ..Default::default() },
    )
    .expect("client")
}

async fn run_op(client: &MasterClient, key: &str, choice: u32, column: String) -> (Call, Outcome) {
    match choice % 10 {
        0..=2 => {
            (Call::Create, outcome_of(client.create_table(key, &simple_schema(), 1, 1).await, "TABLE_ALREADY_EXISTS"))
        }
        3..=5 => {
            let col = Column::new(column.clone(), ColumnType::Int32, true);
            (
                Call::AddColumn(column),
                outcome_of(client.alter_table(key, &[AlterStep::AddColumn(col)]).await, "TABLE_NOT_FOUND"),
            )
        }
        6..=7 => {
            let outcome = match client.delete_table(key).await {
                Ok(id) => Outcome::Ok { id, columns: BTreeSet::new() },
                Err(e) => outcome_of(Err(e), "TABLE_NOT_FOUND"),
            };
            (Call::Delete, outcome)
        }
        _ => (Call::Read, outcome_of(client.get_table_schema(key).await, "TABLE_NOT_FOUND")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_under_forced_elections_is_linearizable() {
    let secs: u64 = std::env::var("KUDU_STRESS_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(45);
    let mut cluster = Cluster::start(3, 1);
    cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    let addrs = cluster.master_addrs();
    let ops: Arc<Mutex<Vec<Op>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));

    let mut workers = Vec::new();
    for w in 0..CLIENTS {
        let (ops, stop, addrs) = (ops.clone(), stop.clone(), addrs.clone());
        workers.push(tokio::spawn(async move {
            let client = stress_client(&addrs);
            let mut n: u32 = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let seed = (w as u32 + 1).wrapping_mul(2654435761).wrapping_add(n.wrapping_mul(40503));
                let key = format!("k{}", (seed >> 7) as usize % KEYS);
                let invoked = tick();
                let (call, outcome) = run_op(&client, &key, seed >> 13, format!("c{w}_{n}")).await;
                let returned = if outcome == Outcome::Unknown { u64::MAX } else { tick() };
                ops.lock().expect("ops").push(Op { key, call, outcome, invoked, returned });
            }
        }));
    }

    // The nemesis: rotate through kill -9, pause and step-down of the current leader.
    let started = Instant::now();
    let (mut kills, mut pauses, mut step_downs) = (0, 0, 0);
    let nemesis_client = stress_client(&addrs);
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let leader = cluster.wait_leader().await;
        match round % 3 {
            0 => {
                let m = cluster.master_by_addr(&leader);
                m.kill();
                tokio::time::sleep(Duration::from_millis(1000)).await;
                m.restart();
                kills += 1;
            }
            1 => {
                let m = cluster.master_by_addr(&leader);
                m.pause();
                tokio::time::sleep(Duration::from_millis(3000)).await;
                m.resume();
                pauses += 1;
            }
            _ => {
                if nemesis_client.step_down(None).await.is_ok() {
                    step_downs += 1;
                }
            }
        }
        round += 1;
    }
    cluster.wait_leader().await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }

    // Final reads of every name, then the check.
    let client = stress_client(&addrs);
    for k in 0..KEYS {
        let key = format!("k{k}");
        let invoked = tick();
        let outcome = outcome_of(client.get_table_schema(&key).await, "TABLE_NOT_FOUND");
        assert_ne!(outcome, Outcome::Unknown, "final read of {key} must succeed");
        ops.lock().expect("ops").push(Op { key, call: Call::Read, outcome, invoked, returned: tick() });
    }
    let tables = client.list_tables().await.expect("list");
    let names: BTreeSet<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), tables.len(), "a name appears twice");

    let ops = ops.lock().expect("ops").clone();
    let count = |f: &dyn Fn(&Op) -> bool| ops.iter().filter(|o| f(o)).count();
    let unknown = count(&|o| o.outcome == Outcome::Unknown);
    let unexpected: Vec<&Op> = ops.iter().filter(|o| matches!(o.outcome, Outcome::Unexpected(_))).collect();
    let base: BTreeSet<String> = ["id".to_string(), "v".to_string()].into();
    let check_started = Instant::now();
    let bad = history::check(&ops, &base);
    println!(
        "stress: {secs}s, {} operations ({} ok, {} definite failures, {unknown} unknown, {} refused for lack of live tablet servers), \
         nemesis: {kills} kill -9, {pauses} SIGSTOP, {step_downs} step-down; \
         creates acknowledged {}, alters acknowledged {}, deletes acknowledged {}; \
         history linearizable: {} (checked in {:?}), so lost acknowledged operations: {}",
        ops.len(),
        count(&|o| matches!(o.outcome, Outcome::Ok { .. })),
        count(&|o| matches!(o.outcome, Outcome::NotFound | Outcome::AlreadyExists)),
        count(&|o| o.outcome == Outcome::NoEffect),
        count(&|o| o.call == Call::Create && matches!(o.outcome, Outcome::Ok { .. })),
        count(&|o| matches!(o.call, Call::AddColumn(_)) && matches!(o.outcome, Outcome::Ok { .. })),
        count(&|o| o.call == Call::Delete && matches!(o.outcome, Outcome::Ok { .. })),
        if bad.is_empty() { "yes" } else { "NO" },
        check_started.elapsed(),
        if bad.is_empty() { "0" } else { "unknown (see the reports)" },
    );
    for report in &bad {
        eprintln!("not linearizable: {report}");
    }
    if !bad.is_empty() || !unexpected.is_empty() {
        cluster.dump_logs();
    }
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
    assert!(bad.is_empty(), "history not linearizable for {bad:?}");
    assert!(kills + pauses + step_downs >= 3, "the nemesis did too little");
}
