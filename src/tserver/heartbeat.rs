//! Heartbeats to every master: reports every replica with its state, obeys the leader's
//! instructions when the leader belongs to this server's cluster, and follows membership.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::watch;

use super::server::TServerState;
use crate::error_code::ErrorCode;
use crate::pb::master as pb;
use crate::pb::master::master_service_client::MasterServiceClient;

/// Sends heartbeats every `interval` until `stop` turns true.
pub async fn run(state: Arc<TServerState>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = beat(&state, interval).await {
            tracing::warn!(error = %e, "heartbeat round failed");
        }
    }
}

/// One heartbeat round: reports to every master and obeys the leader's answer.
pub(super) async fn beat(state: &TServerState, interval: Duration) -> Result<(), super::tablets::ManagerError> {
    let masters = state.masters();
    if masters.is_empty() {
        return Ok(());
    }
    let statuses = state.tablets.statuses().await?;
    let request = pb::TsHeartbeatRequest {
        ts_uuid: state.uuid.to_string(),
        rpc_address: state.advertised_addr.clone(),
        cluster_id: state.cluster.id().unwrap_or_default(),
        replicas: statuses.iter().map(|s| s.to_report()).collect(),
        instance_id: state.instance_id.clone(),
        draining: state.tablets.draining(),
    };
    let calls = masters.iter().map(|address| {
        let request = request.clone();
        let channel = state.pool.get(address);
        let address = address.clone();
        async move {
            let mut client = MasterServiceClient::new(channel.ok()?);
            let mut req = tonic::Request::new(request);
            let timeout = interval * 3;
            req.set_timeout(timeout);
            match crate::rpc::with_deadline(timeout, client.ts_heartbeat(req)).await {
                Ok(response) => Some((address, response.into_inner())),
                Err(status) => {
                    log_refusal(&address, &status);
                    None
                }
            }
        }
    });
    let answers = join_all(calls).await;
    let Some((master, leader)) = answers.into_iter().flatten().find(|(_, a)| a.leader_master) else {
        tracing::debug!(?masters, "no leader master answered the heartbeat");
        return Ok(());
    };
    apply_answer(state, leader, &master).await;
    Ok(())
}

fn log_refusal(master: &str, status: &tonic::Status) {
    match crate::rpc::known_error_code(status) {
        Some(ErrorCode::WrongCluster) => tracing::error!(
            %master,
            error = %status.message(),
            "the master refused this tablet server: it belongs to another cluster"
        ),
        Some(ErrorCode::LocationMappingFailed) => tracing::error!(
            %master,
            code = %ErrorCode::LocationMappingFailed,
            error = %status.message(),
            "registration failed: the master could not assign this tablet server a location, \
             so it places no replicas here until the mapping succeeds"
        ),
        Some(code) => tracing::warn!(%master, %code, error = %status.message(), "heartbeat refused"),
        None => tracing::debug!(%master, error = %status.message(), "heartbeat failed"),
    }
}

/// Obeys a leader master's answer if it comes from this server's cluster (joining the
/// cluster first if this server has none); otherwise ignores all of it. Returns whether it
/// was obeyed.
pub(super) async fn apply_answer(state: &TServerState, answer: pb::TsHeartbeatResponse, master: &str) -> bool {
    match state.cluster.admit(&answer.cluster_id, master) {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            tracing::error!(error = %e, "cannot persist the cluster id; ignoring the master's answer");
            return false;
        }
    }
    state.registered.store(true, std::sync::atomic::Ordering::SeqCst);
    if !answer.master_addresses.is_empty() {
        state.set_masters(answer.master_addresses);
    }
    state.set_location(&answer.location);
    for peer in &answer.peer_addresses {
        state.book.set(&peer.uuid, &peer.rpc_address);
    }
    state.tablets.create_replicas(&answer.create_replicas).await;
    state.tablets.delete_replicas(&answer.delete_replicas).await;
    state.tablets.apply_schema_updates(answer.schema_updates).await;
    true
}
