//! Re-replication with real processes (Kudu's 3-4-3 scheme): the replicas of a tablet server
//! silent for longer than the unresponsive timeout are replaced through each tablet's Raft
//! group, no acknowledged row is lost and writes go on; the server, when it comes back,
//! finds its replaced replicas tombstoned. With locations the replacement follows the
//! placement policy (the seed's A..E example); a master leader killed in the middle of a
//! move leaves it to the next leader.

mod common;
#[path = "common/traffic.rs"]
mod traffic;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{
    Cluster, WAIT, addrs_on_distinct_ips, cli, http_get, ip_of, kudu_client_for, mapping_flags, simple_schema, wait_for,
};
use kudu::client::KuduClient;
use kudu::pb::master as pb;
use traffic::{Writer, inserts, scan_ids};

fn client(cluster: &Cluster) -> KuduClient {
    kudu_client_for(&cluster.master_addrs(), Duration::from_secs(60), Duration::from_secs(5))
}

/// The uuid and address of every tablet server, by uuid.
async fn tservers(cluster: &Cluster) -> BTreeMap<String, pb::TabletServerEntry> {
    let servers = cluster.client().list_tablet_servers().await.expect("list tablet servers");
    servers.into_iter().map(|s| (s.uuid.clone(), s)).collect()
}

/// Waits until every tablet of `table` has `rf` voters, all on live servers outside
/// `excluded`, no move in progress, and each voter's own replica RUNNING with exactly those
/// voters as its committed configuration. Returns the tablets.
async fn wait_fully_replicated(
    cluster: &Cluster,
    client: &KuduClient,
    table: &str,
    rf: usize,
    excluded: &str,
) -> Vec<pb::TabletLocations> {
    wait_for(&format!("every tablet of {table} back to {rf} live voters"), WAIT * 2, || async {
        let locations = client.masters().get_table_locations(table).await.ok()?;
        let servers = tservers(cluster).await;
        let mut hosted: BTreeMap<String, Vec<kudu::pb::tserver::TabletReplica>> = BTreeMap::new();
        for tablet in &locations.tablets {
            if tablet.pending_move.is_some() || tablet.replicas.len() != rf {
                return None;
            }
            for r in &tablet.replicas {
                let server = servers.get(&r.ts_uuid)?;
                if r.ts_uuid == excluded || !server.live {
                    return None;
                }
                if !hosted.contains_key(&r.ts_uuid) {
                    let listing = client.list_tablets(&server.rpc_address).await.ok()?;
                    hosted.insert(r.ts_uuid.clone(), listing.replicas);
                }
                let own = hosted.get(&r.ts_uuid)?.iter().find(|h| h.tablet_id == tablet.tablet_id)?;
                let theirs: BTreeSet<&str> = own.peer_uuids.iter().map(String::as_str).collect();
                let catalog: BTreeSet<&str> = tablet.replicas.iter().map(|r| r.ts_uuid.as_str()).collect();
                if own.state != "RUNNING" || theirs != catalog {
                    return None;
                }
            }
        }
        Some(locations.tablets)
    })
    .await
}

