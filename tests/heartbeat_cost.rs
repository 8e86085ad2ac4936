//! What a tablet server heartbeat costs the leader master, against real master processes
//! and simulated tablet servers speaking the real TSHeartbeat RPC: a heartbeat that changes
//! nothing appends no Raft entry, one whose report changes a tablet's configuration appends
//! one; concurrent heartbeats share read-index rounds, which wait for the leader's periodic
//! Raft heartbeat rather than sending one, and followers never answer as leader.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, WAIT, http_get, simple_schema, wait_for};
use kudu::client::MasterClient;
use kudu::pb::master as pb;
use kudu::pb::master::master_service_client::MasterServiceClient;
use tonic::transport::Channel;

/// A simulated tablet server: an id and an address (never contacted by these tests).
fn server(i: usize) -> (String, String) {
    (format!("sim-{i:04}"), format!("127.77.{}.{}:7050", i / 250, i % 250 + 1))
}

async fn beat(
    master: &mut MasterServiceClient<Channel>,
    i: usize,
    cluster_id: &str,
    replicas: Vec<pb::ReportedReplica>,
) -> Result<pb::TsHeartbeatResponse, tonic::Status> {
    let (uuid, rpc_address) = server(i);
    let request = pb::TsHeartbeatRequest {
        instance_id: format!("{uuid}-instance"),
        ts_uuid: uuid,
        rpc_address,
        replicas,
        cluster_id: cluster_id.to_string(),
        ..Default::default()
    };
    master.ts_heartbeat(request).await.map(tonic::Response::into_inner)
}

/// A RUNNING replica of `tablet` in `term` led by server `leader`, voters servers 0..3.
fn running(tablet: &str, term: u64, leader: usize) -> pb::ReportedReplica {
    pb::ReportedReplica {
        tablet_id: tablet.to_string(),
        state: pb::ReplicaState::ReplicaRunning as i32,
        term,
        leader_uuid: server(leader).0,
        voter_uuids: (0..3).map(|i| server(i).0).collect(),
        ..Default::default()
    }
}

/// Waits until the leader at `leader` answers server 0's heartbeat as leader with the
/// cluster id, and returns the id.
async fn cluster_id(master: &MasterServiceClient<Channel>) -> String {
    wait_for("the cluster id", WAIT, || {
        let mut master = master.clone();
        async move {
            let r = beat(&mut master, 0, "", Vec::new()).await.ok()?;
            (r.leader_master && !r.cluster_id.is_empty()).then_some(r.cluster_id)
        }
    })
    .await
}

