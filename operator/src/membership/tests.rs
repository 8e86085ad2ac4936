//! Table tests: one observed state per rule, including every refusal.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::*;

const GRACE: Duration = Duration::from_secs(300);

fn now() -> Timestamp {
    Timestamp::from_second(1_000_000).unwrap()
}

fn ago(secs: i64) -> Timestamp {
    now() - SignedDuration::from_secs(secs)
}

fn address(ordinal: i32) -> String {
    format!("demo-master-{ordinal}.demo-masters.db.svc.cluster.local:7051")
}

/// Node id of the original master at `ordinal`.
fn id(ordinal: i32) -> NodeId {
    NodeId(100 + u64::try_from(ordinal).unwrap())
}

/// A fresh id, as after a lost disk.
fn new_id(ordinal: i32) -> NodeId {
    NodeId(900 + u64::try_from(ordinal).unwrap())
}

fn voter(ordinal: i32) -> RaftMember {
    RaftMember { node_id: id(ordinal), address: address(ordinal), voter: true, live: true }
}

fn healthy_pod(ordinal: i32) -> MasterPod {
    MasterPod {
        ordinal,
        phase: PodPhase::Running,
        ready: true,
        node_id: Some(id(ordinal)),
        node: NodeState::Ready,
        unschedulable: false,
        terminating: false,
        unable_to_run_since: None,
    }
}

/// A pod on a node that vanished, unable to run since `since`.
fn stuck_pod(ordinal: i32, since: Timestamp) -> MasterPod {
    MasterPod {
        ordinal,
        phase: PodPhase::Unknown,
        ready: false,
        node_id: Some(id(ordinal)),
        node: NodeState::Gone,
        unschedulable: false,
        terminating: false,
        unable_to_run_since: Some(since),
    }
}

/// Master `ordinal` lost its node at `since`: its pod is stuck and the leader no longer
/// hears from it.
fn lose(o: &mut Observed, ordinal: i32, since: Timestamp) {
    o.set_pod(stuck_pod(ordinal, since));
    if let Some(member) = o.raft_mut().members.iter_mut().find(|m| m.address == address(ordinal)) {
        member.live = false;
    }
}

fn not_ready(mut pod: MasterPod) -> MasterPod {
    pod.ready = false;
    pod
}

/// `n` healthy masters, all voters, leader 0, spec and StatefulSet at `n`.
fn healthy(n: i32) -> Observed {
    Observed {
        raft: Some(RaftView { leader: Some(id(0)), members: (0..n).map(voter).collect(), change_in_flight: false }),
        pods: (0..n).map(healthy_pod).collect(),
        addresses: (0..7).map(address).collect(),
        desired_replicas: n,
        statefulset_replicas: n,
        replacement: ReplacementPolicy { enabled: true, grace: GRACE },
        now: now(),
        last_known_voters: Vec::new(),
    }
}

impl Observed {
    fn raft_mut(&mut self) -> &mut RaftView {
        self.raft.as_mut().unwrap()
    }

    fn set_pod(&mut self, pod: MasterPod) {
        self.pods.retain(|p| p.ordinal != pod.ordinal);
        self.pods.push(pod);
    }

    fn remove_member(&mut self, node_id: NodeId) {
        self.raft_mut().members.retain(|m| m.node_id != node_id);
    }
}

fn remove(ordinal: i32, node_id: NodeId, is_leader: bool, reason: RemoveReason) -> Action {
    Action::RemoveMember { node_id, address: address(ordinal), is_leader, successor: None, reason }
}

fn add(ordinal: i32, node_id: NodeId) -> Action {
    Action::AddMember { ordinal, address: address(ordinal), node_id }
}

fn is_quorum_refusal(action: &Action) -> bool {
    matches!(action, Action::Wait(WaitReason::WouldLoseQuorum { .. }))
}

#[test]
fn quorum_is_a_majority() {
    assert_eq!([1, 2, 3, 4, 5, 7].map(quorum), [1, 2, 2, 3, 3, 4]);
}

