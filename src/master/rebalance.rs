//! Replica moves requested from outside the master (`kudu cluster rebalance`, MoveReplicas):
//! each is checked against the catalog and the tablet-server registry ([`check_move`], pure),
//! then the valid ones are recorded with `StartReplicaMoves`, after which the re-replication
//! driver executes them like its own (add the destination as a non-voter, promote it, remove
//! the source), resuming them after a master leader change.

use std::collections::BTreeSet;

use super::error::MasterError;
use super::limits;
use super::node::MasterNode;
use crate::catalog::{Catalog, CatalogCommand, ReplicaMove, TabletMove};
use crate::ids::{TServerId, TabletId};
use crate::pb::master as pb;

/// Why a requested move is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoveRefused {
    #[error("a move needs a tablet, a source and a destination")]
    Incomplete,
    #[error("{0} is both the source and the destination")]
    SameServer(TServerId),
    #[error("no tablet {0}")]
    TabletNotFound(TabletId),
    #[error("{from} holds no voter of tablet {tablet}")]
    SourceNotAReplica { tablet: TabletId, from: TServerId },
    #[error("{to} already holds a replica of tablet {tablet}")]
    DestinationHoldsReplica { tablet: TabletId, to: TServerId },
    #[error("tablet server {0} cannot take a replica (unknown, unresponsive or without a location)")]
    DestinationUnavailable(TServerId),
    #[error("tablet {tablet} has another move in progress (to {to})")]
    TabletBusy { tablet: TabletId, to: TServerId },
}

impl MoveRefused {
    /// The wire status of the refusal.
    pub fn status(&self) -> pb::MoveStatus {
        match self {
            MoveRefused::Incomplete | MoveRefused::SameServer(_) => pb::MoveStatus::MoveInvalid,
            MoveRefused::TabletNotFound(_) => pb::MoveStatus::MoveTabletNotFound,
            MoveRefused::SourceNotAReplica { .. } => pb::MoveStatus::MoveSourceNotAReplica,
            MoveRefused::DestinationHoldsReplica { .. } => pb::MoveStatus::MoveDestinationHoldsReplica,
            MoveRefused::DestinationUnavailable(_) => pb::MoveStatus::MoveDestinationUnavailable,
            MoveRefused::TabletBusy { .. } => pb::MoveStatus::MoveTabletBusy,
        }
    }
}

/// Whether a checked move is new or already under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// To be recorded.
    New,
    /// Already the tablet's move in progress (a retried request): nothing to record.
    InProgress,
}

/// Checks `requested` against `catalog`: the tablet exists and runs, `from` is one of its
/// voters, `to` is not and is `available` (live, with a location when a mapping command is
/// configured), and the tablet has no other move in progress.
pub fn check_move(
    catalog: &Catalog,
    available: &BTreeSet<TServerId>,
    requested: &TabletMove,
) -> Result<Accepted, MoveRefused> {
    let TabletMove { tablet_id, replica_move } = requested;
    let Some(from) = &replica_move.from else { return Err(MoveRefused::Incomplete) };
    let to = &replica_move.to;
    if tablet_id.as_str().is_empty() || from.as_str().is_empty() || to.as_str().is_empty() {
        return Err(MoveRefused::Incomplete);
    }
    if from == to {
        return Err(MoveRefused::SameServer(to.clone()));
    }
    let tablet = catalog
        .tablet(tablet_id)
        .filter(|t| !t.is_deleted())
        .ok_or_else(|| MoveRefused::TabletNotFound(tablet_id.clone()))?;
    match &tablet.pending_move {
        Some(pending) if pending == replica_move => return Ok(Accepted::InProgress),
        Some(pending) => return Err(MoveRefused::TabletBusy { tablet: tablet_id.clone(), to: pending.to.clone() }),
        None => {}
    }
    if !tablet.replicas.contains(from) {
        return Err(MoveRefused::SourceNotAReplica { tablet: tablet_id.clone(), from: from.clone() });
    }
    if tablet.replicas.contains(to) {
        return Err(MoveRefused::DestinationHoldsReplica { tablet: tablet_id.clone(), to: to.clone() });
    }
    if !available.contains(to) {
        return Err(MoveRefused::DestinationUnavailable(to.clone()));
    }
    Ok(Accepted::New)
}

