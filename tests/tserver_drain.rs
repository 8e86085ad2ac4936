//! A tablet server's readiness as its tablet leaders see it, and its drain on SIGTERM, with
//! real processes: a follower that missed writes while paused is not ready until the leader
//! sees it caught up; a tablet server stopped under a writing client hands its tablet
//! leaderships to other servers before it exits, and no write fails.

mod common;
#[path = "common/traffic.rs"]
mod traffic;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Cluster, WAIT, simple_schema, tablet_leaders, try_http_get, wait_for};
use kudu::client::KuduClient;

/// The master never moves leaderships by itself here: every move is the test's doing.
fn no_balancing() -> Vec<String> {
    vec!["--leader-balance-interval-ms".to_string(), "0".to_string()]
}

async fn uuids(client: &KuduClient, cluster: &Cluster) -> Vec<String> {
    let mut out = Vec::new();
    for t in &cluster.tservers {
        out.push(client.list_tablets(&t.addr).await.expect("list tablets").uuid);
    }
    out
}

fn ready(http: &str) -> Option<(u16, String)> {
    try_http_get(http, "/ready").ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_missed_writes_is_ready_only_once_its_leader_sees_it_caught_up() {
    let cluster = Cluster::start_with_flags(1, 3, &no_balancing());
    cluster.wait_leader().await;
    cluster.wait_tservers(3).await;
    let client = common::kudu_client_for(&cluster.master_addrs(), Duration::from_secs(60), Duration::from_secs(5));
    client.masters().create_table("lag", &simple_schema(), 1, 3).await.expect("create");
    client.wait_for_leaders("lag", WAIT).await.expect("leaders");
    let uuids = uuids(&client, &cluster).await;
    let addrs: Vec<String> = cluster.tservers.iter().map(|t| t.addr.clone()).collect();
    let leader =
        wait_for("the tablet's leader", WAIT, || async { tablet_leaders(&client, &addrs).await.into_values().next() })
            .await;
    let follower = &cluster.tservers[uuids.iter().position(|u| *u != leader).expect("a follower")];
    let http = follower.http_addr.clone().expect("http");
    wait_for("the follower to be ready", WAIT, || async {
        ready(&http).filter(|(status, _)| *status == 200).map(drop)
    })
    .await;

    // The follower hangs while the leader and the other follower commit 100 writes; then
    // the leader hangs too, so nothing reaches the follower once it resumes.
    follower.pause();
    for batch in 0..100i64 {
        client.write("lag", &traffic::inserts([batch])).await.expect("write while a follower hangs");
    }
    let leader_proc = &cluster.tservers[uuids.iter().position(|u| *u == leader).expect("the leader's server")];
    leader_proc.pause();
    // Asked while it still hangs (the request waits in its socket), it answers as soon as
    // it resumes: not ready, although its own state looks fine (it knows its leader and
    // applied all it knows to be committed); its leader cannot see it caught up.
    let asked = {
        let http = http.clone();
        std::thread::spawn(move || ready(&http))
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    follower.resume();
    let answer = tokio::task::spawn_blocking(move || asked.join().expect("asking thread")).await.expect("join");
    leader_proc.resume();
    let (status, body) = answer.expect("an answer");
    println!("first /ready after resuming: {status}\n{body}");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("lagging replicas: 1") && body.contains("its leader at"), "{body}");

    // Once its leader replicated the 100 entries to it and saw it hold them, it is ready.
    let started = Instant::now();
    let body = wait_for("the follower to be ready again", WAIT, || async {
        ready(&http).filter(|(status, _)| *status == 200).map(|(_, body)| body)
    })
    .await;
    println!("ready again after {:?}:\n{body}", started.elapsed());
    assert!(body.starts_with("ok") && body.contains("lagging replicas: 0"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_tablet_leaderships_over_before_the_server_exits_and_no_write_fails() {
    const TABLETS: u32 = 6;
    let mut cluster = Cluster::start_with_flags(1, 3, &no_balancing());
    cluster.wait_leader().await;
    cluster.wait_tservers(3).await;
    let client = common::kudu_client_for(&cluster.master_addrs(), Duration::from_secs(60), Duration::from_secs(5));
    client.masters().create_table("drain", &simple_schema(), TABLETS, 3).await.expect("create");
    client.wait_for_leaders("drain", WAIT).await.expect("leaders");
    let uuids = uuids(&client, &cluster).await;
    let addrs: Vec<String> = cluster.tservers.iter().map(|t| t.addr.clone()).collect();

    let writer_client =
        common::kudu_client_for(&cluster.master_addrs(), Duration::from_secs(60), Duration::from_secs(5));
    let writer = traffic::Writer::start(writer_client, "drain", 0);
    let acked = writer.acked();
    wait_for("writes to be acknowledged", WAIT, || async { (acked.lock().expect("acked").len() >= 100).then_some(()) })
        .await;

    // The server leading the most tablets stops (SIGTERM, as a pod deletion sends).
    let before = wait_for("every tablet to have a leader", WAIT, || async {
        let l = tablet_leaders(&client, &addrs).await;
        (l.len() == TABLETS as usize).then_some(l)
    })
    .await;
    let victim =
        (0..uuids.len()).max_by_key(|i| before.values().filter(|l| **l == uuids[*i]).count()).expect("a server");
    let led: BTreeSet<String> = before.iter().filter(|(_, l)| **l == uuids[victim]).map(|(t, _)| t.clone()).collect();
    assert!(!led.is_empty());
    let started = Instant::now();
    let clean = tokio::task::block_in_place(|| cluster.tservers[victim].stop());
    let took = started.elapsed();
    assert!(clean, "the tablet server did not exit cleanly:\n{}", cluster.tservers[victim].log());

    // Right after it exited, each tablet it led already has a leader elsewhere: handed
    // over, not elected after an election timeout (1.5 to 3 s) without it.
    let others: Vec<String> = addrs.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, a)| a.clone()).collect();
    let after = tablet_leaders(&client, &others).await;
    let since_exit = started.elapsed() - took;
    for tablet in &led {
        let new = after.get(tablet);
        assert!(
            new.is_some_and(|l| *l != uuids[victim]),
            "tablet {tablet} has no leader on another server {since_exit:?} after the exit: {after:?}\n{}",
            cluster.tservers[victim].log()
        );
    }
    let log = cluster.tservers[victim].log();
    assert!(log.contains("draining: tablet leaderships handed over") && log.contains("still_led=0"), "{log}");

    // Writes go on against the new leaders; none failed.
    let acked_at_stop = acked.lock().expect("acked").len();
    wait_for("writes after the drain", WAIT, || async {
        (acked.lock().expect("acked").len() >= acked_at_stop + 100).then_some(())
    })
    .await;
    let (acked, failed) = writer.finish().await;
    let issued = acked.len() / 10 + failed;
    println!("drained {} leaderships in {took:?}; write requests issued: {issued}, failed: {failed}", led.len());
    assert_eq!(failed, 0, "failed write requests");
    let scanned = traffic::scan_ids(&client, "drain").await;
    assert!(acked.is_subset(&scanned), "acknowledged rows lost");
}
