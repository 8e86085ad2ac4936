//! The leader master's re-replication loop: each round plans new moves, records them, and
//! drives every move in progress through its tablet's leader (see the module docs).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::plan::{self, Action, Skipped};
use crate::catalog::{CatalogCommand, ReplicaMove, Tablet, TabletMove};
use crate::error_code::ErrorCode;
use crate::ids::{TServerId, TabletId};
use crate::master::error::MasterError;
use crate::master::heartbeat::reported_config;
use crate::master::node::MasterNode;
use crate::pb::master as mpb;
use crate::pb::tserver as tpb;
use crate::pb::tserver::tablet_server_service_client::TabletServerServiceClient;
use crate::placement::Placer;
use crate::raft::MAX_MESSAGE;
use crate::rpc;

/// Longest one ChangeConfig call may take (a promotion commits two configuration entries).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause before asking again while the new replica catches up or a change commits.
const STEP_PAUSE: Duration = Duration::from_millis(250);
/// How long one driver keeps at a move before handing it back to the next round (which
/// re-reads what is failed and may give the move up).
const DRIVE_FOR: Duration = Duration::from_secs(20);

/// Runs re-replication rounds every `rereplication_interval` while this master leads,
/// until `stop` turns true.
pub async fn run(node: Arc<MasterNode>, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(node.config.rereplication_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if node.ensure_leader().is_err() {
            continue;
        }
        if let Err(e) = node.rereplication_round().await {
            tracing::debug!(error = %e, "re-replication round failed");
        }
    }
}

/// What the tablet's leader answered, or why it could not be asked.
enum Answer {
    Step(tpb::ChangeConfigResponse),
    /// No leader answered; try again after a pause.
    Retry,
}

impl MasterNode {
    /// One round: plan and record new moves, then drive every move in progress that no
    /// driver holds.
    async fn rereplication_round(self: &Arc<Self>) -> Result<(), MasterError> {
        self.linearizable_read().await?;
        // A new leader's registry may miss servers that are up but have not heartbeated to
        // it yet; only once it has led for a whole unresponsive timeout is absence failure.
        let absent_are_failed = self.leadership_age() >= self.config.tserver_unresponsive_timeout;
        let live = self.tservers.liveness();
        let (planned, moving) = {
            let catalog = self.catalog.read().await;
            let failed = plan::failed_servers(&catalog, &live, absent_are_failed);
            let servers = self.tservers.placement_servers(&catalog, self.locations.is_some());
            let planned = {
                let mut rng = self.placement_rng.lock().unwrap_or_else(|p| p.into_inner());
                let mut placer = Placer::new(servers, &mut *rng);
                plan::plan_moves(&catalog, &failed, &mut placer, self.config.max_concurrent_rereplications)
            };
            let moving: Vec<(TabletId, ReplicaMove, Action)> = catalog
                .tablets()
                .filter_map(|t| {
                    let m = t.pending_move.as_ref()?;
                    Some((t.id.clone(), m.clone(), plan::next_action(t, m, &failed)))
                })
                .collect();
            (planned, moving)
        };
        for (tablet, why) in &planned.skipped {
            match why {
                Skipped::NoQuorum { live, voters } => {
                    tracing::debug!(%tablet, live, voters, "under-replicated without a live majority: not re-replicated")
                }
                Skipped::NoServer(e) => tracing::debug!(%tablet, error = %e, "no server can take a replacement"),
            }
        }
        let mut moving = moving;
        if !planned.moves.is_empty() {
            self.start_moves(&planned.moves, planned.violations).await?;
            moving.extend(planned.moves.into_iter().map(|m| (m.tablet_id, m.replica_move, Action::Advance)));
        }
        for (tablet_id, replica_move, action) in moving {
            let Some(driving) = self.moves_in_flight.begin(&tablet_id) else { continue };
            let node = self.clone();
            tokio::spawn(async move {
                let _driving = driving;
                node.drive_move(&tablet_id, &replica_move, action).await;
            });
        }
        Ok(())
    }

