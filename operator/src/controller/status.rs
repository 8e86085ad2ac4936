//! The status of a `KuduCluster` from what was observed (pure).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{KuduClusterStatus, MasterMemberStatus, MasterRole, MembershipChangeStatus};
use crate::membership::{Action, MasterPod, NodeId, Observed, RaftMember, WaitReason};

/// Condition type: the cluster serves requests.
pub const AVAILABLE: &str = "Available";
/// Condition type: the operator is moving the cluster towards its spec.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: some part of the cluster is down or the spec is invalid.
pub const DEGRADED: &str = "Degraded";
/// Condition type: a majority of the master voters is gone for good; only a person can
/// recover (README: "Recovering from quorum loss"), and the operator changes nothing.
pub const QUORUM_LOST: &str = "QuorumLost";

/// Everything the status is computed from.
pub struct StatusInputs<'a> {
    /// `metadata.generation` of the reconciled object.
    pub generation: Option<i64>,
    /// The membership observation.
    pub observed: &'a Observed,
    /// Names of the master pods by ordinal.
    pub master_pod_name: &'a dyn Fn(i32) -> String,
    /// The membership decision of this reconciliation.
    pub decision: &'a Action,
    /// Ready tablet server pods.
    pub ready_tservers: i32,
    /// Desired tablet servers.
    pub desired_tservers: i32,
    /// The status before this reconciliation.
    pub previous: Option<&'a KuduClusterStatus>,
    /// The current time.
    pub now: Timestamp,
}

/// A condition before its transition time is settled ([`condition`]).
pub(crate) struct Cond {
    pub(crate) type_: &'static str,
    pub(crate) status: bool,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

/// Compute the new status.
pub fn compute_status(inputs: &StatusInputs<'_>) -> KuduClusterStatus {
    let observed = inputs.observed;
    let raft = observed.raft.as_ref();
    let leader_id = raft.and_then(|r| r.leader);
    let pod_for = |ordinal: Option<i32>| ordinal.and_then(|o| observed.pod(o));
    let masters: Vec<MasterMemberStatus> = raft
        .map(|r| r.members.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let ordinal = observed.ordinal_of(&m.address);
            let pod: Option<&MasterPod> = pod_for(ordinal).filter(|p| p.node_id == Some(m.node_id));
            MasterMemberStatus {
                pod: pod.map(|p| (inputs.master_pod_name)(p.ordinal)),
                node_id: m.node_id.to_string(),
                address: m.address.clone(),
                role: if Some(m.node_id) == leader_id {
                    MasterRole::Leader
                } else if m.voter {
                    MasterRole::Follower
                } else {
                    MasterRole::Learner
                },
                voter: m.voter,
                healthy: m.live && pod.is_some_and(|p| p.ready),
                revision: None,
            }
        })
        .collect();
    // With no leader the membership is unknown: keep the last known one, none healthy, so
    // that a lost quorum can still be recognised on the next reconciliation.
    let masters = match (raft.is_some_and(|r| !r.members.is_empty()), inputs.previous) {
        (false, Some(previous)) => previous
            .masters
            .iter()
            .map(|m| MasterMemberStatus {
                role: if m.voter { MasterRole::Follower } else { MasterRole::Learner },
                healthy: false,
                revision: None,
                ..m.clone()
            })
            .collect(),
        _ => masters,
    };
    let voters = masters.iter().filter(|m| m.voter).count();
    let healthy_voters = masters.iter().filter(|m| m.voter && m.healthy).count();
    let leader_pod = masters.iter().find(|m| m.role == MasterRole::Leader).and_then(|m| m.pod.clone());

