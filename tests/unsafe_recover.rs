//! `kudu master unsafe-recover`: a majority of masters lost for good (disks wiped); the
//! survivor cannot serve; after the offline recovery it serves alone with its catalog and
//! the group grows back to three voters by the normal AddMaster path. The refusals (master
//! running, no confirmation, not a master's directory, not a member) write nothing.

mod common;

use std::time::Duration;

use common::{Cluster, WAIT, cli, client_for, simple_schema, wait_for};
use kudu::client::{ClientOptions, MasterClient};

fn recover(data_dir: &std::path::Path, confirm: bool) -> (bool, String, String) {
    let dir = data_dir.display().to_string();
    let mut args = vec!["master", "unsafe-recover", "--data-dir", &dir];
    if confirm {
        args.push("--yes-i-know-this-may-lose-data");
    }
    cli(&args)
}

fn table_names(list: Vec<kudu::pb::master::TableInfo>) -> Vec<String> {
    let mut names: Vec<String> = list.into_iter().map(|t| t.name).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivor_of_a_lost_majority_is_recovered_and_the_group_grows_back() {
    let mut cluster = Cluster::start(3, 1);
    cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    let client = cluster.client();
    for name in ["t1", "t2"] {
        client.create_table(name, &simple_schema(), 2, 1).await.expect("create table");
    }
    let addrs = cluster.master_addrs();
    let leader = cluster.wait_leader().await;
    // The survivor is a follower that has everything: wait until it applied the tables.
    let survivor = addrs.iter().find(|a| **a != leader).expect("follower").clone();
    let lost: Vec<String> = addrs.iter().filter(|a| **a != survivor).cloned().collect();
    let commit = client.list_masters().await.expect("list").commit_index;
    wait_for("the survivor to replicate the catalog", WAIT, || async {
        let list = client.list_masters().await.ok()?;
        let me = list.members.iter().find(|m| m.address == survivor)?;
        (me.matched_index >= commit).then_some(())
    })
    .await;

    // Two masters lose their disks for good.
    for addr in &lost {
        let m = cluster.master_by_addr(addr);
        m.kill();
        m.wipe();
    }
    let survivor_client = MasterClient::new(
        vec![survivor.clone()],
        ClientOptions { timeout: Duration::from_secs(5), rpc_timeout: Duration::from_secs(2), ..Default::default() },
    )
    .expect("client");
    let err = survivor_client.create_table("nope", &simple_schema(), 1, 1).await.expect_err("no quorum");
    eprintln!("without quorum: {err}");

    // Refused while the master runs: RocksDB's lock says it is in use.
    let survivor_dir = cluster.master_by_addr(&survivor).data_dir.clone();
    let (ok, _, err) = recover(&survivor_dir, true);
    assert!(!ok);
    assert!(err.contains("in use") && err.contains("stop it first"), "{err}");

    cluster.master_by_addr(&survivor).stop();
    // Without the confirmation flag: prints the plan, refuses, writes nothing.
    let (ok, _, first) = recover(&survivor_dir, false);
    assert!(!ok);
    assert!(first.contains("--yes-i-know-this-may-lose-data") && first.contains("nothing was written"), "{first}");
    assert!(first.contains("UNSAFE") && first.contains("t1, t2") && first.contains("last log entry"), "{first}");
    let (_, _, second) = recover(&survivor_dir, false);
    assert_eq!(first, second, "a refused run changes nothing");

    // Not a master's data directory: empty, missing, a tablet server's.
    let empty = cluster.dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    for dir in [empty.clone(), cluster.dir.path().join("missing"), cluster.tservers[0].data_dir.clone()] {
        let (ok, _, err) = recover(&dir, true);
        assert!(!ok);
        assert!(err.contains("not a master's data directory"), "{}: {err}", dir.display());
    }
    assert!(!cluster.dir.path().join("missing").exists(), "nothing created");
    // A master that never joined (wiped, restarted, waiting to be added) is not a member.
    let (lost0, lost1) = (lost[0].clone(), lost[1].clone());
    let fresh = cluster.master_by_addr(&lost0);
    fresh.restart();
    let fresh_dir = fresh.data_dir.clone();
    let probe = client_for(std::slice::from_ref(&lost0));
    wait_for("the wiped master to start", WAIT, || async {
        probe.connect_to(&lost0).await.ok().filter(|r| r.node_id != 0).map(|_| ())
    })
    .await;
    cluster.master_by_addr(&lost0).stop();
    let (ok, _, err) = recover(&fresh_dir, true);
    assert!(!ok);
    assert!(err.contains("never joined"), "{err}");

    // The recovery itself.
    let (ok, out, err) = recover(&survivor_dir, true);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("now the only voter"), "{out}");
    cluster.master_by_addr(&survivor).restart();
    let list = wait_for("the survivor to lead alone", WAIT, || async {
        let list = survivor_client.list_masters().await.ok()?;
        (list.members.len() == 1 && !list.membership_change_in_progress).then_some(list)
    })
    .await;
    assert!(list.members[0].voter && list.members[0].address == survivor);
    assert_eq!(table_names(survivor_client.list_tables().await.expect("tables")), ["t1", "t2"]);

    // Fresh masters at the lost addresses join by the normal AddMaster path.
    for addr in [&lost0, &lost1] {
        let m = cluster.master_by_addr(addr);
        m.wipe();
        m.restart();
    }
    for addr in [&lost0, &lost1] {
        let probe = client_for(std::slice::from_ref(addr));
        wait_for("the fresh master to wait for being added", WAIT, || async {
            let r = probe.connect_to(addr).await.ok()?;
            (r.role == kudu::pb::master::Role::NonMember as i32).then_some(())
        })
        .await;
        let (ok, out, err) = cli(&["master", "add", addr, "-m", &survivor]);
        assert!(ok, "add {addr}: {out}{err}");
    }
    let client = cluster.client();
    let list = wait_for("three voters", WAIT, || async {
        let list = client.list_masters().await.ok()?;
        (list.members.iter().filter(|m| m.voter).count() == 3 && !list.membership_change_in_progress).then_some(list)
    })
    .await;
    assert!(list.members.iter().any(|m| m.address == survivor));
    cluster.wait_tservers(1).await;
    client.create_table("t3", &simple_schema(), 1, 1).await.expect("DDL after recovery");

    // The new masters hold the catalog: without the survivor they form the quorum.
    cluster.master_by_addr(&survivor).stop();
    let (ok, out, err) = recover(&survivor_dir, false);
    assert!(!ok && err.contains("t1, t2, t3"), "{out}{err}");
    let pair = client_for(&[lost0.clone(), lost1.clone()]);
    let names = wait_for("the new masters to serve the catalog", WAIT, || async {
        pair.list_tables().await.ok().map(table_names)
    })
    .await;
    assert_eq!(names, ["t1", "t2", "t3"]);
    // DDL on the new pair alone (a deletion needs no tablet server to be placed on).
    pair.delete_table("t1").await.expect("DDL on the new pair");
    assert_eq!(table_names(pair.list_tables().await.expect("tables")), ["t2", "t3"]);
}

