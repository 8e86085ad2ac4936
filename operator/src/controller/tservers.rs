//! Tablet servers and master zones in a reconciliation (I/O): what the masters say about
//! the tablet servers, the decommission steps of a scale-down, the zones of the nodes, and
//! the status they add. The decisions are pure: [`crate::tservers`], [`crate::zones`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::ListParams;
use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::masters::MasterAdmin;
use super::status::{Cond, condition};
use super::{Context, Error, event, kube_err, publish};
use crate::build::names::{self, Role};
use crate::crd::{KuduCluster, KuduClusterStatus, TabletServerStatus};
use crate::tservers::{ScalePlan, ScaleStep, TServerObservation, ordinal_of_address, plan_scale, tablet_health};
use crate::validate::ValidatedSpec;
use crate::zones::{ZONE_LABEL, majority_zone};

/// Condition type: a tablet-server scale-down is in progress or refused.
pub const SCALE_DOWN: &str = "TabletServerScaleDown";
/// Condition type: some tablets have fewer live voters than their replication factor.
pub const UNDER_REPLICATED: &str = "TabletsUnderReplicated";
/// Condition type: some tablets have a majority of their voters in one location.
pub const PLACEMENT_VIOLATED: &str = "PlacementPolicyViolated";
/// Condition type: a majority of the masters run in one zone.
pub const MASTERS_SHARE_ZONE: &str = "MastersShareZone";

/// The zones of the cluster's nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Zones {
    /// Distinct zones with at least one Ready node.
    pub ready_zones: usize,
    /// The zone of each scheduled master pod's node (`None`: no zone label).
    pub master_zones: Vec<Option<String>>,
}

/// Reads the nodes' zones and the zones of the master pods. Without them (the nodes
/// cannot be listed) the zone spread stays soft and no zone condition is raised.
pub async fn observe_zones<M>(ctx: &Context<M>, spec: &ValidatedSpec) -> Zones {
    if !ctx.env.cluster_scoped() {
        // Watching one namespace with Roles only: nodes cannot be read.
        return Zones::default();
    }
    match read_zones(ctx, spec).await {
        Ok(zones) => zones,
        Err(error) => {
            warn!(%error, "cannot read the zones of the nodes");
            Zones::default()
        }
    }
}

async fn read_zones<M>(ctx: &Context<M>, spec: &ValidatedSpec) -> Result<Zones, Error> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let nodes = nodes.list(&ListParams::default()).await.map_err(kube_err("listing nodes"))?;
    let zone_of = |node: &Node| node.metadata.labels.as_ref().and_then(|l| l.get(ZONE_LABEL)).cloned();
    let ready = |node: &Node| {
        node.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True")
    };
    let by_node: BTreeMap<String, Option<String>> =
        nodes.items.iter().filter_map(|n| Some((n.metadata.name.clone()?, zone_of(n)))).collect();
    let mut ready_zones: Vec<String> = nodes.items.iter().filter(|n| ready(n)).filter_map(zone_of).collect();
    ready_zones.sort();
    ready_zones.dedup();
    let master_zones = super::gather::list_master_pods(ctx, spec)
        .await?
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .map(|node| by_node.get(&node).cloned().flatten())
        .collect();
    Ok(Zones { ready_zones: ready_zones.len(), master_zones })
}

/// What the masters said about the tablet servers, and the scale plan carried out.
#[derive(Clone, Debug)]
pub struct TServers {
    /// The masters' view, or why there is none.
    pub observation: Result<TServerObservation, String>,
    /// The plan, its step as carried out (a refused decommission becomes
    /// [`ScaleStep::Refused`]).
    pub plan: ScalePlan,
}