#[test]
fn healthy_cluster_needs_nothing() {
    for n in [1, 3, 5, 7] {
        assert_eq!(decide(&healthy(n)), Action::None, "{n}");
    }
}

// Rule 1: preconditions.

#[test]
fn no_raft_view_or_no_leader_waits() {
    let mut o = healthy(3);
    o.set_pod(MasterPod { node_id: Some(new_id(2)), ..healthy_pod(2) });
    o.raft_mut().leader = None;
    assert_eq!(decide(&o), Action::Wait(WaitReason::NoLeader));
    o.raft = None;
    assert_eq!(decide(&o), Action::Wait(WaitReason::NoLeader));
}

#[test]
fn change_in_flight_waits_even_with_work_to_do() {
    let mut o = healthy(3);
    o.desired_replicas = 5;
    o.raft_mut().change_in_flight = true;
    assert_eq!(decide(&o), Action::Wait(WaitReason::ChangeInFlight));
}

// Pod restarts keep their identity.

#[test]
fn restarted_pod_with_same_id_needs_nothing() {
    let mut o = healthy(3);
    o.set_pod(not_ready(healthy_pod(1)));
    assert_eq!(decide(&o), Action::None);
    // While starting it reports no id at all.
    o.set_pod(MasterPod { node_id: None, phase: PodPhase::Pending, ..not_ready(healthy_pod(1)) });
    assert_eq!(decide(&o), Action::None);
}

// Rule 2: disk lost.

#[test]
fn new_node_id_removes_the_old_member_first() {
    let mut o = healthy(3);
    o.set_pod(MasterPod { node_id: Some(new_id(2)), ready: false, ..healthy_pod(2) });
    assert_eq!(decide(&o), remove(2, id(2), false, RemoveReason::DiskLost { ordinal: 2, new_node_id: new_id(2) }));
}

#[test]
fn then_adds_the_new_node_id() {
    let mut o = healthy(3);
    o.set_pod(MasterPod { node_id: Some(new_id(2)), ready: false, ..healthy_pod(2) });
    o.remove_member(id(2));
    assert_eq!(decide(&o), add(2, new_id(2)));
}

#[test]
fn disk_lost_on_the_leader_says_so() {
    let mut o = healthy(3);
    o.set_pod(MasterPod { node_id: Some(new_id(0)), ..healthy_pod(0) });
    let action = decide(&o);
    assert!(
        matches!(action, Action::RemoveMember { node_id, is_leader: true, successor: Some(s), .. } if node_id == id(0) && s == id(1)),
        "{action:?}"
    );
}

#[test]
fn disk_lost_refused_when_quorum_would_be_lost() {
    let mut o = healthy(3);
    o.set_pod(not_ready(healthy_pod(1)));
    o.set_pod(MasterPod { node_id: Some(new_id(2)), ..healthy_pod(2) });
    // Voters 0,1,2; live only 0. Removing 2 leaves 0,1 with one live: no quorum.
    let action = decide(&o);
    assert!(is_quorum_refusal(&action), "{action:?}");
    assert_eq!(
        action,
        Action::Wait(WaitReason::WouldLoseQuorum { change: format!("remove node {}", id(2)), voters: 3, live: 1 })
    );
}

#[test]
fn stale_learner_is_removed_without_a_quorum_check() {
    let mut o = healthy(3);
    o.raft_mut().members[2].voter = false;
    o.set_pod(not_ready(healthy_pod(1)));
    o.set_pod(MasterPod { node_id: Some(new_id(2)), ..healthy_pod(2) });
    assert_eq!(decide(&o), remove(2, id(2), false, RemoveReason::DiskLost { ordinal: 2, new_node_id: new_id(2) }));
}

// Rule 3: scale down.

#[test]
fn scale_down_removes_the_highest_ordinal_first() {
    let mut o = healthy(5);
    o.desired_replicas = 3;
    assert_eq!(decide(&o), remove(4, id(4), false, RemoveReason::ScaleDown { ordinal: 4 }));
    o.remove_member(id(4));
    assert_eq!(decide(&o), remove(3, id(3), false, RemoveReason::ScaleDown { ordinal: 3 }));
}

