//! The client- and tserver-facing gRPC service of a master.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};
use tracing::instrument;

use super::ddl::CreateTableSpec;
use super::error::MasterError;
use super::heartbeat;
use super::limits;
use super::membership::MemberRef;
use super::node::MasterNode;
use super::tservers::Beat;
use crate::catalog::schema::shown;
use crate::catalog::{CatalogCommand, CatalogError};
use crate::convert::{alter_step_from_pb, schema_from_pb, table_to_pb};
use crate::ids::{TServerId, TabletId};
use crate::pb::master as pb;
use crate::pb::master::master_service_server::MasterService;

/// gRPC front of a master.
pub struct MasterRpc {
    pub node: Arc<MasterNode>,
}

impl MasterRpc {
    /// Runs a handler, records its metrics and maps its error to a status.
    async fn handle<T>(
        &self,
        method: &'static str,
        fut: impl Future<Output = Result<T, MasterError>>,
    ) -> Result<Response<T>, Status> {
        let started = Instant::now();
        let result = fut.await;
        let code = match &result {
            Ok(_) => "OK",
            Err(e) => e.code().as_str(),
        };
        self.node.metrics.observe(method, code, started);
        match result {
            Ok(value) => Ok(Response::new(value)),
            Err(e) => {
                tracing::debug!(method, error = %e, "request failed");
                Err(e.into())
            }
        }
    }

    fn table_not_found(name: &str) -> MasterError {
        CatalogError::TableNotFound(name.to_string()).into()
    }
}

impl MasterRpc {
    /// Proposes the configurations a heartbeat reported, in the background so the answer
    /// does not wait for the commit; at most one proposal per tablet server is in flight
    /// (a later heartbeat recomputes what is still missing). Large reports are split into
    /// commands within the size limits ([`limits::split_updates`]), proposed in order.
    fn propose_reported_configs(&self, ts: TServerId, command: CatalogCommand) {
        let commands = match command {
            CatalogCommand::UpdateTabletConfigs(updates) => limits::split_updates(updates),
            other => vec![other],
        };
        let node = self.node.clone();
        tokio::spawn(async move {
            let Some(_in_flight) = node.tservers.begin_update(&ts) else { return };
            for command in commands {
                tracing::debug!(ts = %ts, %command, "recording reported tablet configurations");
                if let Err(e) = node.propose(command).await {
                    tracing::warn!(ts = %ts, error = %e, "could not record reported tablet configurations");
                    return;
                }
            }
        });
    }
}

fn request_id(id: String) -> String {
    if id.is_empty() { uuid::Uuid::new_v4().to_string() } else { id }
}

#[tonic::async_trait]
impl MasterService for MasterRpc {
    #[instrument(skip_all)]
    async fn connect_to_master(
        &self,
        request: Request<pb::ConnectToMasterRequest>,
    ) -> Result<Response<pb::ConnectToMasterResponse>, Status> {
        let r = request.into_inner();
        self.handle("ConnectToMaster", async {
            let node = &self.node;
            let wait = Duration::from_millis(u64::from(r.wait_for_leader_ms));
            let m = node.raft_metrics_with_leader_after(r.newer_than_term, wait).await;
            let leader_id = m.current_leader.unwrap_or(0);
            Ok(pb::ConnectToMasterResponse {
                node_id: node.id,
                role: node.role(&m) as i32,
                term: m.current_term,
                leader_id,
                leader_address: MasterNode::member_address(&m, leader_id).unwrap_or_default(),
                members: node.members(&m),
                cluster_id: node.catalog.read().await.cluster_id().unwrap_or_default().to_string(),
            })
        })
        .await
    }

    async fn list_masters(
        &self,
        _: Request<pb::ListMastersRequest>,
    ) -> Result<Response<pb::ListMastersResponse>, Status> {
        self.handle("ListMasters", async {
            let node = &self.node;
            node.linearizable_read().await?;
            let m = node.raft_metrics();
            Ok(pb::ListMastersResponse {
                members: node.members(&m),
                term: m.current_term,
                leader_id: m.current_leader.unwrap_or(0),
                commit_index: m.local_committed.as_ref().map(|l| l.index).unwrap_or(0),
                membership_change_in_progress: MasterNode::membership_change_pending(&m)
                    || node.membership_lock.try_lock().is_err(),
            })
        })
        .await
    }