/// Reads the tablet servers from the masters at `master_addresses` (those whose pods run;
/// none: no call, the masters' view is unknown), plans the tablet
/// server StatefulSet size against its `current` replicas and carries out the plan's
/// decommission marks (each an Event).
pub async fn scale<M: MasterAdmin>(
    ctx: &Context<M>,
    cluster: &KuduCluster,
    spec: &ValidatedSpec,
    current: Option<i32>,
    master_addresses: &[String],
) -> TServers {
    let observation = if master_addresses.is_empty() {
        Err("no master pod is running".to_owned())
    } else {
        ctx.masters.tablet_servers(master_addresses).await.map_err(|e| e.to_string())
    };
    if let Err(error) = &observation {
        tracing::debug!(%error, "cannot read the tablet servers");
    }
    let sts = names::statefulset_name(&spec.name, Role::TServer);
    let mut plan = plan_scale(spec.tservers.replicas, current, observation.as_ref().map_err(String::as_str), &sts);
    if !plan.recommission.is_empty() && ctx.leadership.is_leading() {
        match ctx.masters.set_decommissioning(master_addresses, &plan.recommission, false).await {
            Ok(()) => {
                let note = format!(
                    "tablet servers {} belong to pods that stay: their decommission is cancelled",
                    plan.recommission.join(", ")
                );
                info!(%note);
                publish(ctx, cluster, event(EventType::Normal, "RecommissionTabletServers", note)).await;
            }
            Err(error) => warn!(%error, "cannot cancel a decommission"),
        }
    }
    match &plan.step {
        ScaleStep::Decommission(uuids) if ctx.leadership.is_leading() => {
            match ctx.masters.set_decommissioning(master_addresses, uuids, true).await {
                Ok(()) => {
                    let note = format!(
                        "scaling tablet servers {} -> {}: decommissioning {} (their replicas move elsewhere first)",
                        plan.replicas,
                        spec.tservers.replicas,
                        uuids.join(", ")
                    );
                    info!(%note);
                    publish(ctx, cluster, event(EventType::Normal, "DecommissionTabletServers", note)).await;
                }
                Err(error) => {
                    let reason = format!("the masters refused to decommission {}: {error}", uuids.join(", "));
                    publish(ctx, cluster, event(EventType::Warning, "ScaleDownRefused", reason.clone())).await;
                    plan.step = ScaleStep::Refused { reason };
                }
            }
        }
        ScaleStep::Shrink => {
            let note = format!("the leaving tablet servers hold no replica: shrinking to {}", plan.replicas);
            info!(%note);
            publish(ctx, cluster, event(EventType::Normal, "ShrinkTabletServers", note)).await;
        }
        ScaleStep::Refused { reason } => {
            warn!(%reason, "tablet server scale-down refused");
        }
        _ => {}
    }
    TServers { observation, plan }
}

/// Whether the scale-down still has work to do (requeue soon).
pub fn busy(tservers: &TServers) -> bool {
    matches!(tservers.plan.step, ScaleStep::Decommission(_) | ScaleStep::Draining { .. } | ScaleStep::Unknown { .. })
}

/// Adds the tablet servers and the tablet-server, tablet and zone conditions to `status`.
pub fn extend_status(
    status: &mut KuduClusterStatus,
    spec: &ValidatedSpec,
    tservers: &TServers,
    zones: &Zones,
    generation: Option<i64>,
    previous: Option<&KuduClusterStatus>,
    now: Timestamp,
) {
    let sts = names::statefulset_name(&spec.name, Role::TServer);
    let mut conds = Vec::new();
    conds.push(scale_condition(&tservers.plan.step));
    match &tservers.observation {
        Ok(observation) => {
            status.tablet_servers = observation
                .servers
                .iter()
                .map(|s| TabletServerStatus {
                    pod: ordinal_of_address(&s.rpc_address, &sts).map(|o| format!("{sts}-{o}")),
                    uuid: s.uuid.clone(),
                    location: Some(s.location.clone()).filter(|l| !l.is_empty()),
                    live: s.live,
                    replicas: s.replicas,
                    decommissioning: s.decommissioning,
                    revision: None,
                })
                .collect();
            let health = tablet_health(observation);
            conds.push(Cond {
                type_: UNDER_REPLICATED,
                status: health.under_replicated > 0,
                reason: if health.under_replicated > 0 { "TabletsShortOfVoters" } else { "AllReplicated" },
                message: format!(
                    "{}/{} tablets have fewer live voters than their replication factor",
                    health.under_replicated, health.tablets
                ),
            });
            conds.push(Cond {
                type_: PLACEMENT_VIOLATED,
                status: health.policy_violations > 0,
                reason: if health.policy_violations > 0 { "MajorityInOneLocation" } else { "Complies" },
                message: format!(
                    "{}/{} tablets have a majority of their voters in one location",
                    health.policy_violations, health.tablets
                ),
            });
        }
        // Without the masters' view the last one is kept.
        Err(_) => status.tablet_servers = previous.map(|p| p.tablet_servers.clone()).unwrap_or_default(),
    }
    let majority = majority_zone(zones.master_zones.iter().map(Option::as_deref), spec.masters.replicas);
    conds.push(match majority {
        Some((zone, count)) => Cond {
            type_: MASTERS_SHARE_ZONE,
            status: true,
            reason: "MajorityInOneZone",
            message: format!(
                "{count} of {} masters run in zone {zone}: losing it loses the master quorum ({} zones with Ready nodes)",
                spec.masters.replicas, zones.ready_zones
            ),
        },
        None => Cond {
            type_: MASTERS_SHARE_ZONE,
            status: false,
            reason: "Spread",
            message: format!("no zone holds a majority of the masters ({} zones with Ready nodes)", zones.ready_zones),
        },
    });
    for c in conds {
        let c = condition(c, generation, previous, now);
        status.conditions.retain(|old| old.type_ != c.type_);
        status.conditions.push(c);
    }
    if tservers.observation.is_err() {
        // Keep the tablet conditions last seen.
        for type_ in [UNDER_REPLICATED, PLACEMENT_VIOLATED] {
            if let Some(old) = previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
                && !status.conditions.iter().any(|c| c.type_ == type_)
            {
                status.conditions.push(old.clone());
            }
        }
    }
}