#[test]
fn scale_down_flags_the_leader() {
    let mut o = healthy(5);
    o.desired_replicas = 3;
    o.raft_mut().leader = Some(id(4));
    // Leadership goes to a master that stays, not to 3, which leaves next.
    let expected = Action::RemoveMember {
        node_id: id(4),
        address: address(4),
        is_leader: true,
        successor: Some(id(0)),
        reason: RemoveReason::ScaleDown { ordinal: 4 },
    };
    assert_eq!(decide(&o), expected);
}

#[test]
fn scale_down_shrinks_the_statefulset_only_after_the_members_left() {
    let mut o = healthy(5);
    o.desired_replicas = 3;
    o.remove_member(id(4));
    o.remove_member(id(3));
    // Pods 3 and 4 still run; they are no longer members and must not be re-added.
    assert_eq!(decide(&o), Action::ResizeStatefulSet { replicas: 3 });
}

#[test]
fn scale_down_refused_when_quorum_would_be_lost() {
    let mut o = healthy(5);
    o.desired_replicas = 3;
    o.set_pod(not_ready(healthy_pod(1)));
    o.set_pod(not_ready(healthy_pod(2)));
    // Voters 5, live 3 (0,3,4). Removing live 4 leaves 4 voters with 2 live < 3.
    assert!(is_quorum_refusal(&decide(&o)));
}

#[test]
fn scale_down_removes_a_dead_excess_member_even_when_degraded() {
    let mut o = healthy(5);
    o.desired_replicas = 3;
    o.set_pod(not_ready(healthy_pod(4)));
    o.set_pod(not_ready(healthy_pod(3)));
    // Voters 5, live 3. Removing dead 4 leaves 4 voters with 3 live >= 3.
    assert_eq!(decide(&o), remove(4, id(4), false, RemoveReason::ScaleDown { ordinal: 4 }));
}

// Rule 4: learners.

#[test]
fn learner_catching_up_blocks_everything_else() {
    let mut o = healthy(3);
    o.desired_replicas = 5;
    o.raft_mut().members[2].voter = false;
    o.set_pod(not_ready(healthy_pod(2)));
    assert_eq!(decide(&o), Action::Wait(WaitReason::LearnerCatchingUp { node_id: id(2) }));
}

fn promote(ordinal: i32) -> Action {
    Action::PromoteLearner { ordinal, address: address(ordinal), node_id: id(ordinal) }
}

#[test]
fn learner_left_by_an_interrupted_add_is_promoted_once_caught_up() {
    // AddMaster added master 3 as a learner and was cut before promoting it (operator
    // died, leader changed, catch-up timed out): no change is in flight, nobody promotes it.
    let mut o = healthy(3);
    o.desired_replicas = 4;
    o.statefulset_replicas = 4;
    o.raft_mut().members.push(RaftMember { voter: false, ..voter(3) });
    o.set_pod(healthy_pod(3));
    assert_eq!(decide(&o), promote(3));
    assert!(promote(3).is_membership_change());
    // While a request is still running for it, the operator waits.
    o.raft_mut().change_in_flight = true;
    assert_eq!(decide(&o), Action::Wait(WaitReason::ChangeInFlight));
    // Still catching up (pod not ready), or not heard from while its pod runs: wait.
    o.raft_mut().change_in_flight = false;
    o.set_pod(not_ready(healthy_pod(3)));
    assert_eq!(decide(&o), Action::Wait(WaitReason::LearnerCatchingUp { node_id: id(3) }));
    o.set_pod(healthy_pod(3));
    o.raft_mut().members[3].live = false;
    assert_eq!(decide(&o), Action::Wait(WaitReason::LearnerCatchingUp { node_id: id(3) }));
}

