//! Crash-consistency simulation: a model of the Raft group and the master StatefulSet,
//! driven by [`decide`] with the operator dying at arbitrary points.
//!
//! The operator is modelled as what it is: a pure decision over a fresh observation,
//! executed by steps that can stop half-way (leadership moved but member not removed,
//! claim deleted but pod not, request sent but reply lost). `AddMaster` is modelled as the
//! master runs it: the learner joins, then the same request promotes it once it caught up;
//! the request can be cut in between (the operator dies and its call is cancelled, the
//! leader changes, the catch-up times out), leaving a learner nobody is promoting. Between
//! operator runs the world progresses in a seeded random order. Invariants are checked at every step: no
//! membership change is requested while one is in flight, no change leaves fewer live
//! voters than a quorum, a lost disk's old id leaves before its new id joins, and at most
//! one master is being replaced at a time. Every run must converge to the spec.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::*;

/// Deterministic pseudo-random numbers (64-bit LCG), so failures replay by seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        usize::try_from((self.0 >> 33) % u64::try_from(n).unwrap()).unwrap()
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// The membership change the leader is working on.
#[derive(Clone, Debug)]
enum Pending {
    /// An `AddMaster` request: the learner is not in the membership yet.
    Add(RaftMember),
    /// The same `AddMaster` request, the learner in the membership: it is promoted once it
    /// caught up, unless the request is cut first.
    Promote(NodeId),
    /// A `RemoveMaster` request.
    Remove(NodeId),
}

#[derive(Clone, Debug)]
struct Pod {
    phase: PodPhase,
    node: NodeState,
    /// The id on the pod's disk once the master started.
    started_id: Option<NodeId>,
    created: Timestamp,
    stuck_since: Option<Timestamp>,
}

struct World {
    members: Vec<RaftMember>,
    leader: Option<NodeId>,
    pending: Option<Pending>,
    pods: BTreeMap<i32, Pod>,
    /// Node id persisted on each ordinal's claim.
    disks: BTreeMap<i32, NodeId>,
    /// Ordinals whose node is gone: pods there cannot run until replaced.
    dead_nodes: Vec<i32>,
    statefulset_replicas: i32,
    desired: i32,
    next_id: u64,
    now: Timestamp,
    /// Ids removed after their disk was lost (must leave before the new id joins).
    lost_ids: BTreeMap<i32, NodeId>,
}

fn address(ordinal: i32) -> String {
    format!("m-{ordinal}.masters:7051")
}

const GRACE: Duration = Duration::from_secs(300);

impl World {
    /// `n` masters bootstrapped together, all voters.
    fn bootstrapped(n: i32) -> Self {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let mut world = World {
            members: Vec::new(),
            leader: None,
            pending: None,
            pods: BTreeMap::new(),
            disks: BTreeMap::new(),
            dead_nodes: Vec::new(),
            statefulset_replicas: n,
            desired: n,
            next_id: 1,
            now,
            lost_ids: BTreeMap::new(),
        };
        for ordinal in 0..n {
            let id = world.fresh_id();
            world.disks.insert(ordinal, id);
            world.pods.insert(ordinal, world.running_pod(id));
            world.members.push(RaftMember { node_id: id, address: address(ordinal), voter: true, live: true });
        }
        world.leader = Some(world.members[0].node_id);
        world
    }

    fn fresh_id(&mut self) -> NodeId {
        self.next_id += 1;
        NodeId(self.next_id * 7919)
    }

    fn running_pod(&self, id: NodeId) -> Pod {
        Pod {
            phase: PodPhase::Running,
            node: NodeState::Ready,
            started_id: Some(id),
            created: self.now,
            stuck_since: None,
        }
    }

    fn ordinal_of(address: &str) -> i32 {
        (0..7).find(|o| self::address(*o) == address).unwrap()
    }

    fn live(&self, member: &RaftMember) -> bool {
        let pod = self.pods.get(&Self::ordinal_of(&member.address));
        pod.is_some_and(|p| p.phase == PodPhase::Running && p.started_id == Some(member.node_id))
    }

    fn voters(&self) -> usize {
        self.members.iter().filter(|m| m.voter).count()
    }

    fn live_voters(&self) -> usize {
        self.members.iter().filter(|m| m.voter && self.live(m)).count()
    }

