//! Leader balancing: the leader master evens out how many tablet leaders each tablet server
//! holds by asking tablet leaders to hand their leadership to a follower on a server with
//! fewer (Kudu's auto leader rebalancing).
//!
//! Leaders pile up without it: when a table is created, the server that creates its replicas
//! first wins nearly every first election (983 of 1 000 in docs/benchmarks.md), and a
//! restarted server comes back leading nothing. A leader does more work than a follower for
//! every write and scan, so one server would serve the whole table.
//!
//! Each round reads the leaders the catalog recorded from tablet reports and plans transfers
//! ([`plan`]) until no live server leads two more tablets than another that could take one;
//! only tablets whose replicas are all live and which have no replica move in progress are
//! moved, at most [`MAX_TRANSFERS_PER_ROUND`] per round, and a tablet moved in the last
//! rounds is left alone until reports catch up. A transfer is a hint to the tablet's leader
//! (`TabletServerService.TransferLeadership`): it only starts an election the target wins,
//! so a lost or stale transfer costs nothing but a later round.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::catalog::{Tablet, TabletState};
use crate::ids::{TServerId, TabletId};
use crate::master::node::MasterNode;
use crate::pb::tserver as tpb;
use crate::pb::tserver::tablet_server_service_client::TabletServerServiceClient;
use crate::rpc;

/// Most leadership transfers one round asks for.
pub const MAX_TRANSFERS_PER_ROUND: usize = 64;
/// Transfers asked for at once.
const CONCURRENT_CALLS: usize = 16;
/// Deadline of one TransferLeadership call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One planned transfer: `tablet`'s leadership from `from` to `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderTransfer {
    pub tablet: TabletId,
    pub from: TServerId,
    pub to: TServerId,
}

/// Transfers that even out leaders per server: repeatedly, a tablet led by the server with
/// the most leaders moves to one of its voters whose server leads at least two fewer (the
/// fewest first; ties by id). Only tablets of more than one replica, running, without a
/// move in progress, whose leader and replicas are all `live` and that are not in `recent`,
/// are moved; at most `max` transfers.
pub fn plan<'a>(
    tablets: impl IntoIterator<Item = &'a Tablet>,
    live: &HashSet<TServerId>,
    recent: &HashSet<TabletId>,
    max: usize,
) -> Vec<LeaderTransfer> {
    // Leaders per server, counting every live server that hosts a movable tablet's replica.
    let mut leaders: BTreeMap<TServerId, usize> = BTreeMap::new();
    let mut movable: BTreeMap<TServerId, Vec<&Tablet>> = BTreeMap::new();
    for t in tablets {
        let Some(leader) = &t.leader else { continue };
        let eligible = t.state == TabletState::Running
            && t.pending_move.is_none()
            && t.replicas.len() > 1
            && t.replicas.contains(leader)
            && t.replicas.iter().all(|r| live.contains(r));
        if !eligible {
            if live.contains(leader) {
                *leaders.entry(leader.clone()).or_default() += 1;
            }
            continue;
        }
        for r in &t.replicas {
            leaders.entry(r.clone()).or_default();
        }
        *leaders.entry(leader.clone()).or_default() += 1;
        if !recent.contains(&t.id) {
            movable.entry(leader.clone()).or_default().push(t);
        }
    }
    let mut transfers = Vec::new();
    while transfers.len() < max {
        let mut by_load: Vec<(usize, TServerId)> = leaders.iter().map(|(s, n)| (*n, s.clone())).collect();
        by_load.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut found = None;
        'servers: for (load, from) in &by_load {
            let Some(candidates) = movable.get(from) else { continue };
            for (i, tablet) in candidates.iter().enumerate() {
                let to = tablet
                    .replicas
                    .iter()
                    .filter(|r| *r != from)
                    .map(|r| (leaders.get(r).copied().unwrap_or(0), r))
                    .filter(|(n, _)| n + 2 <= *load)
                    .min();
                if let Some((_, to)) = to {
                    found = Some((from.clone(), i, to.clone()));
                    break 'servers;
                }
            }
        }
        let Some((from, index, to)) = found else { break };
        let Some(tablet) = movable.get_mut(&from).map(|c| c.remove(index)) else { break };
        *leaders.entry(from.clone()).or_default() -= 1;
        *leaders.entry(to.clone()).or_default() += 1;
        transfers.push(LeaderTransfer { tablet: tablet.id.clone(), from, to });
    }
    transfers
}