    /// Records new moves in the catalog.
    async fn start_moves(&self, moves: &[TabletMove], violations: usize) -> Result<(), MasterError> {
        for m in moves {
            tracing::info!(
                tablet = %m.tablet_id,
                from = m.replica_move.from.as_ref().map_or("(none)", TServerId::as_str),
                to = %m.replica_move.to,
                "re-replication: moving a replica"
            );
        }
        self.propose(CatalogCommand::StartReplicaMoves(moves.to_vec())).await?;
        self.metrics.replica_moves_started.inc_by(moves.len() as u64);
        if violations > 0 {
            tracing::warn!(
                replicas = violations,
                "no placement complying with the location policy exists: replacements put a majority \
                 of some tablets' replicas in one location"
            );
            self.metrics.placement_violations.inc_by(violations as u64);
        }
        Ok(())
    }

    /// Drives one move until it completes, is given up, stops being the tablet's move, this
    /// master stops leading, or [`DRIVE_FOR`] passed (the next round resumes it).
    #[tracing::instrument(skip_all, fields(tablet = %tablet_id, to = %replica_move.to, ?action))]
    async fn drive_move(&self, tablet_id: &TabletId, replica_move: &ReplicaMove, action: Action) {
        let request = self.change_request(tablet_id, replica_move, &action);
        let until = Instant::now() + DRIVE_FOR;
        let mut hint: Option<String> = None;
        while Instant::now() < until && self.ensure_leader().is_ok() {
            let targets = {
                let catalog = self.catalog.read().await;
                let Some(tablet) = catalog.tablet(tablet_id) else { return };
                if tablet.pending_move.as_ref() != Some(replica_move) {
                    // Ended: completed when the recorded configuration shows its outcome.
                    if action == Action::Advance && replica_move.is_complete_in(&tablet.replicas) {
                        tracing::info!(voters = ?tablet.replicas, "replica move complete");
                        self.metrics.replica_moves_completed.inc();
                    }
                    return;
                }
                self.leader_candidates(tablet)
            };
            let response = match self.ask_leader(hint.take(), targets, &request).await {
                (Answer::Step(response), _) => response,
                (Answer::Retry, next_hint) => {
                    hint = next_hint;
                    tokio::time::sleep(STEP_PAUSE).await;
                    continue;
                }
            };
            if let Some(config) = &response.config {
                self.record_leader_view(tablet_id, config).await;
            }
            match tpb::ConfigChangeStep::try_from(response.step) {
                Ok(tpb::ConfigChangeStep::Complete) if action == Action::GiveUp => {
                    self.cancel_move(tablet_id, replica_move).await;
                    return;
                }
                // The outcome is committed (or about to be); the catalog records it from the
                // answer or a heartbeat, which ends the move.
                Ok(tpb::ConfigChangeStep::Complete) => tokio::time::sleep(STEP_PAUSE).await,
                Ok(tpb::ConfigChangeStep::CatchingUp) => {
                    tracing::debug!(lag = response.lag, "the new replica is catching up");
                    tokio::time::sleep(STEP_PAUSE).await;
                }
                Ok(step) => tracing::info!(step = step.as_str_name(), "replica move step done"),
                Err(_) => tokio::time::sleep(STEP_PAUSE).await,
            }
        }
    }

    /// The ChangeConfig request of a move: advance it (add `to`, remove `from`), or give it
    /// up (remove `to` if it was added as a non-voter).
    fn change_request(&self, tablet_id: &TabletId, m: &ReplicaMove, action: &Action) -> tpb::ChangeConfigRequest {
        match action {
            Action::Advance => tpb::ChangeConfigRequest {
                tablet_id: tablet_id.to_string(),
                add_uuid: m.to.to_string(),
                add_address: self.tservers.get(&m.to).map(|i| i.rpc_address).unwrap_or_default(),
                remove_uuid: m.from.as_ref().map(ToString::to_string).unwrap_or_default(),
            },
            Action::GiveUp => tpb::ChangeConfigRequest {
                tablet_id: tablet_id.to_string(),
                add_uuid: String::new(),
                add_address: String::new(),
                remove_uuid: m.to.to_string(),
            },
        }
    }

