//! Errors of master operations and their one mapping to gRPC statuses.

use super::heartbeat::HeartbeatError;
use super::limits::LimitError;
use super::location_mapping::MappingError;
use crate::catalog::CatalogError;
use crate::error_code::ErrorCode;
use crate::ids::MasterId;
use crate::placement::PlacementError;
use crate::rpc;

/// Why a master refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("this master is not the leader{}", leader_hint(.leader_addr))]
    NotTheLeader { leader_id: Option<MasterId>, leader_addr: Option<String> },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// An input over a documented limit (see [`super::limits`]); nothing was proposed.
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error("a membership change is already in progress: {0}")]
    MembershipChangeInProgress(String),
    #[error("refused: {0}")]
    WouldLoseQuorum(String),
    #[error("{0}")]
    UnknownMember(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("cannot reach master {address}: {message}")]
    PeerUnreachable { address: String, message: String },
    #[error(transparent)]
    Heartbeat(#[from] HeartbeatError),
    #[error("tablet server registration failed: {0}")]
    LocationMapping(#[from] MappingError),
    /// Decommissioning would leave too few tablet servers for the tables' replication.
    #[error("refused: {0}")]
    TooFewTabletServers(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The caller's certificate does not allow this request (see `security::policy`).
    #[error("not authorized: {0}")]
    NotAuthorized(String),
}

fn leader_hint(addr: &Option<String>) -> String {
    match addr {
        Some(addr) => format!(" (leader: {addr})"),
        None => " (no leader known)".to_string(),
    }
}

impl MasterError {
    /// Stable machine-readable code (it also decides the gRPC status).
    pub fn code(&self) -> ErrorCode {
        match self {
            MasterError::NotTheLeader { .. } => ErrorCode::NotTheLeader,
            MasterError::Catalog(e) => e.code(),
            MasterError::Limit(e) => e.code(),
            MasterError::Placement(
                PlacementError::NotEnoughTabletServers { .. } | PlacementError::NoEligibleServer { .. },
            ) => ErrorCode::NotEnoughTabletServers,
            MasterError::MembershipChangeInProgress(_) => ErrorCode::MembershipChangeInProgress,
            MasterError::WouldLoseQuorum(_) => ErrorCode::WouldLoseQuorum,
            MasterError::UnknownMember(_) => ErrorCode::UnknownMember,
            MasterError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            MasterError::PeerUnreachable { .. } => ErrorCode::PeerUnreachable,
            MasterError::Heartbeat(HeartbeatError::WrongCluster { .. }) => ErrorCode::WrongCluster,
            MasterError::LocationMapping(_) => ErrorCode::LocationMappingFailed,
            MasterError::TooFewTabletServers(_) => ErrorCode::NotEnoughTabletServers,
            MasterError::Timeout(_) => ErrorCode::TimedOut,
            MasterError::Internal(_) => ErrorCode::Internal,
            MasterError::NotAuthorized(_) => ErrorCode::NotAuthorized,
        }
    }
}

impl From<MasterError> for tonic::Status {
    fn from(err: MasterError) -> Self {
        let mut status = rpc::status(err.code(), err.to_string());
        if let MasterError::NotTheLeader { leader_id, leader_addr } = &err {
            let meta = status.metadata_mut();
            if let Some(value) = leader_id.and_then(|id| id.to_string().parse().ok()) {
                meta.insert(rpc::LEADER_ID_KEY, value);
            }
            if let Some(value) = leader_addr.as_ref().and_then(|a| a.parse().ok()) {
                meta.insert(rpc::LEADER_ADDR_KEY, value);
            }
        }
        status
    }
}
