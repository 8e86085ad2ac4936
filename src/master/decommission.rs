//! Decommissioning tablet servers: a replicated mark (`CatalogCommand::SetTServerState`)
//! that makes re-replication move every replica off the server (3-4-3, see
//! [`super::rereplication`]) and keeps placement from putting new ones there.

use std::collections::{BTreeMap, BTreeSet};

use super::error::MasterError;
use super::node::MasterNode;
use crate::catalog::{Catalog, CatalogCommand};
use crate::ids::TServerId;

/// Checks a request to decommission `uuids`: every one must be a known tablet server (in
/// `live`, the registry's liveness, or hosting replicas in `catalog`), and the live servers
/// that are not decommissioning afterwards must be at least the largest replication factor
/// in use, or the replicas to move would have nowhere to go.
pub fn check_decommission(
    catalog: &Catalog,
    live: &BTreeMap<TServerId, bool>,
    uuids: &BTreeSet<TServerId>,
) -> Result<(), MasterError> {
    if uuids.is_empty() {
        return Err(MasterError::InvalidArgument("no tablet server named".into()));
    }
    for id in uuids {
        let hosts = catalog.tablets().any(|t| t.wants_replica_on(id));
        if !live.contains_key(id) && !hosts {
            return Err(MasterError::InvalidArgument(format!("unknown tablet server {id}")));
        }
    }
    let remaining =
        live.iter().filter(|(id, live)| **live && !uuids.contains(*id) && !catalog.is_decommissioning(id)).count();
    let needed = catalog.max_replication_factor();
    if remaining < needed {
        let names: Vec<&str> = uuids.iter().map(TServerId::as_str).collect();
        return Err(MasterError::TooFewTabletServers(format!(
            "decommissioning {} would leave {remaining} live tablet server(s) that are not decommissioning, \
             fewer than the largest replication factor in use ({needed})",
            names.join(", ")
        )));
    }
    Ok(())
}

impl MasterNode {
    /// Marks `uuids` as decommissioning (after [`check_decommission`]) or clears their
    /// marks, one catalog entry per server. Repeating a request is harmless.
    #[tracing::instrument(skip(self))]
    pub async fn set_tserver_state(&self, uuids: Vec<TServerId>, decommissioning: bool) -> Result<(), MasterError> {
        self.ensure_leader()?;
        self.linearizable_read().await?;
        let uuids: BTreeSet<TServerId> = uuids.into_iter().collect();
        if decommissioning {
            let catalog = self.catalog.read().await;
            check_decommission(&catalog, &self.tservers.liveness(), &uuids)?;
        }
        for uuid in uuids {
            tracing::info!(ts = %uuid, decommissioning, "setting tablet server state");
            self.propose(CatalogCommand::SetTServerState { uuid, decommissioning }).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, ColumnType, Schema, Table, Tablet};
    use crate::ids::{TableId, TabletId};

    fn catalog(rf: u32, voters: &[&str]) -> Catalog {
        let mut c = Catalog::default();
        let table_id = TableId("t-id".into());
        let table = Table::new(
            table_id.clone(),
            "t".into(),
            Schema { columns: vec![Column::new("id", ColumnType::Int64, false)], primary_key: vec!["id".into()] }
                .with_fresh_ids(),
            1,
            rf,
        );
        let tablet = Tablet::new(TabletId("t0".into()), table_id, 0, voters.iter().map(|v| (*v).into()).collect());
        c.apply(&CatalogCommand::CreateTable { request_id: "r".into(), table, tablets: vec![tablet] }, 1);
        c
    }

    fn set(names: &[&str]) -> BTreeSet<TServerId> {
        names.iter().map(|n| (*n).into()).collect()
    }

    fn live(rows: &[(&str, bool)]) -> BTreeMap<TServerId, bool> {
        rows.iter().map(|(id, live)| ((*id).into(), *live)).collect()
    }

    #[test]
    fn refused_below_the_largest_replication_factor() {
        let mut c = catalog(3, &["a", "b", "c"]);
        let four = live(&[("a", true), ("b", true), ("c", true), ("d", true)]);
        assert!(check_decommission(&c, &four, &set(&["a"])).is_ok());
        let err = check_decommission(&c, &four, &set(&["a", "b"])).expect_err("two of four for RF 3");
        assert!(matches!(err, MasterError::TooFewTabletServers(_)), "{err}");
        assert!(err.to_string().contains("largest replication factor in use (3)"), "{err}");
        // A dead server does not count as room.
        let one_dead = live(&[("a", true), ("b", true), ("c", true), ("d", false)]);
        assert!(check_decommission(&c, &one_dead, &set(&["a"])).is_err());
        // Servers already decommissioning do not count either.
        c.apply(&CatalogCommand::SetTServerState { uuid: "d".into(), decommissioning: true }, 2);
        assert!(check_decommission(&c, &four, &set(&["a"])).is_err());
        // Re-asking for the one already marked is fine while enough remain.
        assert!(check_decommission(&c, &four, &set(&["d"])).is_ok());
    }

    #[test]
    fn unknown_servers_and_empty_requests_are_invalid() {
        let c = catalog(1, &["a"]);
        let known = live(&[("a", true), ("b", true)]);
        assert!(matches!(check_decommission(&c, &known, &set(&["zz"])), Err(MasterError::InvalidArgument(_))));
        assert!(matches!(check_decommission(&c, &known, &set(&[])), Err(MasterError::InvalidArgument(_))));
        // A server the registry lost but that still hosts replicas can be decommissioned.
        assert!(check_decommission(&c, &live(&[("b", true)]), &set(&["a"])).is_ok());
    }
}