/// Waits until the tablet server at `addr` holds no RUNNING replica of `tablets`, and
/// returns the states it lists them in.
async fn wait_tombstoned(client: &KuduClient, addr: &str, tablets: &BTreeSet<String>) -> Vec<String> {
    wait_for(&format!("{addr}'s replaced replicas to be tombstoned"), WAIT, || async {
        let listing = client.list_tablets(addr).await.ok()?;
        let states: Vec<String> =
            listing.replicas.iter().filter(|r| tablets.contains(&r.tablet_id)).map(|r| r.state.clone()).collect();
        states.iter().all(|s| s != "RUNNING").then_some(states)
    })
    .await
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The value of an unlabelled counter on a master's /metrics page.
fn metric(http_addr: &str, name: &str) -> Option<f64> {
    let (_, body) = http_get(http_addr, "/metrics");
    body.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// 1 master, 4 tablet servers, a 3 s unresponsive timeout, a table of 6 tablets with
/// replication factor 3 and rows; three rounds of: kill -9 a tablet server, every affected
/// tablet gets back to 3 voters on live servers while a writer keeps writing, restart it and
/// its replaced replicas are tombstoned (later rounds may move replicas onto a server holding
/// tombstones of the same tablets: they are reused). No acknowledged row is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_tablet_servers_replicas_are_replaced_and_tombstoned_when_they_return() {
    let mut cluster = Cluster::start(1, 4);
    cluster.wait_leader().await;
    cluster.wait_tservers(4).await;
    let client = client(&cluster);
    client.masters().create_table("moved", &simple_schema(), 6, 3).await.expect("create");
    client.wait_for_leaders("moved", WAIT).await.expect("leaders");
    for batch in 0..10 {
        client.write("moved", &inserts(batch * 30..(batch + 1) * 30)).await.expect("insert before");
    }
    let mut acked: BTreeSet<i64> = (0..300).collect();
    let writer = Writer::start(self::client(&cluster), "moved", 1_000_000);
    let mut times = Vec::new();
    for round in 0..3usize {
        let servers = tservers(&cluster).await;
        let locations = client.masters().get_table_locations("moved").await.expect("locations");
        // The victim: the round's server, by start order.
        let victim_addr = cluster.tservers[round].addr.clone();
        let victim = servers.values().find(|s| s.rpc_address == victim_addr).expect("victim listed").uuid.clone();
        let affected: BTreeSet<String> = locations
            .tablets
            .iter()
            .filter(|t| t.replicas.iter().any(|r| r.ts_uuid == victim))
            .map(|t| t.tablet_id.clone())
            .collect();
        assert!(!affected.is_empty(), "round {round}: the victim hosts replicas");
        let killed = Instant::now();
        cluster.tservers[round].kill();
        let tablets = wait_fully_replicated(&cluster, &client, "moved", 3, &victim).await;
        let took = killed.elapsed();
        times.push(took);
        println!("round {round}: {} tablets re-replicated {took:.1?} after kill -9", affected.len());
        assert!(tablets.iter().all(|t| t.replicas.iter().all(|r| r.ts_uuid != victim)));

        // The victim comes back: its replaced replicas are tombstoned, never re-created.
        cluster.tservers[round].restart();
        let states = wait_tombstoned(&client, &victim_addr, &affected).await;
        assert!(states.iter().all(|s| s == "TOMBSTONED"), "round {round}: {states:?}");
        cluster.wait_tservers(4).await;
    }
    // Round 1 killed a server holding all 6 tablets while the only free server held
    // tombstones of the tablets moved away from it in round 0: they were reused.
    let reused = cluster.tservers[0].log().matches("a tombstoned replica joins its tablet's group again").count();
    assert!(reused >= 1, "no tombstone reused on {}", cluster.tservers[0].addr);
    // Writes keep working after the last round.
    client.write("moved", &inserts(500..530)).await.expect("insert after");
    acked.extend(500..530);
    let (written, failed_batches) = writer.finish().await;
    acked.extend(written.iter().copied());
    let present = scan_ids(&client, "moved").await;
    let lost: Vec<&i64> = acked.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged rows lost: {lost:?}");
    assert!(written.len() > 100, "the writer got through: {} rows, {failed_batches} failed batches", written.len());
    println!(
        "kill -9 to full re-replication: {:?}, median {:.1?}; writer: {} rows acknowledged, {failed_batches} batches failed",
        times.iter().map(|t| format!("{t:.1?}")).collect::<Vec<_>>(),
        median(times.clone()),
        written.len()
    );

    // A healthy cluster passes ksck.
    let master = cluster.master_addrs().join(",");
    wait_for("ksck to pass after re-replication", WAIT, || async {
        let (ok, out, _) = cli(&["cluster", "ksck", "-m", &master]);
        ok.then_some(out)
    })
    .await;
}

/// The seed's example end to end: A..E in /L0, /L0, /L1, /L1, /L2; a tablet on A, C, E (one
/// per location; which /L0 and /L1 server is the placer's choice); C is killed: the
/// replacement must land on D (the other /L1 server), complying with the policy, and the
/// rows written before are all readable after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_example_replacement_of_c_lands_on_d() {
    let scripts = tempfile::tempdir().expect("tempdir");
    let addrs = addrs_on_distinct_ips(5, &[]);
    let location_of: BTreeMap<String, &str> = addrs.iter().cloned().zip(["/L0", "/L0", "/L1", "/L1", "/L2"]).collect();
    let cases: String = location_of.iter().map(|(a, l)| format!("{} ) echo {l} ;;\n", ip_of(a))).collect();
    let flags = mapping_flags(scripts.path(), &format!("case \"$1\" in\n{cases}esac"));
    let mut cluster = Cluster::start_with_flags(1, 0, &flags);
    for addr in &addrs {
        cluster.add_tserver_at(addr.clone());
    }
    cluster.wait_leader().await;
    let client = client(&cluster);
    wait_for("5 located tablet servers", WAIT, || async {
        let servers = client.masters().list_tablet_servers().await.ok()?;
        (servers.iter().filter(|s| s.live && !s.location.is_empty()).count() == 5).then_some(())
    })
    .await;
    client.masters().create_table("seed", &simple_schema(), 1, 3).await.expect("create");
    client.wait_for_leaders("seed", WAIT).await.expect("leader");
    client.write("seed", &inserts(0..100)).await.expect("insert");
    let locations = client.masters().get_table_locations("seed").await.expect("locations");
    let tablet = &locations.tablets[0];
    let by_location: BTreeMap<&str, &pb::ReplicaLocation> =
        tablet.replicas.iter().map(|r| (r.location.as_str(), r)).collect();
    assert_eq!(by_location.keys().copied().collect::<Vec<_>>(), ["/L0", "/L1", "/L2"], "{tablet:?}");
    // C: the /L1 server with the replica; D: the other one.
    let c = by_location["/L1"];
    let d_addr = addrs.iter().find(|a| location_of[*a] == "/L1" && **a != c.rpc_address).expect("D").clone();
    let master_http = cluster.masters[0].http_addr.clone().expect("http");
    let violations = "kudu_master_placement_policy_violations_total";
    let before = metric(&master_http, violations);

    let killed = Instant::now();
    cluster.tservers.iter_mut().find(|t| t.addr == c.rpc_address).expect("C").kill();
    let tablets = wait_fully_replicated(&cluster, &client, "seed", 3, &c.ts_uuid).await;
    println!("seed example: C replaced {:.1?} after kill -9", killed.elapsed());
    let hosts: BTreeSet<&str> = tablets[0].replicas.iter().map(|r| r.rpc_address.as_str()).collect();
    assert!(hosts.contains(d_addr.as_str()), "the replacement is on D ({d_addr}): {:?}", tablets[0]);
    let locations: BTreeSet<&str> = tablets[0].replicas.iter().map(|r| r.location.as_str()).collect();
    assert_eq!(locations, ["/L0", "/L1", "/L2"].into());
    assert_eq!(metric(&master_http, violations), before, "no violation was needed");
    assert_eq!(scan_ids(&client, "seed").await, (0..100).collect::<BTreeSet<i64>>());
    client.write("seed", &inserts(100..110)).await.expect("insert after");
}