#[test]
fn learner_promotion_refused_when_quorum_would_be_lost() {
    // Voters 0, 1, 2 with only 0 live; a fourth voter needs 3 live.
    let mut o = healthy(3);
    o.desired_replicas = 4;
    o.statefulset_replicas = 4;
    o.set_pod(not_ready(healthy_pod(1)));
    o.set_pod(not_ready(healthy_pod(2)));
    o.raft_mut().members.push(RaftMember { voter: false, ..voter(3) });
    o.set_pod(healthy_pod(3));
    assert!(is_quorum_refusal(&decide(&o)), "{:?}", decide(&o));
}

#[test]
fn learner_whose_pod_lost_its_disk_is_removed_not_promoted() {
    let mut o = healthy(3);
    o.desired_replicas = 4;
    o.statefulset_replicas = 4;
    o.raft_mut().members.push(RaftMember { voter: false, ..voter(3) });
    o.set_pod(MasterPod { node_id: Some(new_id(3)), ..healthy_pod(3) });
    assert_eq!(decide(&o), remove(3, id(3), false, RemoveReason::DiskLost { ordinal: 3, new_node_id: new_id(3) }));
}

// Rule 5 and 6: scale up.

#[test]
fn scale_up_resizes_then_adds_pods_as_they_report_ids() {
    let mut o = healthy(1);
    o.desired_replicas = 3;
    assert_eq!(decide(&o), Action::ResizeStatefulSet { replicas: 3 });

    o.statefulset_replicas = 3;
    o.set_pod(MasterPod { phase: PodPhase::Pending, node_id: None, ..not_ready(healthy_pod(1)) });
    assert_eq!(decide(&o), Action::Wait(WaitReason::WaitingForNodeId { ordinal: 1 }));

    o.set_pod(not_ready(healthy_pod(1)));
    o.set_pod(not_ready(healthy_pod(2)));
    assert_eq!(decide(&o), add(1, id(1)));

    o.raft_mut().members.push(RaftMember { voter: false, ..voter(1) });
    assert_eq!(decide(&o), Action::Wait(WaitReason::LearnerCatchingUp { node_id: id(1) }));

    o.raft_mut().members[1].voter = true;
    o.set_pod(healthy_pod(1));
    assert_eq!(decide(&o), add(2, id(2)));
}

#[test]
fn add_refused_when_promotion_would_lose_quorum() {
    let mut o = healthy(3);
    o.desired_replicas = 5;
    o.statefulset_replicas = 5;
    o.set_pod(not_ready(healthy_pod(1)));
    o.set_pod(not_ready(healthy_pod(2)));
    o.set_pod(not_ready(healthy_pod(3)));
    // Voters 3, live 1; after promotion 4 voters with at most 2 live < 3.
    assert!(is_quorum_refusal(&decide(&o)));
}

#[test]
fn a_node_id_that_is_a_member_elsewhere_is_not_added() {
    let mut o = healthy(3);
    o.desired_replicas = 5;
    o.statefulset_replicas = 5;
    o.set_pod(MasterPod { node_id: Some(id(1)), ..healthy_pod(3) });
    assert_eq!(decide(&o), Action::Wait(WaitReason::NodeIdConflict { ordinal: 3, node_id: id(1) }));
}

// Rule 7: replacement.

#[test]
fn stuck_master_beyond_grace_is_replaced() {
    let mut o = healthy(3);
    lose(&mut o, 2, ago(301));
    assert_eq!(decide(&o), Action::DeletePodAndPvc { ordinal: 2, stuck_for: Duration::from_secs(301) });
}

#[test]
fn pending_pod_pinned_to_a_dead_node_is_replaced() {
    let mut o = healthy(3);
    o.raft_mut().members[1].live = false;
    o.set_pod(MasterPod {
        phase: PodPhase::Pending,
        ready: false,
        node_id: None,
        node: NodeState::Unassigned,
        unschedulable: true,
        terminating: false,
        unable_to_run_since: Some(ago(600)),
        ordinal: 1,
    });
    assert!(matches!(decide(&o), Action::DeletePodAndPvc { ordinal: 1, .. }));
}