fn scale_condition(step: &ScaleStep) -> Cond {
    let (status, reason, message) = match step {
        ScaleStep::Steady => (false, "Idle", "no tablet server scale-down in progress".to_owned()),
        ScaleStep::Shrink => (false, "Shrunk", "the leaving tablet servers were drained; shrinking".to_owned()),
        ScaleStep::Decommission(uuids) => {
            (true, "Decommissioning", format!("decommissioning tablet servers {}", uuids.join(", ")))
        }
        ScaleStep::Draining { replicas, servers } => {
            (true, "Draining", format!("{replicas} replicas left to move off tablet servers {}", servers.join(", ")))
        }
        ScaleStep::Refused { reason } => (true, "ScaleDownRefused", reason.clone()),
        ScaleStep::Unknown { reason } => {
            (true, "MastersUnavailable", format!("waiting for the masters before scaling down: {reason}"))
        }
    };
    Cond { type_: SCALE_DOWN, status, reason, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::spec;
    use crate::tservers::{TServerView, TabletView};

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn find<'a>(
        status: &'a KuduClusterStatus,
        type_: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn status_lists_tablet_servers_and_reports_refusals_short_tablets_and_zone_majorities() {
        let spec = spec("image: kudu:1\ntservers: {replicas: 2}\n");
        let server = |i: i32, live: bool| TServerView {
            uuid: format!("ts{i}"),
            rpc_address: format!("demo-tserver-{i}.demo-tservers.db.svc.cluster.local:7050"),
            location: format!("/z{i}"),
            live,
            replicas: 1,
            decommissioning: false,
        };
        let observation = TServerObservation {
            servers: vec![server(0, true), server(1, true), server(2, false)],
            tablets: vec![TabletView {
                replication_factor: 3,
                voters: vec!["ts0".into(), "ts1".into(), "ts2".into()],
                leaving: None,
            }],
        };
        let plan = plan_scale(2, Some(3), Ok(&observation), "demo-tserver");
        let tservers = TServers { observation: Ok(observation), plan };
        let zones = Zones { ready_zones: 2, master_zones: vec![Some("a".into()), Some("a".into()), Some("b".into())] };
        let mut status = KuduClusterStatus::default();
        extend_status(&mut status, &spec, &tservers, &zones, Some(4), None, at(0));
        assert_eq!(status.tablet_servers.len(), 3);
        assert_eq!(status.tablet_servers[2].pod.as_deref(), Some("demo-tserver-2"));
        assert_eq!(status.tablet_servers[2].location.as_deref(), Some("/z2"));
        assert!(!status.tablet_servers[2].live);
        let refused = find(&status, SCALE_DOWN);
        assert_eq!((refused.status.as_str(), refused.reason.as_str()), ("True", "ScaleDownRefused"));
        assert!(refused.message.contains("largest replication factor in use (3)"), "{}", refused.message);
        assert_eq!(find(&status, UNDER_REPLICATED).status, "True");
        assert_eq!(find(&status, PLACEMENT_VIOLATED).status, "False");
        let zone = find(&status, MASTERS_SHARE_ZONE);
        assert_eq!((zone.status.as_str(), zone.observed_generation), ("True", Some(4)));
        assert!(zone.message.contains("2 of 3 masters run in zone a"), "{}", zone.message);

        // Masters unreachable later: the last lists and tablet conditions are kept.
        let previous = status.clone();
        let unknown = TServers {
            observation: Err("no leader".into()),
            plan: plan_scale(2, Some(3), Err("no leader"), "demo-tserver"),
        };
        let mut next = KuduClusterStatus::default();
        extend_status(&mut next, &spec, &unknown, &zones, Some(4), Some(&previous), at(10));
        assert_eq!(next.tablet_servers, previous.tablet_servers);
        assert_eq!(find(&next, UNDER_REPLICATED), find(&previous, UNDER_REPLICATED));
        assert_eq!(find(&next, SCALE_DOWN).reason, "MastersUnavailable");
    }
}