    fn observe(&self) -> Observed {
        let has_quorum = self.live_voters() >= quorum(self.voters());
        let leader_live = self.members.iter().any(|m| Some(m.node_id) == self.leader && self.live(m));
        let raft = (has_quorum && leader_live).then(|| RaftView {
            leader: self.leader,
            // The leader hears from the members whose process runs.
            members: self.members.iter().map(|m| RaftMember { live: self.live(m), ..m.clone() }).collect(),
            change_in_flight: self.pending.is_some(),
        });
        Observed {
            raft,
            pods: self
                .pods
                .iter()
                .map(|(&ordinal, pod)| MasterPod {
                    ordinal,
                    phase: pod.phase,
                    ready: pod.phase == PodPhase::Running,
                    node_id: pod.started_id,
                    node: pod.node,
                    unschedulable: pod.node == NodeState::Unassigned && pod.stuck_since.is_some(),
                    terminating: false,
                    unable_to_run_since: pod.stuck_since,
                })
                .collect(),
            addresses: (0..7).map(address).collect(),
            desired_replicas: self.desired,
            statefulset_replicas: self.statefulset_replicas,
            replacement: ReplacementPolicy { enabled: true, grace: GRACE },
            now: self.now,
            // The status remembers the membership the leader last reported.
            last_known_voters: self.members.iter().filter(|m| m.voter).cloned().collect(),
        }
    }

    /// Execute `action`, possibly dying half-way (`crash`).
    fn execute(&mut self, action: &Action, crash: bool) {
        match action {
            Action::None | Action::Wait(_) => {}
            Action::AddMember { address, node_id, .. } => {
                assert!(self.pending.is_none(), "second change while one is in flight");
                let ordinal = Self::ordinal_of(address);
                if let Some(old) = self.lost_ids.get(&ordinal) {
                    assert!(
                        self.members.iter().all(|m| m.node_id != *old),
                        "new id of master {ordinal} added before its old id {old} left"
                    );
                }
                let learner = RaftMember { node_id: *node_id, address: address.clone(), voter: false, live: true };
                if crash {
                    // The operator died while the leader was catching the learner up: its
                    // call is cancelled, and with it the request, after the learner joined.
                    self.members.push(learner);
                } else {
                    self.pending = Some(Pending::Add(learner));
                }
            }
            Action::PromoteLearner { node_id, .. } => {
                assert!(self.pending.is_none(), "second change while one is in flight");
                let learner = self.members.iter().find(|m| m.node_id == *node_id);
                assert!(learner.is_some_and(|m| !m.voter), "promoting {node_id}, which is not a learner");
                // The repeated `AddMaster` promotes it, unless it is cut again.
                if !crash {
                    self.pending = Some(Pending::Promote(*node_id));
                }
            }
            Action::RemoveMember { node_id, is_leader, .. } => {
                assert!(self.pending.is_none(), "second change while one is in flight");
                let voters_after = self.voters() - 1;
                let member = self.members.iter().find(|m| m.node_id == *node_id).unwrap();
                let live_after = self.live_voters() - usize::from(member.voter && self.live(member));
                if member.voter {
                    assert!(
                        live_after >= quorum(voters_after),
                        "removal of {node_id} loses quorum: {live_after} live of {voters_after}"
                    );
                }
                if *is_leader {
                    assert_eq!(self.leader, Some(*node_id));
                    self.transfer_leadership_away_from(*node_id);
                    if crash {
                        return;
                    }
                }
                self.pending = Some(Pending::Remove(*node_id));
            }
            Action::DeletePodAndPvc { ordinal, .. } => {
                // Another master whose data is gone but whose old id is still a member
                // is mid-replacement.
                let others_replacing = self.members.iter().any(|m| {
                    let o = Self::ordinal_of(&m.address);
                    o != *ordinal && self.disks.get(&o) != Some(&m.node_id)
                });
                assert!(!others_replacing, "two replacements at once");
                // Never while the quorum is lost (QuorumLost: only a person recovers).
                assert!(self.live_voters() >= quorum(self.voters()), "a master volume deleted without a quorum");
                self.disks.remove(ordinal);
                if crash {
                    return;
                }
                self.pods.remove(ordinal);
            }
            Action::ResizeStatefulSet { replicas } => {
                self.statefulset_replicas = *replicas;
            }
        }
    }

    fn transfer_leadership_away_from(&mut self, old: NodeId) {
        let next = self.members.iter().find(|m| m.voter && m.node_id != old && self.live(m)).map(|m| m.node_id);
        assert!(next.is_some(), "no live voter to take over leadership");
        self.leader = next;
    }