impl MasterNode {
    /// Checks and records requested moves (leader only); one outcome per move, in order.
    pub async fn move_replicas(&self, requested: Vec<TabletMove>) -> Result<Vec<Result<(), MoveRefused>>, MasterError> {
        limits::check_command(&CatalogCommand::StartReplicaMoves(requested.clone()))?;
        self.linearizable_read().await?;
        let mut outcomes: Vec<Result<(), MoveRefused>> = Vec::with_capacity(requested.len());
        let mut to_start: Vec<TabletMove> = Vec::new();
        {
            let catalog = self.catalog.read().await;
            let available: BTreeSet<TServerId> = self
                .tservers
                .placement_servers(&catalog, self.locations.is_some())
                .into_iter()
                .filter(|s| s.live)
                .map(|s| s.id)
                .collect();
            let mut seen: BTreeSet<&TabletId> = BTreeSet::new();
            for m in &requested {
                let outcome = match check_move(&catalog, &available, m) {
                    Ok(_) if !seen.insert(&m.tablet_id) => {
                        Err(MoveRefused::TabletBusy { tablet: m.tablet_id.clone(), to: m.replica_move.to.clone() })
                    }
                    Ok(Accepted::New) => {
                        to_start.push(m.clone());
                        Ok(())
                    }
                    Ok(Accepted::InProgress) => Ok(()),
                    Err(refused) => Err(refused),
                };
                outcomes.push(outcome);
            }
        }
        if !to_start.is_empty() {
            for m in &to_start {
                tracing::info!(
                    tablet = %m.tablet_id,
                    from = m.replica_move.from.as_ref().map_or("(none)", TServerId::as_str),
                    to = %m.replica_move.to,
                    "rebalancing: moving a replica"
                );
            }
            self.propose(CatalogCommand::StartReplicaMoves(to_start.clone())).await?;
            self.metrics.replica_moves_started.inc_by(to_start.len() as u64);
        }
        // The catalog started only the moves still valid when the command applied.
        let catalog = self.catalog.read().await;
        for (m, outcome) in requested.iter().zip(outcomes.iter_mut()) {
            let Ok(()) = outcome else { continue };
            let pending = catalog.tablet(&m.tablet_id).and_then(|t| t.pending_move.clone());
            if pending.as_ref() != Some(&m.replica_move) {
                let to = pending.map_or_else(|| m.replica_move.to.clone(), |p| p.to);
                *outcome = Err(MoveRefused::TabletBusy { tablet: m.tablet_id.clone(), to });
            }
        }
        Ok(outcomes)
    }
}

/// The moves of a MoveReplicas request (an empty source stays empty: refused as incomplete).
pub fn moves_from_pb(moves: &[pb::TabletReplicaMove]) -> Vec<TabletMove> {
    moves
        .iter()
        .map(|m| TabletMove {
            tablet_id: TabletId(m.tablet_id.clone()),
            replica_move: ReplicaMove {
                from: (!m.from_uuid.is_empty()).then(|| TServerId(m.from_uuid.clone())),
                to: TServerId(m.to_uuid.clone()),
            },
        })
        .collect()
}