    /// Addresses of the tablet's replicas to ask, the recorded leader first; servers not
    /// heard from lately are left out.
    fn leader_candidates(&self, tablet: &Tablet) -> Vec<String> {
        let mut order: Vec<&TServerId> = tablet.leader.iter().collect();
        order.extend(tablet.replicas.iter().filter(|r| Some(*r) != tablet.leader.as_ref()));
        order
            .into_iter()
            .filter_map(|ts| self.tservers.get(ts).filter(|info| self.tservers.is_live(info)))
            .map(|info| info.rpc_address)
            .collect()
    }

    /// Asks the tablet's leader: `hint` first, then `targets`, following NOT_THE_LEADER
    /// hints. On [`Answer::Retry`] also returns a leader hint for the next attempt.
    async fn ask_leader(
        &self,
        hint: Option<String>,
        targets: Vec<String>,
        request: &tpb::ChangeConfigRequest,
    ) -> (Answer, Option<String>) {
        let mut queue: VecDeque<String> = hint.into_iter().chain(targets).collect();
        let mut tried: Vec<String> = Vec::new();
        while let Some(address) = queue.pop_front() {
            if tried.contains(&address) {
                continue;
            }
            tried.push(address.clone());
            match self.change_config_on(&address, request.clone()).await {
                Ok(response) => return (Answer::Step(response), None),
                Err(status) => match rpc::known_error_code(&status) {
                    Some(ErrorCode::NotTheLeader) => {
                        if let Some(leader) = self.leader_hint(&status).filter(|l| !tried.contains(l)) {
                            queue.push_front(leader);
                        }
                    }
                    // The leader answered: a change is committing, or it timed out.
                    Some(ErrorCode::ServiceUnavailable | ErrorCode::TimedOut) => {
                        tracing::debug!(tserver = %address, error = %status.message(), "replica move step deferred");
                        return (Answer::Retry, Some(address));
                    }
                    _ => tracing::debug!(tserver = %address, error = %status.message(), "ChangeConfig failed"),
                },
            }
        }
        (Answer::Retry, None)
    }

    /// One ChangeConfig call.
    async fn change_config_on(
        &self,
        address: &str,
        request: tpb::ChangeConfigRequest,
    ) -> Result<tpb::ChangeConfigResponse, tonic::Status> {
        let channel = self.pool.get(address).map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut client = TabletServerServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
        let mut call = tonic::Request::new(request);
        call.set_timeout(CALL_TIMEOUT);
        rpc::with_deadline(CALL_TIMEOUT, client.change_config(call)).await.map(tonic::Response::into_inner)
    }

    /// Records the configuration a tablet's leader answered with, if it is newer than the
    /// catalog's (the catalog then follows the move without waiting for a heartbeat).
    async fn record_leader_view(&self, tablet_id: &TabletId, report: &mpb::ReportedReplica) {
        let update = {
            let catalog = self.catalog.read().await;
            catalog.tablet(tablet_id).and_then(|tablet| reported_config(tablet, report))
        };
        if let Some(update) = update
            && let Err(e) = self.propose(CatalogCommand::UpdateTabletConfigs(vec![update])).await
        {
            tracing::debug!(%tablet_id, error = %e, "could not record the leader's configuration");
        }
    }

    /// Cancels a given-up move once its destination left the group.
    async fn cancel_move(&self, tablet_id: &TabletId, replica_move: &ReplicaMove) {
        let cancel = TabletMove { tablet_id: tablet_id.clone(), replica_move: replica_move.clone() };
        match self.propose(CatalogCommand::CancelReplicaMoves(vec![cancel])).await {
            Ok(_) => {
                tracing::warn!("replica move given up: its destination died before its promotion");
                self.metrics.replica_moves_cancelled.inc();
            }
            Err(e) => tracing::debug!(error = %e, "could not cancel the replica move"),
        }
    }
}
