//! Master membership changes: AddMaster (learner until caught up, then voter), RemoveMaster
//! (leadership moved away first), StepDown. One change at a time; never below quorum.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers, Membership, RaftMetrics};

use super::error::MasterError;
use super::node::MasterNode;
use super::raft_types::TypeConfig;
use crate::ids::MasterId;
use crate::pb::raft as raft_pb;
use crate::pb::raft::raft_service_client::RaftServiceClient;

/// How long a leadership transfer may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);

/// A member named by address or node id.
#[derive(Clone, Debug)]
pub enum MemberRef {
    Address(String),
    Id(MasterId),
}

/// Majority of `n` voters.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

impl MasterNode {
    /// Takes the one-change-at-a-time lock. If an earlier change is still uncommitted, waits
    /// for it when `is_retry` says it already is the change asked for (a retried request),
    /// and refuses otherwise.
    async fn begin_change(
        &self,
        is_retry: impl Fn(&Membership<MasterId, BasicNode>) -> bool,
    ) -> Result<tokio::sync::MutexGuard<'_, ()>, MasterError> {
        self.ensure_leader()?;
        let guard = self
            .membership_lock
            .try_lock()
            .map_err(|_| MasterError::MembershipChangeInProgress("another AddMaster/RemoveMaster is running".into()))?;
        self.finish_joint_config().await?;
        let m = self.raft_metrics();
        if Self::membership_change_pending(&m) {
            if !is_retry(m.membership_config.membership()) {
                return Err(MasterError::MembershipChangeInProgress(
                    "the previous membership change is not committed yet".into(),
                ));
            }
            self.wait_metrics(self.config.catch_up_timeout, "the pending membership change to commit", |m| {
                !Self::membership_change_pending(m)
            })
            .await?;
        }
        Ok(guard)
    }

    /// Holds off membership changes on this master (AddMaster, RemoveMaster, finishing a
    /// joint config) while the guard lives; for tools and tests that change the membership
    /// through the Raft handle directly.
    pub async fn lock_membership(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.membership_lock.lock().await
    }

    /// Finishes a committed joint config: openraft changes voters in two entries (joint, then
    /// the target alone), and a leader change between the two leaves the group joint, which
    /// would refuse every later change. A leader that finds its committed membership joint
    /// and nothing uncommitted proposes the joint config's target (`AddVoterIds` of nobody
    /// moves to the last voter set). Call with the membership lock held. Returns whether it
    /// finished one.
    pub(super) async fn finish_joint_config(&self) -> Result<bool, MasterError> {
        self.ensure_leader()?;
        let m = self.raft_metrics();
        if !committed_joint(&m) {
            return Ok(false);
        }
        let configs = m.membership_config.get_joint_config().clone();
        tracing::warn!(?configs, "finishing a joint membership config left by an interrupted change");
        self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::new())).await?;
        Ok(true)
    }

    /// Asks the master at `address` for its node id.
    pub async fn fetch_node_info(&self, address: &str) -> Result<raft_pb::NodeInfo, MasterError> {
        let unreachable = |message: String| MasterError::PeerUnreachable { address: address.to_string(), message };
        let channel = self.pool.get(address).map_err(|e| unreachable(e.to_string()))?;
        let mut request = tonic::Request::new(raft_pb::GetNodeInfoRequest {});
        request.set_timeout(Duration::from_secs(5));
        let mut client = RaftServiceClient::new(channel);
        let info = crate::rpc::with_deadline(Duration::from_secs(5), client.get_node_info(request))
            .await
            .map_err(|s| unreachable(s.message().to_string()))?
            .into_inner();
        Ok(info)
    }

    /// Adds the master at `address`: learner until caught up, then voter. Idempotent.
    pub async fn add_master(&self, address: &str) -> Result<MasterId, MasterError> {
        self.ensure_leader()?;
        let id = self.fetch_node_info(address).await?.node_id;
        let _guard = self.begin_change(|pending| pending.get_node(&id).is_some()).await?;
        let m = self.raft_metrics();
        let membership = m.membership_config.membership();
        if let Some((other, _)) = membership.nodes().find(|(nid, n)| n.addr == address && **nid != id) {
            return Err(MasterError::InvalidArgument(format!(
                "{address} is already member {other}, but the master there now has node id {id} \
                 (its data was lost?): remove member {other} first, then add it again"
            )));
        }
        if membership.voter_ids().any(|v| v == id) {
            return Ok(id);
        }
        if membership.get_node(&id).is_none() {
            tracing::info!(node = id, %address, "adding master as learner");
            let add = self.raft.add_learner(id, BasicNode::new(address), true);
            match tokio::time::timeout(self.config.catch_up_timeout, add).await {
                Ok(result) => {
                    result.map_err(|e| self.write_error(e))?;
                }
                Err(_) => {
                    return Err(MasterError::Timeout(format!(
                        "master {id} at {address} did not catch up within {:?}; it stays a learner, \
                         retry AddMaster or remove it",
                        self.config.catch_up_timeout
                    )));
                }
            }
        }
        tracing::info!(node = id, %address, "promoting learner to voter");
        self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await?;
        Ok(id)
    }

    /// Removes a member. If it is this leader, leadership is transferred first and the caller
    /// gets NOT_THE_LEADER pointing at the new leader, where the retried request completes.
    pub async fn remove_master(&self, member: MemberRef) -> Result<MasterId, MasterError> {
        self.ensure_leader()?;
        // Resolve against the committed membership: a retried removal may be pending.
        let id = resolve(self.raft_metrics().committed_membership_config.membership(), &member)?;
        let guard = self.begin_change(|pending| pending.get_node(&id).is_none()).await?;
        let m = self.liveness_view().await?;
        if m.membership_config.membership().get_node(&id).is_none() {
            return Ok(id);
        }
        let voters: BTreeSet<MasterId> = m.membership_config.membership().voter_ids().collect();
        if !voters.contains(&id) {
            tracing::info!(node = id, "removing learner");
            self.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id]))).await?;
            return Ok(id);
        }
        let remaining: Vec<MasterId> = voters.iter().copied().filter(|v| *v != id).collect();
        if remaining.is_empty() {
            return Err(MasterError::WouldLoseQuorum("cannot remove the only voter".into()));
        }
        let live: Vec<MasterId> = remaining.iter().copied().filter(|v| self.is_live(&m, *v)).collect();
        if live.len() < majority(remaining.len()) {
            return Err(MasterError::WouldLoseQuorum(format!(
                "removing {id} leaves {} voters of which only {} are live; a majority ({}) must stay live",
                remaining.len(),
                live.len(),
                majority(remaining.len())
            )));
        }
        if id == self.id {
            drop(guard);
            let target = self.best_successor(&m, &live)?;
            self.transfer_leadership(target).await?;
            return Err(self.not_leader());
        }
        tracing::info!(node = id, "removing voter");
        self.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id]))).await?;
        Ok(id)
    }

    /// Hands leadership to `target` (or the most caught-up live voter) and waits for it.
    pub async fn step_down(&self, target: Option<MasterId>) -> Result<MasterId, MasterError> {
        self.ensure_leader()?;
        let m = self.liveness_view().await?;
        let voters: Vec<MasterId> = m.membership_config.membership().voter_ids().filter(|v| *v != self.id).collect();
        let target = match target {
            Some(t) if voters.contains(&t) => t,
            Some(t) => return Err(MasterError::UnknownMember(format!("{t} is not a voter other than the leader"))),
            None => {
                let live: Vec<MasterId> = voters.iter().copied().filter(|v| self.is_live(&m, *v)).collect();
                self.best_successor(&m, &live)?
            }
        };
        self.transfer_leadership(target).await
    }

    /// Raft metrics whose per-member liveness can be trusted: a new leader has heard from
    /// its followers only once they answered its first heartbeats, so until every voter
    /// answered or one liveness period passed, silence proves nothing.
    async fn liveness_view(&self) -> Result<RaftMetrics<TypeConfig>, MasterError> {
        loop {
            let m = self.raft_metrics();
            let all_live = m.membership_config.membership().voter_ids().all(|v| self.is_live(&m, v));
            if all_live || self.leadership_age() >= self.config.member_liveness_timeout {
                return Ok(m);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.ensure_leader()?;
        }
    }

    fn best_successor(&self, m: &RaftMetrics<TypeConfig>, candidates: &[MasterId]) -> Result<MasterId, MasterError> {
        let matched = |id: &MasterId| {
            m.replication.as_ref().and_then(|r| r.get(id).cloned().flatten()).map(|l| l.index).unwrap_or(0)
        };
        candidates
            .iter()
            .filter(|id| **id != self.id)
            .max_by_key(|id| (matched(id), **id))
            .copied()
            .ok_or_else(|| MasterError::WouldLoseQuorum("no live voter to hand leadership to".into()))
    }

    async fn transfer_leadership(&self, target: MasterId) -> Result<MasterId, MasterError> {
        tracing::info!(to = target, "transferring leadership");
        self.raft.trigger().transfer_leader(target).await.map_err(|e| MasterError::Internal(e.to_string()))?;
        let m = self
            .wait_metrics(TRANSFER_TIMEOUT, "leadership transfer", |m| m.current_leader.is_some_and(|l| l != self.id))
            .await?;
        Ok(m.current_leader.unwrap_or(target))
    }

    async fn change_membership(&self, change: ChangeMembers<MasterId, BasicNode>) -> Result<(), MasterError> {
        let change = self.raft.change_membership(change, false);
        match tokio::time::timeout(self.config.rpc_timeout, change).await {
            Ok(result) => result.map(|_| ()).map_err(|e| self.write_error(e)),
            Err(_) => Err(MasterError::Timeout("the membership change was not committed in time".into())),
        }
    }
}

