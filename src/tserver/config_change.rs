//! A tablet leader's part of a replica move (Kudu's 3-4-3 re-replication): add the joining
//! server as a non-voter, promote it once it caught up, then remove the leaving one. Each
//! ChangeConfig call looks at the leader's current configuration and takes at most one step
//! ([`plan`], pure), so a repeated or late call is harmless and a move interrupted by a
//! crash or a master leader change resumes where the configuration stands.

use std::collections::{BTreeMap, BTreeSet};

use openraft::ChangeMembers;
use openraft::error::{ClientWriteError, RaftError};

use super::error::TabletServiceError;
use super::raft_types::{ReplicaNode, TabletTypeConfig};
use super::replica::Replica;
use crate::ids::TServerId;
use crate::pb::tserver as tpb;

/// A non-voter is promoted once it lacks at most this many of the leader's log entries.
pub const MAX_PROMOTION_LAG: u64 = 100;

/// A replica move as a ChangeConfig request asks it, in Raft node ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoveRequest {
    /// The joining node, if any.
    pub add: Option<u64>,
    /// The leaving node, if any.
    pub remove: Option<u64>,
}

/// The leader's configuration as a step is planned on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigView {
    /// This replica's node id (the leader).
    pub leader: u64,
    pub voters: BTreeSet<u64>,
    pub learners: BTreeSet<u64>,
    /// Whether the last configuration change is not committed yet (or joint).
    pub changing: bool,
    /// How many log entries each non-voter lacks (`None`: nothing replicated yet).
    pub lag: BTreeMap<u64, Option<u64>>,
}

/// The next step of a move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    AddLearner(u64),
    /// The non-voter lacks this many entries (`u64::MAX`: it has received nothing yet).
    WaitCatchUp {
        lag: u64,
    },
    Promote(u64),
    /// Remove a voter (the joining one is a voter by now).
    RemoveVoter(u64),
    /// Remove a non-voter (a move given up before promotion).
    RemoveLearner(u64),
    /// The leaving node is this leader: hand leadership to another voter first.
    TransferLeadership {
        to: u64,
    },
    /// The previous change is still being committed; try again shortly.
    Wait,
    Complete,
}

/// Why a move cannot be advanced at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("a replica move needs a server to add or to remove")]
    Empty,
    #[error("the same server cannot be both added and removed")]
    SameServer,
    #[error("removing voter {0} without adding a replacement would shrink the group")]
    WouldShrink(u64),
}

/// The one step that advances `request` from the configuration `view`.
pub fn plan(view: &ConfigView, request: MoveRequest) -> Result<Step, PlanError> {
    if request.add.is_some() && request.add == request.remove {
        return Err(PlanError::SameServer);
    }
    let member = |id: u64| view.voters.contains(&id) || view.learners.contains(&id);
    let step = match (request.add, request.remove) {
        (None, None) => return Err(PlanError::Empty),
        (Some(add), _) if !member(add) => Step::AddLearner(add),
        (Some(add), _) if view.learners.contains(&add) => match view.lag.get(&add).copied().flatten() {
            Some(lag) if lag <= MAX_PROMOTION_LAG => Step::Promote(add),
            lag => Step::WaitCatchUp { lag: lag.unwrap_or(u64::MAX) },
        },
        // `add` is a voter: remove the leaving one, if it is still there.
        (Some(add), Some(remove)) if view.voters.contains(&remove) => {
            if remove == view.leader {
                Step::TransferLeadership { to: add }
            } else {
                Step::RemoveVoter(remove)
            }
        }
        (_, Some(remove)) if view.learners.contains(&remove) => Step::RemoveLearner(remove),
        (None, Some(remove)) if view.voters.contains(&remove) => return Err(PlanError::WouldShrink(remove)),
        _ => Step::Complete,
    };
    // Only one configuration change at a time: a step that changes it waits for the last.
    let changes = !matches!(step, Step::WaitCatchUp { .. } | Step::Complete | Step::TransferLeadership { .. });
    Ok(if changes && view.changing { Step::Wait } else { step })
}

