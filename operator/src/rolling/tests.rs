//! Table tests of [`super::decide()`].

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::build::names::Role;
use crate::membership::NodeId;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn member(prefix: &str, ordinal: i32, revision: &str) -> Member {
    Member {
        pod: format!("demo-{prefix}-{ordinal}"),
        ordinal,
        revision: Some(revision.to_owned()),
        ready: true,
        terminating: false,
        created: Some(at(0)),
    }
}

fn role(prefix: &str, revisions: [&str; 3]) -> RoleObserved {
    RoleObserved {
        update_revision: Some("new".to_owned()),
        replicas: 3,
        members: revisions.iter().enumerate().map(|(i, r)| member(prefix, i as i32, r)).collect(),
    }
}

fn progress(leader: i32) -> MasterProgress {
    MasterProgress {
        leader_pod: Some(format!("demo-master-{leader}")),
        commit_index: 100,
        members: (0..3)
            .map(|i| {
                (
                    format!("demo-master-{i}"),
                    MemberRaft { node_id: NodeId(10 + i as u64), voter: true, live: true, matched_index: 100 },
                )
            })
            .collect(),
        change_in_flight: false,
    }
}

/// Three tablets of RF 3 over the three servers; tablet `t{i}` led by server `ts{i}`.
fn tablets() -> TabletsView {
    TabletsView {
        servers: (0..3).map(|i| (format!("demo-tserver-{i}"), (format!("ts{i}"), true))).collect(),
        tablets: (0..3)
            .map(|i| TabletView {
                tablet_id: format!("t{i}"),
                voters: vec!["ts0".into(), "ts1".into(), "ts2".into()],
                leader: Some(format!("ts{i}")),
            })
            .collect(),
    }
}

fn observed(masters: [&str; 3], tservers: [&str; 3]) -> RolloutObserved {
    RolloutObserved {
        masters: role("master", masters),
        tservers: role("tserver", tservers),
        master_progress: Some(progress(0)),
        tablets: Some(tablets()),
        membership_busy: false,
        last_restarted: None,
        member_timeout: Duration::from_secs(300),
        now: at(60),
    }
}

fn delete(role: Role, pod: &str) -> Step {
    Step::DeletePod { role, pod: pod.to_owned() }
}

#[test]
fn nothing_outdated_is_complete() {
    assert_eq!(decide(&observed(["new"; 3], ["new"; 3])), Step::Complete);
}

#[test]
fn masters_go_first_followers_highest_ordinal_first_and_the_leader_last() {
    let o = observed(["old"; 3], ["old"; 3]);
    assert_eq!(decide(&o), delete(Role::Master, "demo-master-2"));
    let o = observed(["old", "old", "new"], ["old"; 3]);
    assert_eq!(decide(&o), delete(Role::Master, "demo-master-1"));
    // Only the leader is left: leadership goes to a restarted master first.
    let o = observed(["old", "new", "new"], ["old"; 3]);
    assert_eq!(
        decide(&o),
        Step::StepDown { pod: "demo-master-0".into(), leader: NodeId(10), successor: Some(NodeId(11)) }
    );
    // Once another master leads, the old leader restarts.
    let mut o = observed(["old", "new", "new"], ["old"; 3]);
    o.master_progress = Some(progress(1));
    assert_eq!(decide(&o), delete(Role::Master, "demo-master-0"));
}

#[test]
fn a_master_goes_down_only_when_the_others_are_caught_up_voters() {
    // A restarted master that is not back yet holds the rollout.
    let mut o = observed(["old", "old", "new"], ["old"; 3]);
    o.masters.members[2].ready = false;
    assert!(matches!(decide(&o), Step::Wait { role: Role::Master, reason } if reason.contains("demo-master-2")));
    // Ready but lagging behind the commit index: still waiting.
    let mut o = observed(["old", "old", "new"], ["old"; 3]);
    o.master_progress.as_mut().unwrap().members.get_mut("demo-master-2").unwrap().matched_index = 10;
    assert!(matches!(decide(&o), Step::Wait { role: Role::Master, .. }));
    // Not live for the leader.
    let mut o = observed(["old", "old", "new"], ["old"; 3]);
    o.master_progress.as_mut().unwrap().members.get_mut("demo-master-2").unwrap().live = false;
    assert!(matches!(decide(&o), Step::Wait { role: Role::Master, .. }));
    // An outdated follower that is not healthy holds the others too.
    let mut o = observed(["old"; 3], ["old"; 3]);
    o.master_progress.as_mut().unwrap().members.get_mut("demo-master-1").unwrap().voter = false;
    let mut o2 = o.clone();
    o2.masters.members[1].ready = false;
    // An unhealthy outdated pod is left to the membership loop (its node may be gone)...
    assert!(matches!(decide(&o2), Step::Wait { role: Role::Master, .. }), "{:?}", decide(&o2));
    // ...unless the rollout restarted it itself and it never came back: it goes first.
    o2.last_restarted = Some("demo-master-1".into());
    assert_eq!(decide(&o2), delete(Role::Master, "demo-master-1"));
    o.master_progress.as_mut().unwrap().members.get_mut("demo-master-2").unwrap().live = false;
    assert!(matches!(decide(&o), Step::Wait { role: Role::Master, .. }), "{:?}", decide(&o));
    // No leader, a membership change, a pod going: wait.
    let mut o = observed(["old"; 3], ["old"; 3]);
    o.master_progress = None;
    assert!(matches!(decide(&o), Step::Wait { role: Role::Master, .. }));
    let mut o = observed(["old"; 3], ["old"; 3]);
    o.membership_busy = true;
    assert!(matches!(decide(&o), Step::Wait { role: Role::Master, .. }));
    let mut o = observed(["old"; 3], ["old"; 3]);
    o.masters.members[2].terminating = true;
    assert!(matches!(decide(&o), Step::Wait { role: Role::Master, .. }));
    let mut o = observed(["old"; 3], ["old"; 3]);
    o.masters.members.pop();
    assert!(matches!(decide(&o), Step::Wait { role: Role::Master, .. }));
    // No revision computed yet: nothing restarts.
    let mut o = observed(["old"; 3], ["old"; 3]);
    o.masters.update_revision = None;
    assert!(matches!(decide(&o), Step::Wait { role: Role::Master, .. }));
}

