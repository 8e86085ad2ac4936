//! One running tablet replica: its Raft group, its state machine and its record, with the
//! leader-only operations the service needs (propose a command, confirm leadership for a
//! read) and its status as reports and pages show it.

use std::sync::Mutex;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::rt::watch::WatchReceiver;
use openraft::{RaftMetrics, ReadPolicy, ServerState};

use super::address_book::AddressBook;
use super::error::TabletServiceError;
use super::raft_types::{TabletRaft, TabletTypeConfig};
use super::store::{ReplicaMeta, ReplicaState, TabletStateMachine};
use crate::ids::{TServerId, TabletId};
use crate::pb::master as mpb;
use crate::pb::tserver as tpb;
use crate::tablet::{TabletCommand, TabletOutcome, TabletSchema};

/// The role of a running replica in its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplicaRole {
    Leader,
    Follower,
    Learner,
    Candidate,
}

impl ReplicaRole {
    /// The name ListTablets, metrics and pages show.
    pub fn name(self) -> &'static str {
        match self {
            ReplicaRole::Leader => "LEADER",
            ReplicaRole::Follower => "FOLLOWER",
            ReplicaRole::Learner => "LEARNER",
            ReplicaRole::Candidate => "CANDIDATE",
        }
    }

    fn of(state: ServerState) -> Option<ReplicaRole> {
        match state {
            ServerState::Leader => Some(ReplicaRole::Leader),
            ServerState::Follower => Some(ReplicaRole::Follower),
            ServerState::Learner => Some(ReplicaRole::Learner),
            ServerState::Candidate => Some(ReplicaRole::Candidate),
            ServerState::Shutdown => None,
        }
    }
}

/// A replica as reports, ListTablets and pages show it. Raft fields are empty unless the
/// replica runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub meta: ReplicaMeta,
    pub role: Option<ReplicaRole>,
    pub term: u64,
    pub leader_uuid: Option<String>,
    /// Voters and learners of the replica's last committed configuration.
    pub voters: Vec<String>,
    pub learners: Vec<String>,
    /// Raft log index of that configuration (`None`: none committed yet).
    pub config_index: Option<u64>,
    /// Version of the schema the replica applied (`None`: none yet).
    pub schema_version: Option<u64>,
    /// The group's timers are stopped while it is idle.
    pub quiesced: bool,
}

impl ReplicaStatus {
    /// The status of a replica that does not run (tombstoned or failed).
    pub fn stopped(meta: ReplicaMeta) -> Self {
        Self {
            meta,
            role: None,
            term: 0,
            leader_uuid: None,
            voters: Vec::new(),
            learners: Vec::new(),
            config_index: None,
            schema_version: None,
            quiesced: false,
        }
    }

    /// The replica as the heartbeat reports it to the master.
    pub fn to_report(&self) -> mpb::ReportedReplica {
        let state = match self.meta.state {
            ReplicaState::Running => mpb::ReplicaState::ReplicaRunning,
            ReplicaState::Tombstoned => mpb::ReplicaState::ReplicaTombstoned,
            ReplicaState::Failed => mpb::ReplicaState::ReplicaFailed,
        };
        mpb::ReportedReplica {
            tablet_id: self.meta.tablet_id.to_string(),
            table_id: self.meta.table_id.to_string(),
            state: state as i32,
            term: self.term,
            leader_uuid: self.leader_uuid.clone().unwrap_or_default(),
            voter_uuids: self.voters.clone(),
            learner_uuids: self.learners.clone(),
            schema_version: self.schema_version.unwrap_or(0),
            config_index: self.config_index,
        }
    }

    /// The replica as ListTablets shows it.
    pub fn to_listing(&self) -> tpb::TabletReplica {
        tpb::TabletReplica {
            tablet_id: self.meta.tablet_id.to_string(),
            table_id: self.meta.table_id.to_string(),
            table_name: self.meta.table_name.clone(),
            partition: self.meta.partition,
            peer_uuids: if self.voters.is_empty() {
                self.meta.peers.iter().map(ToString::to_string).collect()
            } else {
                self.voters.clone()
            },
            state: self.meta.state.name().to_string(),
            role: self.role.map(|r| r.name().to_string()).unwrap_or_default(),
            term: self.term,
            leader_uuid: self.leader_uuid.clone().unwrap_or_default(),
            schema_version: self.schema_version.unwrap_or(0),
        }
    }
}

/// A running replica. Shared by the manager, the Raft router and in-flight requests.
pub struct Replica {
    pub(super) tablet_id: TabletId,
    pub(super) node_id: u64,
    pub(super) raft: TabletRaft,
    pub(super) sm: TabletStateMachine,
    pub(super) meta: Mutex<ReplicaMeta>,
    pub(super) book: AddressBook,
    pub(super) request_timeout: Duration,
    /// Whether the group's timers are stopped while idle ([`super::quiesce`]).
    pub(super) quiet: super::quiesce::QuietState,
}

impl Replica {
    /// The replica's Raft group.
    pub fn raft(&self) -> &TabletRaft {
        &self.raft
    }

