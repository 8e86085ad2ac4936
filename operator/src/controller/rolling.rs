//! The rolling restart step of a reconciliation: observe pods, revisions, the master group
//! and the tablets ([`crate::rolling::RolloutObserved`]), decide ([`crate::rolling::decide()`]),
//! carry out the one step, and put what happened into the status.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Preconditions};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::{info, warn};

use super::masters::MasterAdmin;
use super::status::{Cond, PROGRESSING, condition};
use super::{Context, Error, event, kube_err, observe, publish};
use crate::build::names::{self, Role};
use crate::crd::{KuduCluster, KuduClusterStatus, RolloutStatus};
use crate::membership::{self, WaitReason};
use crate::rolling::{self, MasterProgress, Member, MemberRaft, RoleObserved, RolloutObserved, Step, TabletsView};
use crate::validate::ValidatedSpec;

/// Condition type: a pod restarted by the rollout did not become healthy in time, and the
/// rollout stopped.
pub const ROLLOUT_STALLED: &str = "RolloutStalled";

/// What the rollout step did, for the status.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The step decided (and carried out, if it acts).
    pub step: Step,
    /// The observation it was decided on.
    pub observed: RolloutObserved,
    /// The pod the rollout restarted last, and when.
    pub last_restarted: Option<(String, Time)>,
}

impl Outcome {
    /// Whether a rollout is under way: a pod runs an outdated revision, or the pod it
    /// restarted last is not back yet. (Creating or scaling a cluster is not a rollout.)
    pub fn active(&self) -> bool {
        let o = &self.observed;
        let outdated = |r: &RoleObserved| r.update_revision.is_some() && r.outdated().next().is_some();
        self.step != Step::Complete && (outdated(&o.masters) || outdated(&o.tservers) || self.last_restarted.is_some())
    }

    /// Whether the rollout has work left (the reconciler comes back soon).
    pub fn busy(&self) -> bool {
        self.active() && !matches!(self.step, Step::Stalled { .. })
    }
}

/// Whether the membership loop has work of its own that a rollout must not interfere with.
pub fn membership_busy(decision: &membership::Action) -> bool {
    use membership::Action;
    match decision {
        Action::None => false,
        Action::Wait(reason) => matches!(
            reason,
            WaitReason::ChangeInFlight
                | WaitReason::LearnerCatchingUp { .. }
                | WaitReason::WaitingForNodeId { .. }
                | WaitReason::ReplacementPending { .. }
                | WaitReason::AwaitingNode { .. }
                | WaitReason::QuorumLost(_)
        ),
        _ => true,
    }
}

/// Observe, decide and carry out one rollout step.
pub async fn step<M: MasterAdmin>(
    ctx: &Context<M>,
    cluster: &KuduCluster,
    spec: &ValidatedSpec,
    decision: &membership::Action,
    running_masters: &[String],
    previous: Option<&KuduClusterStatus>,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let prev_rollout = previous.and_then(|p| p.rollout.as_ref());
    let mut last_restarted = prev_rollout
        .and_then(|r| Some((r.last_restarted.clone()?, r.last_restarted_time.clone().unwrap_or(Time(now)))));
    let observed = observe(
        ctx,
        spec,
        membership_busy(decision),
        running_masters,
        last_restarted.as_ref().map(|(p, _)| p.clone()),
        now,
    )
    .await?;
    let step = rolling::decide(&observed);
    if step == Step::Complete {
        last_restarted = None;
    }
    if step.acts() {
        info!(step = %step, "rollout step");
        if let Err(error) = execute(ctx, spec, &observed, &step).await {
            publish(ctx, cluster, rollout_event(EventType::Warning, "RolloutStepFailed", format!("{step}: {error}")))
                .await;
            return Err(error);
        }
        let reason = match &step {
            Step::StepDown { .. } => "RolloutStepDown",
            Step::MoveTabletLeaders { .. } => "RolloutMoveTabletLeaders",
            _ => "RolloutRestart",
        };
        publish(ctx, cluster, rollout_event(EventType::Normal, reason, step.to_string())).await;
        if let Step::DeletePod { pod, .. } = &step {
            last_restarted = Some((pod.clone(), Time(now)));
        }
    } else if let Step::Stalled { .. } = &step
        && !matches!(previous_stall(previous), Some(true))
    {
        warn!(step = %step, "rollout stalled");
        publish(ctx, cluster, rollout_event(EventType::Warning, "RolloutStalled", step.to_string())).await;
    }
    Ok(Outcome { step, observed, last_restarted })
}

