use serde::{Deserialize, Serialize};

use super::error::CatalogError;
use super::model::{Table, Tablet, TabletConfigUpdate, TabletMove};
use super::schema::Column;
use crate::ids::{TServerId, TableId};

/// One catalog mutation: the payload of one Raft log entry. Everything that is not
/// deterministic (ids, placement) is decided by the leader before proposing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CatalogCommand {
    CreateTable {
        request_id: String,
        table: Table,
        tablets: Vec<Tablet>,
    },
    DeleteTable {
        request_id: String,
        name: String,
    },
    AlterTable {
        request_id: String,
        name: String,
        steps: Vec<AlterStep>,
    },
    /// Tablets' Raft configurations as reported in one heartbeat. Each update applies only
    /// if it supersedes what is recorded ([`TabletConfigUpdate::supersedes`]), so a stale
    /// report never overwrites a newer one, whatever the log order.
    UpdateTabletConfigs(Vec<TabletConfigUpdate>),
    /// Replica moves chosen by the leader (re-replication). Each starts only if its tablet
    /// runs, has no move in progress, lists `from` (when given) and not `to`; others are
    /// ignored. A move ends when a reported configuration shows its outcome
    /// ([`crate::catalog::ReplicaMove::is_complete_in`]) or when it is cancelled.
    StartReplicaMoves(Vec<TabletMove>),
    /// Gives up moves in progress (their destination died); each applies only if it is
    /// still its tablet's move.
    CancelReplicaMoves(Vec<TabletMove>),
    /// The cluster's id, chosen by the leader. Applies only while the catalog has none:
    /// the first one committed wins.
    SetClusterId {
        cluster_id: String,
    },
    /// Marks a tablet server as decommissioning (its replicas are moved off it and no new
    /// replica is placed on it) or clears the mark. Always applies; idempotent.
    SetTServerState {
        uuid: TServerId,
        decommissioning: bool,
    },
}

impl CatalogCommand {
    /// The client's idempotency key, if the command carries one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            CatalogCommand::CreateTable { request_id, .. }
            | CatalogCommand::DeleteTable { request_id, .. }
            | CatalogCommand::AlterTable { request_id, .. } => Some(request_id.as_str()).filter(|id| !id.is_empty()),
            CatalogCommand::UpdateTabletConfigs(_)
            | CatalogCommand::StartReplicaMoves(_)
            | CatalogCommand::CancelReplicaMoves(_)
            | CatalogCommand::SetClusterId { .. }
            | CatalogCommand::SetTServerState { .. } => None,
        }
    }
}

/// One step of an AlterTable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlterStep {
    RenameTable(String),
    AddColumn(Column),
    DropColumn(String),
    RenameColumn { old_name: String, new_name: String },
}

/// Successful outcome of a command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CatalogOutcome {
    /// The table as it is after the command.
    Table(Table),
    Deleted(TableId),
    /// The cluster id in effect after the command (the first one set).
    ClusterId(String),
    Done,
}

/// What applying a command returned; replicated, so it is the same on every master.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogResponse(pub Result<CatalogOutcome, CatalogError>);

impl Default for CatalogResponse {
    fn default() -> Self {
        CatalogResponse(Ok(CatalogOutcome::Done))
    }
}

impl std::fmt::Display for CatalogCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatalogCommand::CreateTable { table, tablets, .. } => {
                write!(f, "CreateTable({}, {} tablets)", table.name, tablets.len())
            }
            CatalogCommand::DeleteTable { name, .. } => write!(f, "DeleteTable({name})"),
            CatalogCommand::AlterTable { name, steps, .. } => write!(f, "AlterTable({name}, {} steps)", steps.len()),
            CatalogCommand::UpdateTabletConfigs(updates) => write!(f, "UpdateTabletConfigs({} tablets)", updates.len()),
            CatalogCommand::StartReplicaMoves(moves) => write!(f, "StartReplicaMoves({} tablets)", moves.len()),
            CatalogCommand::CancelReplicaMoves(moves) => write!(f, "CancelReplicaMoves({} tablets)", moves.len()),
            CatalogCommand::SetClusterId { cluster_id } => write!(f, "SetClusterId({cluster_id})"),
            CatalogCommand::SetTServerState { uuid, decommissioning } => {
                write!(f, "SetTServerState({uuid}, decommissioning: {decommissioning})")
            }
        }
    }
}