    /// The replica's record as last persisted.
    pub fn meta(&self) -> ReplicaMeta {
        self.meta.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn metrics(&self) -> RaftMetrics<TabletTypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    /// The uuid of the tablet server a node id of this group is, per its membership.
    fn uuid_of(m: &RaftMetrics<TabletTypeConfig>, id: u64) -> Option<String> {
        m.membership_config.membership().get_node(&id).map(|n| n.uuid.clone())
    }

    /// The schema the replica applied, if any.
    pub async fn schema(&self) -> Option<TabletSchema> {
        self.sm.state().await.schema().cloned()
    }

    /// The version of the schema the replica applied, if any (without copying the schema).
    async fn schema_version(&self) -> Option<u64> {
        self.sm.state().await.schema().map(|s| s.version())
    }

    /// The desired schema version when it is newer than the applied one: the cheap check
    /// the leader-duty loop makes for every replica before anything else.
    async fn schema_behind(&self) -> Option<u64> {
        let desired = {
            let meta = self.meta.lock().unwrap_or_else(|p| p.into_inner());
            meta.desired_schema.as_ref().map(|_| meta.desired_schema_version)
        }?;
        let applied = self.schema_version().await;
        applied.is_none_or(|v| v < desired).then_some(desired)
    }

    /// The replica's current status; the configuration is the last committed one, so a
    /// report never shows a change that may still be discarded.
    pub async fn status(&self) -> ReplicaStatus {
        let m = self.metrics();
        let committed = &m.committed_membership_config;
        let membership = committed.membership();
        let uuids = |ids: Vec<u64>| -> Vec<String> {
            ids.iter().filter_map(|id| membership.get_node(id).map(|n| n.uuid.clone())).collect()
        };
        let voters = uuids(membership.voter_ids().collect());
        let learners = uuids(membership.learner_ids().collect());
        ReplicaStatus {
            meta: self.meta(),
            role: ReplicaRole::of(m.state),
            term: m.current_term,
            leader_uuid: m.current_leader.and_then(|id| Self::uuid_of(&m, id)),
            voters,
            learners,
            config_index: committed.log_id().as_ref().map(|l| l.index),
            schema_version: self.schema_version().await,
            quiesced: self.quiesced().is_some(),
        }
    }

    /// Whether this replica believes it leads its group.
    pub fn is_leader(&self) -> bool {
        let m = self.metrics();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id)
    }

    /// NOT_THE_LEADER with the best hint this replica has.
    pub fn not_leader(&self) -> TabletServiceError {
        let m = self.metrics();
        let leader_uuid = m.current_leader.filter(|id| *id != self.node_id).and_then(|id| Self::uuid_of(&m, id));
        let leader_addr = leader_uuid.as_deref().and_then(|uuid| self.book.get(uuid));
        TabletServiceError::NotTheLeader { tablet_id: self.tablet_id.to_string(), leader_uuid, leader_addr }
    }

    /// Refuses with NOT_THE_LEADER unless this replica believes it leads.
    pub fn ensure_leader(&self) -> Result<(), TabletServiceError> {
        if self.is_leader() { Ok(()) } else { Err(self.not_leader()) }
    }

    /// Replicates `command` through the group and returns its applied outcome.
    pub async fn propose(
        &self,
        command: TabletCommand,
        what: &'static str,
    ) -> Result<TabletOutcome, TabletServiceError> {
        self.ensure_leader()?;
        self.note_activity(what);
        let response = match tokio::time::timeout(self.request_timeout, self.raft.client_write(command)).await {
            Ok(result) => result.map_err(|e| self.write_error(e))?,
            Err(_) => {
                return Err(TabletServiceError::TimedOut {
                    tablet_id: self.tablet_id.to_string(),
                    what,
                    after: self.request_timeout,
                });
            }
        };
        response.data.0.map_err(|e| TabletServiceError::from_tablet(self.tablet_id.as_str(), e))
    }

