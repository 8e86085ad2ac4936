//! The master membership decision: observed Raft membership and master pods -> at most
//! one action.
//!
//! The function keeps no memory between calls. Every decision derives from what is
//! observed now, so an operator that dies anywhere between deciding, acting and seeing the
//! result decides again from the new state and converges without a second change in
//! flight: a change being committed makes it wait, a change already committed is visible
//! in the membership, and the Kubernetes-side actions (resize, delete) are idempotent.
//!
//! Rules, in order:
//! 1. Act only when there is a leader and no membership change is in flight.
//! 2. A member whose pod now reports another node id lost its disk: remove the old id
//!    (the new one is added later by rule 6).
//! 3. Scale down: remove members of ordinals at or above the desired count, highest
//!    first (the executor moves leadership away first when the leader is among them).
//! 4. A learner of ours: no change is in flight, so no `AddMaster` is promoting it (the
//!    one that added it was cut: operator died, leader changed, catch-up timed out). Once
//!    it caught up (the leader hears from it and its pod is ready) ask again, which promotes
//!    it; remove it if the leader does not hear from it and its pod stopped running; wait
//!    while it catches up.
//! 5. Resize the StatefulSet to the desired count once no member is above it.
//! 6. Add each pod that reports a node id that is not a member, lowest ordinal first.
//! 7. Replace a master that is truly lost beyond the grace period (Raft reports it down
//!    and Kubernetes cannot run its pod: node gone or NotReady, or unschedulable) by
//!    deleting its claim and pod, one replacement at a time. A container that cannot start
//!    on a Ready node (image pull failure, crash loop) is never a reason.
//!
//! Removals and additions never leave fewer live voters than a quorum of the voters.

use std::fmt;
use std::time::Duration;

use super::confirm::NotLost;
use super::observed::{CannotRun, MasterPod, NodeId, Observed, PodPhase, RaftMember, RaftView};

/// What the membership loop should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The membership matches the spec.
    None,
    /// Something is to be done, but not now.
    Wait(WaitReason),
    /// `AddMaster(address)` on the leader: the master joins as a learner and is promoted
    /// to voter once caught up.
    AddMember {
        /// Ordinal of the pod.
        ordinal: i32,
        /// Its stable RPC address.
        address: String,
        /// The node id it reports.
        node_id: NodeId,
    },
    /// `RemoveMaster(node_id)` on the leader.
    RemoveMember {
        /// The member to remove.
        node_id: NodeId,
        /// Its address.
        address: String,
        /// Whether it is the leader: the executor transfers leadership first.
        is_leader: bool,
        /// Where leadership goes when it is the leader: a live voter that stays (lowest
        /// ordinal first), so it does not move twice while scaling down; `None` lets the
        /// leader choose.
        successor: Option<NodeId>,
        /// Why.
        reason: RemoveReason,
    },
    /// Replace a master that cannot come back: delete its PersistentVolumeClaim, then
    /// its pod (in that order, so the recreated pod gets a new claim); both idempotent.
    DeletePodAndPvc {
        /// Ordinal of the pod.
        ordinal: i32,
        /// How long it has been unable to run.
        stuck_for: Duration,
    },
    /// `AddMaster(address)` again for a learner left behind by an interrupted one: the
    /// leader promotes it to voter (the call is idempotent).
    PromoteLearner {
        /// Ordinal of the pod.
        ordinal: i32,
        /// Its stable RPC address.
        address: String,
        /// The learner's node id.
        node_id: NodeId,
    },
    /// Set the master StatefulSet's replicas.
    ResizeStatefulSet {
        /// The new replica count.
        replicas: i32,
    },
}

impl Action {
    /// Whether this action changes the Raft membership.
    pub fn is_membership_change(&self) -> bool {
        matches!(self, Self::AddMember { .. } | Self::PromoteLearner { .. } | Self::RemoveMember { .. })
    }
}

