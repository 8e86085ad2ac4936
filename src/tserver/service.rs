//! The tablet server's gRPC service (`proto/tserver.proto`): writes, scans and schema
//! changes served by tablet leaders, replica moves driven by the leader master
//! (ChangeConfig), and the list of hosted replicas.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::error::TabletServiceError;
use super::replica::Replica;
use super::server::TServerState;
use super::store::TabletStoreError;
use super::wire;
use crate::catalog::schema::shown;
use crate::ids::TServerId;
use crate::pb::tserver as pb;
use crate::pb::tserver::tablet_server_service_server::TabletServerService;
use crate::tablet::{
    KeyRange, Projection, TabletCommand, TabletOutcome, TabletSchema, check_client_id, encode_json_batch, key_bound,
    row_to_json,
};

/// The service of one tablet server.
pub struct TServerRpc {
    pub state: Arc<TServerState>,
}

type Result<T> = std::result::Result<T, TabletServiceError>;

/// The code a finished RPC is counted under.
fn outcome_code<T>(result: &Result<T>) -> &'static str {
    match result {
        Ok(_) => "OK",
        Err(e) => e.code().as_str(),
    }
}

impl TServerRpc {
    fn replica(&self, tablet_id: &str) -> Result<Arc<Replica>> {
        if tablet_id.is_empty() {
            return Err(TabletServiceError::InvalidArgument("the request names no tablet".into()));
        }
        self.state
            .tablets
            .replica(tablet_id)
            .ok_or_else(|| TabletServiceError::TabletNotFound { tablet_id: tablet_id.to_string() })
    }

    async fn schema(replica: &Replica) -> Result<TabletSchema> {
        replica.schema().await.ok_or_else(|| TabletServiceError::NotReady { tablet_id: replica.tablet_id.to_string() })
    }

    async fn do_write(&self, r: pb::WriteRequest) -> Result<pb::WriteResponse> {
        // The client id is remembered with the write's outcome: bounded before anything else.
        check_client_id(&r.client_id).map_err(TabletServiceError::from_write)?;
        let replica = self.replica(&r.tablet_id)?;
        replica.ensure_leader()?;
        let schema = Self::schema(&replica).await?;
        let rows = wire::write_rows(&r.ops).map_err(|e| TabletServiceError::InvalidRow(e.to_string()))?;
        let ops = encode_json_batch(&schema, &rows).map_err(TabletServiceError::from_write)?;
        let command = TabletCommand::Write {
            client_id: r.client_id,
            seq_no: r.seq_no,
            first_incomplete_seq_no: r.first_incomplete_seq_no,
            schema_version: schema.version(),
            ops,
        };
        match replica.propose(command, "write").await? {
            TabletOutcome::Written { row_errors } => Ok(pb::WriteResponse {
                row_errors: row_errors
                    .into_iter()
                    .map(|e| pb::RowError {
                        index: e.index,
                        code: e.failure.code().to_string(),
                        message: e.failure.to_string(),
                    })
                    .collect(),
                schema_version: schema.version(),
            }),
            other => Err(TabletServiceError::Internal(format!("a write was answered {other:?}"))),
        }
    }

    async fn do_scan(&self, r: pb::ScanRequest) -> Result<pb::ScanResponse> {
        let replica = self.replica(&r.tablet_id)?;
        replica.linearizable_read().await?;
        let schema = Self::schema(&replica).await?;
        let invalid = |e: &dyn std::fmt::Display| TabletServiceError::InvalidArgument(e.to_string());
        let bound = |which, json: &str| -> Result<Option<Vec<u8>>> {
            match wire::bound(which, json).map_err(|e| invalid(&e))? {
                Some(values) => {
                    Ok(Some(key_bound(&schema, &values).map_err(|e| invalid(&format!("{which} bound: {e}")))?))
                }
                None => Ok(None),
            }
        };
        let range =
            KeyRange { lower: bound("lower", &r.lower_bound_json)?, upper: bound("upper", &r.upper_bound_json)? };
        let columns = (!r.columns.is_empty()).then_some(r.columns);
        Projection::new(&schema, columns.as_deref()).map_err(|e| invalid(&e))?;
        let names = columns.clone().unwrap_or_else(|| schema.columns().iter().map(|c| c.name.clone()).collect());
        let limit = (r.limit > 0).then(|| usize::try_from(r.limit).unwrap_or(usize::MAX));
        let rows = replica.sm.scan(columns, range, limit).await.map_err(|e| match e {
            TabletStoreError::NoSchema { tablet_id } => TabletServiceError::NotReady { tablet_id },
            TabletStoreError::Scan { source, .. } => invalid(&source),
            other => TabletServiceError::Internal(other.to_string()),
        })?;
        Ok(pb::ScanResponse {
            columns: names,
            rows_json: rows.iter().map(|row| serde_json::Value::Object(row_to_json(row)).to_string()).collect(),
            schema_version: schema.version(),
        })
    }

