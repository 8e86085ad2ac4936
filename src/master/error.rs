//! Errors of master operations and their one mapping to gRPC statuses.

use tonic::Code;

use crate::catalog::CatalogError;
use crate::ids::MasterId;
use crate::placement::PlacementError;
use crate::rpc::{self, status_with_code};

/// Why a master refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("this master is not the leader{}", leader_hint(.leader_addr))]
    NotTheLeader { leader_id: Option<MasterId>, leader_addr: Option<String> },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Placement(#[from] PlacementError),
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
    #[error("tablet server registration failed: {0}")]
    LocationMapping(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("internal error: {0}")]
    Internal(String),
}

fn leader_hint(addr: &Option<String>) -> String {
    match addr {
        Some(addr) => format!(" (leader: {addr})"),
        None => " (no leader known)".to_string(),
    }
}

impl MasterError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            MasterError::NotTheLeader { .. } => rpc::NOT_THE_LEADER,
            MasterError::Catalog(e) => e.code(),
            MasterError::Placement(PlacementError::NotEnoughTabletServers { .. }) => "NOT_ENOUGH_TABLET_SERVERS",
            MasterError::MembershipChangeInProgress(_) => "MEMBERSHIP_CHANGE_IN_PROGRESS",
            MasterError::WouldLoseQuorum(_) => "WOULD_LOSE_QUORUM",
            MasterError::UnknownMember(_) => "UNKNOWN_MEMBER",
            MasterError::InvalidArgument(_) => "INVALID_ARGUMENT",
            MasterError::PeerUnreachable { .. } => "PEER_UNREACHABLE",
            MasterError::LocationMapping(_) => "LOCATION_MAPPING_FAILED",
            MasterError::Timeout(_) => "TIMED_OUT",
            MasterError::Internal(_) => "INTERNAL",
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            MasterError::NotTheLeader { .. } => Code::FailedPrecondition,
            MasterError::Catalog(CatalogError::TableNotFound(_)) | MasterError::UnknownMember(_) => Code::NotFound,
            MasterError::Catalog(CatalogError::TableAlreadyExists(_)) => Code::AlreadyExists,
            MasterError::Catalog(_) | MasterError::InvalidArgument(_) => Code::InvalidArgument,
            MasterError::Placement(_) | MasterError::WouldLoseQuorum(_) => Code::FailedPrecondition,
            MasterError::MembershipChangeInProgress(_) => Code::Aborted,
            MasterError::PeerUnreachable { .. } | MasterError::LocationMapping(_) => Code::FailedPrecondition,
            MasterError::Timeout(_) => Code::DeadlineExceeded,
            MasterError::Internal(_) => Code::Internal,
        }
    }
}

impl From<MasterError> for tonic::Status {
    fn from(err: MasterError) -> Self {
        let mut status = status_with_code(err.grpc_code(), err.code(), err.to_string());
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
