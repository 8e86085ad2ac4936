//! Tablet servers as the masters see them, and the safe tablet-server scale-down (pure).
//!
//! A StatefulSet can only remove its highest ordinals, so a scale-down from `current` to
//! `desired` pods first decommissions the tablet servers of ordinals `desired..current`
//! (the masters move every replica off them, 3-4-3), waits until they hold none, and only
//! then shrinks the StatefulSet. Every decision is derived from what the masters and the
//! StatefulSet say now, never from memory, so an operator restart resumes where the
//! cluster stands. A scale-down below the largest replication factor in use is refused
//! and the StatefulSet left as it is.

use std::collections::{BTreeMap, BTreeSet};

/// One tablet server as the leader master lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TServerView {
    /// Its uuid.
    pub uuid: String,
    /// Its advertised RPC address (`<pod>.<service>...:<port>` under the operator).
    pub rpc_address: String,
    /// Its location, empty when it has none.
    pub location: String,
    /// Whether the leader master heard from it lately.
    pub live: bool,
    /// Voter replicas the catalog places on it.
    pub replicas: u32,
    /// Whether it is marked as decommissioning.
    pub decommissioning: bool,
}

/// One tablet: its table's replication factor and its voters (uuids).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TabletView {
    /// The replication factor of its table.
    pub replication_factor: u32,
    /// Its current voters.
    pub voters: Vec<String>,
    /// The voter a move in progress replaces, if any (judged without it).
    pub leaving: Option<String>,
}

/// What the masters say about the tablet servers and tablets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TServerObservation {
    /// Every tablet server the leader master knows.
    pub servers: Vec<TServerView>,
    /// Every running tablet.
    pub tablets: Vec<TabletView>,
}

impl TServerObservation {
    /// The largest replication factor of any tablet (0 without tablets).
    pub fn max_replication_factor(&self) -> u32 {
        self.tablets.iter().map(|t| t.replication_factor).max().unwrap_or(0)
    }
}

/// The ordinal of the pod a tablet server advertises itself from: the first DNS label of
/// its address is the pod name `<statefulset>-<ordinal>`.
pub fn ordinal_of_address(rpc_address: &str, statefulset: &str) -> Option<i32> {
    let host = rpc_address.rsplit_once(':').map_or(rpc_address, |(host, _)| host);
    let pod = host.split('.').next()?;
    crate::controller::observe::ordinal_of(pod, statefulset)
}

/// What to do about the tablet-server StatefulSet size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScaleStep {
    /// Apply the StatefulSet with this many replicas (the spec's, or the current ones while
    /// a scale-down waits).
    Steady,
    /// Mark these servers (of ordinals that are going) as decommissioning; keep the size.
    Decommission(Vec<String>),
    /// The leaving servers still hold this many replicas; keep the size.
    Draining {
        /// Replicas left on the leaving servers.
        replicas: u32,
        /// Uuids of the leaving servers.
        servers: Vec<String>,
    },
    /// Every leaving server holds no replica: shrink to the spec's size.
    Shrink,
    /// The spec asks for fewer tablet servers than the largest replication factor in use:
    /// refused, the size stays.
    Refused {
        /// Why, for the condition.
        reason: String,
    },
    /// The masters cannot tell (no leader, unreachable): keep the size until they can.
    Unknown {
        /// Why.
        reason: String,
    },
}

/// The scale decision and the StatefulSet size to apply with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePlan {
    /// Replicas to apply the tablet-server StatefulSet with.
    pub replicas: i32,
    /// The step.
    pub step: ScaleStep,
    /// Servers of ordinals that stay but are marked decommissioning (say, after a
    /// scale-down was cancelled by raising the count again): their marks are cleared.
    pub recommission: Vec<String>,
}

