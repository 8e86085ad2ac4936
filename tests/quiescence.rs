//! Quiescence of idle tablet groups with real tablet server processes: idle groups stop their
//! Raft timers; a request wakes them; a quiesced leader's death is still noticed and its
//! tablets elect new leaders; a tablet server that restarts does not depose live leaders of
//! quiesced groups.

mod common;
#[path = "common/traffic.rs"]
mod traffic;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Cluster, Proc, WAIT, simple_schema, try_http_get, wait_for};
use kudu::client::{KuduClient, ScanSpec};
use traffic::inserts;

const TABLETS: usize = 4;

fn kudu_client(cluster: &Cluster) -> KuduClient {
    common::kudu_client_for(&cluster.master_addrs(), Duration::from_secs(60), Duration::from_secs(10))
}

/// The tablet server's `kudu_tserver_replicas_quiesced` gauge.
fn quiesced_replicas(tserver: &Proc) -> Option<u64> {
    let (status, body) = try_http_get(tserver.http_addr.as_deref()?, "/metrics").ok()?;
    if status != 200 {
        return None;
    }
    body.lines().find_map(|l| l.strip_prefix("kudu_tserver_replicas_quiesced ")).and_then(|v| v.trim().parse().ok())
}

/// Waits until every replica on every running tablet server is quiesced.
async fn wait_all_quiesced(cluster: &Cluster, what: &str) {
    wait_for(what, WAIT, || async {
        cluster
            .tservers
            .iter()
            .filter(|t| t.is_running())
            .all(|t| quiesced_replicas(t) == Some(TABLETS as u64))
            .then_some(())
    })
    .await;
}

/// tablet id -> (term, leader uuid) as the replicas on `tservers` report them (the highest
/// term any replica knows, and the leader of that term).
async fn terms(client: &KuduClient, tservers: &[&Proc]) -> BTreeMap<String, (u64, String)> {
    let mut out: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for t in tservers {
        let listed = client.list_tablets(&t.addr).await.expect("list tablets");
        for r in listed.replicas {
            let entry = out.entry(r.tablet_id).or_default();
            if r.term > entry.0 || (r.term == entry.0 && entry.1.is_empty()) {
                *entry = (r.term, r.leader_uuid);
            }
        }
    }
    out
}