/// Why a member is removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoveReason {
    /// The member's pod came back with a new node id: its data is gone.
    DiskLost {
        /// Ordinal of the pod.
        ordinal: i32,
        /// The id the pod reports now.
        new_node_id: NodeId,
    },
    /// The member's ordinal is at or above the desired master count.
    ScaleDown {
        /// Ordinal of the member.
        ordinal: i32,
    },
    /// A learner whose pod stopped running before it caught up; it is added again once
    /// its pod runs.
    LearnerLost {
        /// Ordinal of the learner.
        ordinal: i32,
    },
}

/// Why nothing is done now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// No master reports a leader.
    NoLeader,
    /// No master leads and a majority of the last known voters is gone for good: only a
    /// person can recover (`kudu master unsafe-recover`); nothing destructive is done.
    QuorumLost(QuorumLoss),
    /// A membership change is being committed.
    ChangeInFlight,
    /// A learner is catching up before promotion.
    LearnerCatchingUp {
        /// The learner.
        node_id: NodeId,
    },
    /// The next change would leave fewer live voters than a quorum.
    WouldLoseQuorum {
        /// The refused change, in words.
        change: String,
        /// Voters before the change.
        voters: usize,
        /// Live voters before the change.
        live: usize,
    },
    /// A pod to be added has not reported its node id yet.
    WaitingForNodeId {
        /// Ordinal of the pod.
        ordinal: i32,
    },
    /// A pod reports a node id that is a member under another address.
    NodeIdConflict {
        /// Ordinal of the pod.
        ordinal: i32,
        /// The duplicated id.
        node_id: NodeId,
    },
    /// A stuck master is within its grace period.
    ReplacementPending {
        /// Ordinal of the pod.
        ordinal: i32,
        /// Time left until it is replaced.
        remaining: Duration,
    },
    /// A stuck master would be replaced, but replacement is disabled.
    ReplacementDisabled {
        /// Ordinal of the pod.
        ordinal: i32,
    },
    /// A stuck master waits for another master to recover first.
    ReplacementBlocked {
        /// Ordinal of the stuck pod.
        ordinal: i32,
        /// Ordinal of the master still recovering.
        recovering: i32,
    },
    /// A lost master's pod is being deleted, and its NotReady node must confirm (or be
    /// removed) before the StatefulSet can recreate it; it is deleted by force only once
    /// its node is gone.
    AwaitingNode {
        /// Ordinal of the pod.
        ordinal: i32,
    },
    /// A replacement was called off: on a fresh read just before acting, the master was not
    /// truly lost.
    CalledOff {
        /// Ordinal of the pod.
        ordinal: i32,
        /// What the fresh read showed.
        reason: NotLost,
    },
    /// A member the operator did not add (its address is not a pod of this cluster).
    UnmanagedMember {
        /// The member.
        node_id: NodeId,
        /// Its address.
        address: String,
    },
}

/// A lost quorum: which voters are gone for good and which survive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumLoss {
    /// Voters of the last known membership.
    pub voters: usize,
    /// Ordinals of the voters gone for good, with why.
    pub lost: Vec<(i32, LostBecause)>,
    /// Ordinals and node ids of the voters whose pods still report their ids: the masters
    /// one of which can be recovered.
    pub survivors: Vec<(i32, NodeId)>,
}

/// Why a voter counts as gone for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostBecause {
    /// Its pod runs with another node id: its volume was lost.
    DiskLost,
    /// Its pod has been unable to run for longer than the replacement grace period.
    CannotRun(CannotRun),
}

