//! [`MasterAdmin`] over the one Kudu client, [`kudu_client::client::MasterClient`]: leader
//! discovery (all masters probed at once, NOT_THE_LEADER hints followed), client-side
//! deadlines on every RPC and the shared error codes. `ConnectToMaster` on each master for
//! its own node id, `ListMasters`, `AddMaster`, `RemoveMaster` and `StepDown` on the
//! leader. One client per set of master addresses (a cluster), all sharing one channel
//! pool, so channels and leader caches are reused across reconciles.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kudu_client::client::{ClientError, ClientOptions, MasterClient};
use kudu_client::pb::master as pb;
use kudu_client::rpc::ChannelPool;
use kudu_client::security::Security;

use super::masters::{MasterAdmin, MasterAdminError, RaftProgress, TabletLocations};
use crate::membership::{NodeId, RaftMember, RaftView};
use crate::rolling::TabletView as RollingTablet;
use crate::tservers::{TServerObservation, TServerView, TabletView};

/// Timeouts of the master RPCs.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Connecting to a master.
    pub connect: Duration,
    /// Reads (`ConnectToMaster`, `ListMasters`), leader discovery included.
    pub read: Duration,
    /// Membership changes, which wait for a learner to catch up (and for a leader).
    pub change: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(2), read: Duration::from_secs(5), change: Duration::from_secs(90) }
    }
}

/// Clients of one set of master addresses: reads and changes differ only in deadlines.
struct Clients {
    reads: MasterClient,
    changes: MasterClient,
}

/// More address sets than this and the cache starts over (the channels stay pooled).
const MAX_CACHED_CLIENTS: usize = 64;

/// The master administration client of the operator.
pub struct KuduMasterAdmin {
    timeouts: Timeouts,
    pool: ChannelPool,
    clients: Mutex<HashMap<Vec<String>, Arc<Clients>>>,
}

impl Default for KuduMasterAdmin {
    fn default() -> Self {
        Self::new(Timeouts::default())
    }
}

impl std::fmt::Debug for KuduMasterAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KuduMasterAdmin").field("timeouts", &self.timeouts).finish_non_exhaustive()
    }
}

impl KuduMasterAdmin {
    /// A client with the given timeouts, in plaintext (the clusters the operator deploys
    /// run with `--insecure` until it manages their certificates).
    pub fn new(timeouts: Timeouts) -> Self {
        Self::with_security(timeouts, Security::Insecure)
    }

    /// A client with the given timeouts over `security` (mutual TLS needs an `admin`
    /// certificate: membership changes are refused to other roles).
    pub fn with_security(timeouts: Timeouts, security: Security) -> Self {
        let pool = ChannelPool::with_connect_timeout(timeouts.connect).with_security(security);
        Self { timeouts, pool, clients: Mutex::default() }
    }

    /// The clients of the masters at `addresses`.
    fn clients(&self, addresses: &[String]) -> Result<Arc<Clients>, MasterAdminError> {
        let mut key = addresses.to_vec();
        key.sort();
        key.dedup();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = clients.get(&key) {
            return Ok(found.clone());
        }
        let Timeouts { read, change, .. } = self.timeouts;
        let client = |timeout| {
            MasterClient::with_pool(
                key.clone(),
                ClientOptions { timeout, rpc_timeout: read, ..Default::default() },
                self.pool.clone(),
            )
            .map_err(|e| MasterAdminError::Refused(e.to_string()))
        };
        let made = Arc::new(Clients { reads: client(read)?, changes: client(change)? });
        if clients.len() >= MAX_CACHED_CLIENTS {
            clients.clear();
        }
        clients.insert(key, made.clone());
        Ok(made)
    }
}

/// A failed call as the reconciler sees it: no master reachable, or a refusal (with the
/// Kudu error code, e.g. `NOT_THE_LEADER: ...`).
fn admin_error(error: ClientError, addresses: &[String]) -> MasterAdminError {
    match error {
        ClientError::NoLeader { reached: false, .. } => {
            MasterAdminError::Unreachable { addresses: addresses.join(",") }
        }
        ClientError::Master { code, message } | ClientError::Refused { code, message } => {
            MasterAdminError::Refused(format!("{code}: {message}"))
        }
        other => MasterAdminError::Refused(other.to_string()),
    }
}

/// The [`RaftView`] of a `ListMasters` answer.
pub fn raft_view(response: &pb::ListMastersResponse) -> RaftView {
    RaftView {
        leader: (response.leader_id != 0).then_some(NodeId(response.leader_id)),
        members: response
            .members
            .iter()
            .map(|m| RaftMember {
                node_id: NodeId(m.node_id),
                address: m.address.clone(),
                voter: m.voter,
                live: m.live,
            })
            .collect(),
        change_in_flight: response.membership_change_in_progress,
    }
}

