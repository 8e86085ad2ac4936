//! Leader failure and whole-cluster restart.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, WAIT, simple_schema, wait_for};
use kudu::catalog::{AlterStep, Column, ColumnType};
use kudu::pb::master as pb;
use kudu::pb::master::master_service_client::MasterServiceClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_is_replaced_and_catches_up_after_restart() {
    let mut cluster = Cluster::start(3, 1);
    let old_leader = cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    let client = cluster.client();
    client.create_table("before", &simple_schema(), 1, 1).await.expect("create before kill");

    cluster.master_by_addr(&old_leader).kill();
    // The client finds the new leader by itself.
    client.create_table("after", &simple_schema(), 1, 1).await.expect("create after kill");
    let new_leader = cluster.wait_leader().await;
    assert_ne!(new_leader, old_leader);

    // The killed master restarts, rejoins as a follower and catches up.
    cluster.master_by_addr(&old_leader).restart();
    client.create_table("after-restart", &simple_schema(), 1, 1).await.expect("create after restart");
    let old_id = wait_for("the restarted master to catch up", WAIT, || async {
        let list = client.list_masters().await.ok()?;
        let me = list.members.iter().find(|m| m.address == old_leader)?;
        (me.live && me.matched_index >= list.commit_index).then_some(me.node_id)
    })
    .await;

    // Prove the restarted master holds the data: with the other follower gone, it is
    // needed for a majority.
    let leader = cluster.wait_leader().await;
    let other = cluster.master_addrs().into_iter().find(|a| *a != leader && *a != old_leader).expect("third master");
    cluster.master_by_addr(&other).kill();
    client
        .create_table("needs-restarted", &simple_schema(), 1, 1)
        .await
        .expect("create with restarted master in quorum");
    let names: Vec<String> = client.list_tables().await.expect("list").into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["after", "after-restart", "before", "needs-restarted"]);
    // Same identity after a restart with its disk: never a new member.
    let list = client.list_masters().await.expect("list masters");
    assert!(list.members.iter().any(|m| m.node_id == old_id && m.address == old_leader));
    assert_eq!(list.members.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_keeps_every_acknowledged_change() {
    let mut cluster = Cluster::start(3, 1);
    cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    let client = cluster.client();
    for i in 0..5 {
        client.create_table(&format!("t{i}"), &simple_schema(), 2, 1).await.expect("create");
    }
    let extra = Column::new("extra", ColumnType::Double, true);
    client.alter_table("t1", &[AlterStep::AddColumn(extra)]).await.expect("add column");
    client.alter_table("t2", &[AlterStep::RenameTable("t2-renamed".into())]).await.expect("rename");
    client.delete_table("t3").await.expect("delete");
    let before = client.list_tables().await.expect("list before");

    // Two masters stop gracefully, the last one is killed.
    for m in &mut cluster.masters[..2] {
        assert!(m.stop(), "{} did not exit cleanly on SIGTERM:\n{}", m.name, m.log());
    }
    cluster.masters[2].kill();
    let ts = &mut cluster.tservers[0];
    assert!(ts.stop(), "the tablet server did not exit cleanly on SIGTERM:\n{}", ts.log());
    for m in &mut cluster.masters {
        m.restart();
    }
    cluster.tservers[0].restart();
    cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    let client = cluster.client();
    let after = client.list_tables().await.expect("list after");
    assert_eq!(after, before);
    let t1 = after.iter().find(|t| t.name == "t1").expect("t1");
    assert_eq!(t1.version, 1);
    assert!(t1.schema.as_ref().is_some_and(|s| s.columns.iter().any(|c| c.name == "extra")));
    assert!(after.iter().all(|t| t.name != "t3"));
    // Still writable after the restart.
    client.create_table("t5", &simple_schema(), 1, 1).await.expect("create after restart");
}

/// Measures the time from kill -9 of the leader to the next acknowledged DDL; prints the
/// median. A benchmark figure, not an assertion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_time_from_leader_kill_to_next_ddl() {
    let rounds: usize = std::env::var("KUDU_FAILOVER_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let mut cluster = Cluster::start(3, 1);
    cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    let client = cluster.client();
    client.create_table("warmup", &simple_schema(), 1, 1).await.expect("warm-up");
    let mut times = Vec::new();
    for round in 0..rounds {
        let leader = cluster.wait_leader().await;
        // The client knows the current leader before the kill, as a running client would.
        client.list_tables().await.expect("list");
        cluster.master_by_addr(&leader).kill();
        let started = Instant::now();
        client.create_table(&format!("round-{round}"), &simple_schema(), 1, 1).await.expect("DDL after kill");
        times.push(started.elapsed());
        cluster.master_by_addr(&leader).restart();
        wait_for("the restarted master to rejoin", WAIT, || async {
            let list = client.list_masters().await.ok()?;
            list.members.iter().all(|m| m.live && m.matched_index >= list.commit_index).then_some(())
        })
        .await;
    }
    times.sort();
    let median = times[times.len() / 2];
    let ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
    println!(
        "failover: leader kill -> next successful DDL, {rounds} rounds, median {} ms, all {ms:?}",
        median.as_millis()
    );
    assert_eq!(client.list_tables().await.expect("list").len(), rounds + 1);
}

/// A follower that was down while the leader snapshotted and purged its log catches up by
/// installing the catalog snapshot, and then holds the whole catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::start(3, 1);
    let leader = cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    let client = cluster.client();
    let follower = cluster.master_addrs().into_iter().find(|a| *a != leader).expect("follower");
    cluster.master_by_addr(&follower).kill();
    // The test masters snapshot every 200 entries and keep 100 entries behind a snapshot.
    const TABLES: usize = 320;
    for i in 0..TABLES {
        client.create_table(&format!("s{i:03}"), &simple_schema(), 1, 1).await.expect("create");
    }
    client.delete_table("s000").await.expect("delete");
    // Restart the follower only once the leader purged the entries it misses, so that
    // catching up needs the snapshot.
    let leader_http = cluster.master_by_addr(&leader).http_addr.clone().expect("http");
    wait_for("the leader to purge its log", WAIT, || {
        let leader_http = leader_http.clone();
        async move {
            let (_, metrics) =
                tokio::task::spawn_blocking(move || common::http_get(&leader_http, "/metrics")).await.ok()?;
            let purged: u64 = metrics
                .lines()
                .find_map(|l| l.strip_prefix("kudu_master_raft_purged_index "))
                .and_then(|v| v.trim().parse().ok())?;
            (purged > 50).then_some(())
        }
    })
    .await;
    cluster.master_by_addr(&follower).restart();
    wait_for("the restarted follower to catch up", WAIT, || async {
        let list = client.list_masters().await.ok()?;
        let me = list.members.iter().find(|m| m.address == follower)?;
        (me.live && me.matched_index >= list.commit_index).then_some(())
    })
    .await;
    let leader_log = cluster.master_by_addr(&leader).log();
    let proc = cluster.master_by_addr(&follower);
    assert!(
        proc.log().contains("installed catalog snapshot"),
        "no snapshot was installed:\n{}\n--- leader ---\n{leader_log}",
        proc.log()
    );
    let http = proc.http_addr.clone().expect("http");
    let page = wait_for("the follower's catalog page", WAIT, || {
        let http = http.clone();
        async move {
            let (_, page) = tokio::task::spawn_blocking(move || common::http_get(&http, "/tables")).await.ok()?;
            (page.matches("<td>s").count() == TABLES - 1).then_some(page)
        }
    })
    .await;
    assert!(!page.contains("<td>s000</td>"), "deleted table still on the follower");
}