    async fn do_alter_schema(&self, r: pb::AlterSchemaRequest) -> Result<pb::AlterSchemaResponse> {
        self.replica(&r.tablet_id)?;
        let schema = wire::schema_from_pb(r.schema).map_err(|e| TabletServiceError::InvalidSchema(e.to_string()))?;
        TabletSchema::new(schema.clone(), r.schema_version)
            .map_err(|e| TabletServiceError::InvalidSchema(e.to_string()))?;
        let replica = self
            .state
            .tablets
            .want_schema(&r.tablet_id, schema, r.schema_version)
            .await
            .map_err(|e| TabletServiceError::Internal(e.to_string()))?
            .ok_or_else(|| TabletServiceError::TabletNotFound { tablet_id: r.tablet_id.clone() })?;
        replica.ensure_leader()?;
        replica.drive_schema().await?;
        let applied = replica.schema().await.map(|s| s.version());
        match applied {
            Some(version) if version >= r.schema_version => Ok(pb::AlterSchemaResponse { schema_version: version }),
            _ => Err(replica.not_leader()),
        }
    }

    async fn do_change_config(&self, r: pb::ChangeConfigRequest) -> Result<pb::ChangeConfigResponse> {
        let replica = self.replica(&r.tablet_id)?;
        let add = (!r.add_uuid.is_empty()).then(|| (TServerId(r.add_uuid.clone()), r.add_address.clone()));
        let remove = (!r.remove_uuid.is_empty()).then(|| TServerId(r.remove_uuid.clone()));
        let (step, lag) = replica.change_config(add, remove).await?;
        Ok(pb::ChangeConfigResponse { step: step as i32, config: Some(replica.status().await.to_report()), lag })
    }

    async fn do_transfer_leadership(&self, r: pb::TransferLeadershipRequest) -> Result<pb::TransferLeadershipResponse> {
        let replica = self.replica(&r.tablet_id)?;
        replica.transfer_leadership(&TServerId(r.new_leader_uuid)).await?;
        Ok(pb::TransferLeadershipResponse {})
    }
}

#[tonic::async_trait]
impl TabletServerService for TServerRpc {
    #[tracing::instrument(skip_all, fields(tablet = %shown(&request.get_ref().tablet_id), client = %shown(&request.get_ref().client_id), seq_no = request.get_ref().seq_no))]
    async fn write(
        &self,
        request: Request<pb::WriteRequest>,
    ) -> std::result::Result<Response<pb::WriteResponse>, Status> {
        let r = request.into_inner();
        let rows = r.ops.len();
        let result = self.do_write(r).await;
        self.state.metrics.write(outcome_code(&result), rows);
        Ok(Response::new(result?))
    }

    #[tracing::instrument(skip_all, fields(tablet = %request.get_ref().tablet_id))]
    async fn scan(&self, request: Request<pb::ScanRequest>) -> std::result::Result<Response<pb::ScanResponse>, Status> {
        let result = self.do_scan(request.into_inner()).await;
        self.state.metrics.scan(outcome_code(&result), result.as_ref().map_or(0, |r| r.rows_json.len()));
        Ok(Response::new(result?))
    }

    #[tracing::instrument(skip_all, fields(tablet = %request.get_ref().tablet_id, version = request.get_ref().schema_version))]
    async fn alter_schema(
        &self,
        request: Request<pb::AlterSchemaRequest>,
    ) -> std::result::Result<Response<pb::AlterSchemaResponse>, Status> {
        Ok(Response::new(self.do_alter_schema(request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(tablet = %request.get_ref().tablet_id, add = %request.get_ref().add_uuid, remove = %request.get_ref().remove_uuid))]
    async fn change_config(
        &self,
        request: Request<pb::ChangeConfigRequest>,
    ) -> std::result::Result<Response<pb::ChangeConfigResponse>, Status> {
        Ok(Response::new(self.do_change_config(request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(tablet = %request.get_ref().tablet_id, to = %request.get_ref().new_leader_uuid))]
    async fn transfer_leadership(
        &self,
        request: Request<pb::TransferLeadershipRequest>,
    ) -> std::result::Result<Response<pb::TransferLeadershipResponse>, Status> {
        Ok(Response::new(self.do_transfer_leadership(request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all)]
    async fn list_tablets(
        &self,
        _: Request<pb::ListTabletsRequest>,
    ) -> std::result::Result<Response<pb::ListTabletsResponse>, Status> {
        let statuses = self
            .state
            .tablets
            .statuses()
            .await
            .map_err(|e| Status::from(TabletServiceError::Internal(e.to_string())))?;
        Ok(Response::new(pb::ListTabletsResponse {
            uuid: self.state.uuid.to_string(),
            cluster_id: self.state.cluster.id().unwrap_or_default(),
            replicas: statuses.iter().map(|s| s.to_listing()).collect(),
        }))
    }
}
