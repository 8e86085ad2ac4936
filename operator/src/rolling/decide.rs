//! The next step of a rolling restart (pure).
//!
//! Masters first, one pod at a time: a master goes down only when every other master is a
//! caught-up voter, the next only once the restarted one is back as a caught-up voter, and
//! the leader last, after handing leadership to a master that already runs the new
//! revision (so leadership moves once). Then tablet servers, one at a time: only when
//! every tablet the server hosts keeps a majority of live voters elsewhere, after moving
//! its tablet leaderships away, and the next only once the restarted one is Ready (its
//! readiness means registered with the leader master and every replica caught up). A pod
//! the rollout restarted that is not healthy within the member timeout stalls the rollout.

use std::fmt;
use std::time::Duration;

use super::observed::{Member, RoleObserved, RolloutObserved, TabletLeader, TabletsView};
use crate::build::names::Role;
use crate::membership::NodeId;

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Every pod runs its StatefulSet's update revision and is healthy.
    Complete,
    /// Rolling `role`, waiting for `reason`.
    Wait {
        /// The role being rolled.
        role: Role,
        /// What is awaited.
        reason: String,
    },
    /// Hand the leadership of the leader master in `pod` to `successor` before restarting it.
    StepDown {
        /// Pod of the leader.
        pod: String,
        /// Node id of the leader.
        leader: NodeId,
        /// The master to hand leadership to (one already restarted).
        successor: Option<NodeId>,
    },
    /// Move the tablet leaderships off the tablet server in `pod` before restarting it.
    MoveTabletLeaders {
        /// Pod of the tablet server.
        pod: String,
        /// Its uuid.
        uuid: String,
        /// The tablets it leads and where their leadership goes.
        moves: Vec<TabletLeader>,
    },
    /// Delete `pod`; its StatefulSet recreates it with the update revision.
    DeletePod {
        /// Its role.
        role: Role,
        /// The pod.
        pod: String,
    },
    /// `pod`, restarted by the rollout, has not become healthy for `for_`: nothing further
    /// is restarted until it does or the spec changes.
    Stalled {
        /// Its role.
        role: Role,
        /// The pod.
        pod: String,
        /// How long it has been unhealthy since it was recreated.
        for_: Duration,
    },
}

impl Step {
    /// Whether the step restarts or moves something (the rest only waits or reports).
    pub fn acts(&self) -> bool {
        matches!(self, Self::StepDown { .. } | Self::MoveTabletLeaders { .. } | Self::DeletePod { .. })
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Master => "master",
        Role::TServer => "tablet server",
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Complete => f.write_str("every pod runs the current revision and is healthy"),
            Self::Wait { role, reason } => write!(f, "rolling {}s: waiting for {reason}", role_name(*role)),
            Self::StepDown { pod, successor, .. } => match successor {
                Some(to) => write!(f, "handing master leadership from {pod} to node {to} before restarting it"),
                None => write!(f, "handing master leadership away from {pod} before restarting it"),
            },
            Self::MoveTabletLeaders { pod, moves, .. } => {
                write!(f, "moving {} tablet leaderships off {pod} before restarting it", moves.len())
            }
            Self::DeletePod { role, pod } => write!(f, "restarting {} {pod}", role_name(*role)),
            Self::Stalled { role, pod, for_ } => write!(
                f,
                "{} {pod} was restarted and has not become healthy for {}s; the rollout stopped: fix the spec \
                 (e.g. the image or flags) and it continues",
                role_name(*role),
                for_.as_secs()
            ),
        }
    }
}

fn wait(role: Role, reason: impl Into<String>) -> Step {
    Step::Wait { role, reason: reason.into() }
}

/// The next step of the rollout.
pub fn decide(o: &RolloutObserved) -> Step {
    if let Some(stalled) = stalled(o) {
        return stalled;
    }
    match roll_masters(o) {
        Some(step) => step,
        None => roll_tservers(o),
    }
}