/// Asks the master at `addr` whom it follows, waiting up to `wait_ms` for a leader of a term
/// above `newer_than_term`; returns the answer and how long it took.
async fn probe(addr: &str, newer_than_term: u64, wait_ms: u32) -> (pb::ConnectToMasterResponse, Duration) {
    let mut service = MasterServiceClient::connect(format!("http://{addr}")).await.expect("connect");
    let started = Instant::now();
    let answer = service
        .connect_to_master(pb::ConnectToMasterRequest { newer_than_term, wait_for_leader_ms: wait_ms })
        .await
        .expect("ConnectToMaster")
        .into_inner();
    (answer, started.elapsed())
}

/// A client that saw the leader fail asks the others to answer once a later leader exists:
/// a follower holds the probe rather than naming the dead leader, and answers with the new
/// one; the live leader itself answers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_after_a_leader_failure_is_answered_with_the_next_leader() {
    let mut cluster = Cluster::start(3, 0);
    let leader = cluster.wait_leader().await;
    let (answer, _) = probe(&leader, 0, 0).await;
    let term = answer.term;
    let follower = cluster.master_addrs().into_iter().find(|a| *a != leader).expect("a follower");

    // The leader answers as leader whatever term is asked for.
    let (answer, _) = probe(&leader, term, 2_000).await;
    assert_eq!(answer.role, pb::Role::Leader as i32);
    // A follower of that leader knows no later one: it waits the whole time (capped at 2 s),
    // then names the leader it has.
    let (answer, took) = probe(&follower, term, 5_000).await;
    assert!(took >= Duration::from_millis(1_900), "answered after {took:?} without a newer leader");
    assert_eq!(answer.leader_address, leader);

    cluster.master_by_addr(&leader).kill();
    let started = Instant::now();
    let new_leader = loop {
        let (answer, _) = probe(&follower, term, 2_000).await;
        assert_ne!(answer.leader_address, leader, "a waiting probe named the dead leader: {answer:?}");
        if !answer.leader_address.is_empty() {
            assert!(answer.term > term, "{answer:?}");
            break answer.leader_address;
        }
        assert!(started.elapsed() < WAIT, "no new leader within {WAIT:?}");
    };
    println!("probe answered with the new leader {new_leader} {:?} after the kill", started.elapsed());
    assert_eq!(cluster.wait_leader().await, new_leader);
}
