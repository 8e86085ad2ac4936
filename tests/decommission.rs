//! Decommissioning a tablet server with real processes: `kudu tserver decommission` marks
//! it, the leader master moves every replica off it (3-4-3, through each tablet's Raft
//! group) while writes go on, no acknowledged row is lost, new tablets avoid it, and a
//! decommission that would leave fewer servers than the replication factor is refused.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, WAIT, cli, kudu_client_for, simple_row, simple_schema, wait_for};
use kudu::client::{KuduClient, RowWrite, ScanSpec};
use kudu::pb::master as pb;
use kudu::tablet::OpKind;

fn client(cluster: &Cluster) -> KuduClient {
    kudu_client_for(&cluster.master_addrs(), Duration::from_secs(60), Duration::from_secs(5))
}

fn inserts(ids: impl IntoIterator<Item = i64>) -> Vec<RowWrite> {
    ids.into_iter().map(|id| RowWrite { kind: OpKind::Insert, row: simple_row(id, Some("x")) }).collect()
}

async fn tservers(client: &KuduClient) -> Option<BTreeMap<String, pb::TabletServerEntry>> {
    let servers = client.masters().list_tablet_servers().await.ok()?;
    Some(servers.into_iter().map(|s| (s.uuid.clone(), s)).collect())
}

/// Inserts batches of fresh ids until stopped; returns the acknowledged ids.
fn start_writer(client: KuduClient, table: &str, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<BTreeSet<i64>> {
    let table = table.to_string();
    let acked: Arc<Mutex<BTreeSet<i64>>> = Arc::default();
    tokio::spawn(async move {
        let mut next = 1_000_000;
        while !stop.load(Ordering::Relaxed) {
            let ids: Vec<i64> = (next..next + 10).collect();
            next += 10;
            if let Ok(outcome) = client.write(&table, &inserts(ids.clone())).await
                && outcome.failures.is_empty()
            {
                acked.lock().expect("acked").extend(ids);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        acked.lock().expect("acked").clone()
    })
}

/// 1 master, 4 tablet servers, a table of 6 tablets with replication factor 3: one server
/// is decommissioned while a writer writes; it ends with no replica, every tablet has 3
/// voters elsewhere, and every acknowledged row reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decommissioned_tablet_server_is_drained_without_losing_rows() {
    let cluster = Cluster::start(1, 4);
    cluster.wait_leader().await;
    cluster.wait_tservers(4).await;
    let client = client(&cluster);
    client.masters().create_table("drained", &simple_schema(), 6, 3).await.expect("create");
    client.wait_for_leaders("drained", WAIT).await.expect("leaders");
    for batch in 0..10 {
        client.write("drained", &inserts(batch * 30..(batch + 1) * 30)).await.expect("insert before");
    }
    let masters = cluster.master_addrs().join(",");
    let servers = tservers(&client).await.expect("tablet servers");
    // The victim: the server with the most replicas (at least 6 * 3 / 4 of them).
    let victim = servers.values().max_by_key(|s| s.num_replicas).expect("a server").clone();
    assert!(victim.num_replicas >= 5, "{victim:?}");
    let others: Vec<String> = servers.keys().filter(|u| **u != victim.uuid).cloned().collect();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_writer(self::client(&cluster), "drained", stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let (ok, out, err) = cli(&["tserver", "decommission", &victim.uuid, "-m", &masters]);
    assert!(ok, "decommission: {out} {err}");

    // A second one would leave 2 servers for replication factor 3: refused, clearly.
    let (ok, out, err) = cli(&["tserver", "decommission", &others[0], "-m", &masters]);
    assert!(!ok, "decommissioning a second of four servers for RF 3 must fail: {out}");
    assert!(err.contains("largest replication factor in use (3)"), "{err}");

    // `kudu tserver list` shows the state; the victim drains to 0 replicas.
    let (ok, listed, _) = cli(&["tserver", "list", "-m", &masters]);
    assert!(ok && listed.contains("DECOMMISSIONING"), "{listed}");
    let locations = wait_for("the decommissioned server to hold no replica", WAIT * 2, || async {
        let servers = tservers(&client).await?;
        let entry = servers.get(&victim.uuid)?;
        if !entry.decommissioning || entry.num_replicas != 0 {
            return None;
        }
        let locations = client.masters().get_table_locations("drained").await.ok()?;
        let done = locations.tablets.iter().all(|t| {
            t.pending_move.is_none()
                && t.replicas.len() == 3
                && t.replicas
                    .iter()
                    .all(|r| r.ts_uuid != victim.uuid && servers.get(&r.ts_uuid).is_some_and(|s| s.live))
        });
        done.then_some(locations)
    })
    .await;
    println!("decommission: {} replicas moved in {:.1?}", victim.num_replicas, started.elapsed());
    assert_eq!(locations.tablets.len(), 6);

    // Writes went on during the moves and nothing acknowledged is lost.
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer");
    assert!(written.len() >= 50, "the writer got through the moves: {} rows", written.len());
    let mut acked: BTreeSet<i64> = (0..300).collect();
    acked.extend(written);
    let rows =
        wait_for("a full scan", WAIT, || async { client.scan("drained", &ScanSpec::default()).await.ok() }).await;
    let present: BTreeSet<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
    let lost: Vec<&i64> = acked.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged rows lost: {lost:?}");

    // New tablets never land on it.
    client.masters().create_table("fresh", &simple_schema(), 4, 3).await.expect("create after");
    let fresh = client.masters().get_table_locations("fresh").await.expect("locations");
    assert!(fresh.tablets.iter().all(|t| t.replicas.iter().all(|r| r.ts_uuid != victim.uuid)), "{fresh:?}");

    // Cancelling clears the mark.
    let (ok, out, err) = cli(&["tserver", "decommission", &victim.uuid, "--cancel", "-m", &masters]);
    assert!(ok, "cancel: {out} {err}");
    let servers = tservers(&client).await.expect("tablet servers");
    assert!(!servers[&victim.uuid].decommissioning);
}