#[test]
fn stuck_master_within_grace_waits() {
    let mut o = healthy(3);
    lose(&mut o, 2, ago(100));
    assert_eq!(
        decide(&o),
        Action::Wait(WaitReason::ReplacementPending { ordinal: 2, remaining: Duration::from_secs(200) })
    );
}

#[test]
fn replacement_disabled_waits() {
    let mut o = healthy(3);
    o.replacement.enabled = false;
    lose(&mut o, 2, ago(3600));
    assert_eq!(decide(&o), Action::Wait(WaitReason::ReplacementDisabled { ordinal: 2 }));
}

#[test]
fn crash_loop_on_a_healthy_node_is_not_replaced() {
    let mut o = healthy(3);
    o.set_pod(MasterPod { unable_to_run_since: Some(ago(3600)), ..not_ready(healthy_pod(2)) });
    assert_eq!(decide(&o), Action::None);
}

/// A master whose container cannot start on a healthy node: its image cannot be pulled
/// (or it crash-loops). A new volume would not help; it is left to a person.
fn unstartable_on_a_ready_node(ordinal: i32, since: Timestamp) -> MasterPod {
    MasterPod {
        phase: PodPhase::Pending,
        ready: false,
        node_id: None,
        node: NodeState::Ready,
        unschedulable: false,
        terminating: false,
        unable_to_run_since: Some(since),
        ordinal,
    }
}

#[test]
fn image_pull_failure_on_a_ready_node_is_never_replaced() {
    // ImagePullBackOff for an hour, the member down in Raft: no claim is deleted.
    let mut o = healthy(3);
    o.raft_mut().members[2].live = false;
    o.set_pod(unstartable_on_a_ready_node(2, ago(3600)));
    assert_eq!(decide(&o), Action::None);
    // Nor once it ran and its node reports it in an unknown state while the node is Ready.
    o.set_pod(MasterPod { phase: PodPhase::Unknown, ..unstartable_on_a_ready_node(2, ago(3600)) });
    assert_eq!(decide(&o), Action::None);
}

#[test]
fn pod_not_yet_scheduled_is_not_replaced() {
    // Pending and unbound, but the scheduler never said it cannot place it.
    let mut o = healthy(3);
    o.raft_mut().members[1].live = false;
    o.set_pod(MasterPod {
        node: NodeState::Unassigned,
        unschedulable: false,
        terminating: false,
        ..unstartable_on_a_ready_node(1, ago(3600))
    });
    assert_eq!(decide(&o), Action::None);
}

#[test]
fn master_raft_still_hears_from_is_not_replaced() {
    // Its node is NotReady (the kubelet is cut off) but the master process still answers
    // the leader: its data is alive, so its claim stays.
    let mut o = healthy(3);
    o.set_pod(stuck_pod(2, ago(3600)));
    assert!(o.raft_mut().members[2].live);
    assert_eq!(decide(&o), Action::None);
    o.raft_mut().members[2].live = false;
    assert!(matches!(decide(&o), Action::DeletePodAndPvc { ordinal: 2, .. }));
}

#[test]
fn a_pod_being_deleted_on_a_not_ready_node_waits_for_its_node() {
    let mut o = healthy(3);
    lose(&mut o, 2, ago(400));
    o.set_pod(MasterPod { node: NodeState::NotReady, terminating: true, ..stuck_pod(2, ago(400)) });
    assert_eq!(decide(&o), Action::Wait(WaitReason::AwaitingNode { ordinal: 2 }));
    // Once the node object is gone, it is deleted again, by force.
    o.set_pod(MasterPod { terminating: true, ..stuck_pod(2, ago(400)) });
    assert!(matches!(decide(&o), Action::DeletePodAndPvc { ordinal: 2, .. }));
}

