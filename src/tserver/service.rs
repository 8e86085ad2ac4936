//! The tablet server's gRPC service.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::server::TServerState;
use crate::error_code::ErrorCode;
use crate::pb::tserver as pb;
use crate::pb::tserver::tablet_server_service_server::TabletServerService;
use crate::rpc;

pub struct TServerRpc {
    pub state: Arc<TServerState>,
}

/// Writes, scans and schema changes are served once tablet replicas run their Raft groups
/// (the tablet server does not host them yet); until then they are refused as unavailable.
fn not_served_yet(what: &str) -> Status {
    rpc::status(ErrorCode::ServiceUnavailable, format!("{what} is not served by this tablet server yet"))
}

#[tonic::async_trait]
impl TabletServerService for TServerRpc {
    async fn write(&self, _: Request<pb::WriteRequest>) -> Result<Response<pb::WriteResponse>, Status> {
        Err(not_served_yet("Write"))
    }

    async fn scan(&self, _: Request<pb::ScanRequest>) -> Result<Response<pb::ScanResponse>, Status> {
        Err(not_served_yet("Scan"))
    }

    async fn alter_schema(
        &self,
        _: Request<pb::AlterSchemaRequest>,
    ) -> Result<Response<pb::AlterSchemaResponse>, Status> {
        Err(not_served_yet("AlterSchema"))
    }

    async fn list_tablets(
        &self,
        _: Request<pb::ListTabletsRequest>,
    ) -> Result<Response<pb::ListTabletsResponse>, Status> {
        let replicas = self.state.store.replicas().map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ListTabletsResponse {
            uuid: self.state.uuid.to_string(),
            cluster_id: String::new(),
            replicas: replicas
                .into_iter()
                .map(|r| pb::TabletReplica {
                    tablet_id: r.tablet_id.to_string(),
                    table_id: r.table_id.to_string(),
                    table_name: r.table_name,
                    partition: r.partition,
                    peer_uuids: r.peers.into_iter().map(|p| p.to_string()).collect(),
                    state: "RUNNING".to_string(),
                    ..Default::default()
                })
                .collect(),
        }))
    }
}
