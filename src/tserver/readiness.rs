//! Readiness as the tablet leaders see it: a tablet server is ready when every voter
//! replica it hosts is caught up **in its leader's view**, not in its own.
//!
//! A follower's own Raft state cannot tell it is behind: a follower that was paused knows
//! its leader and has applied everything it knows to be committed, yet misses what the
//! leader appended meanwhile. So for every voter replica it follows, the server asks the
//! replica's leader (`REPLICA_PROGRESS` in the coalesced Raft `Batch` call: one call per
//! leader server, whatever the number of tablets) for the leader's last log index, commit
//! index and the index it knows this follower holds (openraft's replication metrics). The
//! replica is caught up when
//! - the leader still leads,
//! - it knows the follower holds its log up to at most [`READY_MAX_LAG`] entries short of
//!   its last log index,
//! - and the follower applied that much, up to the leader's commit index (again within
//!   [`READY_MAX_LAG`]).
//!
//! [`READY_MAX_LAG`] lets a busy tablet, whose leader always has a few writes in flight,
//! be ready; a follower that missed more than that is not. A replica whose leader is
//! unknown or does not answer within [`PROGRESS_TIMEOUT`] is not caught up; a replica that
//! leads its group is; learners and replicas no longer in their group's configuration are
//! not counted (no majority depends on them). During a rolling upgrade from a version that
//! cannot answer the question, a replica led from an old server is judged by its own view
//! (it knows its leader and applied all it knows to be committed), as that version did.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use openraft::rt::watch::WatchReceiver;
use serde::{Deserialize, Serialize};

use super::replica::Replica;
use super::tablets::TabletManager;
use crate::pb::raft as rpb;

/// How many entries a caught-up follower may miss of its leader's log (and of what the
/// leader committed, in what it applied): the writes in flight on a busy tablet.
pub const READY_MAX_LAG: u64 = 8;

/// How long a readiness check waits for a tablet leader's answer (below a kubelet probe's
/// default timeout of 1 s).
pub const PROGRESS_TIMEOUT: Duration = Duration::from_millis(750);

/// A follower's `REPLICA_PROGRESS` question to its leader (JSON payload).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressRequest {
    /// The asking follower's node id.
    pub follower: u64,
}

/// A leader's answer: its view of the asking follower.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderProgress {
    /// The answering replica leads its group.
    pub leading: bool,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    /// The last log index the leader knows the follower holds (`None`: not known yet).
    pub matched: Option<u64>,
}

impl LeaderProgress {
    /// Whether a follower that applied up to `applied` is caught up by this answer; why
    /// not otherwise.
    pub fn judge(&self, applied: Option<u64>) -> Result<(), String> {
        if !self.leading {
            return Err("the replica it follows no longer leads".into());
        }
        let Some(last) = self.last_log_index else { return Ok(()) };
        let Some(matched) = self.matched else {
            return Err(format!("the leader (term {}) has not heard from it yet", self.term));
        };
        if matched.saturating_add(READY_MAX_LAG) < last {
            return Err(format!("the leader holds the log up to {last}, and knows it holds up to {matched}"));
        }
        let needed = matched.min(self.committed_index.unwrap_or(0));
        let applied = applied.unwrap_or(0);
        if applied.saturating_add(READY_MAX_LAG) < needed {
            return Err(format!("it applied up to {applied} of {needed}"));
        }
        Ok(())
    }
}

/// A voter replica not caught up, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lagging {
    pub tablet_id: String,
    pub why: String,
}

impl std::fmt::Display for Lagging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.tablet_id, self.why)
    }
}

/// What a replica's own state says before its leader is asked.
enum Local {
    /// Caught up without asking (it leads, or no majority depends on it).
    Fine,
    Lagging(String),
    /// Ask the leader with this node id on the server with this uuid.
    Ask {
        leader: u64,
        leader_uuid: String,
    },
}