/// Runs leader-balancing rounds every `interval` while this master leads, until `stop`
/// turns true.
pub async fn run(node: Arc<MasterNode>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Tablets transferred recently: their reports may not show the new leader yet.
    let mut recent: HashMap<TabletId, Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if node.ensure_leader().is_err() {
            continue;
        }
        recent.retain(|_, at| at.elapsed() < interval * 3);
        match node.leader_balance_round(&recent.keys().cloned().collect()).await {
            Ok(moved) => recent.extend(moved.into_iter().map(|t| (t, Instant::now()))),
            Err(e) => tracing::debug!(error = %e, "leader balancing round failed"),
        }
    }
}

impl MasterNode {
    /// One round: plan transfers from the catalog and ask each tablet's leader; returns the
    /// tablets whose leader accepted.
    async fn leader_balance_round(
        &self,
        recent: &HashSet<TabletId>,
    ) -> Result<Vec<TabletId>, crate::master::error::MasterError> {
        self.linearizable_read().await?;
        // A draining server (stopping) counts as not live: no leadership moves to it.
        let live: HashSet<TServerId> = self
            .tservers
            .liveness()
            .into_iter()
            .filter(|(id, live)| *live && !self.tservers.is_draining(id))
            .map(|(id, _)| id)
            .collect();
        let transfers = {
            let catalog = self.catalog.read().await;
            plan(catalog.tablets(), &live, recent, MAX_TRANSFERS_PER_ROUND)
        };
        if transfers.is_empty() {
            return Ok(Vec::new());
        }
        let addresses = self.tservers.addresses();
        let asked = futures::stream::iter(transfers)
            .map(|t| {
                let address = addresses.get(&t.from).cloned();
                async move {
                    let address = address?;
                    match self.transfer_leadership_on(&address, &t).await {
                        Ok(()) => {
                            tracing::info!(tablet = %t.tablet, from = %t.from, to = %t.to, "leader balancing: leadership moved");
                            Some(t.tablet)
                        }
                        Err(status) => {
                            tracing::debug!(tablet = %t.tablet, error = %status.message(), "leader balancing: transfer refused");
                            None
                        }
                    }
                }
            })
            .buffer_unordered(CONCURRENT_CALLS)
            .filter_map(std::future::ready)
            .collect()
            .await;
        Ok(asked)
    }