/// Decides the tablet-server StatefulSet size. `current`: the StatefulSet's replicas
/// (`None`: it does not exist yet); `observation`: the masters' view (`Err`: why there is
/// none).
pub fn plan_scale(
    desired: i32,
    current: Option<i32>,
    observation: Result<&TServerObservation, &str>,
    statefulset: &str,
) -> ScalePlan {
    let steady = |replicas| ScalePlan { replicas, step: ScaleStep::Steady, recommission: Vec::new() };
    let observation = match observation {
        Ok(observation) => observation,
        Err(reason) => {
            return match current {
                Some(current) if desired < current => ScalePlan {
                    replicas: current,
                    step: ScaleStep::Unknown { reason: reason.to_owned() },
                    recommission: Vec::new(),
                },
                _ => steady(desired),
            };
        }
    };
    let ordinal = |s: &TServerView| ordinal_of_address(&s.rpc_address, statefulset);
    let recommission: Vec<String> = observation
        .servers
        .iter()
        .filter(|s| s.decommissioning && ordinal(s).is_some_and(|o| o < desired))
        .map(|s| s.uuid.clone())
        .collect();
    let Some(current) = current.filter(|c| desired < *c) else {
        return ScalePlan { recommission, ..steady(desired) };
    };
    let keep = |step| ScalePlan { replicas: current, step, recommission: recommission.clone() };
    let max_rf = observation.max_replication_factor();
    if i64::from(desired) < i64::from(max_rf) {
        return keep(ScaleStep::Refused {
            reason: format!(
                "spec.tservers.replicas {desired} is below the largest replication factor in use ({max_rf}): \
                 the tablet server StatefulSet stays at {current}"
            ),
        });
    }
    let leaving: Vec<&TServerView> =
        observation.servers.iter().filter(|s| ordinal(s).is_some_and(|o| o >= desired)).collect();
    let unmarked: Vec<String> = leaving.iter().filter(|s| !s.decommissioning).map(|s| s.uuid.clone()).collect();
    if !unmarked.is_empty() {
        return keep(ScaleStep::Decommission(unmarked));
    }
    let replicas: u32 = leaving.iter().map(|s| s.replicas).sum();
    if replicas > 0 {
        return keep(ScaleStep::Draining { replicas, servers: leaving.iter().map(|s| s.uuid.clone()).collect() });
    }
    ScalePlan { replicas: desired, step: ScaleStep::Shrink, recommission }
}

/// Tablets short of voters and tablets with a majority of voters in one location.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TabletHealth {
    /// Running tablets.
    pub tablets: usize,
    /// Tablets with fewer voters on live servers than their replication factor.
    pub under_replicated: usize,
    /// Tablets with a majority of their voters in one location (only when the servers
    /// span at least two locations, as the masters' placement policy has it).
    pub policy_violations: usize,
}

/// Most replicas of a tablet one location may hold without holding a majority (the
/// masters' placement policy): 1 of 3, 2 of 5; a single replica is always allowed.
fn max_per_location(replication_factor: usize) -> usize {
    match replication_factor {
        0 | 1 => replication_factor,
        n => n / 2,
    }
}

/// Judges every tablet against its replication factor and the placement policy.
pub fn tablet_health(observation: &TServerObservation) -> TabletHealth {
    let servers: BTreeMap<&str, &TServerView> = observation.servers.iter().map(|s| (s.uuid.as_str(), s)).collect();
    let locations: BTreeSet<&str> =
        observation.servers.iter().map(|s| s.location.as_str()).filter(|l| !l.is_empty()).collect();
    let policy_applies = locations.len() >= 2;
    let mut health = TabletHealth { tablets: observation.tablets.len(), ..TabletHealth::default() };
    for tablet in &observation.tablets {
        let live = tablet.voters.iter().filter(|v| servers.get(v.as_str()).is_some_and(|s| s.live)).count();
        if live < tablet.replication_factor as usize {
            health.under_replicated += 1;
        }
        if policy_applies {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            let judged = tablet.voters.iter().filter(|v| Some(*v) != tablet.leaving.as_ref());
            for location in judged.filter_map(|v| servers.get(v.as_str())).map(|s| s.location.as_str()) {
                *counts.entry(location).or_default() += 1;
            }
            if counts.values().any(|c| *c > max_per_location(tablet.replication_factor as usize)) {
                health.policy_violations += 1;
            }
        }
    }
    health
}

#[cfg(test)]
mod tests {
    use super::*;

    const STS: &str = "demo-tserver";

    fn server(ordinal: i32, replicas: u32, decommissioning: bool) -> TServerView {
        TServerView {
            uuid: format!("ts{ordinal}"),
            rpc_address: format!("{STS}-{ordinal}.demo-tserver-hl.ns.svc.cluster.local:7050"),
            location: String::new(),
            live: true,
            replicas,
            decommissioning,
        }
    }

    fn observation(servers: Vec<TServerView>, rf: u32) -> TServerObservation {
        TServerObservation {
            servers,
            tablets: vec![TabletView {
                replication_factor: rf,
                voters: vec!["ts0".into(), "ts1".into(), "ts2".into()],
                leaving: None,
            }],
        }
    }

    #[test]
    fn ordinals_come_from_the_advertised_pod_name() {
        assert_eq!(ordinal_of_address("demo-tserver-4.demo-tserver-hl.ns.svc.cluster.local:7050", STS), Some(4));
        assert_eq!(ordinal_of_address("demo-tserver-12:7050", STS), Some(12));
        assert_eq!(ordinal_of_address("127.0.0.1:7050", STS), None);
        assert_eq!(ordinal_of_address("other-tserver-1.x:7050", STS), None);
    }

