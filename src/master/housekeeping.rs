//! Periodic clean-up of a master's soft state, so it stays bounded over a long life:
//! - channels to masters that left the Raft membership are dropped from the channel pool
//!   as soon as the membership changes (a removed member is never called again; a new
//!   member at the same address gets a fresh connection);
//! - tablet servers silent for `--tserver-forget-after-ms` that host no replica are
//!   forgotten ([`super::tservers::TServerRegistry::forget_silent`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::RaftMetrics;
use openraft::rt::watch::WatchReceiver;

use super::node::MasterNode;
use super::raft_types::TypeConfig;
use crate::rpc::ChannelPool;

/// Longest pause between two sweeps of the tablet server registry.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Shortest pause between two sweeps.
const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// Runs until the master's Raft stops.
pub async fn run(node: Arc<MasterNode>) {
    let mut rx = node.raft.metrics();
    let mut members = member_addresses(&rx.borrow_watched());
    let forget_after = node.config.tserver_forget_after;
    let mut sweep = tokio::time::interval(sweep_interval(forget_after));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = member_addresses(&rx.borrow_watched());
                evict_departed(&node.pool, &members, &now, &node.address);
                members = now;
            }
            _ = sweep.tick() => {
                let catalog = node.catalog.read().await;
                for ts in node.tservers.forget_silent(&catalog, forget_after) {
                    tracing::info!(%ts, ?forget_after, "forgot a silent tablet server that hosts no replica");
                }
            }
        }
    }
}

/// A quarter of the forget delay, within [`MIN_SWEEP_INTERVAL`] and [`MAX_SWEEP_INTERVAL`].
fn sweep_interval(forget_after: Duration) -> Duration {
    (forget_after / 4).clamp(MIN_SWEEP_INTERVAL, MAX_SWEEP_INTERVAL)
}

/// Addresses of every member (voters and learners) of the current membership.
fn member_addresses(m: &RaftMetrics<TypeConfig>) -> BTreeSet<String> {
    m.membership_config.membership().nodes().map(|(_, node)| node.addr.clone()).collect()
}

/// Drops the channels to addresses in `before` but not in `now` (except `own`).
fn evict_departed(pool: &ChannelPool, before: &BTreeSet<String>, now: &BTreeSet<String>, own: &str) {
    for address in before.difference(now).filter(|a| a.as_str() != own) {
        tracing::info!(%address, "dropping the channel to a master that left the membership");
        pool.evict(address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, CatalogCommand, Column, ColumnType, Schema, Table, Tablet};
    use crate::ids::{TServerId, TableId, TabletId};
    use crate::master::tservers::Beat;
    use crate::master::tservers::TServerRegistry;

    fn set(addresses: &[&str]) -> BTreeSet<String> {
        addresses.iter().map(|a| a.to_string()).collect()
    }

    #[tokio::test]
    async fn channels_to_departed_members_are_dropped() {
        let pool = ChannelPool::default();
        for address in ["m1:7051", "m2:7051", "m3:7051", "ts1:7050"] {
            pool.get(address).expect("channel");
        }
        evict_departed(&pool, &set(&["m1:7051", "m2:7051", "m3:7051"]), &set(&["m1:7051", "m2:7051"]), "m1:7051");
        assert!(!pool.contains("m3:7051"), "the removed member's channel is gone");
        assert!(pool.contains("m1:7051") && pool.contains("m2:7051") && pool.contains("ts1:7050"));
        // This master's own address is never evicted, even if it leaves.
        evict_departed(&pool, &set(&["m1:7051", "m2:7051"]), &set(&["m2:7051"]), "m1:7051");
        assert!(pool.contains("m1:7051"));
    }

    fn catalog_with_tablet_on(ts: &str) -> Catalog {
        let mut catalog = Catalog::default();
        let table_id = TableId::random();
        let table = Table::new(
            table_id.clone(),
            "t".into(),
            Schema { columns: vec![Column::new("id", ColumnType::Int64, false)], primary_key: vec!["id".into()] }
                .with_fresh_ids(),
            1,
            1,
        );
        let tablets = vec![Tablet::new(TabletId::random(), table_id, 0, vec![TServerId::from(ts)])];
        catalog.apply(&CatalogCommand::CreateTable { request_id: "r".into(), table, tablets }, 1);
        catalog
    }

    fn beat(ts: &str) -> Beat {
        Beat {
            id: ts.into(),
            rpc_address: format!("{ts}:7050"),
            instance_id: "i1".into(),
            reported: Default::default(),
        }
    }

    #[test]
    fn silent_servers_without_replicas_are_forgotten() {
        let registry = TServerRegistry::new(Duration::from_secs(10));
        for ts in ["hosting", "empty"] {
            registry.heartbeat(beat(ts));
        }
        let catalog = catalog_with_tablet_on("hosting");
        assert!(registry.forget_silent(&catalog, Duration::from_secs(3600)).is_empty(), "not silent long enough");
        assert_eq!(registry.forget_silent(&catalog, Duration::ZERO), vec![TServerId::from("empty")]);
        let left: Vec<TServerId> = registry.all().into_iter().map(|s| s.id).collect();
        assert_eq!(left, vec![TServerId::from("hosting")], "a server hosting replicas stays listed");
        // A forgotten server registers again with its next heartbeat.
        registry.heartbeat(beat("empty"));
        assert!(registry.get(&TServerId::from("empty")).is_some());
    }

    #[test]
    fn sweeps_are_frequent_enough_but_not_busy() {
        assert_eq!(sweep_interval(Duration::from_secs(3600)), MAX_SWEEP_INTERVAL);
        assert_eq!(sweep_interval(Duration::from_secs(40)), Duration::from_secs(10));
        assert_eq!(sweep_interval(Duration::ZERO), MIN_SWEEP_INTERVAL);
    }
}
