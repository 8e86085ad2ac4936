//! Input limits of a master, checked on the leader before anything enters the Raft log.
//!
//! Every catalog command passes [`check_command`] in `MasterNode::propose`: names, request
//! ids, step, tablet and replica counts, then the encoded size against
//! [`MAX_COMMAND_BYTES`]. The per-field limits keep every valid command far below that cap;
//! the cap itself is what guarantees replication: the Raft message limit
//! ([`crate::raft::MAX_MESSAGE`]) holds a full batch of [`MAX_PAYLOAD_ENTRIES`] entries of
//! the largest size (checked at compile time below), so a committed entry can always be
//! sent to a follower. Tablet server heartbeats pass [`check_heartbeat`] before anything is
//! recorded; the configurations they report are proposed in commands of at most
//! [`UPDATE_BATCH_BYTES`] ([`split_updates`]).

use super::ddl::{MAX_PARTITIONS, MAX_REPLICATION_FACTOR};
use crate::catalog::schema::{shown, validate_name};
use crate::catalog::{AlterStep, CatalogCommand, CatalogError, TabletConfigUpdate};
use crate::error_code::ErrorCode;
use crate::pb::master as pb;
use crate::raft::rocks::encoded_len as encoded_size;

/// Largest catalog command accepted, in bytes of its JSON encoding (what the Raft log
/// stores and replicates). The widest valid command (a 1024-tablet table of 300 columns
/// with 256-character names and the longest ids, replicated 7 times) encodes to 1.3 MB;
/// the widest AlterTable to 0.6 MB.
pub const MAX_COMMAND_BYTES: usize = 4 << 20;

/// Most log entries one AppendEntries carries among masters (openraft's
/// `max_payload_entries`): with [`MAX_COMMAND_BYTES`] entries, a full batch stays under the
/// Raft message limit.
pub const MAX_PAYLOAD_ENTRIES: u64 = 8;

/// Room for the AppendEntries request around its entries (vote, log ids, framing) and for
/// each entry's log id: far more than they take.
const APPEND_OVERHEAD_BYTES: usize = 1 << 20;

const _: () = assert!(
    MAX_COMMAND_BYTES * MAX_PAYLOAD_ENTRIES as usize + APPEND_OVERHEAD_BYTES <= crate::raft::MAX_MESSAGE,
    "a full batch of the largest catalog commands must fit in one Raft message"
);

/// Longest client request id accepted (clients send UUIDs: 36 characters).
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Most steps one AlterTable may have.
pub const MAX_ALTER_STEPS: usize = 1_000;

/// Longest tablet server uuid, tablet id or cluster id accepted (they are 32 hex digits).
pub const MAX_ID_LEN: usize = 128;

/// Longest tablet server RPC address accepted (`host:port`; DNS names have at most 253).
pub const MAX_ADDRESS_LEN: usize = 300;

/// Most voters plus learners a reported replica may name (a tablet has at most
/// [`MAX_REPLICATION_FACTOR`] voters, one more during a 3-4-3 change, and few learners).
pub const MAX_REPORTED_PEERS: usize = 4 * MAX_REPLICATION_FACTOR as usize;

/// Most tablet configuration updates in one command; reports of more are split.
pub const MAX_UPDATES_PER_COMMAND: usize = 10_000;

/// Largest encoded size of the updates [`split_updates`] puts in one command: a quarter of
/// [`MAX_COMMAND_BYTES`], so each command passes [`check_command`] whatever its ids.
pub const UPDATE_BATCH_BYTES: usize = MAX_COMMAND_BYTES / 4;

/// Largest client or tablet server request a master decodes (gRPC message size). Far above
/// any valid request; a heartbeat of 50 000 replicas takes about 10 MiB.
pub const MAX_REQUEST_BYTES: usize = 16 << 20;

/// Largest catalog snapshot a master accepts from its leader (a snapshot is held in memory
/// whole). The request history takes at most 64 MiB, the tombstones about 50 MB, a
/// thousand tables of the widest schema about 100 MB: real catalogs stay far below.
pub const MAX_CATALOG_SNAPSHOT_BYTES: usize = 1 << 30;