fn previous_stall(previous: Option<&KuduClusterStatus>) -> Option<bool> {
    previous?.conditions.iter().find(|c| c.type_ == ROLLOUT_STALLED).map(|c| c.status == "True")
}

fn rollout_event(type_: EventType, reason: &str, note: String) -> kube::runtime::events::Event {
    let mut e = event(type_, reason, note);
    e.action = "Rollout".to_owned();
    e
}

async fn observe<M: MasterAdmin>(
    ctx: &Context<M>,
    spec: &ValidatedSpec,
    membership_busy: bool,
    running_masters: &[String],
    last_restarted: Option<String>,
    now: Timestamp,
) -> Result<RolloutObserved, Error> {
    let masters = observe_role(ctx, spec, Role::Master).await?;
    let tservers = observe_role(ctx, spec, Role::TServer).await?;
    let addresses = observe::all_master_addresses(spec);
    let running: Vec<String> = masters
        .members
        .iter()
        .filter(|m| !m.terminating)
        .filter_map(|m| addresses.get(usize::try_from(m.ordinal).ok()?).cloned())
        // Pods that do not run (Pending) have no master to ask.
        .filter(|a| running_masters.contains(a))
        .collect();
    let master_sts = names::statefulset_name(&spec.name, Role::Master);
    let pod_of_address =
        |address: &str| addresses.iter().position(|a| a == address).map(|o| format!("{master_sts}-{o}"));
    let progress = if running.is_empty() { Ok(None) } else { ctx.masters.raft_progress(&running).await };
    let master_progress = match progress {
        Ok(Some(progress)) => {
            let members = progress
                .view
                .members
                .iter()
                .filter_map(|m| {
                    let raft = MemberRaft {
                        node_id: m.node_id,
                        voter: m.voter,
                        live: m.live,
                        matched_index: progress.matched.get(&m.node_id).copied().unwrap_or(0),
                    };
                    Some((pod_of_address(&m.address)?, raft))
                })
                .collect();
            let leader_pod = progress
                .view
                .leader
                .and_then(|id| progress.view.members.iter().find(|m| m.node_id == id))
                .and_then(|m| pod_of_address(&m.address));
            Some(MasterProgress {
                leader_pod,
                commit_index: progress.commit_index,
                members,
                change_in_flight: progress.view.change_in_flight,
            })
        }
        Ok(None) => None,
        Err(error) => {
            tracing::debug!(%error, "no master progress");
            None
        }
    };
    // The tablets matter only while tablet servers are to be restarted.
    let tablets = if !running.is_empty() && tservers.update_revision.is_some() && tservers.outdated().next().is_some() {
        let tserver_sts = names::statefulset_name(&spec.name, Role::TServer);
        match ctx.masters.tablet_locations(&running).await {
            Ok(locations) => Some(TabletsView {
                servers: locations
                    .servers
                    .iter()
                    .filter_map(|s| {
                        let ordinal = crate::tservers::ordinal_of_address(&s.rpc_address, &tserver_sts)?;
                        Some((format!("{tserver_sts}-{ordinal}"), (s.uuid.clone(), s.live)))
                    })
                    .collect(),
                tablets: locations.tablets,
            }),
            Err(error) => {
                tracing::debug!(%error, "no tablet locations");
                None
            }
        }
    } else {
        None
    };
    Ok(RolloutObserved {
        masters,
        tservers,
        master_progress,
        tablets,
        membership_busy,
        last_restarted,
        member_timeout: spec.rollout_member_timeout,
        now,
    })
}