async fn commit_index(client: &MasterClient) -> u64 {
    client.list_masters().await.expect("list masters").commit_index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_heartbeats_that_change_a_tablet_configuration_append_raft_entries() {
    // Nothing else writes to the log on its own: no re-replication, no leader balancing.
    let flags = ["--max-concurrent-rereplications", "0", "--leader-balance-interval-ms", "0"].map(String::from);
    let cluster = Cluster::start_with_flags(1, 0, &flags);
    let leader = cluster.wait_leader().await;
    let mut master = MasterServiceClient::connect(format!("http://{leader}")).await.expect("connect");
    let id = cluster_id(&master).await;
    for i in 0..3 {
        assert!(beat(&mut master, i, &id, Vec::new()).await.expect("register").leader_master);
    }
    let client = cluster.client();
    client.create_table("t", &simple_schema(), 1, 3).await.expect("create");
    let tablet = client.get_table_locations("t").await.expect("locations").tablets[0].tablet_id.clone();

    // Heartbeats reporting nothing, then a sentinel write: exactly one entry (the sentinel).
    let base = commit_index(&client).await;
    for _ in 0..10 {
        for i in 0..3 {
            let r = beat(&mut master, i, &id, Vec::new()).await.expect("heartbeat");
            assert!(r.leader_master && r.create_replicas.len() == 1, "{r:?}");
        }
    }
    client.create_table("sentinel-1", &simple_schema(), 1, 3).await.expect("sentinel");
    assert_eq!(commit_index(&client).await, base + 1, "heartbeats that change nothing appended entries");

    // A report that supersedes the catalog's record appends one entry and is served.
    beat(&mut master, 0, &id, vec![running(&tablet, 1, 0)]).await.expect("report");
    wait_for("the reported leader", WAIT, || async {
        let l = client.get_table_locations("t").await.ok()?;
        (l.tablets[0].leader_ts_uuid == server(0).0).then_some(())
    })
    .await;
    assert_eq!(commit_index(&client).await, base + 2);

    // The same report again, from every replica: nothing new to record.
    for _ in 0..10 {
        for i in 0..3 {
            beat(&mut master, i, &id, vec![running(&tablet, 1, 0)]).await.expect("same report");
        }
    }
    client.create_table("sentinel-2", &simple_schema(), 1, 3).await.expect("sentinel");
    assert_eq!(commit_index(&client).await, base + 3, "repeated reports appended entries");

    // A newer term is recorded again.
    beat(&mut master, 1, &id, vec![running(&tablet, 2, 1)]).await.expect("newer term");
    wait_for("the newer term recorded", WAIT, || async {
        let l = client.get_table_locations("t").await.ok()?;
        (l.tablets[0].term == 2 && l.tablets[0].leader_ts_uuid == server(1).0).then_some(())
    })
    .await;
    assert_eq!(commit_index(&client).await, base + 4);
}

/// The leader's count of read-index rounds started for heartbeats.
fn read_rounds(http: &str) -> u64 {
    let (status, body) = http_get(http, "/metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix("kudu_master_heartbeat_read_rounds_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no heartbeat read rounds in the metrics:\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_heartbeats_share_read_index_rounds_and_followers_never_answer_as_leader() {
    const SERVERS: usize = 400;
    let cluster = Cluster::start(3, 0);
    let leader = cluster.wait_leader().await;
    let http = cluster.masters.iter().find(|m| m.addr == leader).and_then(|m| m.http_addr.clone()).expect("http");
    let master = MasterServiceClient::connect(format!("http://{leader}")).await.expect("connect");
    let id = cluster_id(&master).await;

    let before = read_rounds(&http);
    let beats = (0..SERVERS).map(|i| {
        let (mut master, id) = (master.clone(), id.clone());
        tokio::spawn(async move { beat(&mut master, i, &id, Vec::new()).await })
    });
    for (i, beat) in futures::future::join_all(beats).await.into_iter().enumerate() {
        let r = beat.expect("joined").unwrap_or_else(|e| panic!("heartbeat {i}: {e}"));
        assert!(r.leader_master && r.cluster_id == id, "heartbeat {i}: {r:?}");
    }
    let rounds = read_rounds(&http) - before;
    assert!((1..=SERVERS as u64 / 2).contains(&rounds), "{rounds} read-index rounds for {SERVERS} heartbeats");

    // Followers record liveness but never instruct.
    for follower in cluster.masters.iter().filter(|m| m.addr != leader) {
        let mut client = MasterServiceClient::connect(format!("http://{}", follower.addr)).await.expect("connect");
        let r = beat(&mut client, 0, &id, Vec::new()).await.expect("a follower answers");
        assert!(!r.leader_master && r.create_replicas.is_empty(), "{r:?}");
    }
    let listed = cluster.client().list_tablet_servers().await.expect("servers");
    assert_eq!(listed.len(), SERVERS, "every heartbeat registered its server");
}

/// The masters' Raft heartbeat interval in the next test: long, so a round answered by a
/// Raft heartbeat of its own (milliseconds) is told apart from one that waits for a message
/// the leader sends its followers anyway.
const SLOW_RAFT_HEARTBEAT: Duration = Duration::from_millis(1_500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_read_rounds_wait_for_the_periodic_raft_heartbeat_instead_of_sending_one() {
    const BEATS: u32 = 6;
    // Nothing writes to the log on its own (a write's replication would answer a round early).
    let flags = [
        "--max-concurrent-rereplications".to_string(),
        "0".to_string(),
        "--leader-balance-interval-ms".to_string(),
        "0".to_string(),
        "--raft-heartbeat-interval-ms".to_string(),
        SLOW_RAFT_HEARTBEAT.as_millis().to_string(),
        "--raft-election-timeout-ms".to_string(),
        (SLOW_RAFT_HEARTBEAT * 5).as_millis().to_string(),
    ];
    let cluster = Cluster::start_with_flags(3, 0, &flags);
    let leader = cluster.wait_leader().await;
    let mut master = MasterServiceClient::connect(format!("http://{leader}")).await.expect("connect");
    let id = cluster_id(&master).await;

    // Each heartbeat is sent right after the previous one was answered, so its round needs a
    // quorum's acknowledgement of a later message to the followers: the next periodic Raft
    // heartbeat (every 1.5 s here) or the next broadcast of another linearizable read (the
    // re-replication round's, once a second). At most 2 + t/1 s + t/1.5 s such messages go
    // out in t seconds, so six heartbeats take at least 2.4 s; with a broadcast per round they
    // take milliseconds.
    let started = Instant::now();
    for i in 0..BEATS {
        let r = beat(&mut master, i as usize, &id, Vec::new()).await.expect("heartbeat");
        assert!(r.leader_master, "heartbeat {i} answered as by a non-leader: {r:?}");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2),
        "{BEATS} sequential heartbeats answered in {elapsed:?}: the read-index rounds sent Raft \
         heartbeats of their own"
    );
}