impl fmt::Display for QuorumLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lost: Vec<String> = self
            .lost
            .iter()
            .map(|(o, why)| match why {
                LostBecause::DiskLost => format!("master {o} (volume lost)"),
                LostBecause::CannotRun(c) => format!("master {o} ({c})"),
            })
            .collect();
        let survivors: Vec<String> = self.survivors.iter().map(|(o, id)| format!("master {o} (node {id})")).collect();
        write!(
            f,
            "quorum lost: {} of {} voters are gone for good: {}; surviving: {}. The operator changes nothing; \
             recover one survivor with `kudu master unsafe-recover` (README: Recovering from quorum loss)",
            self.lost.len(),
            self.voters,
            lost.join(", "),
            if survivors.is_empty() { "none".to_owned() } else { survivors.join(", ") }
        )
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoLeader => write!(f, "no master reports a leader"),
            Self::QuorumLost(loss) => write!(f, "{loss}"),
            Self::ChangeInFlight => write!(f, "a membership change is in flight"),
            Self::LearnerCatchingUp { node_id } => {
                write!(f, "learner {node_id} is catching up")
            }
            Self::WouldLoseQuorum { change, voters, live } => {
                write!(f, "refusing to {change}: only {live} of {voters} voters are live and quorum would be lost")
            }
            Self::WaitingForNodeId { ordinal } => {
                write!(f, "master {ordinal} has not reported its node id yet")
            }
            Self::NodeIdConflict { ordinal, node_id } => {
                write!(f, "master {ordinal} reports node id {node_id}, which is a member under another address")
            }
            Self::ReplacementPending { ordinal, remaining } => {
                write!(f, "master {ordinal} cannot run; replacing it in {}s unless it recovers", remaining.as_secs())
            }
            Self::ReplacementDisabled { ordinal } => {
                write!(f, "master {ordinal} cannot run and automatic replacement is disabled")
            }
            Self::ReplacementBlocked { ordinal, recovering } => {
                write!(f, "master {ordinal} cannot run; waiting for master {recovering} to recover before replacing it")
            }
            Self::AwaitingNode { ordinal } => {
                write!(f, "master {ordinal}'s pod is being deleted; waiting for its node to come back or be removed")
            }
            Self::CalledOff { ordinal, reason } => {
                write!(f, "the replacement of master {ordinal} was called off: {reason}")
            }
            Self::UnmanagedMember { node_id, address } => {
                write!(f, "member {node_id} at {address} is not a pod of this cluster; leaving it alone")
            }
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => write!(f, "membership matches the spec"),
            Self::Wait(reason) => write!(f, "waiting: {reason}"),
            Self::AddMember { ordinal, address, node_id } => {
                write!(f, "add master {ordinal} ({address}, node {node_id})")
            }
            Self::PromoteLearner { ordinal, address, node_id } => {
                write!(f, "promote learner master {ordinal} ({address}, node {node_id}) left by an interrupted add")
            }
            Self::RemoveMember { node_id, address, is_leader, successor, reason } => {
                write!(f, "remove node {node_id} ({address})")?;
                match reason {
                    RemoveReason::DiskLost { ordinal, new_node_id } => {
                        write!(f, ": master {ordinal} came back as node {new_node_id} (disk lost)")?
                    }
                    RemoveReason::ScaleDown { ordinal } => write!(f, ": scaling down past master {ordinal}")?,
                    RemoveReason::LearnerLost { ordinal } => {
                        write!(f, ": learner master {ordinal} stopped running before it caught up")?
                    }
                }
                if *is_leader {
                    write!(f, "; it is the leader, so leadership moves first")?;
                    if let Some(successor) = successor {
                        write!(f, " (to node {successor})")?;
                    }
                }
                Ok(())
            }
            Self::DeletePodAndPvc { ordinal, stuck_for } => write!(
                f,
                "replace master {ordinal}: unable to run for {}s; deleting its claim and pod",
                stuck_for.as_secs()
            ),
            Self::ResizeStatefulSet { replicas } => {
                write!(f, "resize the master StatefulSet to {replicas}")
            }
        }
    }
}

