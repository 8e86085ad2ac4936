//! A running master: its Raft handle, applied catalog and soft state, with the leader checks,
//! linearizable reads and proposals every request goes through.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::rt::Instant as _;
use openraft::rt::watch::WatchReceiver;
use openraft::{RaftMetrics, ReadPolicy, ServerState};

use super::config::MasterConfig;
use super::error::MasterError;
use super::limits;
use super::metrics::Metrics;
use super::raft_types::{Raft, TypeConfig};
use super::store::SharedCatalog;
use super::tservers::TServerRegistry;
use crate::catalog::{CatalogCommand, CatalogOutcome};
use crate::ids::MasterId;
use crate::pb::master as pb;
use crate::rpc::ChannelPool;

/// Longest a leader-discovery probe is held waiting for a new leader.
pub const MAX_LEADER_WAIT: Duration = Duration::from_secs(2);

/// Everything a master's services share.
pub struct MasterNode {
    pub id: MasterId,
    /// The address peers and clients use to reach this master.
    pub address: String,
    pub raft: Raft,
    pub catalog: SharedCatalog,
    pub tservers: TServerRegistry,
    /// The location mapping command, if configured.
    pub locations: Option<super::location_mapping::LocationMapper>,
    /// Randomness of placement's power-of-two-choices.
    pub(super) placement_rng: std::sync::Mutex<rand::rngs::StdRng>,
    pub pool: ChannelPool,
    pub metrics: Metrics,
    pub config: MasterConfig,
    /// Held for the whole of a membership change: one change at a time.
    pub(super) membership_lock: tokio::sync::Mutex<()>,
    /// Term and time at which this master last became leader.
    pub(super) leader_since: std::sync::Mutex<Option<(u64, std::time::Instant)>>,
    /// Tablets whose replica move this master is driving.
    pub(super) moves_in_flight: super::rereplication::MovesInFlight,
    /// Read-index rounds shared by the heartbeats arriving together.
    pub(super) heartbeat_reads: super::read_batch::ReadBatcher,
    /// Which tablets want a replica on each tablet server, as of an applied log id.
    pub(super) tablets_by_server: super::tablet_index::CachedIndex,
    /// Tables whose schema is being pushed to their tablets after a `no_wait` AlterTable.
    pub(super) background_pushes: super::schema_push::BackgroundPushes,
}

impl MasterNode {
    pub fn raft_metrics(&self) -> RaftMetrics<TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    /// Metrics once this master leads or knows a leader of a term above `term`, waiting up to
    /// `wait` for one (capped at [`MAX_LEADER_WAIT`]); after that, the metrics as they are.
    /// Lets a client that saw the leader of `term` fail learn the next leader when it is
    /// elected rather than by polling.
    pub async fn raft_metrics_with_leader_after(&self, term: u64, wait: Duration) -> RaftMetrics<TypeConfig> {
        let wait = wait.min(MAX_LEADER_WAIT);
        if wait.is_zero() {
            return self.raft_metrics();
        }
        let knows_newer_leader = |m: &RaftMetrics<TypeConfig>| {
            m.state == ServerState::Leader || (m.current_leader.is_some() && m.current_term > term)
        };
        match self.raft.wait(Some(wait)).metrics(knows_newer_leader, "a leader after the failed one").await {
            Ok(m) => m,
            // Timed out (no election finished in time) or shutting down: answer as things are.
            Err(_) => self.raft_metrics(),
        }
    }

    /// This master's role as clients see it.
    pub fn role(&self, m: &RaftMetrics<TypeConfig>) -> pb::Role {
        if m.membership_config.nodes().next().is_none() {
            return pb::Role::NonMember;
        }
        match m.state {
            ServerState::Leader => pb::Role::Leader,
            ServerState::Candidate => pb::Role::Candidate,
            ServerState::Learner => pb::Role::Learner,
            ServerState::Follower => pb::Role::Follower,
            ServerState::Shutdown => pb::Role::Unknown,
        }
    }

    /// The address of a member, if it is one.
    pub fn member_address(m: &RaftMetrics<TypeConfig>, id: MasterId) -> Option<String> {
        m.membership_config.membership().get_node(&id).map(|n| n.addr.clone())
    }

    /// The NOT_THE_LEADER error with the best hint this master has.
    pub fn not_leader(&self) -> MasterError {
        let m = self.raft_metrics();
        let leader_id = m.current_leader.filter(|id| *id != self.id);
        let leader_addr = leader_id.and_then(|id| Self::member_address(&m, id));
        MasterError::NotTheLeader { leader_id, leader_addr }
    }

