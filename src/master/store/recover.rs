//! Unsafe quorum-loss recovery (Kudu's `unsafe_change_config`), offline on a stopped
//! master's data directory.
//!
//! When a majority of masters is gone for good, the survivors can never elect a leader. This
//! rewrites one survivor's Raft state so that it comes up as the only voter and keeps its
//! catalog:
//! - a new vote for itself in a term above every term it has seen (not committed: the master
//!   still runs a normal election when it starts, which it wins alone);
//! - one membership entry `{self}` appended after its last log entry, written in that term.
//!   openraft uses the last membership entry of the log, committed or not, so the master
//!   starts as sole voter; its first election commits the entry (and everything before it).
//!
//! Entries the lost majority had committed but this master never received are lost: that is
//! what makes it unsafe. Nothing is written unless [`Recovery::apply`] is called.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{BasicNode, EntryPayload, Membership, RaftLogReader};
use rocksdb::{DB, WriteBatch};

use super::{LogStore, StateMachineStore, StoreError};
use crate::ids::MasterId;
use crate::master::raft_types::{Entry, LogId, Vote};
use crate::raft::GroupPrefix;
use crate::raft::keys::{CF_LOGS, CF_META, META_VOTE};
use crate::raft::rocks::{cf, encode, write_sync};

/// Why recovery refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("master {node_id} has never joined a Raft group: there is nothing to recover")]
    NoMembership { node_id: MasterId },
    #[error("master {node_id} is not a voter of its last membership (voters: {voters:?}); recover a master that is")]
    NotAVoter { node_id: MasterId, voters: BTreeSet<MasterId> },
    #[error("reading or writing the Raft state failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What recovery found on disk and what it will write.
#[derive(Debug, Clone)]
pub struct RecoveryPlan {
    pub node_id: MasterId,
    /// This master's address in the membership (where it must be started again).
    pub address: String,
    /// The voter sets of the last membership (two while a change was joint).
    pub voters: Vec<BTreeSet<MasterId>>,
    /// Other members and their addresses.
    pub members: BTreeMap<MasterId, String>,
    pub vote: Option<Vote>,
    pub last_log_id: Option<LogId>,
    pub last_applied: Option<LogId>,
    pub cluster_id: Option<String>,
    pub tables: Vec<String>,
    pub num_tablets: usize,
    /// Term of the new vote and of the appended membership entry.
    pub new_term: u64,
    /// Index of the appended membership entry.
    pub new_index: u64,
    /// The master already is the only voter: nothing will be written.
    pub already_sole_voter: bool,
}

/// An opened, inspected data directory.
pub struct Recovery {
    db: Arc<DB>,
    plan: RecoveryPlan,
}

impl Recovery {
    /// Opens the stopped master's data directory and works out the plan; writes nothing.
    pub async fn open(data_dir: &Path) -> Result<Recovery, RecoverError> {
        let (db, node_id) = super::open_existing(data_dir)?;
        let mut log = LogStore::new(db.clone(), GroupPrefix::default());
        let mut sm = StateMachineStore::open(db.clone(), data_dir)?;
        let vote = log.read_vote().await?;
        let state = log.get_log_state().await?;
        let (last_applied, applied_membership) = sm.applied_state().await?;

        // The effective membership: the last membership entry of the log, else the applied one.
        let from = state.last_purged_log_id.as_ref().map_or(0, |l| l.index() + 1);
        let mut membership = applied_membership.membership().clone();
        for entry in log.try_get_log_entries(from..).await? {
            if let Some(m) = entry.get_membership() {
                membership = m;
            }
        }
        let voters: Vec<BTreeSet<MasterId>> = membership.get_joint_config().clone();
        let all_voters: BTreeSet<MasterId> = voters.iter().flatten().copied().collect();
        if membership.nodes().next().is_none() {
            return Err(RecoverError::NoMembership { node_id });
        }
        if !all_voters.contains(&node_id) {
            return Err(RecoverError::NotAVoter { node_id, voters: all_voters });
        }
        let address = membership.get_node(&node_id).map(|n| n.addr.clone()).unwrap_or_default();
        let members = membership.nodes().map(|(id, n)| (*id, n.addr.clone())).collect();
        let max_term = vote
            .as_ref()
            .map_or(0, |v| v.leader_id.term)
            .max(state.last_log_id.as_ref().map_or(0, |l| l.leader_id.term));
        let (cluster_id, tables, num_tablets) = {
            let catalog = sm.catalog();
            let catalog = catalog.read().await;
            let mut tables: Vec<String> = catalog.tables().map(|t| t.name.clone()).collect();
            tables.sort();
            (catalog.cluster_id().map(str::to_string), tables, catalog.num_tablets())
        };
        let plan = RecoveryPlan {
            node_id,
            address,
            voters: voters.clone(),
            members,
            vote,
            last_log_id: state.last_log_id,
            last_applied,
            cluster_id,
            tables,
            num_tablets,
            new_term: max_term + 1,
            new_index: state.last_log_id.as_ref().map_or(0, |l| l.index() + 1),
            already_sole_voter: voters == [BTreeSet::from([node_id])],
        };
        Ok(Recovery { db, plan })
    }