    /// One random step of the world other than the operator.
    fn progress(&mut self, rng: &mut Rng) {
        match rng.below(5) {
            // The leader moves the pending change on: the learner joins; a caught-up
            // learner is promoted (one that does not run stays a learner while the request
            // waits); a removal commits. Nothing promotes a learner without a request.
            0 => match self.pending.take() {
                Some(Pending::Add(member)) => {
                    self.pending = Some(Pending::Promote(member.node_id));
                    self.members.push(member);
                }
                Some(Pending::Promote(id)) => {
                    let caught_up = self.members.iter().any(|m| m.node_id == id && self.live(m));
                    match self.members.iter_mut().find(|m| m.node_id == id) {
                        Some(learner) if caught_up => learner.voter = true,
                        Some(_) => self.pending = Some(Pending::Promote(id)),
                        None => {}
                    }
                }
                Some(Pending::Remove(id)) => {
                    self.members.retain(|m| m.node_id != id);
                    if self.leader == Some(id) {
                        self.leader = None;
                    }
                }
                None => {}
            },
            // The `AddMaster` request is cut (its catch-up timed out, or the leader
            // restarted): a learner that joined stays a learner.
            4 => {
                if matches!(self.pending, Some(Pending::Add(_) | Pending::Promote(_))) {
                    self.pending = None;
                }
            }
            // The StatefulSet controller creates and deletes pods.
            1 => self.statefulset_controller(),
            // Pods start.
            2 => {
                let now = self.now;
                let ordinals: Vec<i32> = self.pods.keys().copied().collect();
                for ordinal in ordinals {
                    let pinned = self.dead_nodes.contains(&ordinal) && self.disks.contains_key(&ordinal);
                    if pinned || self.pods[&ordinal].phase != PodPhase::Pending {
                        continue;
                    }
                    let id = match self.disks.get(&ordinal) {
                        Some(id) => *id,
                        None => {
                            let id = self.fresh_id();
                            self.disks.insert(ordinal, id);
                            id
                        }
                    };
                    let mut pod = self.running_pod(id);
                    pod.created = now;
                    self.pods.insert(ordinal, pod);
                }
            }
            // Time passes; a leader is elected when there is none, and the `AddMaster`
            // request the old one was running is gone with it.
            _ => {
                self.now += SignedDuration::from_secs(60);
                let leader_live = self.members.iter().any(|m| Some(m.node_id) == self.leader && self.live(m));
                if !leader_live {
                    self.leader = self.members.iter().find(|m| m.voter && self.live(m)).map(|m| m.node_id);
                    if matches!(self.pending, Some(Pending::Add(_) | Pending::Promote(_))) {
                        self.pending = None;
                    }
                }
            }
        }
    }

    fn statefulset_controller(&mut self) {
        let scaled_away: Vec<i32> = self.pods.keys().copied().filter(|o| *o >= self.statefulset_replicas).collect();
        for ordinal in scaled_away {
            self.pods.remove(&ordinal);
            // whenScaled: Delete.
            self.disks.remove(&ordinal);
        }
        for ordinal in 0..self.statefulset_replicas {
            if self.pods.contains_key(&ordinal) {
                continue;
            }
            // A claim on a dead node pins the pod there: it stays Pending.
            let pinned = self.dead_nodes.contains(&ordinal) && self.disks.contains_key(&ordinal);
            if !pinned {
                self.dead_nodes.retain(|o| *o != ordinal);
            }
            self.pods.insert(
                ordinal,
                Pod {
                    phase: PodPhase::Pending,
                    node: NodeState::Unassigned,
                    started_id: None,
                    created: self.now,
                    stuck_since: pinned.then_some(self.now),
                },
            );
        }
    }

    fn lose_disk(&mut self, ordinal: i32) {
        let old = self.disks.remove(&ordinal).unwrap();
        self.lost_ids.insert(ordinal, old);
        self.pods.remove(&ordinal);
    }

    fn lose_node(&mut self, ordinal: i32) {
        if let Some(old) = self.disks.get(&ordinal) {
            self.lost_ids.insert(ordinal, *old);
        }
        if !self.dead_nodes.contains(&ordinal) {
            self.dead_nodes.push(ordinal);
        }
        let now = self.now;
        let Some(pod) = self.pods.get_mut(&ordinal) else {
            return;
        };
        pod.phase = PodPhase::Unknown;
        pod.node = NodeState::Gone;
        pod.stuck_since = Some(now);
    }

    fn converged(&self) -> bool {
        let mut addresses: Vec<_> = self.members.iter().map(|m| m.address.clone()).collect();
        addresses.sort();
        let mut expected: Vec<_> = (0..self.desired).map(address).collect();
        expected.sort();
        self.pending.is_none()
            && self.statefulset_replicas == self.desired
            && addresses == expected
            && self.members.iter().all(|m| m.voter && self.live(m))
    }
}

/// Run operator and world in random interleavings until the world converges.
fn run(world: World, seed: u64) -> World {
    run_with_fault(world, seed, None)
}