/// True when the membership is joint and committed (no later membership entry pending).
fn committed_joint(m: &RaftMetrics<TypeConfig>) -> bool {
    m.membership_config.log_id() == m.committed_membership_config.log_id()
        && m.membership_config.get_joint_config().len() > 1
}

/// Runs on every master until Raft stops: whenever this master leads with a committed joint
/// config and no membership change runs, finishes the joint config, so the group does not
/// stay joint (and report a change in progress) until someone asks for another change.
pub async fn finish_joint_configs(node: std::sync::Arc<MasterNode>) {
    use openraft::rt::watch::WatchReceiver;
    let mut rx = node.raft.metrics();
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let joint = {
            let m = rx.borrow_watched();
            m.state == openraft::ServerState::Leader && committed_joint(&m)
        };
        if joint
            && let Ok(_guard) = node.membership_lock.try_lock()
            && let Err(e) = node.finish_joint_config().await
        {
            tracing::warn!(error = %e, "could not finish the joint membership config yet; retrying");
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = retry.tick() => {}
        }
    }
}

fn resolve(membership: &Membership<MasterId, BasicNode>, member: &MemberRef) -> Result<MasterId, MasterError> {
    let found = match member {
        MemberRef::Id(id) => membership.get_node(id).map(|_| *id),
        MemberRef::Address(addr) => membership.nodes().find(|(_, n)| &n.addr == addr).map(|(id, _)| *id),
    };
    found.ok_or_else(|| MasterError::UnknownMember(format!("no master {member:?} in the current membership")))
}

#[cfg(test)]
mod tests {
    use super::majority;

    #[test]
    fn majorities() {
        assert_eq!([1, 2, 3, 4, 5].map(majority), [1, 2, 2, 3, 3]);
    }
}
