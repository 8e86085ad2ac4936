//! A leader change between openraft's two membership steps (joint config committed, target
//! config not) must not leave the master group joint for ever.
//!
//! The state is produced exactly rather than by racing a kill against the second step: three
//! masters run in this process (real RocksDB, real gRPC over loopback), the leader appends a
//! joint config (`{A,B,C}` and `{A,B}`, what the first step of removing C commits) as one
//! entry with openraft's `append_membership`, then hands leadership to another master, which
//! finds the group joint with nothing in flight - the state a leader change between the two
//! steps leaves.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{WAIT, client_for, free_addr, wait_for};
use kudu::master::{MasterConfig, MasterServer};
use openraft::{BasicNode, EntryPayload, Membership};

fn config(dir: &std::path::Path, addr: &str, all: &[String]) -> MasterConfig {
    MasterConfig {
        data_dir: dir.to_path_buf(),
        rpc_bind: addr.to_string(),
        advertised_addr: addr.to_string(),
        master_addresses: all.to_vec(),
        http_bind: None,
        rpc_timeout: Duration::from_secs(10),
        tserver_unresponsive_timeout: Duration::from_secs(60),
        tserver_forget_after: Duration::from_secs(3600),
        max_concurrent_rereplications: 0,
        rereplication_interval: Duration::from_secs(1),
        leader_balance_interval: None,
        member_liveness_timeout: Duration::from_secs(3),
        heartbeat_interval: Duration::from_millis(250),
        election_timeout: Duration::from_millis(1_500),
        catch_up_timeout: Duration::from_secs(60),
        snapshot_every: 1_000,
        location_mapping: None,
        security: kudu::security::Security::Insecure,
    }
}

fn leader_of(servers: &[MasterServer]) -> Option<usize> {
    servers.iter().position(|s| {
        let m = s.node.raft_metrics();
        m.state == openraft::ServerState::Leader && m.current_leader == Some(s.node.id)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joint_config_left_by_a_leader_change_is_finished() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addrs: Vec<String> = (0..3).map(|_| free_addr()).collect();
    let mut servers = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let cfg = config(&dir.path().join(format!("m{i}")), addr, &addrs);
        servers.push(MasterServer::start(cfg).await.expect("start master"));
    }
    let client = client_for(&addrs);
    wait_for("a leader whose membership has three voters", WAIT, || async {
        let i = leader_of(&servers)?;
        let m = servers[i].node.raft_metrics();
        (m.membership_config.membership().voter_ids().count() == 3
            && !kudu::master::MasterNode::membership_change_pending(&m))
        .then_some(())
    })
    .await;
    let old = leader_of(&servers).expect("leader");
    let ids: Vec<u64> = servers.iter().map(|s| s.node.id).collect();
    // C: a follower that the interrupted change was removing; B: the next leader.
    let c = (0..3).find(|i| *i != old).expect("follower");
    let b = (0..3).find(|i| *i != old && *i != c).expect("other follower");

    let all: BTreeSet<u64> = ids.iter().copied().collect();
    let target: BTreeSet<u64> = all.iter().copied().filter(|id| *id != ids[c]).collect();
    let nodes: BTreeMap<u64, BasicNode> = ids.iter().zip(&addrs).map(|(id, a)| (*id, BasicNode::new(a))).collect();
    let joint = Membership::new(vec![all.clone(), target.clone()], nodes).expect("joint membership");
    let leader = &servers[old].node;
    // Nothing else changes membership meanwhile: the lock AddMaster/RemoveMaster take.
    let lock = leader.lock_membership().await;
    leader.raft.append_membership(joint, EntryPayload::Blank, []).await.expect("append the joint config");
    leader.raft.trigger().transfer_leader(ids[b]).await.expect("transfer leadership");
    drop(lock);
    wait_for("leadership to move", WAIT, || async { (leader_of(&servers) == Some(b)).then_some(()) }).await;

    // The new leader finishes the joint config on its own: the group ends uniform, without
    // C, and reports no change in progress.
    let list = wait_for("the joint config to be finished", WAIT, || async {
        let list = client.list_masters().await.ok()?;
        (!list.membership_change_in_progress && list.members.len() == 2).then_some(list)
    })
    .await;
    let members: BTreeSet<u64> = list.members.iter().map(|m| m.node_id).collect();
    assert_eq!(members, target);
    assert!(list.members.iter().all(|m| m.voter));
    for s in &servers[..] {
        if s.node.id != ids[c] {
            let m = s.node.raft_metrics();
            assert_eq!(m.membership_config.get_joint_config().len(), 1, "uniform on {}", s.node.id);
        }
    }

    // Membership changes work again: C (still running, same disk) is added back as a voter.
    let added = client.add_master(&addrs[c]).await;
    let added = match added {
        Ok(id) => id,
        Err(e) => panic!("AddMaster after the joint config was finished: {e}"),
    };
    assert_eq!(added, ids[c]);
    let list = client.list_masters().await.expect("list");
    assert_eq!(list.members.iter().filter(|m| m.voter).count(), 3);

    for s in servers {
        s.shutdown().await;
    }
}