/// 1 master and 3 tablet servers (leader balancing off: the tests compare leaders and
/// terms), a table "quiet" of [`TABLETS`] RF 3 tablets holding rows 0..40, every replica
/// quiesced (idle for the quiesce delay, 5 s by default).
async fn quiet_cluster() -> (Cluster, KuduClient) {
    let no_balancing = ["--leader-balance-interval-ms".to_string(), "0".to_string()];
    let cluster = Cluster::start_with_flags(1, 3, &no_balancing);
    cluster.wait_leader().await;
    cluster.wait_tservers(3).await;
    let client = kudu_client(&cluster);
    client.masters().create_table("quiet", &simple_schema(), TABLETS as u32, 3).await.expect("create");
    client.wait_for_leaders("quiet", WAIT).await.expect("leaders");
    client.write("quiet", &inserts(0..40)).await.expect("insert");
    wait_all_quiesced(&cluster, "every replica quiesced").await;
    (cluster, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_groups_quiesce_wake_for_requests_and_still_fail_over() {
    let (mut cluster, client) = quiet_cluster().await;

    // A write and a scan wake the groups they reach and are served as usual.
    let outcome = client.write("quiet", &inserts(40..80)).await.expect("write to quiesced tablets");
    assert_eq!(outcome.applied, 40);
    assert_eq!(client.scan("quiet", &ScanSpec::default()).await.expect("scan").len(), 80);
    wait_all_quiesced(&cluster, "every replica quiesced again after the requests").await;

    // A server that restarts while the groups are quiet: the tablets it did not lead keep
    // their leader and term (its campaigns are refused while their leaders answer).
    // Every server hosts every tablet (RF 3 on 3 servers); its uuid, as the masters know it.
    let servers = client.masters().list_tablet_servers().await.expect("tablet servers");
    let uuids: Vec<String> = cluster
        .tservers
        .iter()
        .map(|t| servers.iter().find(|s| s.rpc_address == t.addr).map(|s| s.uuid.clone()).expect("registered"))
        .collect();
    let before = terms(&client, &cluster.tservers.iter().collect::<Vec<_>>()).await;
    assert_eq!(before.len(), TABLETS);
    let restarted = 0;
    cluster.tservers[restarted].kill();
    cluster.tservers[restarted].restart();
    let others: Vec<&Proc> =
        cluster.tservers.iter().enumerate().filter(|(i, _)| *i != restarted).map(|(_, t)| t).collect();
    // No request meanwhile: only the restarted replicas' own campaigns could wake the groups.
    wait_all_quiesced(&cluster, "every replica quiesced after the restart").await;
    let after = terms(&client, &others).await;
    for (tablet, (term, leader)) in &before {
        if *leader != uuids[restarted] {
            assert_eq!(after.get(tablet), Some(&(*term, leader.clone())), "tablet {tablet} changed leader or term");
        }
    }
    client.write("quiet", &inserts(80..120)).await.expect("write after the restart");
    wait_all_quiesced(&cluster, "every replica quiesced after the write").await;

    // The server leading the most tablets dies while they are quiet: its tablets elect new
    // leaders (their followers notice the silence) and take writes again.
    let current = terms(&client, &cluster.tservers.iter().collect::<Vec<_>>()).await;
    let led = |uuid: &str| current.values().filter(|(_, l)| l == uuid).count();
    let victim = (0..cluster.tservers.len()).max_by_key(|i| led(&uuids[*i])).expect("servers");
    assert!(led(&uuids[victim]) > 0, "some server leads a tablet: {current:?}");
    cluster.tservers[victim].kill();
    let outcome = client.write("quiet", &inserts(120..200)).await.expect("write after the leader's death");
    assert_eq!(outcome.applied, 80);
    let rows = client.scan("quiet", &ScanSpec::default()).await.expect("scan");
    let ids: Vec<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
    assert_eq!(ids, (0..200).collect::<Vec<_>>());
}

/// A tablet server that leads quiesced groups comes back at the same address on an empty
/// disk (a pod that lost its volume): it hosts none of their replicas and never campaigns,
/// yet answers pings. Its followers see a new incarnation and elect among themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_back_on_an_empty_disk_at_the_same_address_does_not_strand_its_groups() {
    let (mut cluster, client) = quiet_cluster().await;

    let servers = client.masters().list_tablet_servers().await.expect("tablet servers");
    let uuid_of = |addr: &str| servers.iter().find(|s| s.rpc_address == addr).map(|s| s.uuid.clone());
    let current = terms(&client, &cluster.tservers.iter().collect::<Vec<_>>()).await;
    let led = |i: usize| {
        let uuid = uuid_of(&cluster.tservers[i].addr);
        current.values().filter(|(_, l)| Some(l) == uuid.as_ref()).count()
    };
    let victim = (0..cluster.tservers.len()).max_by_key(|i| led(*i)).expect("servers");
    assert!(led(victim) > 0, "some server leads a tablet: {current:?}");
    cluster.tservers[victim].kill();
    cluster.tservers[victim].wipe();
    cluster.tservers[victim].restart();

    let outcome = match client.write("quiet", &inserts(40..80)).await {
        Ok(outcome) => outcome,
        Err(e) => {
            cluster.dump_logs();
            panic!("write after the leader lost its disk: {e}")
        }
    };
    assert_eq!(outcome.applied, 40);
    let rows = client.scan("quiet", &ScanSpec::default()).await.expect("scan");
    let ids: Vec<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
    assert_eq!(ids, (0..80).collect::<Vec<_>>());
}