    let available = match (leader_id, inputs.ready_tservers) {
        (None, _) => Cond {
            type_: AVAILABLE,
            status: false,
            reason: "NoLeader",
            message: "no master reports a leader".to_owned(),
        },
        (Some(_), 0) => Cond {
            type_: AVAILABLE,
            status: false,
            reason: "NoTabletServers",
            message: "no tablet server is ready".to_owned(),
        },
        (Some(_), _) => Cond {
            type_: AVAILABLE,
            status: true,
            reason: "LeaderElected",
            message: format!(
                "{healthy_voters}/{voters} masters healthy, {}/{} tablet servers ready",
                inputs.ready_tservers, inputs.desired_tservers
            ),
        },
    };
    let progressing = match inputs.decision {
        Action::None if inputs.ready_tservers >= inputs.desired_tservers => Cond {
            type_: PROGRESSING,
            status: false,
            reason: "Reconciled",
            message: "the cluster matches its spec".to_owned(),
        },
        Action::None => Cond {
            type_: PROGRESSING,
            status: true,
            reason: "TabletServersStarting",
            message: format!("{}/{} tablet servers ready", inputs.ready_tservers, inputs.desired_tservers),
        },
        Action::Wait(reason) => {
            Cond { type_: PROGRESSING, status: true, reason: "Waiting", message: reason.to_string() }
        }
        action => Cond { type_: PROGRESSING, status: true, reason: "MembershipChange", message: action.to_string() },
    };
    let degraded = if leader_id.is_none() {
        Cond {
            type_: DEGRADED,
            status: true,
            reason: "NoLeader",
            message: "master membership unknown: no master reports a leader".to_owned(),
        }
    } else if healthy_voters < voters {
        Cond {
            type_: DEGRADED,
            status: true,
            reason: "MasterDown",
            message: format!("{healthy_voters}/{voters} voting masters healthy"),
        }
    } else if inputs.ready_tservers < inputs.desired_tservers {
        Cond {
            type_: DEGRADED,
            status: true,
            reason: "TabletServerDown",
            message: format!("{}/{} tablet servers ready", inputs.ready_tservers, inputs.desired_tservers),
        }
    } else {
        Cond {
            type_: DEGRADED,
            status: false,
            reason: "AllHealthy",
            message: "all masters and tablet servers are healthy".to_owned(),
        }
    };

    let quorum_lost = match inputs.decision {
        Action::Wait(WaitReason::QuorumLost(loss)) => Cond {
            type_: QUORUM_LOST,
            status: true,
            reason: "MajorityOfMastersLost",
            message: match loss.survivors.first() {
                Some((ordinal, _)) => {
                    let pod = (inputs.master_pod_name)(*ordinal);
                    format!(
                        "{loss}. To recover from {pod}: kubectl exec {pod} -- kudu master unsafe-recover \
                         --data-dir {} --at-next-start --yes-i-know-this-may-lose-data; then kubectl delete pod {pod}",
                        crate::build::names::DATA_DIR
                    )
                }
                None => format!("{loss}. No surviving master holds the catalog: restore from a backup"),
            },
        },
        _ => Cond {
            type_: QUORUM_LOST,
            status: false,
            reason: "QuorumHeld",
            message: "a majority of the master voters is present or may come back".to_owned(),
        },
    };

    let previous = inputs.previous;
    let last_membership_change = if inputs.decision.is_membership_change()
        || matches!(inputs.decision, Action::DeletePodAndPvc { .. } | Action::ResizeStatefulSet { .. })
    {
        Some(MembershipChangeStatus {
            time: Time(inputs.now),
            action: action_name(inputs.decision).to_owned(),
            message: inputs.decision.to_string(),
        })
    } else {
        previous.and_then(|p| p.last_membership_change.clone())
    };
    KuduClusterStatus {
        conditions: [available, progressing, degraded, quorum_lost]
            .into_iter()
            .map(|c| condition(c, inputs.generation, previous, inputs.now))
            .collect(),
        observed_generation: inputs.generation,
        masters,
        master_voters: Some(format!("{voters}/{}", observed.desired_replicas)),
        leader: leader_pod,
        ready_tservers: Some(inputs.ready_tservers),
        last_membership_change,
        tablet_servers: Vec::new(),
        rollout: previous.and_then(|p| p.rollout.clone()),
    }
}

/// The voters of the last membership the status recorded (what a leader reported last).
pub fn last_known_voters(status: Option<&KuduClusterStatus>) -> Vec<RaftMember> {
    status
        .map(|s| s.masters.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|m| m.voter)
        .filter_map(|m| {
            Some(RaftMember {
                node_id: NodeId(m.node_id.parse().ok()?),
                address: m.address.clone(),
                voter: true,
                live: false,
            })
        })
        .collect()
}

/// Status with only the conditions saying the spec is invalid, keeping the rest.
pub fn invalid_spec_status(
    message: String,
    generation: Option<i64>,
    previous: Option<&KuduClusterStatus>,
    now: Timestamp,
) -> KuduClusterStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let keep_available = previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == AVAILABLE)).cloned();
    status.conditions = [
        Cond { type_: PROGRESSING, status: false, reason: "InvalidSpec", message: message.clone() },
        Cond { type_: DEGRADED, status: true, reason: "InvalidSpec", message },
    ]
    .into_iter()
    .map(|c| condition(c, generation, previous, now))
    .chain(keep_available)
    .collect();
    status.observed_generation = generation;
    status
}