    async fn create_table(
        &self,
        request: Request<pb::CreateTableRequest>,
    ) -> Result<Response<pb::CreateTableResponse>, Status> {
        let r = request.into_inner();
        self.handle("CreateTable", async {
            let spec = CreateTableSpec {
                schema: schema_from_pb(r.schema)?,
                name: r.name,
                num_partitions: r.num_partitions,
                replication_factor: r.replication_factor,
                request_id: request_id(r.request_id),
            };
            let table = self.node.create_table(spec).await?;
            Ok(pb::CreateTableResponse { table: Some(table_to_pb(&table)) })
        })
        .await
    }

    #[instrument(skip_all, fields(table = %shown(&request.get_ref().name)))]
    async fn delete_table(
        &self,
        request: Request<pb::DeleteTableRequest>,
    ) -> Result<Response<pb::DeleteTableResponse>, Status> {
        let r = request.into_inner();
        self.handle("DeleteTable", async {
            let id = self.node.delete_table(r.name, request_id(r.request_id)).await?;
            Ok(pb::DeleteTableResponse { table_id: id.to_string() })
        })
        .await
    }

    #[instrument(skip_all, fields(table = %shown(&request.get_ref().name), steps = request.get_ref().steps.len()))]
    async fn alter_table(
        &self,
        request: Request<pb::AlterTableRequest>,
    ) -> Result<Response<pb::AlterTableResponse>, Status> {
        let r = request.into_inner();
        self.handle("AlterTable", async {
            let steps = r.steps.into_iter().map(alter_step_from_pb).collect::<Result<Vec<_>, _>>()?;
            let table = self.node.alter_table(r.name, steps, request_id(r.request_id), r.no_wait).await?;
            Ok(pb::AlterTableResponse { table: Some(table_to_pb(&table)) })
        })
        .await
    }

    async fn list_tables(&self, _: Request<pb::ListTablesRequest>) -> Result<Response<pb::ListTablesResponse>, Status> {
        self.handle("ListTables", async {
            self.node.linearizable_read().await?;
            let catalog = self.node.catalog.read().await;
            Ok(pb::ListTablesResponse { tables: catalog.tables().map(table_to_pb).collect() })
        })
        .await
    }

    async fn get_table_schema(
        &self,
        request: Request<pb::GetTableSchemaRequest>,
    ) -> Result<Response<pb::GetTableSchemaResponse>, Status> {
        let name = request.into_inner().name;
        self.handle("GetTableSchema", async {
            self.node.linearizable_read().await?;
            let catalog = self.node.catalog.read().await;
            let table = catalog.table_by_name(&name).ok_or_else(|| Self::table_not_found(&name))?;
            Ok(pb::GetTableSchemaResponse { table: Some(table_to_pb(table)) })
        })
        .await
    }

    #[instrument(skip_all, fields(table = %shown(&request.get_ref().name)))]
    async fn get_table_locations(
        &self,
        request: Request<pb::GetTableLocationsRequest>,
    ) -> Result<Response<pb::GetTableLocationsResponse>, Status> {
        let name = request.into_inner().name;
        self.handle("GetTableLocations", async {
            self.node.linearizable_read().await?;
            let catalog = self.node.catalog.read().await;
            let table = catalog.table_by_name(&name).ok_or_else(|| Self::table_not_found(&name))?;
            let tablets = catalog
                .tablets_of(&table.id)
                .into_iter()
                .map(|tablet| pb::TabletLocations {
                    tablet_id: tablet.id.to_string(),
                    partition: tablet.partition,
                    replicas: tablet
                        .replicas
                        .iter()
                        .map(|ts| {
                            let info = self.node.tservers.get(ts);
                            pb::ReplicaLocation {
                                ts_uuid: ts.to_string(),
                                rpc_address: info.as_ref().map(|i| i.rpc_address.clone()).unwrap_or_default(),
                                location: info
                                    .and_then(|i| i.location.location().map(ToString::to_string))
                                    .unwrap_or_default(),
                            }
                        })
                        .collect(),
                    leader_ts_uuid: tablet.leader.as_ref().map(|l| l.to_string()).unwrap_or_default(),
                    term: tablet.term,
                    pending_move: tablet.pending_move.as_ref().map(|m| pb::ReplicaMove {
                        from_uuid: m.from.as_ref().map(ToString::to_string).unwrap_or_default(),
                        to_uuid: m.to.to_string(),
                    }),
                })
                .collect();
            Ok(pb::GetTableLocationsResponse { table: Some(table_to_pb(table)), tablets })
        })
        .await
    }