    /// What was found and what [`Recovery::apply`] writes.
    pub fn plan(&self) -> &RecoveryPlan {
        &self.plan
    }

    /// Writes the new vote and the `{self}` membership entry in one synced batch. Does
    /// nothing when the master already is the only voter.
    pub async fn apply(self) -> Result<RecoveryPlan, RecoverError> {
        let plan = self.plan;
        if plan.already_sole_voter {
            return Ok(plan);
        }
        let id = plan.node_id;
        let vote = Vote::new(plan.new_term, id);
        let leader = openraft::impls::leader_id_adv::LeaderId { term: plan.new_term, node_id: id };
        let membership =
            Membership::new(vec![BTreeSet::from([id])], BTreeMap::from([(id, BasicNode::new(&plan.address))]))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        let entry = Entry::new(LogId::new(leader, plan.new_index), EntryPayload::Membership(membership));
        let prefix = GroupPrefix::default();
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_META)?, prefix.meta_key(META_VOTE), encode(&vote)?);
        batch.put_cf(cf(&self.db, CF_LOGS)?, prefix.log_key(plan.new_index), encode(&entry)?);
        write_sync(&self.db, batch).await?;
        tracing::warn!(
            node = id,
            term = plan.new_term,
            index = plan.new_index,
            "rewrote the membership to this master alone"
        );
        Ok(plan)
    }
}

/// File in a master's data directory asking for [`Recovery`] at the master's next start:
/// how a master in a pod is recovered (its process cannot be stopped while the pod runs).
pub const AT_START_MARKER: &str = "unsafe-recover-at-start";

/// Asks for recovery at the master's next start (see [`AT_START_MARKER`]). The directory
/// must hold a master database; it may be in use.
pub fn request_at_start(data_dir: &Path) -> Result<(), RecoverError> {
    if !data_dir.join("raft-db").join("CURRENT").is_file() {
        return Err(StoreError::NotAMasterDir {
            path: data_dir.display().to_string(),
            reason: "it holds no master database".into(),
        }
        .into());
    }
    std::fs::write(data_dir.join(AT_START_MARKER), b"yes-i-know-this-may-lose-data\n")?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(())
}

/// At start, before the database is opened: carries out a recovery asked for with
/// [`request_at_start`], then removes the request. A refused recovery (e.g. this master is
/// not a voter) renames the request to `<marker>.refused` and the master starts unchanged.
pub async fn run_requested(data_dir: &Path) -> Result<Option<RecoveryPlan>, RecoverError> {
    let marker = data_dir.join(AT_START_MARKER);
    if !marker.exists() {
        return Ok(None);
    }
    let result = match Recovery::open(data_dir).await {
        Ok(recovery) => {
            tracing::warn!(plan = ?recovery.plan(), "UNSAFE RECOVERY requested: making this master the only voter");
            recovery.apply().await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(plan) => {
            std::fs::remove_file(&marker)?;
            Ok(Some(plan))
        }
        Err(e) => {
            tracing::error!(error = %e, "the requested unsafe recovery was refused; starting unchanged");
            std::fs::rename(&marker, data_dir.join(format!("{AT_START_MARKER}.refused")))?;
            Err(e)
        }
    }
}
