use serde::{Deserialize, Serialize};

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
}

/// One partition of a table and the tablet servers holding its replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tablet {
    pub id: TabletId,
    pub table_id: TableId,
    pub partition: u32,
    pub replicas: Vec<TServerId>,
    /// Leader last reported by a tablet server, if any.
    pub leader: Option<TServerId>,
}