    #[test]
    fn scale_down_decommissions_then_waits_then_shrinks() {
        // 5 -> 3: ordinals 3 and 4 go.
        let o = observation((0..5).map(|i| server(i, 3, false)).collect(), 3);
        let plan = plan_scale(3, Some(5), Ok(&o), STS);
        assert_eq!(plan.replicas, 5, "the StatefulSet keeps its size");
        assert_eq!(plan.step, ScaleStep::Decommission(vec!["ts3".into(), "ts4".into()]));
        // Marked, still holding replicas: wait.
        let mut servers: Vec<TServerView> = (0..5).map(|i| server(i, 3, i >= 3)).collect();
        servers[4].replicas = 0;
        let plan = plan_scale(3, Some(5), Ok(&observation(servers.clone(), 3)), STS);
        assert_eq!(plan.replicas, 5);
        assert_eq!(plan.step, ScaleStep::Draining { replicas: 3, servers: vec!["ts3".into(), "ts4".into()] });
        // Drained: shrink.
        servers[3].replicas = 0;
        let plan = plan_scale(3, Some(5), Ok(&observation(servers.clone(), 3)), STS);
        assert_eq!((plan.replicas, plan.step), (3, ScaleStep::Shrink));
        // After the shrink (a restarted operator sees the same): steady, the marks stay
        // on the servers that are gone.
        let plan = plan_scale(3, Some(3), Ok(&observation(servers, 3)), STS);
        assert_eq!((plan.replicas, plan.step, plan.recommission), (3, ScaleStep::Steady, vec![]));
    }

    #[test]
    fn below_the_largest_replication_factor_is_refused_and_the_size_kept() {
        let o = observation((0..3).map(|i| server(i, 1, false)).collect(), 3);
        let plan = plan_scale(2, Some(3), Ok(&o), STS);
        assert_eq!(plan.replicas, 3);
        let ScaleStep::Refused { reason } = plan.step else { panic!("{plan:?}") };
        assert!(reason.contains("largest replication factor in use (3)"), "{reason}");
        // Masters that cannot answer: the size is kept too.
        let plan = plan_scale(2, Some(3), Err("no leader"), STS);
        assert_eq!((plan.replicas, plan.step), (3, ScaleStep::Unknown { reason: "no leader".into() }));
        // Growing needs no master.
        assert_eq!(plan_scale(5, Some(3), Err("no leader"), STS).replicas, 5);
        assert_eq!(plan_scale(3, None, Err("no leader"), STS).replicas, 3);
    }

    #[test]
    fn raising_the_count_again_cancels_the_decommission_of_staying_servers() {
        let servers: Vec<TServerView> = (0..5).map(|i| server(i, 1, i >= 3)).collect();
        let plan = plan_scale(5, Some(5), Ok(&observation(servers.clone(), 3)), STS);
        assert_eq!((plan.replicas, plan.step), (5, ScaleStep::Steady));
        assert_eq!(plan.recommission, vec!["ts3".to_owned(), "ts4".to_owned()]);
        // 5 -> 4 while 3 and 4 are marked: 3 stays (its mark cleared), 4 drains.
        let plan = plan_scale(4, Some(5), Ok(&observation(servers, 3)), STS);
        assert_eq!(plan.recommission, vec!["ts3".to_owned()]);
        assert_eq!(plan.step, ScaleStep::Draining { replicas: 1, servers: vec!["ts4".into()] });
    }

    #[test]
    fn health_counts_short_tablets_and_majorities_in_one_location() {
        let mut servers: Vec<TServerView> = (0..4).map(|i| server(i, 1, false)).collect();
        for (s, l) in servers.iter_mut().zip(["/z0", "/z0", "/z1", "/z2"]) {
            s.location = l.into();
        }
        servers[2].live = false;
        let tablet = |voters: &[&str], leaving: Option<&str>| TabletView {
            replication_factor: 3,
            voters: voters.iter().map(|v| (*v).to_owned()).collect(),
            leaving: leaving.map(str::to_owned),
        };
        let o = TServerObservation {
            servers,
            tablets: vec![
                tablet(&["ts0", "ts2", "ts3"], None),               // ts2 is down: short
                tablet(&["ts0", "ts1", "ts3"], None),               // two in /z0: violation
                tablet(&["ts0", "ts1", "ts3", "ts2"], Some("ts1")), // judged without ts1
                tablet(&["ts0", "ts3"], None),                      // short
            ],
        };
        assert_eq!(tablet_health(&o), TabletHealth { tablets: 4, under_replicated: 2, policy_violations: 1 });
        // One location only: the policy does not apply.
        let mut flat = o.clone();
        flat.servers.iter_mut().for_each(|s| s.location = "/z0".into());
        assert_eq!(tablet_health(&flat).policy_violations, 0);
    }
}
