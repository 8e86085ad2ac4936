use serde::{Deserialize, Serialize};

use super::error::CatalogError;
use super::schema::Schema;
use crate::ids::{TServerId, TableId, TabletId};

/// Lifecycle state of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TableState {
    Running,
}

impl TableState {
    pub fn name(self) -> &'static str {
        match self {
            TableState::Running => "RUNNING",
        }
    }
}

/// A table as the catalog records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub id: TableId,
    pub name: String,
    pub schema: Schema,
    /// Number of hash partitions (one tablet each).
    pub num_partitions: u32,
    pub replication_factor: u32,
    pub state: TableState,
    /// Incremented by every alteration.
    pub version: u64,
    /// Id the next added column gets; ids are never reused. `0` only in records written
    /// before column ids existed (see [`Table::assign_legacy_column_ids`]).
    #[serde(default)]
    pub next_column_id: u32,
}

impl Table {
    /// A table as CreateTable records it: running, at version 0, its columns (ids `0..n`
    /// in `schema`) followed by id `n`.
    pub fn new(id: TableId, name: String, schema: Schema, num_partitions: u32, replication_factor: u32) -> Self {
        let next_column_id = u32::try_from(schema.columns.len()).unwrap_or(u32::MAX);
        Self {
            id,
            name,
            schema,
            num_partitions,
            replication_factor,
            state: TableState::Running,
            version: 0,
            next_column_id,
        }
    }

    /// Gives a table without column ids (`next_column_id == 0`: an old record or a command
    /// proposed by an older leader) ids `0..n` in column order. Deterministic, so every
    /// master renumbers the same way; a no-op for tables that already have ids.
    pub fn assign_legacy_column_ids(&mut self) {
        if self.next_column_id == 0 && !self.schema.columns.is_empty() {
            self.schema = self.schema.clone().with_fresh_ids();
            self.next_column_id = u32::try_from(self.schema.columns.len()).unwrap_or(u32::MAX);
        }
    }

    /// Checks that every column id is below `next_column_id` (ids are unique by
    /// [`Schema::validate`]).
    pub fn validate_column_ids(&self) -> Result<(), CatalogError> {
        match self.schema.columns.iter().find(|c| c.id >= self.next_column_id) {
            Some(c) => Err(CatalogError::InvalidSchema(format!(
                "column '{}' has id {} but the table's next column id is {}",
                c.name, c.id, self.next_column_id
            ))),
            None => Ok(()),
        }
    }
}

/// Lifecycle state of a tablet. A deleted tablet stays in the catalog as a tombstone: it is
/// what tells tablet servers to delete their replicas ("a replica is deleted only when the
/// catalog tombstones it").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TabletState {
    #[default]
    Running,
    /// Deleted with its table by the command at this log index (orders tombstones for
    /// eviction, see [`crate::catalog::MAX_TOMBSTONES`]).
    Deleted { log_index: u64 },
}

impl TabletState {
    /// The name shown on web pages and in the CLI.
    pub fn name(self) -> &'static str {
        match self {
            TabletState::Running => "RUNNING",
            TabletState::Deleted { .. } => "DELETED",
        }
    }
}

/// One partition of a table and the tablet servers holding its replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tablet {
    pub id: TabletId,
    pub table_id: TableId,
    pub partition: u32,
    /// The voters of the tablet's Raft group: as placed at creation, then as last reported
    /// by a tablet server (in the newest term seen).
    pub replicas: Vec<TServerId>,
    /// Leader last reported by a tablet server, if any.
    pub leader: Option<TServerId>,
    /// Raft term of the last recorded report (0: none yet). Reports of older terms are
    /// ignored.
    #[serde(default)]
    pub term: u64,
    #[serde(default)]
    pub state: TabletState,
    /// Raft log index of the configuration `replicas` was reported from (`None`: as placed
    /// at creation, or reported by a server that sent no index). A configuration is only
    /// replaced by one reported at a higher index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_index: Option<u64>,
    /// The replica move in progress (re-replication), if any: at most one per tablet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_move: Option<ReplicaMove>,
}