impl Replica {
    /// This replica's leader view of `follower` (answers `REPLICA_PROGRESS`). Reads metrics
    /// only: a quiesced group stays quiesced.
    pub fn progress_of(&self, follower: u64) -> LeaderProgress {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let leading = m.state == ServerState::Leader && m.current_leader == Some(self.node_id);
        LeaderProgress {
            leading,
            term: m.current_term,
            last_log_index: m.last_log_index,
            committed_index: m.local_committed.as_ref().map(|l| l.index),
            matched: if leading {
                m.replication.as_ref().and_then(|r| r.get(&follower)).and_then(|l| l.as_ref()).map(|l| l.index)
            } else {
                None
            },
        }
    }

    /// Whether this follower is caught up in its own view: it knows a leader and holds and
    /// applied everything it knows to be committed. Used only when the leader's server is
    /// of a version that cannot answer `REPLICA_PROGRESS`.
    fn caught_up_in_own_view(&self) -> Result<(), String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let committed = m.local_committed.as_ref().map(|l| l.index);
        let applied = m.last_applied.as_ref().map(|l| l.index);
        if m.current_leader.is_some() && applied >= committed && m.last_log_index >= committed {
            Ok(())
        } else {
            Err(format!(
                "its leader's server cannot tell (an older version) and it applied {applied:?} of {committed:?}"
            ))
        }
    }

    /// The last log index this replica applied.
    fn applied_index(&self) -> Option<u64> {
        self.raft.metrics().borrow_watched().last_applied.as_ref().map(|l| l.index)
    }

    fn local_readiness(&self) -> Local {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        if membership.voter_ids().next().is_none() {
            return Local::Lagging("it has not joined its group yet".into());
        }
        if !membership.voter_ids().any(|id| id == self.node_id) {
            return Local::Fine;
        }
        match m.current_leader {
            None => Local::Lagging("it knows no leader".into()),
            Some(leader) if leader == self.node_id => {
                if m.state == ServerState::Leader {
                    Local::Fine
                } else {
                    Local::Lagging("it is not the leader yet".into())
                }
            }
            Some(leader) => match membership.get_node(&leader) {
                Some(node) => Local::Ask { leader, leader_uuid: node.uuid.clone() },
                None => Local::Lagging(format!("its leader (node {leader}) is not in its configuration")),
            },
        }
    }
}

/// Whether `status` is how a server of a version without `REPLICA_PROGRESS` refuses it.
fn predates_progress(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::InvalidArgument && status.message().starts_with("unknown Raft call")
}

impl TabletManager {
    /// The running voter replicas not caught up in their leader's view (see the module
    /// docs): asks every leader server at once, one batched call each.
    pub async fn lagging(&self) -> Vec<Lagging> {
        let mut lagging = Vec::new();
        let mut asks: Vec<(Arc<Replica>, String, rpb::RaftRequest)> = Vec::new();
        let payload = match serde_json::to_vec(&ProgressRequest { follower: self.node_id() }) {
            Ok(payload) => payload,
            Err(e) => {
                return vec![Lagging { tablet_id: String::new(), why: format!("encoding the question: {e}") }];
            }
        };
        for replica in self.running_replicas() {
            let tablet_id = replica.tablet_id.to_string();
            match replica.local_readiness() {
                Local::Fine => {}
                Local::Lagging(why) => lagging.push(Lagging { tablet_id, why }),
                Local::Ask { leader, leader_uuid } => match self.params.book.get(&leader_uuid) {
                    Some(address) => {
                        let request = rpb::RaftRequest {
                            target_node_id: leader,
                            payload: payload.clone(),
                            group_id: tablet_id,
                            call: rpb::RaftCall::ReplicaProgress as i32,
                        };
                        asks.push((replica, address, request));
                    }
                    None => lagging.push(Lagging {
                        tablet_id,
                        why: format!("the address of its leader {leader_uuid} is unknown"),
                    }),
                },
            }
        }
        let answers = asks.into_iter().map(|(replica, address, request)| async move {
            let answer = self.coalescer.send(&address, request, PROGRESS_TIMEOUT).await;
            let verdict = match answer {
                Ok(payload) => match serde_json::from_slice::<LeaderProgress>(&payload) {
                    Ok(progress) => progress.judge(replica.applied_index()),
                    Err(e) => Err(format!("its leader at {address} answered unreadably: {e}")),
                },
                // A leader of a version that predates the question (a rolling upgrade):
                // the follower's own view is the best there is.
                Err(status) if predates_progress(&status) => replica.caught_up_in_own_view(),
                Err(status) => Err(format!("its leader at {address} did not answer: {}", status.message())),
            };
            verdict.err().map(|why| Lagging { tablet_id: replica.tablet_id.to_string(), why })
        });
        lagging.extend(futures::future::join_all(answers).await.into_iter().flatten());
        lagging.sort_by(|a, b| a.tablet_id.cmp(&b.tablet_id));
        lagging
    }