/// The wire outcomes of `moves`.
pub fn outcomes_to_pb(moves: &[TabletMove], outcomes: Vec<Result<(), MoveRefused>>) -> Vec<pb::MoveOutcome> {
    moves
        .iter()
        .zip(outcomes)
        .map(|(m, outcome)| pb::MoveOutcome {
            tablet_id: m.tablet_id.to_string(),
            status: match &outcome {
                Ok(()) => pb::MoveStatus::MoveStarted,
                Err(refused) => refused.status(),
            } as i32,
            message: outcome.err().map(|e| e.to_string()).unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, ColumnType, Schema, Table, Tablet};
    use crate::ids::TableId;

    fn ids(names: &[&str]) -> Vec<TServerId> {
        names.iter().map(|n| TServerId::from(*n)).collect()
    }

    /// One table of replication factor 3 with tablets t0 on a, b, c and t1 on b, c, d.
    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        c.apply(&CatalogCommand::SetClusterId { cluster_id: "c".into() }, 1);
        let table_id = TableId("tid".into());
        let table = Table::new(
            table_id.clone(),
            "t".into(),
            Schema { columns: vec![Column::new("id", ColumnType::Int64, false)], primary_key: vec!["id".into()] }
                .with_fresh_ids(),
            2,
            3,
        );
        let tablets = vec![
            Tablet::new("t0".into(), table_id.clone(), 0, ids(&["a", "b", "c"])),
            Tablet::new("t1".into(), table_id, 1, ids(&["b", "c", "d"])),
        ];
        c.apply(&CatalogCommand::CreateTable { request_id: "r".into(), table, tablets }, 2);
        c
    }

    fn mv(tablet: &str, from: &str, to: &str) -> TabletMove {
        TabletMove {
            tablet_id: tablet.into(),
            replica_move: ReplicaMove { from: (!from.is_empty()).then(|| from.into()), to: to.into() },
        }
    }

    #[test]
    fn valid_moves_are_accepted_and_each_rule_refuses() {
        let mut c = catalog();
        let available: BTreeSet<TServerId> = ids(&["a", "b", "c", "d", "e"]).into_iter().collect();
        assert_eq!(check_move(&c, &available, &mv("t0", "a", "d")), Ok(Accepted::New));
        let cases = [
            (mv("t0", "", "d"), pb::MoveStatus::MoveInvalid),
            (mv("t0", "a", "a"), pb::MoveStatus::MoveInvalid),
            (mv("", "a", "d"), pb::MoveStatus::MoveInvalid),
            (mv("t9", "a", "d"), pb::MoveStatus::MoveTabletNotFound),
            (mv("t0", "d", "e"), pb::MoveStatus::MoveSourceNotAReplica),
            (mv("t0", "a", "b"), pb::MoveStatus::MoveDestinationHoldsReplica),
            (mv("t0", "a", "x"), pb::MoveStatus::MoveDestinationUnavailable),
        ];
        for (m, status) in cases {
            let refused = check_move(&c, &available, &m).expect_err("refused");
            assert_eq!(refused.status(), status, "{m:?}: {refused}");
        }
        // An unresponsive or unlocated destination is simply not available.
        let without_e: BTreeSet<TServerId> = ids(&["a", "b", "c", "d"]).into_iter().collect();
        assert_eq!(
            check_move(&c, &without_e, &mv("t1", "b", "e")).map_err(|e| e.status()),
            Err(pb::MoveStatus::MoveDestinationUnavailable)
        );
        // Once recorded, the same move is in progress (a retry) and any other is refused.
        c.apply(&CatalogCommand::StartReplicaMoves(vec![mv("t0", "a", "d")]), 3);
        assert_eq!(check_move(&c, &available, &mv("t0", "a", "d")), Ok(Accepted::InProgress));
        let busy = check_move(&c, &available, &mv("t0", "b", "e")).expect_err("busy");
        assert_eq!(busy.status(), pb::MoveStatus::MoveTabletBusy);
        assert_eq!(check_move(&c, &available, &mv("t1", "b", "e")), Ok(Accepted::New));
    }

    #[test]
    fn wire_moves_round_trip() {
        let wire = vec![pb::TabletReplicaMove { tablet_id: "t0".into(), from_uuid: "a".into(), to_uuid: "d".into() }];
        let moves = moves_from_pb(&wire);
        assert_eq!(moves, vec![mv("t0", "a", "d")]);
        let refused = MoveRefused::DestinationUnavailable("d".into());
        let out = outcomes_to_pb(&moves, vec![Err(refused)]);
        assert_eq!(out[0].status, pb::MoveStatus::MoveDestinationUnavailable as i32);
        assert!(out[0].message.contains("cannot take a replica"), "{}", out[0].message);
    }
}
