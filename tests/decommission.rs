//! Decommissioning a tablet server with real processes: `kudu tserver decommission` marks
//! it, the leader master moves every replica off it (3-4-3, through each tablet's Raft
//! group) while writes go on, no acknowledged row is lost, new tablets avoid it, and a
//! decommission that would leave fewer servers than the replication factor is refused.

mod common;
#[path = "common/traffic.rs"]
mod traffic;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{Cluster, WAIT, cli, kudu_client_for, simple_schema, wait_for};
use kudu::client::KuduClient;
use kudu::pb::master as pb;
use traffic::{Writer, inserts, scan_ids};

fn client(cluster: &Cluster) -> KuduClient {
    kudu_client_for(&cluster.master_addrs(), Duration::from_secs(60), Duration::from_secs(5))
}

async fn tservers(client: &KuduClient) -> Option<BTreeMap<String, pb::TabletServerEntry>> {
    let servers = client.masters().list_tablet_servers().await.ok()?;
    Some(servers.into_iter().map(|s| (s.uuid.clone(), s)).collect())
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

    let writer = Writer::start(self::client(&cluster), "drained", 1_000_000);
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
    let (written, _) = writer.finish().await;
    assert!(written.len() >= 50, "the writer got through the moves: {} rows", written.len());
    let mut acked: BTreeSet<i64> = (0..300).collect();
    acked.extend(written);
    let present = scan_ids(&client, "drained").await;
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
