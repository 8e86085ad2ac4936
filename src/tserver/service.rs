//! The tablet server's gRPC service.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::server::TServerState;
use crate::pb::tserver as pb;
use crate::pb::tserver::tablet_server_service_server::TabletServerService;

pub struct TServerRpc {
    pub state: Arc<TServerState>,
}

#[tonic::async_trait]
impl TabletServerService for TServerRpc {
    async fn list_tablets(
        &self,
        _: Request<pb::ListTabletsRequest>,
    ) -> Result<Response<pb::ListTabletsResponse>, Status> {
        let replicas = self.state.store.replicas().map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ListTabletsResponse {
            uuid: self.state.uuid.to_string(),
            replicas: replicas
                .into_iter()
                .map(|r| pb::TabletReplica {
                    tablet_id: r.tablet_id.to_string(),
                    table_id: r.table_id.to_string(),
                    table_name: r.table_name,
                    partition: r.partition,
                    peer_uuids: r.peers.into_iter().map(|p| p.to_string()).collect(),
                })
                .collect(),
        }))
    }
}