/// [`run`], losing the node of master `ordinal` at step `at` if its pod exists then.
fn run_with_fault(mut world: World, seed: u64, fault: Option<(usize, i32)>) -> World {
    let mut rng = Rng(seed);
    for step in 0..2_000 {
        if let Some((at, ordinal)) = fault
            && step == at
            && world.pods.contains_key(&ordinal)
        {
            world.lose_node(ordinal);
        }
        if step > fault.map_or(0, |(at, _)| at) && world.converged() && decide(&world.observe()) == Action::None {
            return world;
        }
        if rng.chance(50) {
            let action = decide(&world.observe());
            // The operator may die in the middle of executing, and a restarted operator
            // may run again before the world moved at all.
            world.execute(&action, rng.chance(30));
        } else {
            world.progress(&mut rng);
        }
    }
    panic!(
        "seed {seed}: no convergence; members {:?}, pending {:?}, pods {:?}, sts {}, last decision {:?}",
        world.members,
        world.pending,
        world.pods,
        world.statefulset_replicas,
        decide(&world.observe())
    );
}

const SEEDS: std::ops::Range<u64> = 0..200;

#[test]
fn scale_one_to_three_to_five_to_three() {
    for seed in SEEDS {
        let mut world = World::bootstrapped(1);
        for desired in [3, 5, 3, 1] {
            world.desired = desired;
            world = run(world, seed * 31 + u64::try_from(desired).unwrap());
        }
    }
}

#[test]
fn lost_disk_rejoins_under_a_new_id() {
    for seed in SEEDS {
        for ordinal in [0, 2] {
            let mut world = World::bootstrapped(3);
            let old = world.disks[&ordinal];
            world.lose_disk(ordinal);
            let world = run(world, seed);
            let member = world.members.iter().find(|m| m.address == address(ordinal)).unwrap();
            assert_ne!(member.node_id, old, "seed {seed}");
        }
    }
}

#[test]
fn lost_nodes_are_replaced_one_at_a_time() {
    for seed in SEEDS {
        let mut world = World::bootstrapped(5);
        world.lose_node(3);
        world.lose_node(1);
        let old: Vec<_> = [1, 3].iter().map(|o| world.disks[o]).collect();
        let world = run(world, seed);
        assert!(world.members.iter().all(|m| !old.contains(&m.node_id)), "seed {seed}");
    }
}

#[test]
fn scale_down_while_a_disk_is_lost() {
    for seed in SEEDS {
        let mut world = World::bootstrapped(5);
        world.lose_disk(1);
        world.desired = 3;
        run(world, seed);
    }
}

#[test]
fn restarted_operator_repeats_no_membership_change() {
    // Deterministic crash points: after each membership action, decide again at once
    // (a restarted operator) before the world moves: it must wait, not act again. Only a
    // request the world cut is asked again (a promotion).
    let mut world = World::bootstrapped(1);
    world.desired = 3;
    let mut rng = Rng(7);
    let (mut added, mut promotions) = (std::collections::BTreeSet::new(), 0);
    for _ in 0..1_000 {
        if world.converged() {
            break;
        }
        let action = decide(&world.observe());
        world.execute(&action, false);
        if action.is_membership_change() {
            assert_eq!(decide(&world.observe()), Action::Wait(WaitReason::ChangeInFlight));
        }
        match action {
            Action::AddMember { node_id, .. } => {
                added.insert(node_id);
            }
            Action::PromoteLearner { .. } => promotions += 1,
            _ => {}
        }
        world.progress(&mut rng);
        assert!(added.len() <= 2, "more masters added than there are to add: {added:?}");
    }
    assert!(world.converged());
    assert_eq!(added.len(), 2);
    assert!(promotions <= 10, "{promotions} promotions for 2 learners");
}

#[test]
fn node_lost_at_any_point_of_a_scale_up() {
    for seed in 0..100 {
        for at in [0, 3, 8, 15, 30] {
            let mut world = World::bootstrapped(3);
            world.desired = 5;
            let ordinal = [3, 4, 1][usize::try_from(seed % 3).unwrap()];
            run_with_fault(world, seed, Some((at, ordinal)));
        }
    }
}

#[test]
fn add_master_cut_after_the_learner_joined_is_finished() {
    for seed in SEEDS {
        let mut world = World::bootstrapped(3);
        world.desired = 5;
        let mut rng = Rng(seed);
        // Run until a learner joined, then cut the request that was to promote it.
        for _ in 0..1_000 {
            if world.members.iter().any(|m| !m.voter) {
                break;
            }
            if rng.chance(50) {
                let action = decide(&world.observe());
                world.execute(&action, false);
            } else {
                world.progress(&mut rng);
            }
        }
        assert!(world.members.iter().any(|m| !m.voter), "seed {seed}: no learner joined");
        world.pending = None;
        let world = run(world, seed);
        assert_eq!(world.members.iter().filter(|m| m.voter).count(), 5, "seed {seed}");
    }
}