impl MasterAdmin for KuduMasterAdmin {
    async fn membership(&self, addresses: &[String]) -> Result<Option<RaftView>, MasterAdminError> {
        match self.clients(addresses)?.reads.list_masters().await {
            Ok(response) => Ok(Some(raft_view(&response))),
            Err(error @ ClientError::NoLeader { reached: false, .. }) => Err(admin_error(error, addresses)),
            // Masters answered but none leads (or leadership moved under the call): no
            // stable leader right now.
            Err(error) => {
                tracing::debug!(%error, "ListMasters failed");
                Ok(None)
            }
        }
    }

    async fn node_id(&self, address: &str) -> Result<Option<NodeId>, MasterAdminError> {
        let clients = self.clients(&[address.to_owned()])?;
        match clients.reads.connect_to_within(address, self.timeouts.read).await {
            Ok(response) => Ok((response.node_id != 0).then_some(NodeId(response.node_id))),
            Err(status) => {
                tracing::debug!(%address, %status, "ConnectToMaster failed");
                Ok(None)
            }
        }
    }

    async fn add_master(&self, addresses: &[String], address: &str) -> Result<(), MasterAdminError> {
        self.clients(addresses)?.changes.add_master(address).await.map(|_| ()).map_err(|e| admin_error(e, addresses))
    }

    async fn remove_master(&self, addresses: &[String], node_id: NodeId) -> Result<(), MasterAdminError> {
        self.clients(addresses)?
            .changes
            .remove_master(None, Some(node_id.0))
            .await
            .map(|_| ())
            .map_err(|e| admin_error(e, addresses))
    }

    async fn step_down(
        &self,
        addresses: &[String],
        leader: NodeId,
        successor: Option<NodeId>,
    ) -> Result<(), MasterAdminError> {
        let clients = self.clients(addresses)?;
        let (address, current) = clients.reads.leader().await.map_err(|e| admin_error(e, addresses))?;
        if current.node_id != leader.0 {
            // Leadership already moved; the next observation decides again.
            return Ok(());
        }
        clients
            .changes
            .step_down_at(&address, successor.map(|id| id.0))
            .await
            .map(|_| ())
            .map_err(|e| admin_error(e, addresses))
    }

    async fn tablet_servers(&self, addresses: &[String]) -> Result<TServerObservation, MasterAdminError> {
        let reads = &self.clients(addresses)?.reads;
        let servers = reads.list_tablet_servers().await.map_err(|e| admin_error(e, addresses))?;
        let tables = reads.list_tables().await.map_err(|e| admin_error(e, addresses))?;
        let mut tablets = Vec::new();
        for table in tables {
            match reads.get_table_locations(&table.name).await {
                Ok(locations) => tablets.extend(tablet_views(locations)),
                // Deleted since it was listed.
                Err(ClientError::Master { code, .. }) if code == "TABLE_NOT_FOUND" => {}
                Err(e) => return Err(admin_error(e, addresses)),
            }
        }
        Ok(TServerObservation { servers: servers.into_iter().map(tserver_view).collect(), tablets })
    }

    async fn set_decommissioning(
        &self,
        addresses: &[String],
        uuids: &[String],
        decommissioning: bool,
    ) -> Result<(), MasterAdminError> {
        self.clients(addresses)?
            .reads
            .set_tablet_server_state(uuids, decommissioning)
            .await
            .map_err(|e| admin_error(e, addresses))
    }

    async fn raft_progress(&self, addresses: &[String]) -> Result<Option<RaftProgress>, MasterAdminError> {
        match self.clients(addresses)?.reads.list_masters().await {
            Ok(response) => Ok(Some(raft_progress(&response))),
            Err(error @ ClientError::NoLeader { reached: false, .. }) => Err(admin_error(error, addresses)),
            Err(error) => {
                tracing::debug!(%error, "ListMasters failed");
                Ok(None)
            }
        }
    }

    async fn tablet_locations(&self, addresses: &[String]) -> Result<TabletLocations, MasterAdminError> {
        let reads = &self.clients(addresses)?.reads;
        let servers = reads.list_tablet_servers().await.map_err(|e| admin_error(e, addresses))?;
        let tables = reads.list_tables().await.map_err(|e| admin_error(e, addresses))?;
        let mut tablets = Vec::new();
        for table in tables {
            match reads.get_table_locations(&table.name).await {
                Ok(locations) => tablets.extend(locations.tablets.into_iter().map(|t| RollingTablet {
                    tablet_id: t.tablet_id,
                    voters: t.replicas.into_iter().map(|r| r.ts_uuid).collect(),
                    leader: Some(t.leader_ts_uuid).filter(|l| !l.is_empty()),
                })),
                Err(ClientError::Master { code, .. }) if code == "TABLE_NOT_FOUND" => {}
                Err(e) => return Err(admin_error(e, addresses)),
            }
        }
        Ok(TabletLocations { servers: servers.into_iter().map(tserver_view).collect(), tablets })
    }