/// Majority of `voters`.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// Decide the next membership action from what is observed.
pub fn decide(observed: &Observed) -> Action {
    let no_leader = || match quorum_loss(observed) {
        Some(loss) => Action::Wait(WaitReason::QuorumLost(loss)),
        None => Action::Wait(WaitReason::NoLeader),
    };
    let Some(raft) = observed.raft.as_ref() else {
        return no_leader();
    };
    let Some(leader) = raft.leader else {
        return no_leader();
    };
    if raft.change_in_flight {
        return Action::Wait(WaitReason::ChangeInFlight);
    }
    let view = View { observed, raft };

    // Rule 2: disk lost.
    for member in &raft.members {
        if let Some((ordinal, new_node_id)) = view.replaced_identity(member) {
            return view.remove(member, leader, RemoveReason::DiskLost { ordinal, new_node_id });
        }
    }

    // Rule 3: scale down, highest ordinal first.
    let excess = raft
        .members
        .iter()
        .filter_map(|m| Some((observed.ordinal_of(&m.address)?, m)))
        .filter(|(ordinal, _)| *ordinal >= observed.desired_replicas)
        .max_by_key(|(ordinal, _)| *ordinal);
    if let Some((ordinal, member)) = excess {
        return view.remove(member, leader, RemoveReason::ScaleDown { ordinal });
    }

    // Rule 4: a learner of ours. No change is in flight, so nothing is promoting it.
    let learner = raft.members.iter().filter(|m| !m.voter).find_map(|m| Some((observed.ordinal_of(&m.address)?, m)));
    if let Some((ordinal, learner)) = learner {
        let pod = observed.pod(ordinal);
        if !learner.live && pod.is_none_or(|p| p.phase != PodPhase::Running) {
            // Removing a learner never touches the quorum.
            return view.remove(learner, leader, RemoveReason::LearnerLost { ordinal });
        }
        if learner.live
            && pod.is_some_and(|p| p.phase == PodPhase::Running && p.ready && p.node_id == Some(learner.node_id))
        {
            return view.promote(ordinal, learner);
        }
        return Action::Wait(WaitReason::LearnerCatchingUp { node_id: learner.node_id });
    }

    // Rule 5: resize.
    if observed.statefulset_replicas != observed.desired_replicas {
        return Action::ResizeStatefulSet { replicas: observed.desired_replicas };
    }

    // Rule 6: add pods that report ids not in the group.
    let mut waiting_for_id = None;
    for ordinal in 0..observed.desired_replicas {
        if view.member_at(ordinal).is_some() {
            continue;
        }
        let Some(pod) = observed.pod(ordinal) else {
            continue;
        };
        match pod.node_id {
            Some(node_id) if pod.phase == PodPhase::Running => {
                return view.add(ordinal, node_id);
            }
            _ => {
                waiting_for_id.get_or_insert(ordinal);
            }
        }
    }

    // Rule 7: replace a stuck master.
    if let Some(action) = view.replacement() {
        return action;
    }

    if let Some(ordinal) = waiting_for_id {
        return Action::Wait(WaitReason::WaitingForNodeId { ordinal });
    }
    if let Some(member) = raft.members.iter().find(|m| observed.ordinal_of(&m.address).is_none()) {
        return Action::Wait(WaitReason::UnmanagedMember { node_id: member.node_id, address: member.address.clone() });
    }
    Action::None
}

/// With no leader: whether a majority of the last known voters is gone for good. A voter is
/// gone for good when its pod runs under another node id (volume lost) or has been unable
/// to run for longer than the replacement grace period; a voter whose pod is missing or
/// merely restarting is not (it may come back with its data).
pub fn quorum_loss(observed: &Observed) -> Option<QuorumLoss> {
    let reported: Vec<&RaftMember> = observed.raft.as_ref().map(|r| r.members.iter().collect()).unwrap_or_default();
    let voters: Vec<&RaftMember> = if reported.iter().any(|m| m.voter) {
        reported.into_iter().filter(|m| m.voter).collect()
    } else {
        observed.last_known_voters.iter().filter(|m| m.voter).collect()
    };
    if voters.is_empty() {
        return None;
    }
    let mut lost = Vec::new();
    let mut survivors = Vec::new();
    for voter in &voters {
        let Some(ordinal) = observed.ordinal_of(&voter.address) else {
            continue;
        };
        let Some(pod) = observed.pod(ordinal) else {
            continue;
        };
        let stuck_long = pod.unable_to_run_since.is_some_and(|since| {
            let elapsed = Duration::try_from(observed.now.duration_since(since)).unwrap_or(Duration::ZERO);
            elapsed >= observed.replacement.grace
        });
        if pod.node_id.is_some_and(|id| id != voter.node_id) {
            lost.push((ordinal, LostBecause::DiskLost));
        } else if let Some(why) = pod.cannot_run().filter(|_| stuck_long) {
            lost.push((ordinal, LostBecause::CannotRun(why)));
        } else if pod.node_id == Some(voter.node_id) {
            survivors.push((ordinal, voter.node_id));
        }
    }
    lost.sort_by_key(|(ordinal, _)| *ordinal);
    survivors.sort();
    (voters.len() - lost.len() < quorum(voters.len())).then_some(QuorumLoss { voters: voters.len(), lost, survivors })
}