    async fn list_tablet_servers(
        &self,
        _: Request<pb::ListTabletServersRequest>,
    ) -> Result<Response<pb::ListTabletServersResponse>, Status> {
        self.handle("ListTabletServers", async {
            self.node.linearizable_read().await?;
            let catalog = self.node.catalog.read().await;
            let registry = &self.node.tservers;
            let servers = registry
                .all()
                .into_iter()
                .map(|s| pb::TabletServerEntry {
                    num_replicas: catalog.tablets().filter(|t| t.replicas.contains(&s.id)).count() as u32,
                    live: registry.is_live(&s),
                    millis_since_heartbeat: s.last_heartbeat.elapsed().as_millis() as u64,
                    uuid: s.id.to_string(),
                    location: s.location.location().map(ToString::to_string).unwrap_or_default(),
                    registration_error: s.location.error().map(ToString::to_string).unwrap_or_default(),
                    decommissioning: catalog.is_decommissioning(&s.id),
                    rpc_address: s.rpc_address,
                })
                .collect();
            Ok(pb::ListTabletServersResponse { servers })
        })
        .await
    }

    // A debug-level span: every tablet server heartbeats every 500 ms, so an info span (its
    // fields formatted, entered and left at every poll) was per-request work at the default
    // log level; the events below name the server themselves.
    #[instrument(level = "debug", skip_all, fields(ts = %shown(&request.get_ref().ts_uuid), replicas = request.get_ref().replicas.len()))]
    async fn ts_heartbeat(
        &self,
        request: Request<pb::TsHeartbeatRequest>,
    ) -> Result<Response<pb::TsHeartbeatResponse>, Status> {
        let peer = crate::security::peer_identity(&request).cloned();
        let r = request.into_inner();
        self.handle("TSHeartbeat", async {
            // Over-long ids or addresses are refused before anything is recorded.
            limits::check_heartbeat(&r)?;
            // Over TLS, a tablet server heartbeats only as the server its certificate names.
            let live_at = match &peer {
                Some(p) if p.role == crate::security::Role::Tserver => self
                    .node
                    .tservers
                    .get(&TServerId(r.ts_uuid.clone()))
                    .filter(|info| self.node.tservers.is_live(info))
                    .map(|info| info.rpc_address),
                _ => None,
            };
            super::heartbeat_sender::check(peer.as_ref(), &r, live_at.as_deref())?;
            let node = &self.node;
            // A server of another cluster is refused before anything is recorded for it
            // (the id never changes once set, so a follower's applied catalog can tell).
            heartbeat::check_cluster(&*node.catalog.read().await, &r)?;
            let ts = TServerId(r.ts_uuid.clone());
            let reported: BTreeSet<TabletId> = r.replicas.iter().map(|rep| TabletId(rep.tablet_id.clone())).collect();
            // Liveness is recorded everywhere so a new leader can place replicas at once;
            // only the leader answers with instructions.
            let beat = Beat {
                id: ts.clone(),
                rpc_address: r.rpc_address.clone(),
                instance_id: r.instance_id.clone(),
                reported,
            };
            let (info, _registration) = node.tservers.heartbeat(beat);
            node.tservers.set_draining(&ts, r.draining);
            // One read-index round serves every heartbeat arriving within a few ms.
            if node.ensure_leader().is_err() || !node.heartbeat_reads.confirm().await {
                return Ok(pb::TsHeartbeatResponse { leader_master: false, ..Default::default() });
            }
            let location = node.ensure_location(&info).await?;
            let decision = {
                let (catalog, position) = node.catalog.read_positioned().await;
                let index = node.tablets_by_server(&catalog, position);
                let wanted = index.get(&ts).into_iter().flatten().filter_map(|id| catalog.tablet(id));
                let running = wanted.filter(|t| !t.is_deleted());
                heartbeat::decide_among(&catalog, &node.tservers.addresses(), &r, running)?
            };
            for tablet in &decision.unknown_tablets {
                if node.tservers.first_warning(tablet) {
                    tracing::warn!(%tablet, ts = %ts, "tablet server reports a tablet the catalog does not know; keeping it");
                }
            }
            if let Some(command) = decision.command {
                self.propose_reported_configs(ts, command);
            }
            let mut response = decision.response;
            if response.leader_master {
                response.master_addresses = node.member_addresses();
                response.location = location.location().map(ToString::to_string).unwrap_or_default();
            }
            Ok(response)
        })
        .await
    }

