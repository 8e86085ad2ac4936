//! Talking to the masters: the membership as the leader sees it, each master's node id,
//! and the membership RPCs. A trait, so the reconciler is independent of the transport.

use std::future::Future;

use std::collections::BTreeMap;

use crate::membership::{NodeId, RaftView};
use crate::rolling::TabletView;
use crate::tservers::{TServerObservation, TServerView};

/// The Raft group with its replication progress (`ListMasters`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftProgress {
    /// Leader and members.
    pub view: RaftView,
    /// The leader's commit index.
    pub commit_index: u64,
    /// Highest log index the leader knows each member holds.
    pub matched: BTreeMap<NodeId, u64>,
}

/// Tablet servers and every tablet with its voters and leader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TabletLocations {
    /// The tablet servers the leader master knows.
    pub servers: Vec<TServerView>,
    /// Every tablet.
    pub tablets: Vec<TabletView>,
}

/// Errors of master administration calls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterAdminError {
    /// No master could be reached.
    #[error("no master reachable at {addresses}")]
    Unreachable {
        /// The addresses tried, comma-separated.
        addresses: String,
    },
    /// The leader refused the call.
    #[error("the leader refused: {0}")]
    Refused(String),
    /// This build has no master RPC client.
    #[error("the master RPC client is not available in this build")]
    Unavailable,
}

/// Master administration, addressed through the list of all master addresses (the
/// implementation finds the leader itself).
pub trait MasterAdmin: Send + Sync + 'static {
    /// Talk to the masters at `addresses` over `security` from now on (the cluster's own
    /// CA and the operator's certificate it issued; plaintext for `tls.mode: Disabled`).
    fn use_security(&self, _addresses: &[String], _security: kudu_client::security::Security) {}

    /// The security last set for the master at `address` by [`MasterAdmin::use_security`].
    fn security_for(&self, _address: &str) -> Option<kudu_client::security::Security> {
        None
    }

    /// The membership from the leader (`ListMasters`), `None` without a leader.
    fn membership(
        &self,
        addresses: &[String],
    ) -> impl Future<Output = Result<Option<RaftView>, MasterAdminError>> + Send;

    /// The node id the master at `address` reports about itself (`ConnectToMaster`).
    fn node_id(&self, address: &str) -> impl Future<Output = Result<Option<NodeId>, MasterAdminError>> + Send;

    /// `AddMaster(address)` on the leader.
    fn add_master(
        &self,
        addresses: &[String],
        address: &str,
    ) -> impl Future<Output = Result<(), MasterAdminError>> + Send;

    /// `RemoveMaster(node_id)` on the leader.
    fn remove_master(
        &self,
        addresses: &[String],
        node_id: NodeId,
    ) -> impl Future<Output = Result<(), MasterAdminError>> + Send;

    /// Make the leader `leader` hand leadership to `successor` (`StepDown`), or to a voter
    /// of its choice when `None`.
    fn step_down(
        &self,
        addresses: &[String],
        leader: NodeId,
        successor: Option<NodeId>,
    ) -> impl Future<Output = Result<(), MasterAdminError>> + Send;

    /// The tablet servers and tablets as the leader sees them (`ListTabletServers`,
    /// `ListTables`, `GetTableLocations`).
    fn tablet_servers(
        &self,
        addresses: &[String],
    ) -> impl Future<Output = Result<TServerObservation, MasterAdminError>> + Send {
        let _ = addresses;
        async { Err(MasterAdminError::Unavailable) }
    }

    /// Marks tablet servers as decommissioning, or clears the marks
    /// (`SetTabletServerState`).
    fn set_decommissioning(
        &self,
        addresses: &[String],
        uuids: &[String],
        decommissioning: bool,
    ) -> impl Future<Output = Result<(), MasterAdminError>> + Send {
        let _ = (addresses, uuids, decommissioning);
        async { Err(MasterAdminError::Unavailable) }
    }

    /// The membership with replication progress from the leader (`ListMasters`), `None`
    /// without a leader.
    fn raft_progress(
        &self,
        addresses: &[String],
    ) -> impl Future<Output = Result<Option<RaftProgress>, MasterAdminError>> + Send {
        let _ = addresses;
        async { Err(MasterAdminError::Unavailable) }
    }

    /// The tablet servers and every tablet's voters and leader (`ListTabletServers`,
    /// `ListTables`, `GetTableLocations`).
    fn tablet_locations(
        &self,
        addresses: &[String],
    ) -> impl Future<Output = Result<TabletLocations, MasterAdminError>> + Send {
        let _ = addresses;
        async { Err(MasterAdminError::Unavailable) }
    }

    /// Ask the tablet server at `tserver_address`, leader of `tablet_id`, to hand the
    /// leadership to the voter `to_uuid` (`TransferLeadership`), over the security of the
    /// cluster whose masters are at `masters`.
    fn transfer_tablet_leader(
        &self,
        masters: &[String],
        tserver_address: &str,
        tablet_id: &str,
        to_uuid: &str,
    ) -> impl Future<Output = Result<(), MasterAdminError>> + Send {
        let _ = (masters, tserver_address, tablet_id, to_uuid);
        async { Err(MasterAdminError::Unavailable) }
    }
}

/// A [`MasterAdmin`] for builds without the master RPC client: every call fails with
/// [`MasterAdminError::Unavailable`], so membership waits for a leader forever while the
/// Kubernetes objects are still reconciled.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMasterAdmin;

impl MasterAdmin for NoMasterAdmin {
    async fn membership(&self, _: &[String]) -> Result<Option<RaftView>, MasterAdminError> {
        Err(MasterAdminError::Unavailable)
    }

    async fn node_id(&self, _: &str) -> Result<Option<NodeId>, MasterAdminError> {
        Err(MasterAdminError::Unavailable)
    }

    async fn add_master(&self, _: &[String], _: &str) -> Result<(), MasterAdminError> {
        Err(MasterAdminError::Unavailable)
    }

    async fn remove_master(&self, _: &[String], _: NodeId) -> Result<(), MasterAdminError> {
        Err(MasterAdminError::Unavailable)
    }

    async fn step_down(&self, _: &[String], _: NodeId, _: Option<NodeId>) -> Result<(), MasterAdminError> {
        Err(MasterAdminError::Unavailable)
    }
}