/// Stable name of an action kind, for status and metrics.
pub fn action_name(action: &Action) -> &'static str {
    match action {
        Action::None => "None",
        Action::Wait(_) => "Wait",
        Action::AddMember { .. } => "AddMember",
        Action::PromoteLearner { .. } => "PromoteLearner",
        Action::RemoveMember { .. } => "RemoveMember",
        Action::DeletePodAndPvc { .. } => "DeletePodAndPvc",
        Action::ResizeStatefulSet { .. } => "ResizeStatefulSet",
    }
}

/// A condition, keeping the previous transition time when its status did not change.
pub(crate) fn condition(
    c: Cond,
    generation: Option<i64>,
    previous: Option<&KuduClusterStatus>,
    now: Timestamp,
) -> Condition {
    let status = if c.status { "True" } else { "False" }.to_owned();
    let last_transition_time = previous
        .and_then(|p| p.conditions.iter().find(|old| old.type_ == c.type_))
        .filter(|old| old.status == status)
        .map(|old| old.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: c.type_.to_owned(),
        status,
        reason: c.reason.to_owned(),
        message: c.message,
        observed_generation: generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::membership::{LostBecause, NodeState, PodPhase, QuorumLoss, RaftView, ReplacementPolicy};

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn observed(ready: &[bool]) -> Observed {
        let n = i32::try_from(ready.len()).unwrap();
        Observed {
            raft: Some(RaftView {
                leader: Some(NodeId(10)),
                members: (0..n)
                    .map(|o| RaftMember {
                        node_id: NodeId(10 + u64::try_from(o).unwrap()),
                        address: format!("m{o}"),
                        voter: true,
                        live: true,
                    })
                    .collect(),
                change_in_flight: false,
            }),
            pods: (0..n)
                .map(|o| MasterPod {
                    ordinal: o,
                    phase: PodPhase::Running,
                    ready: ready[usize::try_from(o).unwrap()],
                    node_id: Some(NodeId(10 + u64::try_from(o).unwrap())),
                    node: NodeState::Ready,
                    unschedulable: false,
                    terminating: false,
                    unable_to_run_since: None,
                })
                .collect(),
            addresses: (0..7).map(|o| format!("m{o}")).collect(),
            desired_replicas: n,
            statefulset_replicas: n,
            replacement: ReplacementPolicy { enabled: true, grace: Duration::from_secs(300) },
            now: at(0),
            last_known_voters: Vec::new(),
        }
    }

    fn status_of(
        observed: &Observed,
        decision: &Action,
        ready_tservers: i32,
        previous: Option<&KuduClusterStatus>,
        now: i64,
    ) -> KuduClusterStatus {
        let name = |o: i32| format!("demo-master-{o}");
        compute_status(&StatusInputs {
            generation: Some(4),
            observed,
            master_pod_name: &name,
            decision,
            ready_tservers,
            desired_tservers: 3,
            previous,
            now: at(now),
        })
    }

    fn cond<'a>(status: &'a KuduClusterStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn healthy_cluster_is_available_and_settled() {
        let s = status_of(&observed(&[true, true, true]), &Action::None, 3, None, 0);
        assert_eq!(cond(&s, AVAILABLE).status, "True");
        assert_eq!(cond(&s, PROGRESSING).status, "False");
        assert_eq!(cond(&s, DEGRADED).status, "False");
        assert_eq!(s.master_voters.as_deref(), Some("3/3"));
        assert_eq!(s.leader.as_deref(), Some("demo-master-0"));
        assert_eq!(s.ready_tservers, Some(3));
        assert_eq!(s.observed_generation, Some(4));
        assert!(s.conditions.iter().all(|c| c.observed_generation == Some(4)));
        assert_eq!(s.masters[0].role, MasterRole::Leader);
        assert_eq!(s.masters[1].role, MasterRole::Follower);
        assert_eq!(s.masters[1].node_id, "11");
    }

    #[test]
    fn a_down_master_degrades_and_waiting_progresses() {
        let decision = Action::Wait(WaitReason::ReplacementPending { ordinal: 2, remaining: Duration::from_secs(100) });
        let s = status_of(&observed(&[true, true, false]), &decision, 3, None, 0);
        assert_eq!(cond(&s, DEGRADED).reason, "MasterDown");
        assert_eq!(cond(&s, DEGRADED).message, "2/3 voting masters healthy");
        assert_eq!(cond(&s, PROGRESSING).status, "True");
        assert!(cond(&s, PROGRESSING).message.contains("replacing it in 100s"));
        assert!(!s.masters[2].healthy);
    }

    #[test]
    fn quorum_lost_keeps_the_last_membership_and_says_how_to_recover() {
        let healthy = status_of(&observed(&[true, true, true]), &Action::None, 3, None, 0);
        assert_eq!(cond(&healthy, QUORUM_LOST).status, "False");
        let mut o = observed(&[true, false, false]);
        o.raft = None;
        o.last_known_voters = last_known_voters(Some(&healthy));
        assert_eq!(o.last_known_voters.len(), 3);
        assert!(o.last_known_voters.iter().all(|m| m.voter && m.node_id.0 >= 10));
        let loss = QuorumLoss {
            voters: 3,
            lost: vec![(1, LostBecause::DiskLost), (2, LostBecause::DiskLost)],
            survivors: vec![(0, NodeId(10))],
        };
        let s = status_of(&o, &Action::Wait(WaitReason::QuorumLost(loss)), 3, Some(&healthy), 60);
        let c = cond(&s, QUORUM_LOST);
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "MajorityOfMastersLost"));
        assert!(c.message.contains("kubectl exec demo-master-0 -- kudu master unsafe-recover"), "{}", c.message);
        assert_eq!(cond(&s, AVAILABLE).status, "False");
        // The membership stays as last known, none healthy, so the next pass can judge again.
        assert_eq!(s.masters.len(), 3);
        assert!(s.masters.iter().all(|m| !m.healthy && m.role != MasterRole::Leader));
        assert_eq!(last_known_voters(Some(&s)), o.last_known_voters);
    }

    #[test]
    fn no_leader_is_unavailable() {
        let mut o = observed(&[true]);
        o.raft = None;
        let s = status_of(&o, &Action::Wait(WaitReason::NoLeader), 3, None, 0);
        assert_eq!(cond(&s, AVAILABLE).status, "False");
        assert_eq!(cond(&s, AVAILABLE).reason, "NoLeader");
        assert_eq!(cond(&s, DEGRADED).status, "True");
        assert_eq!(cond(&s, DEGRADED).reason, "NoLeader");
        assert!(s.masters.is_empty());
        assert_eq!(s.leader, None);
    }

    #[test]
    fn transition_time_changes_only_with_the_status() {
        let o = observed(&[true, true, true]);
        let first = status_of(&o, &Action::None, 3, None, 0);
        let same = status_of(&o, &Action::None, 3, Some(&first), 60);
        assert_eq!(cond(&same, AVAILABLE).last_transition_time, Time(at(0)));
        let changed = status_of(&o, &Action::None, 0, Some(&same), 120);
        assert_eq!(cond(&changed, AVAILABLE).last_transition_time, Time(at(120)));
    }

    #[test]
    fn membership_changes_are_recorded_and_kept() {
        let o = observed(&[true, true, true]);
        let add = Action::AddMember { ordinal: 3, address: "m3".to_owned(), node_id: NodeId(99) };
        let s = status_of(&o, &add, 3, None, 10);
        let change = s.last_membership_change.clone().unwrap();
        assert_eq!(change.action, "AddMember");
        assert_eq!(change.time, Time(at(10)));
        let later = status_of(&o, &Action::None, 3, Some(&s), 20);
        assert_eq!(later.last_membership_change, Some(change));
    }

    #[test]
    fn invalid_spec_keeps_observations_and_says_why() {
        let o = observed(&[true, true, true]);
        let good = status_of(&o, &Action::None, 3, None, 0);
        let s = invalid_spec_status("spec.masters.replicas is 2".to_owned(), Some(5), Some(&good), at(30));
        assert_eq!(cond(&s, DEGRADED).reason, "InvalidSpec");
        assert_eq!(cond(&s, DEGRADED).status, "True");
        assert_eq!(cond(&s, PROGRESSING).reason, "InvalidSpec");
        assert_eq!(cond(&s, AVAILABLE).status, "True");
        assert_eq!(s.observed_generation, Some(5));
        assert_eq!(s.masters, good.masters);
    }
}