    async fn add_master(
        &self,
        request: Request<pb::AddMasterRequest>,
    ) -> Result<Response<pb::AddMasterResponse>, Status> {
        let address = request.into_inner().address;
        self.handle("AddMaster", async {
            if address.is_empty() {
                return Err(MasterError::InvalidArgument("AddMaster needs an address".into()));
            }
            let node_id = self.node.add_master(&address).await?;
            Ok(pb::AddMasterResponse { node_id })
        })
        .await
    }

    async fn remove_master(
        &self,
        request: Request<pb::RemoveMasterRequest>,
    ) -> Result<Response<pb::RemoveMasterResponse>, Status> {
        let r = request.into_inner();
        self.handle("RemoveMaster", async {
            let member = match (r.address.is_empty(), r.node_id) {
                (false, 0) => MemberRef::Address(r.address),
                (true, id) if id != 0 => MemberRef::Id(id),
                _ => return Err(MasterError::InvalidArgument("give exactly one of address or node id".into())),
            };
            let node_id = self.node.remove_master(member).await?;
            Ok(pb::RemoveMasterResponse { node_id })
        })
        .await
    }

    #[instrument(skip_all)]
    async fn set_tablet_server_state(
        &self,
        request: Request<pb::SetTabletServerStateRequest>,
    ) -> Result<Response<pb::SetTabletServerStateResponse>, Status> {
        let r = request.into_inner();
        self.handle("SetTabletServerState", async {
            let uuids = r.uuids.into_iter().map(TServerId).collect();
            self.node.set_tserver_state(uuids, r.decommissioning).await?;
            Ok(pb::SetTabletServerStateResponse {})
        })
        .await
    }

    async fn step_down(&self, request: Request<pb::StepDownRequest>) -> Result<Response<pb::StepDownResponse>, Status> {
        let target = Some(request.into_inner().target_node_id).filter(|id| *id != 0);
        self.handle("StepDown", async {
            let new_leader_id = self.node.step_down(target).await?;
            Ok(pb::StepDownResponse { new_leader_id })
        })
        .await
    }

    #[instrument(skip_all, fields(moves = request.get_ref().moves.len()))]
    async fn move_replicas(
        &self,
        request: Request<pb::MoveReplicasRequest>,
    ) -> Result<Response<pb::MoveReplicasResponse>, Status> {
        let moves = super::rebalance::moves_from_pb(&request.into_inner().moves);
        self.handle("MoveReplicas", async {
            let outcomes = self.node.move_replicas(moves.clone()).await?;
            Ok(pb::MoveReplicasResponse { outcomes: super::rebalance::outcomes_to_pb(&moves, outcomes) })
        })
        .await
    }
}