impl Replica {
    /// The leader's configuration (its latest, possibly uncommitted one) and its
    /// non-voters' lag.
    fn config_view(&self) -> ConfigView {
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let learners: BTreeSet<u64> = membership.learner_ids().collect();
        let last = m.last_log_index.unwrap_or(0);
        let matched = |id: &u64| m.replication.as_ref()?.get(id)?.as_ref().map(|l| l.index);
        let lag = learners.iter().map(|id| (*id, matched(id).map(|i| last.saturating_sub(i)))).collect();
        ConfigView {
            leader: self.node_id,
            voters: membership.voter_ids().collect(),
            learners,
            changing: m.membership_config.log_id() != m.committed_membership_config.log_id()
                || m.membership_config.get_joint_config().len() > 1,
            lag,
        }
    }

    /// Advances a replica move by at most one configuration change (see the module docs);
    /// `add` is the joining server with its RPC address. Only the leader answers.
    pub async fn change_config(
        &self,
        add: Option<(TServerId, String)>,
        remove: Option<TServerId>,
    ) -> Result<(tpb::ConfigChangeStep, u64), TabletServiceError> {
        self.ensure_leader()?;
        self.note_activity("replica move");
        if let Some((uuid, address)) = &add {
            self.book.set(uuid.as_str(), address);
        }
        let request = MoveRequest {
            add: add.as_ref().map(|(uuid, _)| uuid.raft_node_id()),
            remove: remove.as_ref().map(TServerId::raft_node_id),
        };
        let step =
            plan(&self.config_view(), request).map_err(|e| TabletServiceError::InvalidArgument(e.to_string()))?;
        tracing::debug!(tablet = %self.tablet_id, ?step, "replica move step");
        let node = |uuid: &TServerId| ReplicaNode { uuid: uuid.to_string() };
        let done = match step {
            Step::AddLearner(id) => {
                let Some((uuid, _)) = &add else { return Err(self.internal("no server to add")) };
                self.membership_write("adding a non-voter", self.raft.add_learner(id, node(uuid), false)).await?;
                tracing::info!(tablet = %self.tablet_id, ts = %uuid, "added a non-voter");
                tpb::ConfigChangeStep::LearnerAdded
            }
            Step::WaitCatchUp { lag } => return Ok((tpb::ConfigChangeStep::CatchingUp, lag)),
            Step::Promote(id) => {
                let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
                self.membership_write("promoting a non-voter", self.raft.change_membership(change, false)).await?;
                tracing::info!(tablet = %self.tablet_id, node = id, "promoted the non-voter to voter");
                tpb::ConfigChangeStep::Promoted
            }
            Step::RemoveVoter(id) => {
                let change = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
                self.membership_write("removing a voter", self.raft.change_membership(change, false)).await?;
                tracing::info!(tablet = %self.tablet_id, node = id, "removed the replaced voter");
                tpb::ConfigChangeStep::Removed
            }
            Step::RemoveLearner(id) => {
                let change = ChangeMembers::RemoveNodes(BTreeSet::from([id]));
                self.membership_write("removing a non-voter", self.raft.change_membership(change, false)).await?;
                tracing::info!(tablet = %self.tablet_id, node = id, "removed the non-voter of a given-up move");
                tpb::ConfigChangeStep::Removed
            }
            Step::TransferLeadership { to } => {
                tracing::info!(tablet = %self.tablet_id, to, "the leader leaves its group: handing leadership over");
                if let Err(e) = self.raft.trigger().transfer_leader(to).await {
                    return Err(TabletServiceError::Unavailable(format!(
                        "tablet {}: Raft stopped: {e}",
                        self.tablet_id
                    )));
                }
                return Err(self.not_leader());
            }
            Step::Wait => {
                return Err(TabletServiceError::Unavailable(format!(
                    "tablet {}: the previous configuration change is not committed yet",
                    self.tablet_id
                )));
            }
            Step::Complete => tpb::ConfigChangeStep::Complete,
        };
        Ok((done, 0))
    }

