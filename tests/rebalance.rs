//! `kudu cluster rebalance` with real processes: tables created before locations were
//! configured break the placement policy once the masters run a mapping command; the
//! rebalancer (`--report-only` first, which changes nothing) moves replicas through each
//! tablet's Raft group until ksck is clean, while a writer and a reader keep going and no
//! acknowledged row is lost; a rerun moves nothing. A tablet server added later gets its
//! share of the replicas.

mod common;
#[path = "common/traffic.rs"]
mod traffic;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    Cluster, WAIT, addrs_on_distinct_ips, cli, ip_of, kudu_client_for, mapping_flags, simple_schema, wait_for,
};
use kudu::client::{KuduClient, ScanSpec};
use kudu::pb::master as pb;
use serde_json::Value;
use traffic::{Writer, inserts, scan_ids};

fn client(cluster: &Cluster) -> KuduClient {
    kudu_client_for(&cluster.master_addrs(), Duration::from_secs(60), Duration::from_secs(5))
}

/// Runs the CLI off the async workers (it blocks until the command exits).
async fn kudu(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || cli(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .expect("cli task")
}

/// `kudu cluster rebalance -m MASTERS ARGS --format json`, parsed.
async fn rebalance(cluster: &Cluster, extra: &[&str]) -> Value {
    let mut args: Vec<String> = ["cluster", "rebalance", "-m", &cluster.master_addrs().join(","), "--format", "json"]
        .map(String::from)
        .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    let (ok, out, err) = kudu(args.clone()).await;
    assert!(ok, "{args:?} failed: {err}\n{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

/// Each tablet's voters, by tablet id, and whether any tablet has a move in progress.
async fn layout(client: &KuduClient, tables: &[&str]) -> (BTreeMap<String, BTreeSet<String>>, bool) {
    let mut voters = BTreeMap::new();
    let mut moving = false;
    for table in tables {
        let locations = client.masters().get_table_locations(table).await.expect("locations");
        for t in locations.tablets {
            moving |= t.pending_move.is_some();
            voters.insert(t.tablet_id, t.replicas.into_iter().map(|r| r.ts_uuid).collect());
        }
    }
    (voters, moving)
}

/// Tablets of `tables` with a majority of their replicas in one location.
async fn violations(client: &KuduClient, tables: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for table in tables {
        let locations = client.masters().get_table_locations(table).await.expect("locations");
        for t in locations.tablets {
            let mut per_location: BTreeMap<&str, usize> = BTreeMap::new();
            for r in &t.replicas {
                *per_location.entry(r.location.as_str()).or_default() += 1;
            }
            if per_location.values().any(|&n| n * 2 > t.replicas.len()) {
                found.push(format!("{table}/{}: {per_location:?}", t.tablet_id));
            }
        }
    }
    found
}

/// A writer inserting batches of fresh ids and a reader scanning the whole table, until
/// stopped. The reader checks that every scan returns every row acknowledged before it began.
struct Traffic {
    writer: Writer,
    scans: Arc<AtomicUsize>,
    missing: Arc<Mutex<Vec<i64>>>,
    reader: tokio::task::JoinHandle<usize>,
}

impl Traffic {
    fn start(writer: KuduClient, reader: KuduClient, table: &str, acked: BTreeSet<i64>, first_id: i64) -> Traffic {
        let writer = Writer::start_with(writer, table, first_id, acked);
        let scans = Arc::new(AtomicUsize::new(0));
        let missing: Arc<Mutex<Vec<i64>>> = Arc::default();
        let (t, s, a, n, m) = (table.to_string(), writer.stopping(), writer.acked(), scans.clone(), missing.clone());
        let read = tokio::spawn(async move {
            let mut failures = 0usize;
            while !s.load(Ordering::Relaxed) {
                let before: BTreeSet<i64> = a.lock().expect("acked").clone();
                match reader.scan(&t, &ScanSpec::default()).await {
                    Ok(rows) => {
                        let seen: BTreeSet<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
                        m.lock().expect("missing").extend(before.difference(&seen));
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => failures += 1,
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            failures
        });
        Traffic { writer, scans, missing, reader: read }
    }

    /// Stops both; returns the acknowledged ids, failed write batches, successful and
    /// failed scans, and the ids some scan missed.
    async fn finish(self) -> (BTreeSet<i64>, usize, usize, usize, Vec<i64>) {
        let (acked, failed_batches) = self.writer.finish().await;
        let failed_scans = self.reader.await.expect("reader");
        let missing = self.missing.lock().expect("missing").clone();
        (acked, failed_batches, self.scans.load(Ordering::Relaxed), failed_scans, missing)
    }
}

/// 1 master, 6 tablet servers on distinct IPs, no mapping command: tables are placed
/// without locations. The masters are then restarted with a mapping command that puts two
/// servers in each of /L0../L2, chosen so that at least one tablet holds two of its three
/// replicas in one location. `--report-only` shows the violations and changes nothing;
/// the rebalancer fixes them (and evens the loads) while rows are written and read, ksck is
/// clean, no acknowledged row is lost, and a second run moves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_placed_before_locations_are_rebalanced_while_rows_are_written() {
    let addrs = addrs_on_distinct_ips(6, &[]);
    let mut cluster = Cluster::start(1, 0);
    for addr in &addrs {
        cluster.add_tserver_at(addr.clone());
    }
    cluster.wait_leader().await;
    cluster.wait_tservers(6).await;
    let client = client(&cluster);
    let tables = ["rows", "more", "most"];
    for (i, table) in tables.iter().enumerate() {
        client.masters().create_table(table, &simple_schema(), 2 + i as u32, 3).await.expect("create");
        client.wait_for_leaders(table, WAIT).await.expect("leaders");
    }
    for batch in 0..10 {
        client.write("rows", &inserts(batch * 30..(batch + 1) * 30)).await.expect("insert before");
    }

    // Locations: the first tablet's first two replicas share /L0, so it breaks the policy.
    let servers: BTreeMap<String, pb::TabletServerEntry> =
        client.masters().list_tablet_servers().await.expect("list").into_iter().map(|s| (s.uuid.clone(), s)).collect();
    let first = client.masters().get_table_locations("rows").await.expect("locations").tablets.remove(0);
    let mut order: Vec<String> = first.replicas.iter().map(|r| r.rpc_address.clone()).collect();
    let others: Vec<String> = servers.values().map(|s| s.rpc_address.clone()).filter(|a| !order.contains(a)).collect();
    order.extend(others);
    let location_of: BTreeMap<String, &str> =
        order.iter().cloned().zip(["/L0", "/L0", "/L1", "/L1", "/L2", "/L2"]).collect();
    let scripts = tempfile::tempdir().expect("tempdir");
    let cases: String = location_of.iter().map(|(a, l)| format!("{} ) echo {l} ;;\n", ip_of(a))).collect();
    let flags = mapping_flags(scripts.path(), &format!("case \"$1\" in\n{cases}esac"));
    let master = &mut cluster.masters[0];
    master.stop();
    master.add_args(&flags);
    master.restart();
    cluster.wait_leader().await;
    let located = wait_for("6 live tablet servers with their locations", WAIT, || async {
        let servers = client.masters().list_tablet_servers().await.ok()?;
        (servers.iter().filter(|s| s.live && !s.location.is_empty()).count() == 6).then_some(servers)
    })
    .await;
    for s in &located {
        assert_eq!(Some(&s.location.as_str()), location_of.get(&s.rpc_address), "{s:?}");
    }
    let broken = violations(&client, &tables).await;
    assert!(!broken.is_empty(), "the first tablet breaks the policy");
    let masters = cluster.master_addrs().join(",");
    let (ok, out, _) = kudu(["cluster", "ksck", "-m", &masters].map(String::from).to_vec()).await;
    assert!(!ok && out.contains("PLACEMENT_VIOLATION"), "ksck reports the violations:\n{out}");

    // --report-only: the plan fixes every violation, and nothing moves.
    let (before, moving) = layout(&client, &tables).await;
    assert!(!moving);
    let report = rebalance(&cluster, &["--report-only", "--seed", "7"]).await;
    assert_eq!(report["current"]["policy_violations"].as_u64(), Some(broken.len() as u64), "{report:#}");
    assert_eq!(report["expected"]["policy_violations"].as_u64(), Some(0), "{report:#}");
    let planned = report["moves"].as_array().expect("moves");
    assert!(planned.len() >= broken.len(), "{report:#}");
    assert_eq!(planned[0]["reason"], "PLACEMENT_POLICY", "{report:#}");
    let again = rebalance(&cluster, &["--report-only", "--seed", "7"]).await;
    assert_eq!(again["moves"], report["moves"], "the same seed gives the same plan");
    assert_eq!(layout(&client, &tables).await, (before.clone(), false), "--report-only moved nothing");

    // Rebalance while rows are written and read.
    let traffic = Traffic::start(self::client(&cluster), self::client(&cluster), "rows", (0..300).collect(), 1_000_000);
    let run = rebalance(&cluster, &["--max-moves-per-server", "2"]).await;
    let (acked, failed_batches, scans, failed_scans, missing) = traffic.finish().await;
    let completed = run["completed"].as_u64().expect("completed");
    let per_minute = run["moves_per_minute"].as_f64().expect("moves per minute");
    println!(
        "rebalance: {completed} moves in {:.1}s over {} rounds: {per_minute:.1} moves per minute; \
         writer {} rows acknowledged, {failed_batches} batches failed; reader {scans} scans, {failed_scans} failed",
        run["seconds"].as_f64().unwrap_or_default(),
        run["rounds"],
        acked.len()
    );
    assert!(completed as usize >= broken.len(), "{run:#}");
    assert_eq!(run["given_up"].as_u64(), Some(0), "{run:#}");
    assert_eq!(run["after"]["policy_violations"].as_u64(), Some(0), "{run:#}");
    assert!(run["after"]["server_skew"].as_u64().is_some_and(|s| s <= 1), "{run:#}");
    assert!(per_minute > 0.0);
    assert!(missing.is_empty(), "scans missed acknowledged rows: {missing:?}");
    assert!(scans > 0, "the reader got through during the moves");
    assert!(acked.len() > 300 + 100, "the writer got through: {} rows, {failed_batches} failed batches", acked.len());
    assert_eq!(violations(&client, &tables).await, Vec::<String>::new());
    let (after, moving) = layout(&client, &tables).await;
    assert!(!moving);
    assert_ne!(after, before);
    assert!(after.values().all(|voters| voters.len() == 3), "{after:?}");

    // Every acknowledged row is there, ksck is clean, and writing still works.
    let present = scan_ids(&client, "rows").await;
    let lost: Vec<&i64> = acked.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged rows lost: {lost:?}");
    client.write("rows", &inserts(500..510)).await.expect("insert after");
    wait_for("ksck to pass after rebalancing", WAIT, || async {
        let (ok, out, _) = kudu(["cluster", "ksck", "-m", &masters].map(String::from).to_vec()).await;
        ok.then_some(out)
    })
    .await;

    // A balanced cluster: a rerun moves nothing.
    let rerun = rebalance(&cluster, &[]).await;
    assert_eq!((rerun["completed"].as_u64(), rerun["rounds"].as_u64()), (Some(0), Some(0)), "{rerun:#}");
    assert_eq!(layout(&client, &tables).await, (after, false));
}

/// 3 tablet servers hold a table of 6 tablets (6 replicas each); a fourth server joins
/// empty. The rebalancer (text output) moves replicas to it until the loads are 4 or 5,
/// and the rows are all still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tablet_server_added_later_gets_replicas() {
    let mut cluster = Cluster::start(1, 3);
    cluster.wait_leader().await;
    cluster.wait_tservers(3).await;
    let client = client(&cluster);
    client.masters().create_table("grow", &simple_schema(), 6, 3).await.expect("create");
    client.wait_for_leaders("grow", WAIT).await.expect("leaders");
    client.write("grow", &inserts(0..200)).await.expect("insert");
    cluster.add_tserver();
    cluster.wait_tservers(4).await;
    let new_addr = cluster.tservers[3].addr.clone();

    let masters = cluster.master_addrs().join(",");
    let (ok, out, err) = kudu(["cluster", "rebalance", "-m", &masters].map(String::from).to_vec()).await;
    assert!(ok, "{err}\n{out}");
    assert!(out.contains("moves per minute"), "{out}");
    println!("{out}");
    let servers = client.masters().list_tablet_servers().await.expect("list");
    let loads: BTreeMap<&str, u32> = servers.iter().map(|s| (s.rpc_address.as_str(), s.num_replicas)).collect();
    assert_eq!(loads.values().sum::<u32>(), 18, "{loads:?}");
    assert!(loads.values().all(|&n| n == 4 || n == 5), "{loads:?}");
    assert!(loads.get(new_addr.as_str()).is_some_and(|&n| n >= 4), "the new server got replicas: {loads:?}");
    assert_eq!(scan_ids(&client, "grow").await, (0..200).collect::<BTreeSet<i64>>());
    let report = rebalance(&cluster, &["--report-only"]).await;
    assert_eq!(report["moves"].as_array().map(Vec::len), Some(0), "{report:#}");
}

/// An interrupted run loses nothing: the rebalancer is killed as soon as its first moves are
/// recorded, the masters complete those moves on their own, and a rerun plans around what
/// is left and finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rebalance_is_completed_by_the_masters_and_a_rerun() {
    let mut cluster = Cluster::start(1, 2);
    cluster.wait_leader().await;
    cluster.wait_tservers(2).await;
    let client = client(&cluster);
    client.masters().create_table("halt", &simple_schema(), 8, 1).await.expect("create");
    client.wait_for_leaders("halt", WAIT).await.expect("leaders");
    client.write("halt", &inserts(0..100)).await.expect("insert");
    cluster.add_tserver();
    cluster.add_tserver();
    cluster.wait_tservers(4).await;

    let masters = cluster.master_addrs().join(",");
    let mut run = std::process::Command::new(common::kudu_bin())
        .args(["cluster", "rebalance", "-m", &masters, "--max-moves-per-server", "1"])
        .env("KUDU_INSECURE", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start kudu cluster rebalance");
    let recorded = wait_for("the first moves to be recorded", WAIT, || async {
        let (voters, moving) = layout(&client, &["halt"]).await;
        moving.then_some(voters)
    })
    .await;
    run.kill().expect("kill the rebalancer");
    run.wait().expect("reap the rebalancer");
    // The masters finish the recorded moves without the command.
    let (after_kill, _) = wait_for("the recorded moves to end", WAIT, || async {
        let (voters, moving) = layout(&client, &["halt"]).await;
        (!moving).then_some((voters, ()))
    })
    .await;
    assert_ne!(after_kill, recorded, "the recorded moves completed");
    let rerun = rebalance(&cluster, &[]).await;
    println!(
        "rerun after an interruption: {} moves, {:.1} moves per minute",
        rerun["completed"],
        rerun["moves_per_minute"].as_f64().unwrap_or_default()
    );
    let servers = client.masters().list_tablet_servers().await.expect("list");
    let loads: Vec<u32> = servers.iter().map(|s| s.num_replicas).collect();
    assert_eq!(loads, [2, 2, 2, 2], "{servers:?}");
    assert_eq!(scan_ids(&client, "halt").await, (0..100).collect::<BTreeSet<i64>>());
    let report = rebalance(&cluster, &["--report-only"]).await;
    assert_eq!(report["moves"].as_array().map(Vec::len), Some(0), "{report:#}");
}