    /// Answers a follower's `REPLICA_PROGRESS` for a group this server hosts.
    pub(super) fn answer_progress(&self, request: &rpb::RaftRequest) -> Result<Vec<u8>, tonic::Status> {
        if request.target_node_id != self.node_id() {
            return Err(tonic::Status::failed_precondition(format!(
                "REPLICA_PROGRESS for node {} reached node {}",
                request.target_node_id,
                self.node_id()
            )));
        }
        let replica = self
            .replica(&request.group_id)
            .ok_or_else(|| tonic::Status::not_found(format!("no running replica of tablet {}", request.group_id)))?;
        let question: ProgressRequest =
            serde_json::from_slice(&request.payload).map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        serde_json::to_vec(&replica.progress_of(question.follower)).map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader() -> LeaderProgress {
        LeaderProgress {
            leading: true,
            term: 4,
            last_log_index: Some(100),
            committed_index: Some(100),
            matched: Some(100),
        }
    }

    #[test]
    fn only_the_refusal_of_an_older_version_falls_back_to_the_own_view() {
        assert!(predates_progress(&tonic::Status::invalid_argument("unknown Raft call 4 in a batch")));
        assert!(!predates_progress(&tonic::Status::invalid_argument("bad payload")));
        assert!(!predates_progress(&tonic::Status::deadline_exceeded("no answer within 750ms")));
        assert!(!predates_progress(&tonic::Status::not_found("no running replica of tablet t")));
    }

    #[test]
    fn a_follower_is_caught_up_only_as_its_leader_sees_it() {
        assert_eq!(leader().judge(Some(100)), Ok(()));
        assert_eq!(LeaderProgress { matched: Some(100 - READY_MAX_LAG), ..leader() }.judge(Some(100)), Ok(()));
        assert_eq!(leader().judge(Some(100 - READY_MAX_LAG)), Ok(()), "applying the last few");

        let behind = LeaderProgress { matched: Some(100 - READY_MAX_LAG - 1), ..leader() };
        assert!(behind.judge(Some(100)).unwrap_err().contains("up to 100"), "{:?}", behind.judge(Some(100)));
        assert!(leader().judge(Some(100 - READY_MAX_LAG - 1)).unwrap_err().contains("applied"));
        assert!(leader().judge(None).is_err(), "applied nothing of 100");
        assert!(LeaderProgress { leading: false, ..leader() }.judge(Some(100)).is_err());
        assert!(LeaderProgress { matched: None, ..leader() }.judge(Some(100)).is_err(), "not heard from");

        // Only what the leader knows committed must be applied.
        let uncommitted = LeaderProgress { committed_index: Some(50), ..leader() };
        assert_eq!(uncommitted.judge(Some(50)), Ok(()));
        assert!(uncommitted.judge(Some(50 - READY_MAX_LAG - 1)).is_err());
        // An empty group.
        let empty = LeaderProgress { last_log_index: None, committed_index: None, matched: None, ..leader() };
        assert_eq!(empty.judge(None), Ok(()));
    }
}
