//! Quiescence: an idle tablet group stops its Raft timers, so a tablet server hosting many
//! replicas costs almost nothing while they are idle (CockroachDB quiesces idle ranges the
//! same way).
//!
//! Every openraft group ticks about five times per heartbeat interval to drive its leader's
//! heartbeats and its followers' election timers. With 1 000 replicas per server that is
//! 10 000 wake-ups a second and a quarter of a core per idle server, heartbeats coalesced or
//! not; with every group's tick stopped, 2% (docs/benchmarks.md).
//!
//! # Protocol
//! 1. **Quiescing.** A leader whose group had no request for the quiesce delay, whose log is
//!    committed and held whole by every voter, with no learner and no configuration change in
//!    flight, pauses its heartbeats and sends each follower a `QUIESCE` request (its id, term
//!    and last log index, in the coalesced batch calls). A follower accepts only if it follows
//!    that leader in that term with that last log index, and then stops its tick: no election
//!    timer runs. When every follower accepted and nothing reached the group meanwhile, the
//!    leader stops its tick too; otherwise it resumes its heartbeats and tries again after
//!    the next idle delay.
//! 2. **Waking.** Anything that needs the group restarts the tick: a write, scan, schema or
//!    configuration change on the leader; any AppendEntries, Vote, TransferLeader or snapshot
//!    reaching any replica. A woken leader's first tick heartbeats, which wakes its followers.
//! 3. **Failure detection.** A quiesced follower still notices its leader's death: every
//!    heartbeat interval the server pings each server leading one of its quiesced groups (one
//!    call per server, not per group). When one has not answered for an election timeout,
//!    or answers as a new incarnation (it restarted, so its replicas lead nothing), the
//!    groups it led wake and elect as usual.
//! 4. **No disruption.** Followers' leader leases run out while quiet, so a replica that
//!    restarts and campaigns would win and depose a healthy leader. A PreVote therefore
//!    reaching a quiesced follower whose leader answers pings is refused; one reaching the
//!    quiesced leader wakes it (its heartbeats bring the candidate back) and is refused; a
//!    PreVote from the quiesced leader itself (it restarted, it no longer leads) is delivered.
//!
//! Raft's safety does not depend on timers: quiescence changes only when heartbeats and
//! elections happen, and a refused PreVote is what a lost message is.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openraft::rt::watch::WatchReceiver;
use openraft::{RaftMetrics, ServerState};
use serde::{Deserialize, Serialize};

use super::raft_types::TabletTypeConfig;
use super::replica::Replica;

/// Whom a quiesced replica follows (itself when it leads) and in which term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quiesced {
    pub leader: u64,
    /// The leader's tablet server uuid (empty when this replica leads).
    pub leader_uuid: String,
    /// The incarnation of the leader's process when it asked to quiesce: a server answering
    /// pings as another incarnation restarted, and leads nothing any more.
    pub leader_incarnation: String,
    pub term: u64,
}

/// The `QUIESCE` request a leader sends each follower (JSON payload).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuiesceRequest {
    pub leader: u64,
    pub term: u64,
    pub last_log_index: Option<u64>,
    /// The leader process's incarnation (see [`Quiesced::leader_incarnation`]).
    #[serde(default)]
    pub incarnation: String,
}

/// The quiescence state of one replica.
#[derive(Debug)]
pub struct QuietState {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    quiesced: Option<Quiesced>,
    /// Bumped by every request the group serves: a leader quiesces only if it did not move
    /// while the followers were asked.
    activity: u64,
    last_activity: Instant,
}

impl Default for QuietState {
    fn default() -> Self {
        Self { inner: Mutex::new(Inner { quiesced: None, activity: 0, last_activity: Instant::now() }) }
    }
}

impl QuietState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whom the replica follows while quiesced; `None` while awake.
    pub fn quiesced(&self) -> Option<Quiesced> {
        self.lock().quiesced.clone()
    }
}

/// What a leader's metrics say about quiescing its group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderView {
    pub leading: bool,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    /// The effective configuration is committed and not joint.
    pub settled_config: bool,
    pub has_learners: bool,
    /// The last log index each other voter is known to hold (`None`: unknown or nothing).
    pub followers_matched: Vec<Option<u64>>,
}