/// The pods of `role` with their revisions, and the StatefulSet's update revision once its
/// controller observed the latest generation.
async fn observe_role<M>(ctx: &Context<M>, spec: &ValidatedSpec, role: Role) -> Result<RoleObserved, Error> {
    let sts_name = names::statefulset_name(&spec.name, role);
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &spec.namespace);
    let Some(sts) = statefulsets.get_opt(&sts_name).await.map_err(kube_err("reading a StatefulSet"))? else {
        return Ok(RoleObserved::default());
    };
    let status = sts.status.as_ref();
    let observed_latest = match (sts.metadata.generation, status.and_then(|s| s.observed_generation)) {
        (Some(generation), Some(observed)) => observed >= generation,
        (None, _) => true,
        (Some(_), None) => false,
    };
    let update_revision = status.and_then(|s| s.update_revision.clone()).filter(|r| observed_latest && !r.is_empty());
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &spec.namespace);
    let selector =
        names::selector_labels(&spec.name, role).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let list = pods.list(&ListParams::default().labels(&selector)).await.map_err(kube_err("listing pods"))?;
    let members = list.items.iter().filter_map(|pod| member(pod, &sts_name)).collect();
    Ok(RoleObserved { update_revision, replicas: sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1), members })
}

/// The rollout's view of one pod of StatefulSet `sts_name`.
pub fn member(pod: &Pod, sts_name: &str) -> Option<Member> {
    let name = pod.metadata.name.clone()?;
    let ordinal = observe::ordinal_of(&name, sts_name)?;
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    Some(Member {
        pod: name,
        ordinal,
        revision: pod.labels().get(names::REVISION_LABEL).cloned(),
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
    })
}

/// Why a rollout step could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// A master or tablet server call failed.
    #[error("{step}: {source}")]
    Kudu {
        /// The step.
        step: String,
        /// The failure.
        #[source]
        source: super::masters::MasterAdminError,
    },
    /// This replica may not act.
    #[error("{step}: {source}")]
    NotLeading {
        /// The step.
        step: String,
        /// Why.
        #[source]
        source: crate::lease::NotLeading,
    },
}

async fn execute<M: MasterAdmin>(
    ctx: &Context<M>,
    spec: &ValidatedSpec,
    observed: &RolloutObserved,
    step: &Step,
) -> Result<(), Error> {
    ctx.leadership
        .ensure()
        .map_err(|source| Error::Rollout(RolloutError::NotLeading { step: step.to_string(), source }))?;
    let kudu_err = |source| Error::Rollout(RolloutError::Kudu { step: step.to_string(), source });
    match step {
        Step::StepDown { leader, successor, .. } => {
            let addresses = observe::all_master_addresses(spec);
            let running: Vec<String> = observed
                .masters
                .members
                .iter()
                .filter_map(|m| addresses.get(usize::try_from(m.ordinal).ok()?).cloned())
                .collect();
            ctx.masters.step_down(&running, *leader, *successor).await.map_err(kudu_err)
        }
        Step::MoveTabletLeaders { pod, moves, .. } => {
            let sts = names::statefulset_name(&spec.name, Role::TServer);
            let ordinal = observe::ordinal_of(pod, &sts).unwrap_or(0);
            let address = names::tserver_address(spec, ordinal);
            let masters = observe::all_master_addresses(spec);
            for m in moves {
                // One refusal (leadership moved meanwhile) does not stop the others; the
                // next observation decides again.
                if let Err(error) =
                    ctx.masters.transfer_tablet_leader(&masters, &address, &m.tablet_id, &m.to_uuid).await
                {
                    warn!(%error, tablet = %m.tablet_id, "cannot move a tablet leadership");
                }
            }
            Ok(())
        }
        Step::DeletePod { pod, .. } => {
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &spec.namespace);
            // Only the pod observed: a pod recreated meanwhile is not deleted again.
            let uid = pods.get_opt(pod).await.map_err(kube_err("reading a pod"))?.and_then(|p| p.metadata.uid);
            let params = DeleteParams {
                preconditions: uid.map(|uid| Preconditions { uid: Some(uid), resource_version: None }),
                ..DeleteParams::default()
            };
            match pods.delete(pod, &params).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
                Err(source) => Err(Error::Kube { what: "deleting a pod", source }),
            }
        }
        Step::Complete | Step::Wait { .. } | Step::Stalled { .. } => Ok(()),
    }
}