#[test]
fn one_replacement_at_a_time() {
    let mut o = healthy(5);
    lose(&mut o, 2, ago(400));
    lose(&mut o, 3, ago(400));
    assert!(matches!(decide(&o), Action::DeletePodAndPvc { ordinal: 2, .. }));

    // Pod 2 deleted, not recreated yet: 3 waits.
    o.pods.retain(|p| p.ordinal != 2);
    let blocked = Action::Wait(WaitReason::ReplacementBlocked { ordinal: 3, recovering: 2 });
    assert_eq!(decide(&o), blocked);

    // Recreated and starting, the old member still in the group: 3 still waits.
    o.set_pod(MasterPod { phase: PodPhase::Running, node_id: None, ..not_ready(healthy_pod(2)) });
    assert_eq!(decide(&o), blocked);

    // Back as a voter with its new id: now 3 is replaced.
    o.remove_member(id(2));
    o.raft_mut().members.push(RaftMember { node_id: new_id(2), ..voter(2) });
    o.set_pod(MasterPod { node_id: Some(new_id(2)), ..healthy_pod(2) });
    assert!(matches!(decide(&o), Action::DeletePodAndPvc { ordinal: 3, .. }));
}

#[test]
fn replacement_refused_without_quorum() {
    let mut o = healthy(3);
    lose(&mut o, 1, ago(400));
    lose(&mut o, 2, ago(400));
    assert_eq!(
        decide(&o),
        Action::Wait(WaitReason::WouldLoseQuorum { change: "replace master 1".to_owned(), voters: 3, live: 1 })
    );
}

// Members the operator did not add.

#[test]
fn unmanaged_member_is_reported_and_left_alone() {
    let mut o = healthy(3);
    o.raft_mut().members.push(RaftMember {
        node_id: NodeId(7),
        address: "elsewhere:7051".to_owned(),
        voter: true,
        live: true,
    });
    assert_eq!(
        decide(&o),
        Action::Wait(WaitReason::UnmanagedMember { node_id: NodeId(7), address: "elsewhere:7051".to_owned() })
    );
}

#[test]
fn actions_describe_themselves_for_events() {
    let text = remove(4, id(4), true, RemoveReason::ScaleDown { ordinal: 4 }).to_string();
    assert!(text.contains("remove node 104"), "{text}");
    assert!(text.contains("leadership moves first"), "{text}");
    let text = Action::Wait(WaitReason::WouldLoseQuorum { change: "remove node 1".to_owned(), voters: 3, live: 1 })
        .to_string();
    assert!(text.contains("only 1 of 3 voters are live"), "{text}");
}

#[test]
fn a_member_the_leader_does_not_hear_from_is_not_live() {
    // Pod 1 looks ready, but the leader does not hear from it (partitioned). Removing
    // member 2 would leave 0 and 1 with only 0 reachable: refused.
    let mut o = healthy(3);
    o.desired_replicas = 1;
    o.raft_mut().members[1].live = false;
    assert!(is_quorum_refusal(&decide(&o)));
    // The same scale-down goes ahead once the leader hears from 1 again.
    o.raft_mut().members[1].live = true;
    assert_eq!(decide(&o), remove(2, id(2), false, RemoveReason::ScaleDown { ordinal: 2 }));

    // Disk lost on 2 while 1 is unreachable: removing 2 leaves 0 and 1 with 0 alone live.
    let mut o = healthy(3);
    o.raft_mut().members[1].live = false;
    o.set_pod(MasterPod { node_id: Some(new_id(2)), ..healthy_pod(2) });
    assert!(is_quorum_refusal(&decide(&o)));
}

#[test]
fn learner_whose_pod_stopped_is_removed() {
    let mut o = healthy(3);
    o.desired_replicas = 5;
    o.statefulset_replicas = 5;
    o.raft_mut().members.push(RaftMember { voter: false, live: false, ..voter(3) });
    // Its pod is gone (node lost before it caught up).
    assert_eq!(decide(&o), remove(3, id(3), false, RemoveReason::LearnerLost { ordinal: 3 }));
    // While its pod runs, even unheard, it is only catching up.
    o.set_pod(not_ready(healthy_pod(3)));
    assert_eq!(decide(&o), Action::Wait(WaitReason::LearnerCatchingUp { node_id: id(3) }));
}