    async fn transfer_tablet_leader(
        &self,
        tserver_address: &str,
        tablet_id: &str,
        to_uuid: &str,
    ) -> Result<(), MasterAdminError> {
        use kudu_client::pb::tserver::TransferLeadershipRequest;
        use kudu_client::pb::tserver::tablet_server_service_client::TabletServerServiceClient;
        let channel = self
            .pool
            .get(tserver_address)
            .map_err(|e| MasterAdminError::Refused(format!("bad tablet server address {tserver_address}: {e}")))?;
        let mut service = TabletServerServiceClient::new(channel);
        let timeout = self.timeouts.read;
        let mut request = tonic::Request::new(TransferLeadershipRequest {
            tablet_id: tablet_id.to_owned(),
            new_leader_uuid: to_uuid.to_owned(),
        });
        request.set_timeout(timeout);
        kudu_client::rpc::with_deadline(timeout, service.transfer_leadership(request))
            .await
            .map(drop)
            .map_err(|status| MasterAdminError::Refused(format!("{tserver_address}: {}", status.message())))
    }
}

/// The [`RaftProgress`] of a `ListMasters` answer.
pub fn raft_progress(response: &pb::ListMastersResponse) -> RaftProgress {
    RaftProgress {
        view: raft_view(response),
        commit_index: response.commit_index,
        matched: response.members.iter().map(|m| (NodeId(m.node_id), m.matched_index)).collect(),
    }
}

/// The [`TServerView`] of a `ListTabletServers` entry.
fn tserver_view(entry: pb::TabletServerEntry) -> TServerView {
    TServerView {
        uuid: entry.uuid,
        rpc_address: entry.rpc_address,
        location: entry.location,
        live: entry.live,
        replicas: entry.num_replicas,
        decommissioning: entry.decommissioning,
    }
}

/// The [`TabletView`]s of a `GetTableLocations` answer.
fn tablet_views(locations: pb::GetTableLocationsResponse) -> Vec<TabletView> {
    let replication_factor = locations.table.as_ref().map_or(0, |t| t.replication_factor);
    locations
        .tablets
        .into_iter()
        .map(|t| TabletView {
            replication_factor,
            voters: t.replicas.into_iter().map(|r| r.ts_uuid).collect(),
            leaving: t.pending_move.map(|m| m.from_uuid).filter(|from| !from.is_empty()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_masters_maps_to_a_raft_view() {
        let response = pb::ListMastersResponse {
            members: vec![
                pb::MasterMember {
                    node_id: 7,
                    address: "m0:7051".to_owned(),
                    role: pb::Role::Leader as i32,
                    voter: true,
                    matched_index: 10,
                    live: true,
                },
                pb::MasterMember {
                    node_id: 9,
                    address: "m1:7051".to_owned(),
                    role: pb::Role::Learner as i32,
                    voter: false,
                    matched_index: 3,
                    live: false,
                },
            ],
            term: 2,
            leader_id: 7,
            commit_index: 10,
            membership_change_in_progress: true,
        };
        let view = raft_view(&response);
        assert_eq!(view.leader, Some(NodeId(7)));
        assert!(view.change_in_flight);
        assert_eq!(
            view.members,
            vec![
                RaftMember { node_id: NodeId(7), address: "m0:7051".to_owned(), voter: true, live: true },
                RaftMember { node_id: NodeId(9), address: "m1:7051".to_owned(), voter: false, live: false },
            ]
        );
        let leaderless = pb::ListMastersResponse { leader_id: 0, ..response };
        assert_eq!(raft_view(&leaderless).leader, None);
    }

    #[tokio::test]
    async fn unreachable_masters_are_an_error_not_a_leaderless_group() {
        let admin = KuduMasterAdmin::new(Timeouts {
            connect: Duration::from_millis(200),
            read: Duration::from_millis(200),
            change: Duration::from_millis(200),
        });
        // Port 1 on loopback refuses connections.
        let result = admin.membership(&["127.0.0.1:1".to_owned()]).await;
        assert!(matches!(result, Err(MasterAdminError::Unreachable { .. })), "{result:?}");
        assert_eq!(admin.node_id("127.0.0.1:1").await, Ok(None));
    }
}