/// The observation with the Raft view unwrapped, and derived facts.
struct View<'a> {
    observed: &'a Observed,
    raft: &'a RaftView,
}

impl View<'_> {
    /// The member at the stable address of `ordinal`.
    fn member_at(&self, ordinal: i32) -> Option<&RaftMember> {
        let address = self.observed.address_of(ordinal)?;
        self.raft.members.iter().find(|m| m.address == address)
    }

    /// If `member`'s pod reports another node id: its ordinal and the new id.
    fn replaced_identity(&self, member: &RaftMember) -> Option<(i32, NodeId)> {
        let ordinal = self.observed.ordinal_of(&member.address)?;
        let reported = self.observed.pod(ordinal)?.node_id?;
        (reported != member.node_id).then_some((ordinal, reported))
    }

    /// Whether the leader hears from `member` and its pod is ready and reports its id.
    fn is_live(&self, member: &RaftMember) -> bool {
        member.live
            && self
                .observed
                .ordinal_of(&member.address)
                .and_then(|ordinal| self.observed.pod(ordinal))
                .is_some_and(|pod| pod.ready && pod.node_id == Some(member.node_id))
    }

    fn voters(&self) -> impl Iterator<Item = &RaftMember> {
        self.raft.members.iter().filter(|m| m.voter)
    }

    fn live_voters(&self) -> usize {
        self.voters().filter(|m| self.is_live(m)).count()
    }

    /// Remove `member` unless that leaves fewer live voters than a quorum.
    fn remove(&self, member: &RaftMember, leader: NodeId, reason: RemoveReason) -> Action {
        let is_leader = member.node_id == leader;
        let action = Action::RemoveMember {
            node_id: member.node_id,
            address: member.address.clone(),
            is_leader,
            successor: if is_leader { self.successor(member) } else { None },
            reason,
        };
        if member.voter {
            let voters = self.voters().count();
            let live = self.live_voters();
            let remaining = voters - 1;
            let live_after = live - usize::from(self.is_live(member));
            if remaining == 0 || live_after < quorum(remaining) {
                return Action::Wait(WaitReason::WouldLoseQuorum {
                    change: format!("remove node {}", member.node_id),
                    voters,
                    live,
                });
            }
        }
        action
    }

    /// The live voter to hand leadership to before `leaving` goes: one that stays (an
    /// ordinal below the desired count), lowest ordinal first; else any other live voter.
    fn successor(&self, leaving: &RaftMember) -> Option<NodeId> {
        let candidates = self
            .voters()
            .filter(|m| m.node_id != leaving.node_id && self.is_live(m))
            .filter_map(|m| Some((self.observed.ordinal_of(&m.address)?, m.node_id)));
        let (staying, leaving_too): (Vec<_>, Vec<_>) =
            candidates.partition(|(ordinal, _)| *ordinal < self.observed.desired_replicas);
        let lowest = |c: Vec<(i32, NodeId)>| c.into_iter().min_by_key(|(ordinal, _)| *ordinal).map(|(_, id)| id);
        lowest(staying).or_else(|| lowest(leaving_too))
    }

    /// Add the pod of `ordinal` reporting `node_id`, unless the id is a member elsewhere
    /// or promoting it would need more live voters than there are.
    fn add(&self, ordinal: i32, node_id: NodeId) -> Action {
        if self.raft.members.iter().any(|m| m.node_id == node_id) {
            return Action::Wait(WaitReason::NodeIdConflict { ordinal, node_id });
        }
        let Some(address) = self.observed.address_of(ordinal) else {
            return Action::Wait(WaitReason::WaitingForNodeId { ordinal });
        };
        let voters = self.voters().count();
        let live = self.live_voters();
        // Once promoted the newcomer votes too; count it as live, it is running.
        if live + 1 < quorum(voters + 1) {
            return Action::Wait(WaitReason::WouldLoseQuorum { change: format!("add master {ordinal}"), voters, live });
        }
        Action::AddMember { ordinal, address: address.to_owned(), node_id }
    }

    /// Promote the caught-up learner `learner` of `ordinal`, unless its pod reports another
    /// id (rule 2 removes it first) or the voters after it would need more live ones than
    /// there are.
    fn promote(&self, ordinal: i32, learner: &RaftMember) -> Action {
        let voters = self.voters().count();
        let live = self.live_voters();
        // Once promoted it votes too, and it is live.
        if live + 1 < quorum(voters + 1) {
            return Action::Wait(WaitReason::WouldLoseQuorum {
                change: format!("promote master {ordinal}"),
                voters,
                live,
            });
        }
        Action::PromoteLearner { ordinal, address: learner.address.clone(), node_id: learner.node_id }
    }

    /// How long the pod has been stuck, if it is stuck.
    fn stuck_for(&self, pod: &MasterPod) -> Option<Duration> {
        if !pod.stuck() {
            return None;
        }
        let since = pod.unable_to_run_since?;
        let elapsed = self.observed.now.duration_since(since);
        Some(Duration::try_from(elapsed).unwrap_or(Duration::ZERO))
    }

    fn beyond_grace(&self, pod: &MasterPod) -> bool {
        self.stuck_for(pod).is_some_and(|d| d >= self.observed.replacement.grace)
    }

    /// Whether the master of `ordinal` is on its way back and not a replacement candidate:
    /// its pod is missing, it is not a member yet, or it is down but not stuck for long.
    fn recovering(&self, ordinal: i32) -> bool {
        let Some(pod) = self.observed.pod(ordinal) else {
            return true;
        };
        match self.member_at(ordinal) {
            None => true,
            Some(member) => !self.is_live(member) && !self.beyond_grace(pod),
        }
    }

    /// Rule 7: the lowest stuck master beyond grace, if replacing it is allowed now.
    fn replacement(&self) -> Option<Action> {
        let observed = self.observed;
        let mut pending: Option<(i32, Duration)> = None;
        for ordinal in 0..observed.desired_replicas {
            let Some(pod) = observed.pod(ordinal) else {
                continue;
            };
            // Only a master Raft reports down: one the leader still hears from keeps its
            // data, whatever Kubernetes says about its node.
            if self.member_at(ordinal).is_some_and(|m| m.live) {
                continue;
            }
            let Some(stuck_for) = self.stuck_for(pod) else {
                continue;
            };
            let grace = observed.replacement.grace;
            if stuck_for < grace {
                pending.get_or_insert((ordinal, grace - stuck_for));
                continue;
            }
            if !observed.replacement.enabled {
                return Some(Action::Wait(WaitReason::ReplacementDisabled { ordinal }));
            }
            // Already being deleted: only its kubelet can confirm, unless its node is gone.
            if pod.terminating && pod.cannot_run() != Some(CannotRun::NodeGone) {
                return Some(Action::Wait(WaitReason::AwaitingNode { ordinal }));
            }
            if let Some(recovering) = (0..observed.desired_replicas).find(|&o| o != ordinal && self.recovering(o)) {
                return Some(Action::Wait(WaitReason::ReplacementBlocked { ordinal, recovering }));
            }
            let voters = self.voters().count();
            let live = self.live_voters();
            if live < quorum(voters) {
                return Some(Action::Wait(WaitReason::WouldLoseQuorum {
                    change: format!("replace master {ordinal}"),
                    voters,
                    live,
                }));
            }
            return Some(Action::DeletePodAndPvc { ordinal, stuck_for });
        }
        pending.map(|(ordinal, remaining)| Action::Wait(WaitReason::ReplacementPending { ordinal, remaining }))
    }
}
