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

/// The channels of the clusters whose security was set ([`MasterAdmin::use_security`]).
struct ClusterPool {
    /// Tells this pool's clients from those of the pool it replaced.
    tag: u64,
    security: Security,
    pool: ChannelPool,
}

/// The master administration client of the operator.
pub struct KuduMasterAdmin {
    timeouts: Timeouts,
    /// The pool of masters whose security was never set (tag 0).
    pool: ChannelPool,
    /// Per master address, the pool over its cluster's security.
    pools: Mutex<HashMap<String, Arc<ClusterPool>>>,
    next_tag: std::sync::atomic::AtomicU64,
    clients: Mutex<HashMap<ClientsKey, Arc<Clients>>>,
}

/// Cached clients by the tag of their pool and their sorted master addresses.
type ClientsKey = (u64, Vec<String>);

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
    /// A client with the given timeouts, in plaintext for masters whose security was not
    /// set ([`MasterAdmin::use_security`] sets each cluster's).
    pub fn new(timeouts: Timeouts) -> Self {
        Self::with_security(timeouts, Security::Insecure)
    }

    /// A client with the given timeouts over `security` (mutual TLS needs an `admin`
    /// certificate: membership changes are refused to other roles).
    pub fn with_security(timeouts: Timeouts, security: Security) -> Self {
        let pool = ChannelPool::with_connect_timeout(timeouts.connect).with_security(security);
        Self {
            timeouts,
            pool,
            pools: Mutex::default(),
            next_tag: std::sync::atomic::AtomicU64::new(1),
            clients: Mutex::default(),
        }
    }

    /// The pool for the masters at `addresses` (that of the first one's cluster) and its tag.
    fn pool_for(&self, addresses: &[String]) -> (u64, ChannelPool) {
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        match addresses.first().and_then(|a| pools.get(a)) {
            Some(cluster) => (cluster.tag, cluster.pool.clone()),
            None => (0, self.pool.clone()),
        }
    }

    /// The clients of the masters at `addresses`.
    fn clients(&self, addresses: &[String]) -> Result<Arc<Clients>, MasterAdminError> {
        let mut key = addresses.to_vec();
        key.sort();
        key.dedup();
        let (tag, pool) = self.pool_for(&key);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = clients.get(&(tag, key.clone())) {
            return Ok(found.clone());
        }
        let Timeouts { read, change, .. } = self.timeouts;
        let client = |timeout| {
            MasterClient::with_pool(
                key.clone(),
                ClientOptions { timeout, rpc_timeout: read, ..Default::default() },
                pool.clone(),
            )
            .map_err(|e| MasterAdminError::Refused(e.to_string()))
        };
        let made = Arc::new(Clients { reads: client(read)?, changes: client(change)? });
        if clients.len() >= MAX_CACHED_CLIENTS {
            clients.clear();
        }
        clients.insert((tag, key), made.clone());
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

/// Whether two securities present the same certificate and trust the same CA.
fn same_security(a: &Security, b: &Security) -> bool {
    a.is_tls() == b.is_tls() && a.cert_pem() == b.cert_pem() && a.ca_pem() == b.ca_pem()
}

impl MasterAdmin for KuduMasterAdmin {
    fn use_security(&self, addresses: &[String], security: Security) {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if addresses.iter().all(|a| pools.get(a).is_some_and(|p| same_security(&p.security, &security))) {
            return;
        }
        let tag = self.next_tag.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pool = ChannelPool::with_connect_timeout(self.timeouts.connect).with_security(security.clone());
        let cluster = Arc::new(ClusterPool { tag, security, pool });
        for address in addresses {
            pools.insert(address.clone(), cluster.clone());
        }
        drop(pools);
        // Clients of the replaced pools are not used again.
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, key), _| !key.iter().any(|a| addresses.contains(a)));
    }

    fn security_for(&self, address: &str) -> Option<Security> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner()).get(address).map(|p| p.security.clone())
    }

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
        masters: &[String],
        tserver_address: &str,
        tablet_id: &str,
        to_uuid: &str,
    ) -> Result<(), MasterAdminError> {
        use kudu_client::pb::tserver::TransferLeadershipRequest;
        use kudu_client::pb::tserver::tablet_server_service_client::TabletServerServiceClient;
        // The tablet servers share their cluster's security (its certificates).
        let (_, pool) = self.pool_for(masters);
        let channel = pool
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

    fn tls(ca: &kudu_client::security::issue::Pair) -> Security {
        let cert =
            kudu_client::security::issue::create_cert(ca, kudu_client::security::Role::Admin, &["op".to_owned()], 1)
                .unwrap();
        Security::from_pem(kudu_client::security::PemFiles {
            ca: ca.cert_pem.clone().into_bytes(),
            cert: cert.cert_pem.into_bytes(),
            key: cert.key_pem.into_bytes(),
        })
        .unwrap()
    }

    #[test]
    fn each_cluster_gets_its_own_security_and_a_renewal_starts_its_clients_over() {
        let admin = KuduMasterAdmin::new(Timeouts::default());
        let a = ["a-0:7051".to_owned(), "a-1:7051".to_owned()];
        let b = ["b-0:7051".to_owned()];
        assert!(admin.security_for(&a[0]).is_none());
        let (ca_a, ca_b) = (
            kudu_client::security::issue::create_ca("a", 1).unwrap(),
            kudu_client::security::issue::create_ca("b", 1).unwrap(),
        );
        let first = tls(&ca_a);
        admin.use_security(&a, first.clone());
        admin.use_security(&b, tls(&ca_b));
        let ca_of = |address: &str| admin.security_for(address).and_then(|s| s.ca_pem());
        assert_eq!(ca_of(&a[1]), Some(ca_a.cert_pem.clone().into_bytes()));
        assert_eq!(ca_of(&b[0]), Some(ca_b.cert_pem.clone().into_bytes()));
        assert!(admin.security_for("elsewhere:7051").is_none());

        // Clients are cached per pool: the same security keeps them, a renewed one does not.
        let before = admin.clients(&a).unwrap();
        admin.use_security(&a, first);
        assert!(Arc::ptr_eq(&before, &admin.clients(&a).unwrap()));
        let renewed = tls(&ca_a);
        admin.use_security(&a, renewed.clone());
        assert!(!Arc::ptr_eq(&before, &admin.clients(&a).unwrap()));
        assert_eq!(admin.security_for(&a[0]).and_then(|s| s.cert_pem()), renewed.cert_pem());
        // Plaintext (tls.mode Disabled) is a security like any other.
        admin.use_security(&b, Security::Insecure);
        assert!(!admin.security_for(&b[0]).unwrap().is_tls());
    }

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
