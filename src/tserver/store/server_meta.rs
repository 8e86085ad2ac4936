//! The tablet server's own records: its uuid, the cluster it joined and the replicas it
//! hosts (running, tombstoned or failed).

use std::path::Path;
use std::sync::Arc;

use rocksdb::{DB, IteratorMode};
use serde::{Deserialize, Serialize};

use super::db::{StoreError, open_db};
use super::keys::{CF_META, CF_REPLICAS, META_CLUSTER_ID, META_UUID};
use crate::catalog::Schema;
use crate::ids::{TServerId, TableId, TabletId};

/// What became of a replica this server was told to host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaState {
    /// Its Raft group runs (or is opened at start-up).
    #[default]
    Running,
    /// Deleted on the master's instruction; the record stays so it is never created again.
    Tombstoned,
    /// Its stored state could not be opened; kept untouched for an operator to inspect.
    Failed,
}

impl ReplicaState {
    /// The name ListTablets and the web pages show.
    pub fn name(self) -> &'static str {
        match self {
            ReplicaState::Running => "RUNNING",
            ReplicaState::Tombstoned => "TOMBSTONED",
            ReplicaState::Failed => "FAILED",
        }
    }
}

/// A replica this server hosts or hosted. Fields added after the first release have serde
/// defaults, so older records still load (as running replicas without a desired schema).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaMeta {
    pub tablet_id: TabletId,
    pub table_id: TableId,
    pub table_name: String,
    pub partition: u32,
    /// The initial Raft voters the master assigned; the group is initialized with exactly
    /// these (later configuration changes live in the Raft log, not here).
    pub peers: Vec<TServerId>,
    /// Number of partitions of the table.
    #[serde(default)]
    pub num_partitions: u32,
    /// The newest table schema the master asked for, with its version; the replica's leader
    /// proposes it until the replica applied it.
    #[serde(default)]
    pub desired_schema: Option<Schema>,
    #[serde(default)]
    pub desired_schema_version: u64,
    #[serde(default)]
    pub state: ReplicaState,
    /// Why the replica failed to open (state [`ReplicaState::Failed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Created to join an existing group (re-replication): never initializes the group,
    /// receives its state from the leader. `peers` are then the group's voters when it
    /// was created, not including this server.
    #[serde(default)]
    pub joining: bool,
}

impl ReplicaMeta {
    /// Records `schema` at `version` as the desired schema if it is newer than the one
    /// recorded; returns whether it was.
    pub fn want_schema(&mut self, schema: Schema, version: u64) -> bool {
        if self.desired_schema.is_some() && version <= self.desired_schema_version {
            return false;
        }
        self.desired_schema = Some(schema);
        self.desired_schema_version = version;
        true
    }
}

/// The tablet server's database.
#[derive(Clone)]
pub struct TServerStore {
    db: Arc<DB>,
}

impl TServerStore {
    /// Opens the database under `dir` (see [`open_db`]).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Ok(Self { db: open_db(dir)? })
    }

    /// The database, shared with the tablet replicas' stores.
    pub fn db(&self) -> Arc<DB> {
        self.db.clone()
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or(StoreError::MissingCf(name))
    }

    fn sync_write(&self, batch: rocksdb::WriteBatch) -> Result<(), StoreError> {
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        Ok(self.db.write_opt(batch, &opts)?)
    }

    /// This server's uuid, created on first start.
    pub fn uuid(&self) -> Result<TServerId, StoreError> {
        let cf = self.cf(CF_META)?;
        if let Some(bytes) = self.db.get_cf(cf, META_UUID)? {
            return Ok(TServerId(String::from_utf8_lossy(&bytes).into_owned()));
        }
        let id = TServerId::random();
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(cf, META_UUID, id.as_str());
        self.sync_write(batch)?;
        Ok(id)
    }

    /// The id of the cluster this server joined, if it joined one.
    pub fn cluster_id(&self) -> Result<Option<String>, StoreError> {
        let cf = self.cf(CF_META)?;
        Ok(self.db.get_cf(cf, META_CLUSTER_ID)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Durably records the cluster this server joined.
    pub fn set_cluster_id(&self, cluster_id: &str) -> Result<(), StoreError> {
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, META_CLUSTER_ID, cluster_id.as_bytes());
        self.sync_write(batch)
    }

    /// The record of one replica, in any state.
    pub fn replica(&self, tablet_id: &str) -> Result<Option<ReplicaMeta>, StoreError> {
        let cf = self.cf(CF_REPLICAS)?;
        Ok(self.db.get_cf(cf, tablet_id)?.map(|bytes| serde_json::from_slice(&bytes)).transpose()?)
    }

    /// Every replica record (running, tombstoned and failed).
    pub fn replicas(&self) -> Result<Vec<ReplicaMeta>, StoreError> {
        let cf = self.cf(CF_REPLICAS)?;
        self.db.iterator_cf(cf, IteratorMode::Start).map(|item| Ok(serde_json::from_slice(&item?.1)?)).collect()
    }

    /// Records (or replaces) a hosted replica.
    pub fn put_replica(&self, replica: &ReplicaMeta) -> Result<(), StoreError> {
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(self.cf(CF_REPLICAS)?, replica.tablet_id.as_str(), serde_json::to_vec(replica)?);
        self.sync_write(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_records_load_as_running_and_cluster_id_persists() {
        let dir = tempfile::tempdir().unwrap();
        let store = TServerStore::open(dir.path()).unwrap();
        let old = r#"{"tablet_id":"t","table_id":"x","table_name":"n","partition":1,"peers":["a"]}"#;
        let meta: ReplicaMeta = serde_json::from_str(old).unwrap();
        assert_eq!(meta.state, ReplicaState::Running);
        assert_eq!((&meta.desired_schema, meta.num_partitions), (&None, 0));
        store.put_replica(&ReplicaMeta { state: ReplicaState::Tombstoned, ..meta.clone() }).unwrap();
        assert_eq!(store.replica("t").unwrap().map(|m| m.state), Some(ReplicaState::Tombstoned));
        assert_eq!(store.replica("nope").unwrap(), None);
        assert_eq!(store.cluster_id().unwrap(), None);
        store.set_cluster_id("c-1").unwrap();
        let uuid = store.uuid().unwrap();
        drop(store);
        let store = TServerStore::open(dir.path()).unwrap();
        assert_eq!(store.cluster_id().unwrap().as_deref(), Some("c-1"));
        assert_eq!(store.uuid().unwrap(), uuid);
    }

    #[test]
    fn only_newer_schemas_are_wanted() {
        let meta: ReplicaMeta =
            serde_json::from_str(r#"{"tablet_id":"t","table_id":"x","table_name":"n","partition":1,"peers":[]}"#)
                .unwrap();
        let mut meta = meta;
        let schema = Schema { columns: vec![], primary_key: vec![] };
        assert!(meta.want_schema(schema.clone(), 0), "a first schema, even version 0");
        assert!(!meta.want_schema(schema.clone(), 0));
        assert!(meta.want_schema(schema.clone(), 2));
        assert!(!meta.want_schema(schema, 1));
        assert_eq!(meta.desired_schema_version, 2);
    }
}