    async fn transfer_leadership_on(&self, address: &str, t: &LeaderTransfer) -> Result<(), tonic::Status> {
        let channel = self.pool.get(address).map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut client = TabletServerServiceClient::new(channel);
        let mut call = tonic::Request::new(tpb::TransferLeadershipRequest {
            tablet_id: t.tablet.to_string(),
            new_leader_uuid: t.to.to_string(),
        });
        call.set_timeout(CALL_TIMEOUT);
        rpc::with_deadline(CALL_TIMEOUT, client.transfer_leadership(call)).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TableId;

    fn ids(names: &[&str]) -> Vec<TServerId> {
        names.iter().map(|n| TServerId::from(*n)).collect()
    }

    fn tablet(i: usize, replicas: &[&str], leader: &str) -> Tablet {
        let mut t = Tablet::new(TabletId(format!("t{i:03}")), TableId::from("tab"), i as u32, ids(replicas));
        t.leader = Some(TServerId::from(leader));
        t
    }

    /// Leaders per server after applying `transfers` to `tablets`.
    fn after(tablets: &[Tablet], transfers: &[LeaderTransfer]) -> BTreeMap<String, usize> {
        let mut leader: HashMap<&TabletId, &TServerId> =
            tablets.iter().filter_map(|t| Some((&t.id, t.leader.as_ref()?))).collect();
        for tr in transfers {
            assert_eq!(leader.get(&tr.tablet), Some(&&tr.from), "moves from the current leader");
            let t = tablets.iter().find(|t| t.id == tr.tablet).expect("tablet");
            assert!(t.replicas.contains(&tr.to), "moves to a voter");
            leader.insert(&tr.tablet, &tr.to);
        }
        let mut counts = BTreeMap::new();
        for s in leader.values() {
            *counts.entry(s.to_string()).or_default() += 1;
        }
        counts
    }

    fn live(names: &[&str]) -> HashSet<TServerId> {
        ids(names).into_iter().collect()
    }

    #[test]
    fn leaders_piled_on_one_server_are_spread_evenly() {
        let tablets: Vec<Tablet> = (0..30).map(|i| tablet(i, &["a", "b", "c"], "a")).collect();
        let transfers = plan(&tablets, &live(&["a", "b", "c"]), &HashSet::new(), 100);
        assert_eq!(transfers.len(), 20);
        assert_eq!(after(&tablets, &transfers), BTreeMap::from([("a".into(), 10), ("b".into(), 10), ("c".into(), 10)]));
        // Applied, the plan has nothing left to do.
        let mut balanced = tablets.clone();
        for tr in &transfers {
            let t = balanced.iter_mut().find(|t| t.id == tr.tablet).expect("tablet");
            t.leader = Some(tr.to.clone());
        }
        assert!(plan(&balanced, &live(&["a", "b", "c"]), &HashSet::new(), 100).is_empty());
    }

    #[test]
    fn a_server_leading_nothing_gets_leaders_and_max_bounds_a_round() {
        // Five servers, RF 3 tablets on rotating triples; everything led by "a" or "b".
        let servers = ["a", "b", "c", "d", "e"];
        let tablets: Vec<Tablet> = (0..50)
            .map(|i| {
                let r: Vec<&str> = (0..3).map(|k| servers[(i + k) % 5]).collect();
                let leader = if r.contains(&"a") { "a" } else { r[0] };
                tablet(i, &r, leader)
            })
            .collect();
        let all = live(&servers);
        let transfers = plan(&tablets, &all, &HashSet::new(), 1_000);
        let counts = after(&tablets, &transfers);
        let (min, max) = (counts.values().min().copied(), counts.values().max().copied());
        assert!(max.zip(min).is_some_and(|(max, min)| max - min <= 1), "{counts:?}");
        assert_eq!(counts.len(), 5, "every server leads some: {counts:?}");
        assert_eq!(plan(&tablets, &all, &HashSet::new(), 3).len(), 3);
    }

    #[test]
    fn dead_moving_single_replica_and_recent_tablets_stay_put() {
        let mut tablets: Vec<Tablet> = (0..6).map(|i| tablet(i, &["a", "b", "c"], "a")).collect();
        tablets[0].pending_move =
            Some(crate::catalog::ReplicaMove { from: Some(TServerId::from("c")), to: TServerId::from("d") });
        tablets.push(tablet(6, &["a"], "a"));
        tablets[1].replicas = ids(&["a", "b", "x"]); // "x" is dead
        let recent: HashSet<TabletId> = [tablets[2].id.clone()].into();
        let transfers = plan(&tablets, &live(&["a", "b", "c"]), &recent, 100);
        let moved: HashSet<&TabletId> = transfers.iter().map(|t| &t.tablet).collect();
        for kept in [0, 1, 2, 6] {
            assert!(!moved.contains(&tablets[kept].id), "tablet {kept} moved: {transfers:?}");
        }
        // The pinned ones still count: "a" leads 4 fixed tablets, so b and c take the rest.
        assert_eq!(transfers.len(), 3, "{transfers:?}");
        assert!(transfers.iter().all(|t| t.to.as_str() != "a"));
        // Nothing live to balance against: no transfers.
        assert!(plan(&tablets, &live(&["a"]), &HashSet::new(), 100).is_empty());
    }
}
