use serde::{Deserialize, Serialize};

use super::error::CatalogError;
use super::model::{Table, Tablet};
use super::schema::Column;
use crate::ids::{TServerId, TableId, TabletId};

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
    /// A tablet's Raft configuration as reported by a tablet server.
    UpdateTabletConfig {
        tablet_id: TabletId,
        replicas: Vec<TServerId>,
        leader: Option<TServerId>,
    },
}

impl CatalogCommand {
    /// The client's idempotency key, if the command carries one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            CatalogCommand::CreateTable { request_id, .. }
            | CatalogCommand::DeleteTable { request_id, .. }
            | CatalogCommand::AlterTable { request_id, .. } => Some(request_id.as_str()).filter(|id| !id.is_empty()),
            CatalogCommand::UpdateTabletConfig { .. } => None,
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
            CatalogCommand::UpdateTabletConfig { tablet_id, .. } => write!(f, "UpdateTabletConfig({tablet_id})"),
        }
    }
}