/// 3 masters, 4 tablet servers, one tablet: a tablet server dies; as soon as the move is
/// recorded the destination is paused (so the move cannot finish) and the leader master is
/// killed. The next leader finds the move in the catalog and completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_interrupted_by_a_master_leader_failure_completes_under_the_next_leader() {
    let mut cluster = Cluster::start(3, 4);
    let first_leader = cluster.wait_leader().await;
    cluster.wait_tservers(4).await;
    let client = client(&cluster);
    client.masters().create_table("failover", &simple_schema(), 1, 3).await.expect("create");
    client.wait_for_leaders("failover", WAIT).await.expect("leader");
    client.write("failover", &inserts(0..200)).await.expect("insert");
    let locations = client.masters().get_table_locations("failover").await.expect("locations");
    let voters: BTreeSet<String> = locations.tablets[0].replicas.iter().map(|r| r.rpc_address.clone()).collect();
    // Kill a voter that does not lead the tablet (the tablet keeps its leader).
    let leader_uuid = locations.tablets[0].leader_ts_uuid.clone();
    let victim = locations.tablets[0].replicas.iter().find(|r| r.ts_uuid != leader_uuid).expect("a follower").clone();
    let destination = cluster.tservers.iter().position(|t| !voters.contains(&t.addr)).expect("the fourth server");
    let killed = Instant::now();
    cluster.tservers.iter_mut().find(|t| t.addr == victim.rpc_address).expect("victim").kill();

    let moving = wait_for("the move to be recorded", WAIT, || async {
        let locations = client.masters().get_table_locations("failover").await.ok()?;
        locations.tablets[0].pending_move.clone()
    })
    .await;
    cluster.tservers[destination].pause();
    cluster.master_by_addr(&first_leader).kill();
    assert_eq!(moving.from_uuid, victim.ts_uuid);
    let still = tokio::time::timeout(Duration::from_millis(1500), async {
        wait_for("a new leader master", WAIT, || async {
            let leader = cluster.wait_leader().await;
            (leader != first_leader).then_some(leader)
        })
        .await
    })
    .await;
    cluster.tservers[destination].resume();
    let new_leader = match still {
        Ok(leader) => leader,
        Err(_) => cluster.wait_leader().await,
    };
    assert_ne!(new_leader, first_leader);
    let tablets = wait_fully_replicated(&cluster, &client, "failover", 3, &victim.ts_uuid).await;
    println!("master failover mid-move: complete {:.1?} after the tablet server's kill -9", killed.elapsed());
    let hosts: BTreeSet<&str> = tablets[0].replicas.iter().map(|r| r.rpc_address.as_str()).collect();
    assert!(hosts.contains(cluster.tservers[destination].addr.as_str()), "{hosts:?}");
    // The new leader drove it to completion.
    let http = cluster.masters.iter().find(|m| m.addr == new_leader).and_then(|m| m.http_addr.clone()).expect("http");
    assert!(
        metric(&http, "kudu_master_replica_moves_completed_total").is_some_and(|n| n >= 1.0),
        "the new leader completed the move"
    );
    assert_eq!(scan_ids(&client, "failover").await, (0..200).collect::<BTreeSet<i64>>());
}
