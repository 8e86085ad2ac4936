//! After an AlterTable commits, the leader master pushes the table's schema to the leader
//! of each of its tablets (`TabletServerService.AlterSchema`), all tablets in parallel,
//! until every one acknowledged the new version or the deadline passed. Tablets that have
//! not applied it by then catch up through the heartbeats' `schema_updates`.
//!
//! A `no_wait` AlterTable pushes in the background instead: one pusher per table, which
//! always sends the table's newest schema, so alters arriving while a round runs (or within
//! [`BACKGROUND_ROUND_INTERVAL`] of its start) cost one more round rather than one push each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;

use super::error::MasterError;
use super::node::MasterNode;
use crate::catalog::Table;
use crate::convert::schema_to_pb;
use crate::error_code::ErrorCode;
use crate::ids::{TServerId, TableId, TabletId};
use crate::pb::tserver as tpb;
use crate::pb::tserver::tablet_server_service_client::TabletServerServiceClient;
use crate::raft::MAX_MESSAGE;
use crate::rpc;

/// Pause before another round over a tablet's replicas.
const ROUND_PAUSE: Duration = Duration::from_millis(100);
/// Shortest time between the starts of two background push rounds of one table: alters
/// arriving meanwhile are brought to the tablets by one round (a client altering a table
/// without waiting costs its tablets at most this many schema writes a second).
const BACKGROUND_ROUND_INTERVAL: Duration = Duration::from_millis(100);
/// Longest a single AlterSchema call may take, so one stuck server does not hold a tablet's
/// whole deadline.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// What one AlterSchema attempt learned.
enum Attempt {
    Applied,
    /// Not the leader; the address of the leader it named, if any.
    Redirect(Option<String>),
    Failed,
}

/// Tables with a background push running, and whether another round is due because the
/// table was altered again after the running round read its schema.
#[derive(Debug, Default)]
pub struct BackgroundPushes {
    tables: Mutex<HashMap<TableId, bool>>,
}

impl BackgroundPushes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TableId, bool>> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for a push of `table`'s newest schema; true if the caller must start the pusher
    /// (none runs for the table), false if the running one will do another round.
    fn request(&self, table: &TableId) -> bool {
        let mut tables = self.lock();
        match tables.get_mut(table) {
            Some(again) => {
                *again = true;
                false
            }
            None => {
                tables.insert(table.clone(), false);
                true
            }
        }
    }

    /// Called by the pusher after a round: true if another round is due (and taken),
    /// otherwise the pusher is done and unregistered.
    fn round_done(&self, table: &TableId) -> bool {
        let mut tables = self.lock();
        match tables.get_mut(table) {
            Some(again) if *again => {
                *again = false;
                true
            }
            _ => {
                tables.remove(table);
                false
            }
        }
    }

    /// Unregisters the pusher of `table` without another round (the table is gone or this
    /// master no longer leads).
    fn abandon(&self, table: &TableId) {
        self.lock().remove(table);
    }
}

impl MasterNode {
    /// Brings the newest schema of `table` to its tablets in the background (see the module
    /// documentation). Each round has the RPC timeout; tablets it does not reach catch up
    /// through heartbeats.
    pub(super) fn push_schema_in_background(self: &Arc<Self>, table: TableId) {
        if !self.background_pushes.request(&table) {
            return;
        }
        let node = self.clone();
        tokio::spawn(async move {
            loop {
                let round_started = Instant::now();
                let current = node.catalog.read().await.table(&table).cloned();
                let Some(current) = current.filter(|_| node.ensure_leader().is_ok()) else {
                    node.background_pushes.abandon(&table);
                    return;
                };
                let deadline = Instant::now() + node.config.rpc_timeout;
                if let Err(e) = node.push_schema(&current, deadline).await {
                    tracing::debug!(table = %current.name, error = %e, "background schema push incomplete");
                }
                tokio::time::sleep_until(round_started + BACKGROUND_ROUND_INTERVAL).await;
                if !node.background_pushes.round_done(&table) {
                    return;
                }
            }
        });
    }

    /// Pushes `altered`'s schema (or a newer one) to every tablet's leader until each
    /// acknowledged at least `altered.version`, or `deadline`. Fails with TIMED_OUT naming
    /// the tablets that have not applied it.
    pub(super) async fn push_schema(&self, altered: &Table, deadline: Instant) -> Result<(), MasterError> {
        let tablets: Vec<TabletId> = {
            let catalog = self.catalog.read().await;
            catalog.tablets_of(&altered.id).into_iter().map(|t| t.id.clone()).collect()
        };
        let results = join_all(tablets.iter().map(|id| self.push_tablet(altered, id, deadline))).await;
        let pending: Vec<String> =
            tablets.iter().zip(results).filter(|(_, applied)| !applied).map(|(id, _)| id.to_string()).collect();
        if pending.is_empty() {
            return Ok(());
        }
        Err(MasterError::Timeout(format!(
            "table '{}' is altered to schema version {} (the change is committed), but tablets {} have not \
             applied it yet; they catch up through heartbeats",
            altered.name,
            altered.version,
            pending.join(", ")
        )))
    }