/// Adds the rollout to `status`: each member's revision, the rollout status, and the
/// `Progressing` (while rolling) and `RolloutStalled` conditions.
pub fn extend_status(
    status: &mut KuduClusterStatus,
    outcome: &Outcome,
    generation: Option<i64>,
    previous: Option<&KuduClusterStatus>,
    now: Timestamp,
) {
    let o = &outcome.observed;
    let revision_of = |pod: &str| {
        o.masters.members.iter().chain(&o.tservers.members).find(|m| m.pod == pod).and_then(|m| m.revision.clone())
    };
    for m in &mut status.masters {
        m.revision = m.pod.as_deref().and_then(revision_of);
    }
    for t in &mut status.tablet_servers {
        t.revision = t.pod.as_deref().and_then(revision_of);
    }
    let (last_restarted, last_restarted_time) = match &outcome.last_restarted {
        Some((pod, time)) => (Some(pod.clone()), Some(time.clone())),
        None => (None, None),
    };
    status.rollout = Some(RolloutStatus {
        master_revision: o.masters.update_revision.clone(),
        tserver_revision: o.tservers.update_revision.clone(),
        last_restarted,
        last_restarted_time,
    });
    let mut conds = Vec::new();
    let stalled = match &outcome.step {
        Step::Stalled { .. } => {
            Cond { type_: ROLLOUT_STALLED, status: true, reason: "MemberNotHealthy", message: outcome.step.to_string() }
        }
        _ => Cond {
            type_: ROLLOUT_STALLED,
            status: false,
            reason: "NotStalled",
            message: "no restarted pod is overdue".to_owned(),
        },
    };
    conds.push(stalled);
    let progressing = match &outcome.step {
        Step::Complete => None,
        Step::Stalled { .. } => Some(Cond {
            type_: PROGRESSING,
            status: false,
            reason: "RolloutStalled",
            message: outcome.step.to_string(),
        }),
        Step::Wait { role, .. } | Step::DeletePod { role, .. } => Some(rolling_cond(*role, &outcome.step)),
        Step::StepDown { .. } => Some(rolling_cond(Role::Master, &outcome.step)),
        Step::MoveTabletLeaders { .. } => Some(rolling_cond(Role::TServer, &outcome.step)),
    };
    let membership_progressing = status.conditions.iter().any(|c| c.type_ == PROGRESSING && c.status == "True");
    match progressing {
        // Creating or scaling the cluster is reported by the membership loop.
        Some(c) if outcome.active() => conds.push(c),
        Some(_) => {}
        None if !membership_progressing && rollout_was_running(previous) => conds.push(Cond {
            type_: PROGRESSING,
            status: false,
            reason: "RolloutComplete",
            message: outcome.step.to_string(),
        }),
        None => {}
    }
    for c in conds {
        let c = condition(c, generation, previous, now);
        status.conditions.retain(|old| old.type_ != c.type_);
        status.conditions.push(c);
    }
}

fn rolling_cond(role: Role, step: &Step) -> Cond {
    Cond {
        type_: PROGRESSING,
        status: true,
        reason: match role {
            Role::Master => "RollingMasters",
            Role::TServer => "RollingTabletServers",
        },
        message: step.to_string(),
    }
}

