//! Heartbeats to every master; applies the leader's instructions and follows membership.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::watch;

use super::server::TServerState;
use super::store::ReplicaMeta;
use crate::ids::{TServerId, TableId, TabletId};
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

async fn beat(state: &TServerState, interval: Duration) -> Result<(), super::store::StoreError> {
    let replicas = state.store.replicas()?;
    let request = pb::TsHeartbeatRequest {
        ts_uuid: state.uuid.to_string(),
        rpc_address: state.advertised_addr.clone(),
        cluster_id: String::new(),
        replicas: replicas
            .iter()
            .map(|r| pb::ReportedReplica {
                tablet_id: r.tablet_id.to_string(),
                table_id: r.table_id.to_string(),
                state: pb::ReplicaState::ReplicaRunning as i32,
                ..Default::default()
            })
            .collect(),
    };
    let masters = state.masters();
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
                Ok(response) => Some(response.into_inner()),
                Err(status) => {
                    if let Some(code) = crate::rpc::error_code(&status) {
                        tracing::warn!(master = %address, code, error = %status.message(), "heartbeat refused");
                    }
                    None
                }
            }
        }
    });
    let answers = join_all(calls).await;
    let Some(leader) = answers.into_iter().flatten().find(|a| a.leader_master) else {
        tracing::debug!(?masters, "no leader master answered the heartbeat");
        return Ok(());
    };
    if !leader.master_addresses.is_empty() {
        state.set_masters(leader.master_addresses);
    }
    let hosted: BTreeSet<&str> = replicas.iter().map(|r| r.tablet_id.as_str()).collect();
    for assignment in leader.create_replicas {
        if hosted.contains(assignment.tablet_id.as_str()) {
            continue;
        }
        tracing::info!(tablet = %assignment.tablet_id, table = %assignment.table_name, "creating replica");
        state.store.put_replica(&ReplicaMeta {
            tablet_id: TabletId(assignment.tablet_id),
            table_id: TableId(assignment.table_id),
            table_name: assignment.table_name,
            partition: assignment.partition,
            peers: assignment.peer_uuids.into_iter().map(TServerId).collect(),
        })?;
    }
    for tablet_id in leader.delete_replicas {
        tracing::info!(tablet = %tablet_id, "deleting replica");
        state.store.delete_replica(&tablet_id)?;
    }
    Ok(())
}