impl LeaderView {
    /// The view of `node_id`'s metrics.
    pub fn of(m: &RaftMetrics<TabletTypeConfig>, node_id: u64) -> Self {
        let membership = m.membership_config.membership();
        let settled_config = m.membership_config.log_id() == m.committed_membership_config.log_id()
            && membership.get_joint_config().len() == 1;
        let followers_matched = membership
            .voter_ids()
            .filter(|id| *id != node_id)
            .map(|id| m.replication.as_ref().and_then(|r| r.get(&id)).and_then(|l| l.as_ref()).map(|l| l.index))
            .collect();
        Self {
            leading: m.state == ServerState::Leader && m.current_leader == Some(node_id),
            term: m.current_term,
            last_log_index: m.last_log_index,
            committed_index: m.local_committed.as_ref().map(|l| l.index),
            settled_config,
            has_learners: membership.learner_ids().next().is_some(),
            followers_matched,
        }
    }

    /// Why the group must stay awake, or `None` when it may quiesce.
    pub fn keeps_awake(&self) -> Option<&'static str> {
        if !self.leading {
            Some("not the leader")
        } else if self.last_log_index.is_none() || self.committed_index != self.last_log_index {
            Some("entries not committed")
        } else if !self.settled_config {
            Some("configuration change in flight")
        } else if self.has_learners {
            Some("a learner catches up")
        } else if self.followers_matched.iter().any(|m| *m != self.last_log_index) {
            Some("a follower lacks entries")
        } else {
            None
        }
    }
}

/// Whether a follower with these metrics may quiesce on `request`; the reason if not.
pub fn follower_accepts(m: &RaftMetrics<TabletTypeConfig>, request: &QuiesceRequest) -> Result<(), String> {
    if m.state != ServerState::Follower {
        return Err(format!("the replica is {:?}, not a follower", m.state));
    }
    if m.current_leader != Some(request.leader) || m.current_term != request.term {
        return Err(format!(
            "the replica follows {:?} in term {}, not {} in term {}",
            m.current_leader, m.current_term, request.leader, request.term
        ));
    }
    if m.last_log_index != request.last_log_index {
        return Err(format!(
            "the replica's last log index is {:?}, not {:?}",
            m.last_log_index, request.last_log_index
        ));
    }
    Ok(())
}

impl Replica {
    /// Whom this replica follows while quiesced; `None` while awake.
    pub fn quiesced(&self) -> Option<Quiesced> {
        self.quiet.quiesced()
    }

    /// Restarts the group's timers if they were stopped.
    pub fn wake(&self, why: &'static str) {
        let mut inner = self.quiet.lock();
        if inner.quiesced.take().is_some() {
            self.raft.runtime_config().tick(true);
            tracing::debug!(tablet = %self.tablet_id, why, "woke");
        }
    }

    /// A request for the group: wakes it and restarts its idle delay.
    pub fn note_activity(&self, why: &'static str) {
        self.wake(why);
        let mut inner = self.quiet.lock();
        inner.activity = inner.activity.wrapping_add(1);
        inner.last_activity = Instant::now();
    }

    /// The `QUIESCE` request to send this leader's followers, if its group has been idle
    /// for `idle_after` and may quiesce; with the activity count to check afterwards.
    pub fn quiesce_request(&self, idle_after: Duration) -> Option<(QuiesceRequest, u64)> {
        let inner = self.quiet.lock();
        if inner.quiesced.is_some() || inner.last_activity.elapsed() < idle_after {
            return None;
        }
        // Called for every replica every heartbeat interval: read the metrics in place.
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        if m.state != ServerState::Leader {
            return None;
        }
        let view = LeaderView::of(&m, self.node_id);
        if view.keeps_awake().is_some() {
            return None;
        }
        let request = QuiesceRequest {
            leader: self.node_id,
            term: view.term,
            last_log_index: view.last_log_index,
            incarnation: String::new(),
        };
        Some((request, inner.activity))
    }

    /// Pauses heartbeats while the followers are asked to quiesce.
    pub fn pause_heartbeats(&self) {
        self.raft.runtime_config().heartbeat(false);
    }

    /// Ends a quiesce round of this leader: stops its tick if every follower accepted
    /// (`accepted`) and the group did not move since `request` (same activity count, term
    /// and last log index); otherwise resumes heartbeats. Returns whether it quiesced.
    pub fn finish_quiesce(&self, request: &QuiesceRequest, activity: u64, accepted: bool) -> bool {
        let mut inner = self.quiet.lock();
        let view = LeaderView::of(&self.raft.metrics().borrow_watched(), self.node_id);
        let unchanged = inner.activity == activity
            && view.keeps_awake().is_none()
            && view.term == request.term
            && view.last_log_index == request.last_log_index;
        let quiesce = accepted && unchanged && inner.quiesced.is_none();
        if quiesce {
            self.raft.runtime_config().tick(false);
            inner.quiesced = Some(Quiesced {
                leader: self.node_id,
                leader_uuid: String::new(),
                leader_incarnation: request.incarnation.clone(),
                term: request.term,
            });
        }
        self.raft.runtime_config().heartbeat(true);
        quiesce
    }