#[test]
fn tablet_servers_wait_for_the_masters_then_move_leaders_then_restart() {
    let mut o = observed(["new", "new", "new"], ["old"; 3]);
    o.masters.members[0].ready = false;
    assert!(matches!(decide(&o), Step::Wait { role: Role::Master, .. }));
    let o = observed(["new"; 3], ["old"; 3]);
    assert_eq!(
        decide(&o),
        Step::MoveTabletLeaders {
            pod: "demo-tserver-2".into(),
            uuid: "ts2".into(),
            moves: vec![TabletLeader { tablet_id: "t2".into(), to_uuid: "ts0".into() }],
        }
    );
    let mut o = observed(["new"; 3], ["old"; 3]);
    o.tablets.as_mut().unwrap().tablets[2].leader = Some("ts1".into());
    assert_eq!(decide(&o), delete(Role::TServer, "demo-tserver-2"));
}

#[test]
fn a_tablet_server_goes_down_only_when_its_tablets_keep_a_majority() {
    let mut o = observed(["new"; 3], ["old"; 3]);
    for t in &mut o.tablets.as_mut().unwrap().tablets {
        t.leader = Some("ts0".into());
    }
    // ts1 is not live for the masters: tablets on ts2 would keep only ts0.
    o.tablets.as_mut().unwrap().servers.insert("demo-tserver-1".into(), ("ts1".into(), false));
    assert!(
        matches!(decide(&o), Step::Wait { role: Role::TServer, reason } if reason.contains("majority")),
        "{:?}",
        decide(&o)
    );
    // A restarted server not ready yet (replicas catching up) holds the next one.
    let mut o = observed(["new"; 3], ["old", "old", "new"]);
    o.tservers.members[2].ready = false;
    assert!(
        matches!(decide(&o), Step::Wait { role: Role::TServer, reason } if reason.contains("demo-tserver-2")),
        "{:?}",
        decide(&o)
    );
    // Single-replica tablets cannot stay available: they do not block.
    let mut o = observed(["new"; 3], ["old"; 3]);
    o.tablets.as_mut().unwrap().tablets =
        vec![TabletView { tablet_id: "solo".into(), voters: vec!["ts2".into()], leader: Some("ts2".into()) }];
    assert_eq!(decide(&o), delete(Role::TServer, "demo-tserver-2"));
    // Without the tablets' view nothing restarts.
    let mut o = observed(["new"; 3], ["old"; 3]);
    o.tablets = None;
    assert!(matches!(decide(&o), Step::Wait { role: Role::TServer, .. }));
}

#[test]
fn a_restarted_pod_unhealthy_past_the_timeout_stalls_everything() {
    let mut o = observed(["old", "old", "new"], ["old"; 3]);
    o.masters.members[2].ready = false;
    o.masters.members[2].created = Some(at(0));
    o.last_restarted = Some("demo-master-2".into());
    o.now = at(299);
    assert!(matches!(decide(&o), Step::Wait { .. }));
    o.now = at(301);
    assert_eq!(
        decide(&o),
        Step::Stalled { role: Role::Master, pod: "demo-master-2".into(), for_: Duration::from_secs(301) }
    );
    // A spec change (new revision) makes it outdated: it is restarted again, first.
    o.masters.update_revision = Some("newer".into());
    assert_eq!(decide(&o), delete(Role::Master, "demo-master-2"));
    // Tablet servers too, after the masters.
    let mut o = observed(["new"; 3], ["old", "old", "new"]);
    o.tservers.members[2].ready = false;
    o.last_restarted = Some("demo-tserver-2".into());
    o.now = at(400);
    assert!(matches!(decide(&o), Step::Stalled { role: Role::TServer, .. }));
    // A healthy last-restarted pod is no stall.
    let mut o = observed(["new"; 3], ["old", "old", "new"]);
    o.last_restarted = Some("demo-tserver-2".into());
    o.now = at(400);
    assert!(matches!(decide(&o), Step::MoveTabletLeaders { .. }));
}

#[test]
fn the_leader_steps_down_only_to_a_healthy_restarted_master() {
    let mut o = observed(["old", "new", "new"], ["old"; 3]);
    let mut members = BTreeMap::new();
    std::mem::swap(&mut members, &mut o.master_progress.as_mut().unwrap().members);
    members.get_mut("demo-master-1").unwrap().matched_index = 1;
    o.master_progress.as_mut().unwrap().members = members;
    // demo-master-1 lags: the leader is not touched.
    assert!(matches!(decide(&o), Step::Wait { .. }));
}
