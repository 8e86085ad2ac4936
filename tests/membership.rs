//! Membership changes through the CLI: growing 1 -> 3 -> 5 -> 3 while DDL runs, replacing a
//! master whose disk was wiped, and refusing a removal that would lose quorum.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Cluster, WAIT, cli, client_for, simple_schema, wait_for};
use serde_json::Value;

/// `kudu master list --format json` against `masters`.
fn cli_members(masters: &[String]) -> Vec<Value> {
    let (ok, out, err) = cli(&["master", "list", "-m", &masters.join(","), "--format", "json"]);
    assert!(ok, "master list failed: {err}");
    serde_json::from_str::<Vec<Value>>(&out).expect("json")
}

fn cli_ok(args: &[&str]) -> String {
    let (ok, out, err) = cli(args);
    assert!(ok, "kudu {args:?} failed: {err}");
    out
}

async fn wait_voters(masters: &[String], n: usize) {
    let masters = masters.to_vec();
    wait_for(&format!("{n} live voters"), WAIT, || {
        let masters = masters.clone();
        async move {
            let members = tokio::task::spawn_blocking(move || cli_members(&masters)).await.ok()?;
            let voters = members.iter().filter(|m| m["voter"] == true && m["live"] == true).count();
            (voters == n && members.len() == n).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_1_3_5_then_shrink_to_3_while_ddl_runs() {
    let mut cluster = Cluster::start(1, 1);
    cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    let first = cluster.master_addrs()[0].clone();
    let started = std::time::Instant::now();

    // DDL runs throughout; every acknowledged create must survive.
    let stop = Arc::new(AtomicBool::new(false));
    let ddl = {
        let stop = stop.clone();
        let seeds = vec![first.clone()];
        tokio::spawn(async move {
            let client = client_for(&seeds);
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("grow-{i}");
                if client.create_table(&name, &simple_schema(), 1, 1).await.is_ok() {
                    acked.push(name);
                }
                i += 1;
            }
            acked
        })
    };

    // 1 -> 3 -> 5: each new master starts against the existing cluster and waits; the CLI adds it.
    let mut all = vec![first.clone()];
    for _ in 0..4 {
        let addr = common::free_addr();
        let mut seeds = all.clone();
        seeds.push(addr.clone());
        let m = cluster.new_master(addr.clone(), &seeds);
        cluster.masters.push(m);
        let probe = client_for(std::slice::from_ref(&addr));
        wait_for("the new master to wait for being added", WAIT, || async {
            let r = probe.connect_to(&addr).await.ok()?;
            (r.role == kudu::pb::master::Role::NonMember as i32).then_some(())
        })
        .await;
        let out = cli_ok(&["master", "add", &addr, "-m", &all.join(","), "--format", "json"]);
        let added: Value = serde_json::from_str(&out).expect("json");
        assert!(added["node_id"].as_u64().is_some_and(|id| id > 0), "{out}");
        all.push(addr);
        wait_voters(&all, all.len()).await;
        println!("{} voters after {:?}", all.len(), started.elapsed());
    }
    let members = cli_members(&all);
    assert_eq!(members.iter().filter(|m| m["role"] == "LEADER").count(), 1);
    assert!(members.iter().all(|m| m["term"].as_u64().is_some()));

    // 5 -> 3: remove the original seed master (perhaps the leader) and another one.
    for victim in [all[0].clone(), all[1].clone()] {
        cli_ok(&["master", "remove", &victim, "-m", &all.join(",")]);
        all.retain(|a| *a != victim);
        wait_voters(&all, all.len()).await;
        cluster.master_by_addr(&victim).kill();
        println!("{} voters after {:?}", all.len(), started.elapsed());
    }
    assert_eq!(all.len(), 3);

    stop.store(true, Ordering::Relaxed);
    let acked = ddl.await.expect("ddl task");
    assert!(!acked.is_empty());
    // A client that knows only the remaining masters sees every acknowledged table.
    let names: Vec<String> = client_for(&all).list_tables().await.expect("list").into_iter().map(|t| t.name).collect();
    for name in &acked {
        assert!(names.contains(name), "acknowledged table {name} lost");
    }
    // The tablet server followed the membership change without a restart.
    cluster.wait_tservers(1).await;
    println!("membership 1->3->5->3: {} creates acknowledged during the changes", acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_master_is_replaced_by_removing_old_id_and_adding_new() {
    let mut cluster = Cluster::start(3, 1);
    let leader = cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    let client = cluster.client();
    client.create_table("before", &simple_schema(), 1, 1).await.expect("create");
    let addrs = cluster.master_addrs();
    let victim = addrs.iter().find(|a| **a != leader).expect("follower").clone();
    let old_id = client
        .list_masters()
        .await
        .expect("list")
        .members
        .into_iter()
        .find(|m| m.address == victim)
        .expect("victim member")
        .node_id;

    // Disk lost: the master comes back empty, with a new id, and waits to be added.
    let proc = cluster.master_by_addr(&victim);
    proc.kill();
    proc.wipe();
    proc.restart();
    let new_id = wait_for("the wiped master to answer", WAIT, || async {
        let r = client.connect_to(&victim).await.ok()?;
        (r.node_id != 0).then_some(r.node_id)
    })
    .await;
    assert_ne!(new_id, old_id, "a wiped master must not reuse its old id");

    // Adding it while its old identity is still a member is refused with a clear message.
    let (ok, _, err) = cli(&["master", "add", &victim, "-m", &addrs.join(",")]);
    assert!(!ok);
    assert!(err.contains(&old_id.to_string()) && err.contains("remove"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");

    cli_ok(&["master", "remove", &old_id.to_string(), "-m", &addrs.join(",")]);
    cli_ok(&["master", "add", &victim, "-m", &addrs.join(",")]);
    wait_voters(&addrs, 3).await;
    let members = cli_members(&addrs);
    assert!(members.iter().any(|m| m["node_id"] == new_id && m["address"] == victim.as_str()));
    assert!(members.iter().all(|m| m["node_id"] != old_id));

    // The replacement holds the catalog: with another member down it is needed for quorum.
    let leader = cluster.wait_leader().await;
    let other = addrs.iter().find(|a| **a != leader && **a != victim).expect("third").clone();
    cluster.master_by_addr(&other).kill();
    client.create_table("after", &simple_schema(), 1, 1).await.expect("create with replacement in quorum");
    let names: Vec<String> = client.list_tables().await.expect("list").into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["after", "before"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_that_would_lose_quorum_is_refused() {
    let mut cluster = Cluster::start(3, 0);
    let leader = cluster.wait_leader().await;
    let addrs = cluster.master_addrs();
    let followers: Vec<String> = addrs.iter().filter(|a| **a != leader).cloned().collect();
    cluster.master_by_addr(&followers[1]).kill();
    let client = cluster.client();
    wait_for("the leader to notice the dead follower", WAIT, || async {
        let list = client.list_masters().await.ok()?;
        list.members.iter().any(|m| m.address == followers[1] && !m.live).then_some(())
    })
    .await;

    // Removing the live follower would leave {leader, dead}: no live majority.
    let err = client.remove_master(Some(&followers[0]), None).await.expect_err("must be refused");
    assert_eq!(err.code(), Some("WOULD_LOSE_QUORUM"), "{err}");
    assert_eq!(client.list_masters().await.expect("list").members.len(), 3, "nothing changed");

    // Removing the dead one is safe.
    client.remove_master(Some(&followers[1]), None).await.expect("remove dead follower");
    let list = client.list_masters().await.expect("list");
    assert_eq!(list.members.len(), 2);
    // Removing an unknown member is a clear error.
    let err = client.remove_master(None, Some(12345)).await.expect_err("unknown member");
    assert_eq!(err.code(), Some("UNKNOWN_MEMBER"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_membership_change_is_refused_while_one_is_in_flight() {
    let mut cluster = Cluster::start(3, 0);
    let leader = cluster.wait_leader().await;
    let addrs = cluster.master_addrs();
    let new_addr = common::free_addr();
    let mut seeds = addrs.clone();
    seeds.push(new_addr.clone());
    let m = cluster.new_master(new_addr.clone(), &seeds);
    cluster.masters.push(m);
    let probe = client_for(std::slice::from_ref(&new_addr));
    wait_for("the new master to wait for being added", WAIT, || async {
        let r = probe.connect_to(&new_addr).await.ok()?;
        (r.role == kudu::pb::master::Role::NonMember as i32).then_some(())
    })
    .await;

    // With both followers paused, the leader cannot commit the change: it stays in flight.
    let followers: Vec<String> = addrs.iter().filter(|a| **a != leader).cloned().collect();
    for f in &followers {
        cluster.master_by_addr(f).pause();
    }
    let first = {
        let leader = leader.clone();
        let new_addr = new_addr.clone();
        tokio::spawn(async move { client_for(&[leader]).add_master(&new_addr).await })
    };
    let client = client_for(std::slice::from_ref(&leader));
    // The new master shows up as a (not yet committed) learner once the change is in flight.
    wait_for("the learner entry to be appended", WAIT, || async {
        let r = client.connect_to(&leader).await.ok()?;
        r.members.iter().any(|m| m.address == new_addr && !m.voter).then_some(())
    })
    .await;
    let refusal = client.remove_master(Some(&followers[0]), None).await.expect_err("must be refused");
    assert_eq!(refusal.code(), Some("MEMBERSHIP_CHANGE_IN_PROGRESS"), "{refusal}");
    assert!(refusal.to_string().contains("in progress"), "{refusal}");

    for f in &followers {
        cluster.master_by_addr(f).resume();
    }
    let added = match first.await.expect("task") {
        Ok(id) => id,
        Err(e) => {
            cluster.dump_logs();
            panic!("the first change must complete once a majority is back: {e}");
        }
    };
    assert!(added > 0);
    let list = cluster.client().list_masters().await.expect("list");
    assert_eq!(list.members.len(), 4, "exactly the first change happened");
    assert!(list.members.iter().all(|m| m.voter));
}