/// Whether the previous status reported a rollout (running, stalled or just completed).
fn rollout_was_running(previous: Option<&KuduClusterStatus>) -> bool {
    previous.is_some_and(|p| {
        p.conditions.iter().any(|c| {
            c.type_ == PROGRESSING
                && matches!(
                    c.reason.as_str(),
                    "RollingMasters" | "RollingTabletServers" | "RolloutStalled" | "RolloutComplete"
                )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rolling::Member;

    fn outcome(step: Step) -> Outcome {
        let member = |pod: &str, rev: &str| Member {
            pod: pod.to_owned(),
            ordinal: 0,
            revision: Some(rev.to_owned()),
            ready: true,
            terminating: false,
            created: None,
        };
        Outcome {
            step,
            observed: RolloutObserved {
                masters: RoleObserved {
                    update_revision: Some("m2".into()),
                    replicas: 1,
                    members: vec![member("demo-master-0", "m2")],
                },
                tservers: RoleObserved {
                    update_revision: Some("t2".into()),
                    replicas: 1,
                    members: vec![member("demo-tserver-0", "t1")],
                },
                master_progress: None,
                tablets: None,
                membership_busy: false,
                last_restarted: None,
                member_timeout: std::time::Duration::from_secs(300),
                now: Timestamp::from_second(1_700_000_000).unwrap(),
            },
            last_restarted: Some(("demo-master-0".into(), Time(Timestamp::from_second(1_700_000_000).unwrap()))),
        }
    }

    fn status() -> KuduClusterStatus {
        KuduClusterStatus {
            masters: vec![crate::crd::MasterMemberStatus {
                pod: Some("demo-master-0".into()),
                node_id: "1".into(),
                address: "a".into(),
                role: crate::crd::MasterRole::Leader,
                voter: true,
                healthy: true,
                revision: None,
            }],
            ..KuduClusterStatus::default()
        }
    }

    fn cond<'a>(
        s: &'a KuduClusterStatus,
        type_: &str,
    ) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        s.conditions.iter().find(|c| c.type_ == type_)
    }

    #[test]
    fn rolling_reports_the_role_and_each_members_revision() {
        let now = Timestamp::from_second(1_700_000_100).unwrap();
        let mut s = status();
        let o = outcome(Step::DeletePod { role: Role::TServer, pod: "demo-tserver-0".into() });
        extend_status(&mut s, &o, Some(2), None, now);
        assert_eq!(s.masters[0].revision.as_deref(), Some("m2"));
        let rollout = s.rollout.as_ref().unwrap();
        assert_eq!(rollout.tserver_revision.as_deref(), Some("t2"));
        assert_eq!(rollout.last_restarted.as_deref(), Some("demo-master-0"));
        let p = cond(&s, PROGRESSING).unwrap();
        assert_eq!((p.status.as_str(), p.reason.as_str()), ("True", "RollingTabletServers"));
        assert_eq!(cond(&s, ROLLOUT_STALLED).unwrap().status, "False");

        // Complete after a rollout: said once.
        let previous = s.clone();
        let mut s = status();
        extend_status(&mut s, &outcome(Step::Complete), Some(2), Some(&previous), now);
        let p = cond(&s, PROGRESSING).unwrap();
        assert_eq!((p.status.as_str(), p.reason.as_str()), ("False", "RolloutComplete"));
    }

    #[test]
    fn a_stall_names_the_pod() {
        let now = Timestamp::from_second(1_700_000_100).unwrap();
        let mut s = status();
        let step = Step::Stalled {
            role: Role::Master,
            pod: "demo-master-0".into(),
            for_: std::time::Duration::from_secs(400),
        };
        extend_status(&mut s, &outcome(step), Some(2), None, now);
        let stalled = cond(&s, ROLLOUT_STALLED).unwrap();
        assert_eq!(stalled.status, "True");
        assert!(stalled.message.contains("demo-master-0"), "{}", stalled.message);
        let p = cond(&s, PROGRESSING).unwrap();
        assert_eq!((p.status.as_str(), p.reason.as_str()), ("False", "RolloutStalled"));
    }

    #[test]
    fn only_changes_and_real_waits_of_the_membership_loop_hold_a_rollout() {
        assert!(!membership_busy(&membership::Action::None));
        assert!(!membership_busy(&membership::Action::Wait(WaitReason::NoLeader)));
        assert!(membership_busy(&membership::Action::Wait(WaitReason::ChangeInFlight)));
        assert!(membership_busy(&membership::Action::ResizeStatefulSet { replicas: 3 }));
    }
}