fn master_healthy(o: &RolloutObserved, m: &Member) -> bool {
    m.ready && !m.terminating && o.master_progress.as_ref().is_some_and(|p| p.caught_up_voter(&m.pod))
}

fn tserver_healthy(m: &Member) -> bool {
    m.ready && !m.terminating
}

/// The pod the rollout restarted last, if it runs the update revision and has not become
/// healthy within the member timeout.
fn stalled(o: &RolloutObserved) -> Option<Step> {
    let pod = o.last_restarted.as_deref()?;
    let (role, observed) = [(Role::Master, &o.masters), (Role::TServer, &o.tservers)]
        .into_iter()
        .find(|(_, r)| r.members.iter().any(|m| m.pod == pod))?;
    let member = observed.members.iter().find(|m| m.pod == pod)?;
    let healthy = match role {
        Role::Master => master_healthy(o, member),
        Role::TServer => tserver_healthy(member),
    };
    if healthy || member.terminating || !observed.updated(member) {
        return None;
    }
    let age = o.now.duration_since(member.created?);
    let age = Duration::try_from(age).ok()?;
    (age > o.member_timeout).then(|| Step::Stalled { role, pod: pod.to_owned(), for_: age })
}

/// Outdated pods, the ones already unhealthy first, then highest ordinal first.
fn restart_order(role: &RoleObserved, healthy: impl Fn(&Member) -> bool) -> Vec<&Member> {
    let mut outdated: Vec<&Member> = role.outdated().collect();
    outdated.sort_by_key(|m| (healthy(m), std::cmp::Reverse(m.ordinal)));
    outdated
}

/// Whether the rollout may restart `m`: it is healthy, or it is the pod the rollout itself
/// restarted last and that never came back (a fixed spec replaces it). Any other unhealthy
/// pod (its node NotReady, its volume lost) is the membership loop's, not the rollout's.
fn may_restart(o: &RolloutObserved, m: &Member, healthy: impl Fn(&Member) -> bool) -> bool {
    healthy(m) || o.last_restarted.as_deref() == Some(m.pod.as_str())
}

/// Common waits of a role: revision unknown, a pod missing or going, a restarted pod not
/// healthy yet. `None` when the role may restart its next pod (or is done).
fn role_waits(role: Role, r: &RoleObserved, healthy: &dyn Fn(&Member) -> bool) -> Option<Step> {
    let Some(revision) = &r.update_revision else {
        return Some(wait(role, "the StatefulSet controller to compute the new revision"));
    };
    if let Some(going) = r.members.iter().find(|m| m.terminating) {
        return Some(wait(role, format!("{} to stop", going.pod)));
    }
    if r.members.len() < usize::try_from(r.replicas).unwrap_or(0) {
        return Some(wait(role, "the StatefulSet to recreate its missing pods"));
    }
    if let Some(back) = r.members.iter().find(|m| m.revision.as_ref() == Some(revision) && !healthy(m)) {
        let what = match role {
            Role::Master => "to be back as a caught-up voter",
            Role::TServer => "to be ready (registered, replicas caught up)",
        };
        return Some(wait(role, format!("{} {what}", back.pod)));
    }
    None
}