    /// Refuses with NOT_THE_LEADER unless this master believes it leads.
    pub fn ensure_leader(&self) -> Result<(), MasterError> {
        // On every request: look at the metrics in place rather than clone them.
        let leads = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            m.state == ServerState::Leader && m.current_leader == Some(self.id)
        };
        if leads { Ok(()) } else { Err(self.not_leader()) }
    }

    /// Confirms leadership with a quorum (read index) and waits until everything committed
    /// before the read is applied, so the catalog read next is linearizable.
    pub async fn linearizable_read(&self) -> Result<(), MasterError> {
        self.ensure_leader()?;
        match tokio::time::timeout(self.config.rpc_timeout, self.raft.ensure_linearizable(ReadPolicy::ReadIndex)).await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => match e.forward_to_leader() {
                Some(_) => Err(self.not_leader()),
                None => Err(MasterError::NotTheLeader { leader_id: None, leader_addr: None }),
            },
            Err(_) => Err(MasterError::NotTheLeader { leader_id: None, leader_addr: None }),
        }
    }

    /// Replicates one catalog command and returns its applied outcome. The command is
    /// checked against every input limit first ([`limits::check_command`]): what fails never
    /// enters the log.
    pub async fn propose(&self, command: CatalogCommand) -> Result<CatalogOutcome, MasterError> {
        limits::check_command(&command)?;
        self.ensure_leader()?;
        let write = self.raft.client_write(command);
        let response = match tokio::time::timeout(self.config.rpc_timeout, write).await {
            Ok(result) => result.map_err(|e| self.write_error(e))?,
            Err(_) => return Err(MasterError::Timeout("the catalog change was not committed in time".into())),
        };
        Ok(response.data.0?)
    }

    pub(super) fn write_error(&self, e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> MasterError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f))
            | RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => MasterError::NotTheLeader {
                leader_id: f.leader_id.filter(|id| *id != self.id),
                leader_addr: f.leader_node.map(|n| n.addr),
            },
            RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
                MasterError::MembershipChangeInProgress(c.to_string())
            }
            other => MasterError::Internal(other.to_string()),
        }
    }

    /// How long this master has led in its current term (zero if it does not lead).
    pub fn leadership_age(&self) -> Duration {
        let m = self.raft_metrics();
        let since = self.leader_since.lock().unwrap_or_else(|p| p.into_inner());
        match *since {
            Some((term, at)) if m.state == ServerState::Leader && term == m.current_term => at.elapsed(),
            _ => Duration::ZERO,
        }
    }

    /// Watches Raft metrics and records when this master becomes leader.
    pub async fn track_leadership(&self) {
        let mut rx = self.raft.metrics();
        loop {
            {
                let m = rx.borrow_watched();
                if m.state == ServerState::Leader {
                    let mut since = self.leader_since.lock().unwrap_or_else(|p| p.into_inner());
                    if since.is_none_or(|(term, _)| term != m.current_term) {
                        tracing::info!(term = m.current_term, "became leader");
                        *since = Some((m.current_term, std::time::Instant::now()));
                    }
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Whether the leader heard from `id` recently (the leader itself is always live).
    pub fn is_live(&self, m: &RaftMetrics<TypeConfig>, id: MasterId) -> bool {
        if id == self.id {
            return true;
        }
        let threshold = self.config.member_liveness_timeout;
        m.heartbeat
            .as_ref()
            .and_then(|h| h.get(&id).cloned().flatten())
            .is_some_and(|at| at.into_inner().elapsed() < threshold)
    }

    /// The current members with their roles, as the leader (or this master) sees them.
    pub fn members(&self, m: &RaftMetrics<TypeConfig>) -> Vec<pb::MasterMember> {
        let membership = m.membership_config.membership();
        let voters: BTreeSet<MasterId> = membership.voter_ids().collect();
        let leading = m.state == ServerState::Leader;
        membership
            .nodes()
            .map(|(&id, node)| {
                let voter = voters.contains(&id);
                let role = if Some(id) == m.current_leader {
                    pb::Role::Leader
                } else if voter {
                    pb::Role::Follower
                } else {
                    pb::Role::Learner
                };
                let matched_index = if id == self.id {
                    m.last_log_index.unwrap_or(0)
                } else {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&id).cloned().flatten())
                        .map(|log_id| log_id.index)
                        .unwrap_or(0)
                };
                pb::MasterMember {
                    node_id: id,
                    address: node.addr.clone(),
                    role: role as i32,
                    voter,
                    matched_index,
                    live: if leading { self.is_live(m, id) } else { id == self.id || Some(id) == m.current_leader },
                }
            })
            .collect()
    }

    /// RPC addresses of all current members (what tservers and clients should talk to).
    pub fn member_addresses(&self) -> Vec<String> {
        let m = self.raft_metrics();
        m.membership_config.membership().nodes().map(|(_, n)| n.addr.clone()).collect()
    }

    /// True while a membership change is uncommitted or joint.
    pub fn membership_change_pending(m: &RaftMetrics<TypeConfig>) -> bool {
        m.membership_config.log_id() != m.committed_membership_config.log_id()
            || m.membership_config.get_joint_config().len() > 1
    }

    /// Waits until `cond` holds for the Raft metrics, up to `timeout`.
    pub async fn wait_metrics(
        &self,
        timeout: Duration,
        what: &str,
        cond: impl Fn(&RaftMetrics<TypeConfig>) -> bool,
    ) -> Result<RaftMetrics<TypeConfig>, MasterError> {
        let mut rx = self.raft.metrics();
        let wait = async {
            loop {
                {
                    let m = rx.borrow_and_update();
                    if cond(&m) {
                        return Some(m.clone());
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(MasterError::Internal("raft stopped".into())),
            Err(_) => Err(MasterError::Timeout(what.to_string())),
        }
    }
}