    /// Pushes to one tablet: the recorded leader first, then the other replicas, following
    /// NOT_THE_LEADER hints; rounds repeat (re-reading the catalog) until `deadline`.
    async fn push_tablet(&self, altered: &Table, tablet_id: &TabletId, deadline: Instant) -> bool {
        let mut hint: Option<String> = None;
        loop {
            let Some((request, candidates)) = self.push_plan(altered, tablet_id).await else {
                // Deleted meanwhile: nothing left to alter.
                return true;
            };
            let hinted = hint.take();
            let mut targets: Vec<String> = candidates.into_iter().filter(|a| Some(a) != hinted.as_ref()).collect();
            targets.splice(0..0, hinted);
            for address in targets {
                if Instant::now() >= deadline {
                    return false;
                }
                match self.alter_schema_on(&address, request.clone(), altered.version, deadline).await {
                    Attempt::Applied => return true,
                    Attempt::Redirect(Some(leader)) if leader != address => {
                        hint = Some(leader);
                        break;
                    }
                    Attempt::Redirect(_) | Attempt::Failed => {}
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            if hint.is_none() {
                tokio::time::sleep(ROUND_PAUSE.min(deadline - now)).await;
            }
        }
    }

    /// The request for the tablet's current schema and the addresses to try (recorded
    /// leader first); `None` if the tablet or its table is gone.
    async fn push_plan(&self, altered: &Table, tablet_id: &TabletId) -> Option<(tpb::AlterSchemaRequest, Vec<String>)> {
        let catalog = self.catalog.read().await;
        let tablet = catalog.tablet(tablet_id).filter(|t| !t.is_deleted())?;
        let table = catalog.table(&altered.id)?;
        let request = tpb::AlterSchemaRequest {
            tablet_id: tablet_id.to_string(),
            schema: Some(schema_to_pb(&table.schema)),
            schema_version: table.version,
        };
        let mut order: Vec<&TServerId> = tablet.leader.iter().collect();
        order.extend(tablet.replicas.iter().filter(|r| Some(*r) != tablet.leader.as_ref()));
        let addresses = order.into_iter().filter_map(|ts| self.tservers.get(ts).map(|info| info.rpc_address)).collect();
        Some((request, addresses))
    }

    /// One AlterSchema call.
    async fn alter_schema_on(
        &self,
        address: &str,
        request: tpb::AlterSchemaRequest,
        min_version: u64,
        deadline: Instant,
    ) -> Attempt {
        let Ok(channel) = self.pool.get(address) else { return Attempt::Failed };
        let mut client = TabletServerServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
        let timeout = CALL_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
        let mut call = tonic::Request::new(request);
        call.set_timeout(timeout);
        match rpc::with_deadline(timeout, client.alter_schema(call)).await {
            Ok(response) if response.get_ref().schema_version >= min_version => Attempt::Applied,
            Ok(response) => {
                tracing::warn!(
                    tserver = address,
                    version = response.get_ref().schema_version,
                    min_version,
                    "AlterSchema acknowledged an older schema version"
                );
                Attempt::Failed
            }
            Err(status) if rpc::known_error_code(&status) == Some(ErrorCode::NotTheLeader) => {
                Attempt::Redirect(self.leader_hint(&status))
            }
            Err(status) => {
                tracing::debug!(tserver = address, error = %status.message(), "AlterSchema failed");
                Attempt::Failed
            }
        }
    }

    /// The address of the leader a NOT_THE_LEADER status names: its address, or its tablet
    /// server uuid looked up in the registry.
    pub(super) fn leader_hint(&self, status: &tonic::Status) -> Option<String> {
        let meta = status.metadata();
        let text = |key| meta.get(key).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
        text(rpc::LEADER_ADDR_KEY).map(str::to_string).or_else(|| {
            text(rpc::LEADER_ID_KEY).and_then(|uuid| self.tservers.get(&TServerId::from(uuid))).map(|i| i.rpc_address)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alters_during_a_push_coalesce_into_one_more_round() {
        let pushes = BackgroundPushes::default();
        let (t1, t2) = (TableId::from("t1"), TableId::from("t2"));
        assert!(pushes.request(&t1), "the first request starts a pusher");
        assert!(!pushes.request(&t1), "a request while it runs does not start another");
        assert!(!pushes.request(&t1));
        assert!(pushes.request(&t2), "tables have pushers of their own");
        assert!(pushes.round_done(&t1), "the requests during the round ask for one more round");
        assert!(!pushes.round_done(&t1), "and only one");
        assert!(pushes.request(&t1), "after the pusher ended, a request starts a new one");
        pushes.abandon(&t1);
        assert!(pushes.request(&t1), "an abandoned pusher is unregistered");
        assert!(!pushes.round_done(&t2));
    }
}