impl Tablet {
    /// A tablet as CreateTable records it: running on the `replicas` placement chose, with no
    /// leader, term or reported configuration yet.
    pub fn new(id: TabletId, table_id: TableId, partition: u32, replicas: Vec<TServerId>) -> Self {
        Self {
            id,
            table_id,
            partition,
            replicas,
            leader: None,
            term: 0,
            state: TabletState::Running,
            config_index: None,
            pending_move: None,
        }
    }

    /// Whether the tablet is a tombstone.
    pub fn is_deleted(&self) -> bool {
        matches!(self.state, TabletState::Deleted { .. })
    }

    /// Whether `ts` holds, or is joining with, a replica the catalog wants: a voter of the
    /// recorded configuration or the destination of the move in progress.
    pub fn wants_replica_on(&self, ts: &TServerId) -> bool {
        self.replicas.contains(ts) || self.pending_move.as_ref().is_some_and(|m| &m.to == ts)
    }
}

/// A replica move of one tablet (Kudu's 3-4-3 re-replication): `to` joins the tablet's Raft
/// group as a non-voter, is promoted to voter once it caught up, then `from` leaves. The
/// move is complete when a reported configuration has `to` as a voter and not `from`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaMove {
    /// The replica replaced (on a failed server); `None` when the tablet only gains one.
    pub from: Option<TServerId>,
    /// The server that receives the new replica.
    pub to: TServerId,
}

impl ReplicaMove {
    /// Whether a configuration with voters `voters` is the move's outcome.
    pub fn is_complete_in(&self, voters: &[TServerId]) -> bool {
        voters.contains(&self.to) && self.from.as_ref().is_none_or(|from| !voters.contains(from))
    }
}

/// A move of the tablet `tablet_id`; an element of the catalog commands that start and
/// cancel moves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TabletMove {
    pub tablet_id: TabletId,
    pub replica_move: ReplicaMove,
}

/// A tablet's Raft configuration as a tablet server reported it; one element of
/// [`crate::catalog::CatalogCommand::UpdateTabletConfigs`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TabletConfigUpdate {
    pub tablet_id: TabletId,
    pub term: u64,
    /// Voters of the reported configuration.
    pub replicas: Vec<TServerId>,
    pub leader: Option<TServerId>,
    /// Raft log index of the reported configuration (`None`: the server sent none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_index: Option<u64>,
}

impl TabletConfigUpdate {
    /// Whether this report changes what the catalog records for `tablet`: a newer
    /// configuration ([`Self::newer_config`]) or a newer leader ([`Self::newer_leader`]).
    /// Reports without voters carry nothing and never apply; tombstones ignore reports.
    pub fn supersedes(&self, tablet: &Tablet) -> bool {
        self.newer_config(tablet) || self.newer_leader(tablet)
    }

    /// Whether the reported voters replace the recorded ones: a configuration of a higher
    /// log index than the recorded one. Without indexes on both sides (records and servers
    /// from before them) the term decides, as for the leader; a report without an index
    /// never replaces an indexed configuration.
    pub fn newer_config(&self, tablet: &Tablet) -> bool {
        if self.replicas.is_empty() || tablet.is_deleted() {
            return false;
        }
        match (self.config_index, tablet.config_index) {
            (Some(reported), Some(recorded)) => reported > recorded,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => self.newer_leader(tablet),
        }
    }

    /// Whether the reported term and leader replace the recorded ones: a newer term, or the
    /// same term naming a leader where none is recorded.
    pub fn newer_leader(&self, tablet: &Tablet) -> bool {
        if self.replicas.is_empty() || tablet.is_deleted() {
            return false;
        }
        self.term > tablet.term || (self.term == tablet.term && tablet.leader.is_none() && self.leader.is_some())
    }
}