fn roll_masters(o: &RolloutObserved) -> Option<Step> {
    let r = &o.masters;
    let healthy = |m: &Member| master_healthy(o, m);
    if r.update_revision.is_some() && r.outdated().next().is_none() {
        // Done unless a restarted master is still on its way back.
        return role_waits(Role::Master, r, &healthy);
    }
    if o.membership_busy {
        return Some(wait(Role::Master, "the pending membership change"));
    }
    if let Some(step) = role_waits(Role::Master, r, &healthy) {
        return Some(step);
    }
    let Some(progress) = o.master_progress.as_ref() else {
        return Some(wait(Role::Master, "a leader master"));
    };
    if progress.change_in_flight {
        return Some(wait(Role::Master, "the membership change in flight"));
    }
    let order = restart_order(r, healthy);
    if let Some(stuck) = order.iter().find(|m| !may_restart(o, m, healthy)) {
        return Some(wait(Role::Master, format!("{} to be a caught-up voter", stuck.pod)));
    }
    // Non-leaders first: the leader is the last outdated pod restarted.
    let target = order
        .iter()
        .find(|m| progress.leader_pod.as_deref() != Some(m.pod.as_str()))
        .or_else(|| order.first())
        .copied()?;
    if let Some(other) = r.members.iter().find(|m| m.pod != target.pod && !healthy(m)) {
        return Some(wait(
            Role::Master,
            format!("{} to be a caught-up voter before restarting {}", other.pod, target.pod),
        ));
    }
    if progress.leader_pod.as_deref() == Some(target.pod.as_str()) && healthy(target) {
        let leader = progress.members.get(&target.pod)?.node_id;
        let mut successors: Vec<&Member> =
            r.members.iter().filter(|m| m.pod != target.pod && r.updated(m) && healthy(m)).collect();
        successors.sort_by_key(|m| m.ordinal);
        let successor = successors.first().and_then(|m| progress.members.get(&m.pod)).map(|m| m.node_id);
        return Some(Step::StepDown { pod: target.pod.clone(), leader, successor });
    }
    Some(Step::DeletePod { role: Role::Master, pod: target.pod.clone() })
}

fn roll_tservers(o: &RolloutObserved) -> Step {
    let r = &o.tservers;
    if let Some(step) = role_waits(Role::TServer, r, &tserver_healthy) {
        return step;
    }
    let order = restart_order(r, tserver_healthy);
    let Some(target) = order.first() else {
        return Step::Complete;
    };
    if !may_restart(o, target, tserver_healthy) {
        return wait(Role::TServer, format!("{} to be ready", target.pod));
    }
    if let Some(other) = r.members.iter().find(|m| m.pod != target.pod && !tserver_healthy(m)) {
        return wait(Role::TServer, format!("{} to be ready before restarting {}", other.pod, target.pod));
    }
    let Some(tablets) = o.tablets.as_ref() else {
        return wait(Role::TServer, "the leader master's view of the tablets");
    };
    let Some((uuid, _)) = tablets.servers.get(&target.pod) else {
        // Not registered: the masters place nothing on it.
        return Step::DeletePod { role: Role::TServer, pod: target.pod.clone() };
    };
    let available = |voter: &String| voter != uuid && server_available(o, tablets, voter);
    let mut moves = Vec::new();
    for tablet in tablets.tablets.iter().filter(|t| t.voters.contains(uuid) && t.voters.len() > 1) {
        let elsewhere = tablet.voters.iter().filter(|v| available(v)).count();
        if elsewhere < tablet.voters.len() / 2 + 1 {
            return wait(
                Role::TServer,
                format!(
                    "tablet {} to have a majority of live voters besides {} ({elsewhere} of {})",
                    tablet.tablet_id,
                    target.pod,
                    tablet.voters.len()
                ),
            );
        }
        if tablet.leader.as_ref() == Some(uuid)
            && let Some(to) = tablet.voters.iter().find(|v| available(v))
        {
            moves.push(TabletLeader { tablet_id: tablet.tablet_id.clone(), to_uuid: to.clone() });
        }
    }
    if !moves.is_empty() {
        return Step::MoveTabletLeaders { pod: target.pod.clone(), uuid: uuid.clone(), moves };
    }
    Step::DeletePod { role: Role::TServer, pod: target.pod.clone() }
}

/// Whether the tablet server `uuid` is live for the masters and its pod is Ready.
fn server_available(o: &RolloutObserved, tablets: &TabletsView, uuid: &str) -> bool {
    tablets.servers.iter().any(|(pod, (id, live))| {
        id == uuid && *live && o.tservers.members.iter().any(|m| &m.pod == pod && tserver_healthy(m))
    })
}