/// In a pod the master cannot be stopped: `--at-next-start` leaves a request in the data
/// directory that the master carries out when it starts next, then removes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_requested_on_a_running_master_happens_at_its_next_start() {
    let mut cluster = Cluster::start(3, 0);
    let leader = cluster.wait_leader().await;
    let addrs = cluster.master_addrs();
    let survivor = addrs.iter().find(|a| **a != leader).expect("follower").clone();
    for addr in addrs.iter().filter(|a| **a != survivor) {
        let m = cluster.master_by_addr(addr);
        m.kill();
        m.wipe();
    }
    let dir = cluster.master_by_addr(&survivor).data_dir.clone();
    let dir_arg = dir.display().to_string();
    let request = ["master", "unsafe-recover", "--data-dir", &dir_arg, "--at-next-start"];
    let (ok, _, err) = cli(&request);
    assert!(!ok && err.contains("--yes-i-know-this-may-lose-data"), "{err}");
    let marker = dir.join(kudu::master::store::recover::AT_START_MARKER);
    assert!(!marker.exists());
    let (ok, out, err) = cli(&[&request[..], &["--yes-i-know-this-may-lose-data"]].concat());
    assert!(ok, "{out}{err}");
    assert!(err.contains("UNSAFE") && out.contains("restart the master"), "{out}{err}");
    assert!(marker.exists());

    // A pod restart: the process goes and comes back on the same volume.
    let m = cluster.master_by_addr(&survivor);
    m.kill();
    m.restart();
    let client = client_for(std::slice::from_ref(&survivor));
    wait_for("the survivor to lead alone", WAIT, || async {
        let list = client.list_masters().await.ok()?;
        (list.members.len() == 1 && list.members[0].address == survivor && !list.membership_change_in_progress)
            .then_some(())
    })
    .await;
    assert!(!marker.exists(), "the request is removed once carried out");
    // The next restart does not recover again: it is an ordinary start.
    let m = cluster.master_by_addr(&survivor);
    m.stop();
    m.restart();
    let list = wait_for("the survivor to lead again", WAIT, || async { client.list_masters().await.ok() }).await;
    assert_eq!(list.members.len(), 1);
}