/// An input over a documented limit. Nothing was proposed or recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{what} of {len} bytes is longer than the limit of {max} bytes")]
    TooLong { what: &'static str, len: usize, max: usize },
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} {value:?} holds a character that is not printable ASCII")]
    NotPrintable { what: &'static str, value: String },
    #[error("{count} {what} exceed the limit of {max}")]
    TooMany { what: &'static str, count: usize, max: usize },
    #[error("a CreateTable of {partitions} partitions carries {tablets} tablets")]
    TabletCount { partitions: u32, tablets: usize },
    #[error("the {command} command encodes to {bytes} bytes, over the limit of {max} bytes")]
    CommandTooLarge { command: String, bytes: usize, max: usize },
}

impl LimitError {
    /// Stable machine-readable code: the catalog's own, `TOO_LARGE` for sizes and counts,
    /// `INVALID_ARGUMENT` for malformed ids (all sent as gRPC INVALID_ARGUMENT).
    pub fn code(&self) -> ErrorCode {
        match self {
            LimitError::Catalog(e) => e.code(),
            LimitError::TooLong { .. } | LimitError::TooMany { .. } | LimitError::CommandTooLarge { .. } => {
                ErrorCode::TooLarge
            }
            LimitError::Empty { .. } | LimitError::NotPrintable { .. } | LimitError::TabletCount { .. } => {
                ErrorCode::InvalidArgument
            }
        }
    }
}

fn check_len(what: &'static str, value: &str, max: usize) -> Result<(), LimitError> {
    match value.len() > max {
        true => Err(LimitError::TooLong { what, len: value.len(), max }),
        false => Ok(()),
    }
}

fn check_count(what: &'static str, count: usize, max: usize) -> Result<(), LimitError> {
    match count > max {
        true => Err(LimitError::TooMany { what, count, max }),
        false => Ok(()),
    }
}

/// An id: non-empty, at most [`MAX_ID_LEN`] bytes of printable ASCII.
pub fn check_id(what: &'static str, id: &str) -> Result<(), LimitError> {
    if id.is_empty() {
        return Err(LimitError::Empty { what });
    }
    check_len(what, id, MAX_ID_LEN)?;
    match id.bytes().all(|b| b.is_ascii_graphic()) {
        true => Ok(()),
        false => Err(LimitError::NotPrintable { what, value: shown(id).into_owned() }),
    }
}

/// A client request id (empty means none).
pub fn check_request_id(request_id: &str) -> Result<(), LimitError> {
    check_len("request id", request_id, MAX_REQUEST_ID_LEN)
}

/// The steps of an AlterTable: how many, and the names they give.
pub fn check_alter_steps(steps: &[AlterStep]) -> Result<(), LimitError> {
    if steps.is_empty() {
        return Err(CatalogError::InvalidAlter("no alteration steps given".into()).into());
    }
    check_count("alteration steps", steps.len(), MAX_ALTER_STEPS)?;
    for step in steps {
        match step {
            AlterStep::RenameTable(name) => validate_name("table", name)?,
            AlterStep::AddColumn(column) => validate_name("column", &column.name)?,
            AlterStep::DropColumn(name) => validate_name("column", name)?,
            AlterStep::RenameColumn { old_name, new_name } => {
                validate_name("column", old_name)?;
                validate_name("column", new_name)?;
            }
        }
    }
    Ok(())
}

fn check_updates(updates: &[TabletConfigUpdate]) -> Result<(), LimitError> {
    check_count("tablet configuration updates", updates.len(), MAX_UPDATES_PER_COMMAND)?;
    for update in updates {
        check_id("tablet id", update.tablet_id.as_str())?;
        check_count("replicas of a tablet", update.replicas.len(), MAX_REPORTED_PEERS)?;
        for ts in update.replicas.iter().chain(&update.leader) {
            check_id("tablet server uuid", ts.as_str())?;
        }
    }
    Ok(())
}

/// Checks a command against every limit before it is proposed.
pub fn check_command(command: &CatalogCommand) -> Result<(), LimitError> {
    if let Some(request_id) = command.request_id() {
        check_request_id(request_id)?;
    }
    match command {
        CatalogCommand::CreateTable { table, tablets, .. } => {
            validate_name("table", &table.name)?;
            table.schema.validate()?;
            check_count("partitions", table.num_partitions as usize, MAX_PARTITIONS as usize)?;
            if tablets.len() != table.num_partitions as usize {
                return Err(LimitError::TabletCount { partitions: table.num_partitions, tablets: tablets.len() });
            }
            for tablet in tablets {
                check_id("tablet id", tablet.id.as_str())?;
                check_count("replicas of a tablet", tablet.replicas.len(), MAX_REPLICATION_FACTOR as usize)?;
                for ts in &tablet.replicas {
                    check_id("tablet server uuid", ts.as_str())?;
                }
            }
        }
        CatalogCommand::DeleteTable { name, .. } => validate_name("table", name)?,
        CatalogCommand::AlterTable { name, steps, .. } => {
            validate_name("table", name)?;
            check_alter_steps(steps)?;
        }
        CatalogCommand::UpdateTabletConfigs(updates) => check_updates(updates)?,
        CatalogCommand::StartReplicaMoves(moves) | CatalogCommand::CancelReplicaMoves(moves) => {
            check_count("replica moves", moves.len(), MAX_UPDATES_PER_COMMAND)?;
            for tablet_move in moves {
                check_id("tablet id", tablet_move.tablet_id.as_str())?;
                for ts in tablet_move.replica_move.from.iter().chain([&tablet_move.replica_move.to]) {
                    check_id("tablet server uuid", ts.as_str())?;
                }
            }
        }
        CatalogCommand::SetClusterId { cluster_id } => check_id("cluster id", cluster_id)?,
        CatalogCommand::SetTServerState { uuid, .. } => check_id("tablet server uuid", uuid.as_str())?,
    }
    let bytes = encoded_size(command);
    if bytes > MAX_COMMAND_BYTES {
        return Err(LimitError::CommandTooLarge { command: command.to_string(), bytes, max: MAX_COMMAND_BYTES });
    }
    Ok(())
}

/// A tablet server's heartbeat: its uuid, address, cluster id and every reported replica.
pub fn check_heartbeat(request: &pb::TsHeartbeatRequest) -> Result<(), LimitError> {
    check_id("tablet server uuid", &request.ts_uuid)?;
    check_len("tablet server address", &request.rpc_address, MAX_ADDRESS_LEN)?;
    if !request.cluster_id.is_empty() {
        check_id("cluster id", &request.cluster_id)?;
    }
    for replica in &request.replicas {
        check_id("tablet id", &replica.tablet_id)?;
        check_len("table id", &replica.table_id, MAX_ID_LEN)?;
        let peers = replica.voter_uuids.len() + replica.learner_uuids.len();
        check_count("voters and learners of a replica", peers, MAX_REPORTED_PEERS)?;
        for ts in replica.voter_uuids.iter().chain(&replica.learner_uuids) {
            check_id("tablet server uuid", ts)?;
        }
        if !replica.leader_uuid.is_empty() {
            check_id("tablet server uuid", &replica.leader_uuid)?;
        }
    }
    Ok(())
}

/// Splits reported configuration updates into commands of at most
/// [`MAX_UPDATES_PER_COMMAND`] updates and [`UPDATE_BATCH_BYTES`] encoded bytes (every
/// update is small: its ids passed [`check_heartbeat`]). Order is kept; each update applies
/// on its own, so the split changes nothing.
pub fn split_updates(updates: Vec<TabletConfigUpdate>) -> Vec<CatalogCommand> {
    let mut commands = Vec::new();
    let (mut batch, mut bytes) = (Vec::new(), 0);
    for update in updates {
        let size = encoded_size(&update) + 1;
        if !batch.is_empty() && (bytes + size > UPDATE_BATCH_BYTES || batch.len() == MAX_UPDATES_PER_COMMAND) {
            commands.push(CatalogCommand::UpdateTabletConfigs(std::mem::take(&mut batch)));
            bytes = 0;
        }
        bytes += size;
        batch.push(update);
    }
    if !batch.is_empty() {
        commands.push(CatalogCommand::UpdateTabletConfigs(batch));
    }
    commands
}

#[cfg(test)]
mod tests;