    /// A follower's answer to its leader's `QUIESCE`: stops its tick if it accepts.
    pub fn accept_quiesce(&self, request: &QuiesceRequest) -> Result<(), String> {
        let mut inner = self.quiet.lock();
        let leader_uuid = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            follower_accepts(&m, request)?;
            m.membership_config.membership().get_node(&request.leader).map(|n| n.uuid.clone())
        }
        .ok_or_else(|| format!("node {} is not in the replica's configuration", request.leader))?;
        self.raft.runtime_config().tick(false);
        inner.quiesced = Some(Quiesced {
            leader: request.leader,
            leader_uuid,
            leader_incarnation: request.incarnation.clone(),
            term: request.term,
        });
        Ok(())
    }
}

/// When each server leading quiesced groups here last answered a ping, and as which
/// incarnation.
#[derive(Debug, Default)]
pub struct LeaderLiveness {
    answered: Mutex<HashMap<String, Answered>>,
}

#[derive(Debug)]
struct Answered {
    at: Instant,
    incarnation: Option<String>,
}

impl LeaderLiveness {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Answered>> {
        self.answered.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `address` answered now as `incarnation`.
    pub fn answered(&self, address: &str, incarnation: &str) {
        self.lock()
            .insert(address.to_string(), Answered { at: Instant::now(), incarnation: Some(incarnation.to_string()) });
    }

    /// The incarnation `address` last answered as, if it ever answered.
    pub fn incarnation(&self, address: &str) -> Option<String> {
        self.lock().get(address).and_then(|a| a.incarnation.clone())
    }

    /// Whether `address` answered within `timeout`.
    pub fn alive(&self, address: &str, timeout: Duration) -> bool {
        self.lock().get(address).is_some_and(|a| a.incarnation.is_some() && a.at.elapsed() < timeout)
    }

    /// Whether `address` has not answered for `timeout`. A server seen for the first time
    /// starts its grace period now.
    pub fn silent_for(&self, address: &str, timeout: Duration) -> bool {
        let mut answered = self.lock();
        let entry = answered.entry(address.to_string()).or_insert(Answered { at: Instant::now(), incarnation: None });
        entry.at.elapsed() >= timeout
    }

    /// Forgets every server but `keep` (no quiesced group follows them any more).
    pub fn retain(&self, keep: &std::collections::HashSet<String>) {
        self.lock().retain(|address, _| keep.contains(address));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> LeaderView {
        LeaderView {
            leading: true,
            term: 3,
            last_log_index: Some(7),
            committed_index: Some(7),
            settled_config: true,
            has_learners: false,
            followers_matched: vec![Some(7), Some(7)],
        }
    }

    #[test]
    fn only_a_settled_fully_replicated_leader_quiesces() {
        assert_eq!(ready().keeps_awake(), None);
        type Change = fn(&mut LeaderView);
        let cases: [(&str, Change); 6] = [
            ("not the leader", |v| v.leading = false),
            ("entries not committed", |v| v.committed_index = Some(6)),
            ("entries not committed", |v| (v.last_log_index, v.committed_index) = (None, None)),
            ("configuration change in flight", |v| v.settled_config = false),
            ("a learner catches up", |v| v.has_learners = true),
            ("a follower lacks entries", |v| v.followers_matched[1] = Some(6)),
        ];
        for (why, change) in cases {
            let mut view = ready();
            change(&mut view);
            assert_eq!(view.keeps_awake(), Some(why), "{view:?}");
        }
        let mut unknown = ready();
        unknown.followers_matched[0] = None;
        assert_eq!(unknown.keeps_awake(), Some("a follower lacks entries"));
    }

    #[test]
    fn a_server_is_silent_only_after_its_grace_period() {
        let liveness = LeaderLiveness::default();
        assert!(!liveness.alive("a:1", Duration::from_secs(1)), "never answered");
        assert!(!liveness.silent_for("a:1", Duration::from_secs(60)), "first seen: grace period starts");
        assert!(liveness.silent_for("a:1", Duration::ZERO));
        assert_eq!(liveness.incarnation("a:1"), None);
        liveness.answered("a:1", "run-1");
        assert!(liveness.alive("a:1", Duration::from_secs(60)));
        assert!(!liveness.silent_for("a:1", Duration::from_secs(60)));
        liveness.answered("a:1", "run-2");
        assert_eq!(liveness.incarnation("a:1").as_deref(), Some("run-2"));
        liveness.retain(&Default::default());
        assert!(!liveness.alive("a:1", Duration::from_secs(60)), "forgotten");
    }
}