    pub(super) fn write_error(
        &self,
        e: RaftError<TabletTypeConfig, ClientWriteError<TabletTypeConfig>>,
    ) -> TabletServiceError {
        match e {
            // A discarded entry may still commit elsewhere; a retry with the same seq_no is
            // deduplicated by the tablet's result tracker.
            RaftError::APIError(ClientWriteError::ForwardToLeader(f))
            | RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
                let leader_uuid = f.leader_node.map(|n| n.uuid).filter(|_| f.leader_id != Some(self.node_id));
                let leader_addr = leader_uuid.as_deref().and_then(|uuid| self.book.get(uuid));
                TabletServiceError::NotTheLeader { tablet_id: self.tablet_id.to_string(), leader_uuid, leader_addr }
            }
            RaftError::Fatal(f) => {
                TabletServiceError::Unavailable(format!("tablet {}: Raft stopped: {f}", self.tablet_id))
            }
            other => TabletServiceError::Internal(format!("tablet {}: {other}", self.tablet_id)),
        }
    }

    /// Confirms leadership with a majority (read index) and waits until the state machine
    /// applied everything committed before, so what is read next is linearizable.
    pub async fn linearizable_read(&self) -> Result<(), TabletServiceError> {
        self.ensure_leader()?;
        self.note_activity("scan");
        match tokio::time::timeout(self.request_timeout, self.raft.ensure_linearizable(ReadPolicy::ReadIndex)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => match e.forward_to_leader() {
                Some(_) => Err(self.not_leader()),
                None => Err(TabletServiceError::Unavailable(format!(
                    "tablet {}: leadership not confirmed by a majority: {e}",
                    self.tablet_id
                ))),
            },
            Err(_) => Err(TabletServiceError::TimedOut {
                tablet_id: self.tablet_id.to_string(),
                what: "confirming leadership for a scan",
                after: self.request_timeout,
            }),
        }
    }

    /// Hands leadership to the voter on `to` (started here, completed by the election it
    /// triggers); `to` must hold this leader's whole log, so the group is not left waiting
    /// for a candidate that cannot win.
    pub async fn transfer_leadership(&self, to: &TServerId) -> Result<(), TabletServiceError> {
        self.ensure_leader()?;
        self.note_activity("leadership transfer");
        let target = to.raft_node_id();
        if target == self.node_id {
            return Ok(());
        }
        {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            if !m.membership_config.membership().voter_ids().any(|id| id == target) {
                return Err(TabletServiceError::InvalidArgument(format!(
                    "tablet server {to} is not a voter of tablet {}",
                    self.tablet_id
                )));
            }
            let matched = m.replication.as_ref().and_then(|r| r.get(&target)).and_then(|l| l.as_ref()).map(|l| l.index);
            if matched != m.last_log_index {
                return Err(TabletServiceError::Unavailable(format!(
                    "tablet {}: tablet server {to} holds the log up to {matched:?} of {:?}; retry once it caught up",
                    self.tablet_id, m.last_log_index
                )));
            }
        }
        self.raft.trigger().transfer_leader(target).await.map_err(|e| {
            TabletServiceError::Internal(format!("tablet {}: starting a leadership transfer: {e}", self.tablet_id))
        })
    }

    /// Proposes the desired schema if this replica leads and applied an older one; returns
    /// the version then applied, `None` if there was nothing to do.
    pub async fn drive_schema(&self) -> Result<Option<u64>, TabletServiceError> {
        // Most replicas, most of the time, have nothing to do: find out without Raft metrics.
        if self.schema_behind().await.is_none() || !self.is_leader() {
            return Ok(None);
        }
        let meta = self.meta();
        let Some(desired) = meta.desired_schema else { return Ok(None) };
        let applied = self.schema().await.map(|s| s.version());
        if applied.is_some_and(|v| v >= meta.desired_schema_version) {
            return Ok(None);
        }
        let command = TabletCommand::AlterSchema { schema: desired, version: meta.desired_schema_version };
        match self.propose(command, "schema change").await? {
            TabletOutcome::Schema { version } => Ok(Some(version)),
            other => Err(TabletServiceError::Internal(format!("schema change answered {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{TServerId, TableId};

    fn meta(state: ReplicaState) -> ReplicaMeta {
        ReplicaMeta {
            tablet_id: TabletId::from("t1"),
            table_id: TableId::from("tab"),
            table_name: "rows".into(),
            partition: 2,
            peers: vec![TServerId::from("a"), TServerId::from("b")],
            num_partitions: 4,
            desired_schema: None,
            desired_schema_version: 0,
            state,
            failure: None,
            joining: false,
        }
    }

    #[test]
    fn running_reports_carry_raft_state_and_stopped_ones_only_their_state() {
        let running = ReplicaStatus {
            role: Some(ReplicaRole::Follower),
            term: 7,
            leader_uuid: Some("b".into()),
            voters: vec!["a".into(), "b".into(), "c".into()],
            learners: vec!["d".into()],
            schema_version: Some(3),
            ..ReplicaStatus::stopped(meta(ReplicaState::Running))
        };
        let report = running.to_report();
        assert_eq!(report.state, mpb::ReplicaState::ReplicaRunning as i32);
        assert_eq!((report.term, report.leader_uuid.as_str(), report.schema_version), (7, "b", 3));
        assert_eq!(report.voter_uuids, ["a", "b", "c"]);
        assert_eq!(report.learner_uuids, ["d"]);
        let listing = running.to_listing();
        assert_eq!((listing.role.as_str(), listing.state.as_str()), ("FOLLOWER", "RUNNING"));
        assert_eq!(listing.peer_uuids, ["a", "b", "c"], "the current voters");

        for (state, wire, name) in [
            (ReplicaState::Tombstoned, mpb::ReplicaState::ReplicaTombstoned, "TOMBSTONED"),
            (ReplicaState::Failed, mpb::ReplicaState::ReplicaFailed, "FAILED"),
        ] {
            let stopped = ReplicaStatus::stopped(meta(state));
            let report = stopped.to_report();
            assert_eq!(report.state, wire as i32);
            assert_eq!((report.term, report.leader_uuid.as_str()), (0, ""));
            assert!(report.voter_uuids.is_empty());
            let listing = stopped.to_listing();
            assert_eq!((listing.state.as_str(), listing.role.as_str()), (name, ""));
            assert_eq!(listing.peer_uuids, ["a", "b"], "the assigned peers");
        }
    }
}