// Quorum loss: no leader and a majority of the voters gone for good.

/// Three voters, no leader; the last known membership comes from the status.
fn leaderless(n: i32) -> Observed {
    let mut o = healthy(n);
    o.last_known_voters = o.raft.take().map(|r| r.members).unwrap_or_default();
    o
}

#[test]
fn two_of_three_volumes_lost_is_quorum_lost_and_nothing_destructive() {
    let mut o = leaderless(3);
    for ordinal in [1, 2] {
        o.set_pod(MasterPod { node_id: Some(new_id(ordinal)), ..healthy_pod(ordinal) });
    }
    let action = decide(&o);
    let Action::Wait(WaitReason::QuorumLost(loss)) = &action else {
        panic!("expected QuorumLost, got {action:?}");
    };
    assert_eq!(loss.voters, 3);
    assert_eq!(loss.lost, vec![(1, LostBecause::DiskLost), (2, LostBecause::DiskLost)]);
    assert_eq!(loss.survivors, vec![(0, id(0))]);
    assert!(action.to_string().contains("unsafe-recover"), "{action}");
    assert!(!action.is_membership_change());
    // The same with stuck pods beyond the grace period: still nothing destructive.
    let mut o = leaderless(3);
    o.set_pod(stuck_pod(1, ago(400)));
    o.set_pod(MasterPod { node_id: Some(new_id(2)), ..healthy_pod(2) });
    let action = decide(&o);
    let Action::Wait(WaitReason::QuorumLost(loss)) = &action else {
        panic!("expected QuorumLost, got {action:?}");
    };
    assert_eq!(loss.lost, vec![(1, LostBecause::CannotRun(CannotRun::NodeGone)), (2, LostBecause::DiskLost)]);
}

#[test]
fn a_minority_lost_or_a_passing_outage_is_not_quorum_lost() {
    // One of three volumes lost: the other two can still elect.
    let mut o = leaderless(3);
    o.set_pod(MasterPod { node_id: Some(new_id(2)), ..healthy_pod(2) });
    assert_eq!(decide(&o), Action::Wait(WaitReason::NoLeader));
    // Two stuck within the grace period, or restarting without a node id yet: may come back.
    let mut o = leaderless(3);
    o.set_pod(stuck_pod(1, ago(100)));
    o.set_pod(MasterPod { node_id: None, ready: false, ..healthy_pod(2) });
    assert_eq!(decide(&o), Action::Wait(WaitReason::NoLeader));
    // Pods missing entirely (being recreated) are not counted lost either.
    let mut o = leaderless(3);
    o.pods.retain(|p| p.ordinal == 0);
    assert_eq!(decide(&o), Action::Wait(WaitReason::NoLeader));
    // No membership ever recorded: nothing to judge.
    let mut o = leaderless(3);
    o.last_known_voters.clear();
    o.set_pod(MasterPod { node_id: Some(new_id(1)), ..healthy_pod(1) });
    o.set_pod(MasterPod { node_id: Some(new_id(2)), ..healthy_pod(2) });
    assert_eq!(decide(&o), Action::Wait(WaitReason::NoLeader));
}

#[test]
fn after_unsafe_recovery_the_group_grows_back_by_adding_members() {
    // The survivor leads alone; the two wiped masters run with fresh ids.
    let mut o = healthy(3);
    o.raft = Some(RaftView { leader: Some(id(0)), members: vec![voter(0)], change_in_flight: false });
    for ordinal in [1, 2] {
        o.set_pod(MasterPod { node_id: Some(new_id(ordinal)), ..healthy_pod(ordinal) });
    }
    assert_eq!(decide(&o), add(1, new_id(1)));
    o.raft_mut().members.push(RaftMember { node_id: new_id(1), ..voter(1) });
    assert_eq!(decide(&o), add(2, new_id(2)));
    o.raft_mut().members.push(RaftMember { node_id: new_id(2), ..voter(2) });
    assert_eq!(decide(&o), Action::None);
}