    /// Awaits a membership change within the request timeout.
    async fn membership_write<F>(&self, what: &'static str, change: F) -> Result<(), TabletServiceError>
    where
        F: std::future::Future<
                Output = Result<
                    openraft::raft::ClientWriteResponse<TabletTypeConfig>,
                    RaftError<TabletTypeConfig, ClientWriteError<TabletTypeConfig>>,
                >,
            >,
    {
        match tokio::time::timeout(self.request_timeout, change).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                Err(TabletServiceError::Unavailable(format!("tablet {}: {what}: {e}", self.tablet_id)))
            }
            Ok(Err(e)) => Err(self.write_error(e)),
            Err(_) => Err(TabletServiceError::TimedOut {
                tablet_id: self.tablet_id.to_string(),
                what,
                after: self.request_timeout,
            }),
        }
    }

    fn internal(&self, message: &str) -> TabletServiceError {
        TabletServiceError::Internal(format!("tablet {}: {message}", self.tablet_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEADER: u64 = 1;

    fn view(voters: &[u64], learners: &[(u64, Option<u64>)], changing: bool) -> ConfigView {
        ConfigView {
            leader: LEADER,
            voters: voters.iter().copied().collect(),
            learners: learners.iter().map(|(id, _)| *id).collect(),
            changing,
            lag: learners.iter().copied().collect(),
        }
    }

    fn mv(add: Option<u64>, remove: Option<u64>) -> MoveRequest {
        MoveRequest { add, remove }
    }

    #[test]
    fn a_move_goes_add_catch_up_promote_remove_complete() {
        let replace = mv(Some(4), Some(3));
        let cases = [
            ("not yet a member", view(&[1, 2, 3], &[], false), Ok(Step::AddLearner(4))),
            ("nothing replicated yet", view(&[1, 2, 3], &[(4, None)], false), Ok(Step::WaitCatchUp { lag: u64::MAX })),
            (
                "far behind",
                view(&[1, 2, 3], &[(4, Some(MAX_PROMOTION_LAG + 1))], false),
                Ok(Step::WaitCatchUp { lag: MAX_PROMOTION_LAG + 1 }),
            ),
            ("caught up", view(&[1, 2, 3], &[(4, Some(MAX_PROMOTION_LAG))], false), Ok(Step::Promote(4))),
            ("promoted", view(&[1, 2, 3, 4], &[], false), Ok(Step::RemoveVoter(3))),
            ("removed", view(&[1, 2, 4], &[], false), Ok(Step::Complete)),
            // The leaving server was removed by someone else first: nothing to do.
            ("left already", view(&[1, 2], &[(4, Some(0))], false), Ok(Step::Promote(4))),
            // Kept as a learner by an earlier change: removed as one.
            ("leaving as a learner", view(&[1, 2, 4], &[(3, Some(0))], false), Ok(Step::RemoveLearner(3))),
        ];
        for (name, view, expected) in cases {
            assert_eq!(plan(&view, replace), expected, "{name}");
        }
    }

    #[test]
    fn one_change_at_a_time_and_the_leader_leaves_last() {
        let replace = mv(Some(4), Some(3));
        assert_eq!(plan(&view(&[1, 2, 3], &[], true), replace), Ok(Step::Wait));
        assert_eq!(plan(&view(&[1, 2, 3, 4], &[], true), replace), Ok(Step::Wait));
        // Waiting for a catch-up, or having nothing to do, needs no change.
        assert_eq!(plan(&view(&[1, 2, 3], &[(4, Some(500))], true), replace), Ok(Step::WaitCatchUp { lag: 500 }));
        assert_eq!(plan(&view(&[1, 2, 4], &[], true), replace), Ok(Step::Complete));
        // Replacing the leader itself: leadership goes to the new voter first.
        assert_eq!(
            plan(&view(&[1, 2, 4], &[], false), mv(Some(4), Some(LEADER))),
            Ok(Step::TransferLeadership { to: 4 })
        );
    }

    #[test]
    fn giving_up_removes_only_a_learner_and_bad_requests_are_refused() {
        assert_eq!(plan(&view(&[1, 2, 3], &[(4, None)], false), mv(None, Some(4))), Ok(Step::RemoveLearner(4)));
        assert_eq!(plan(&view(&[1, 2, 3], &[], false), mv(None, Some(4))), Ok(Step::Complete));
        assert_eq!(plan(&view(&[1, 2, 3], &[], false), mv(None, Some(3))), Err(PlanError::WouldShrink(3)));
        assert_eq!(plan(&view(&[1, 2, 3], &[], false), mv(None, None)), Err(PlanError::Empty));
        assert_eq!(plan(&view(&[1, 2, 3], &[], false), mv(Some(3), Some(3))), Err(PlanError::SameServer));
        // Only adding: add, catch up, promote, done.
        let add = mv(Some(4), None);
        assert_eq!(plan(&view(&[1, 2], &[], false), add), Ok(Step::AddLearner(4)));
        assert_eq!(plan(&view(&[1, 2], &[(4, Some(0))], false), add), Ok(Step::Promote(4)));
        assert_eq!(plan(&view(&[1, 2, 4], &[], false), add), Ok(Step::Complete));
    }
}
