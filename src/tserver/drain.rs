//! Draining: before a tablet server stops (SIGTERM from `kubectl drain`, a pod deletion or a
//! rolling restart), it hands each tablet leadership it holds to a caught-up follower, as
//! masters hand over leadership in their preStop hook. Without it every tablet the server
//! led waits an election timeout (1.5 to 3 s by default) for a new leader, and writes to it
//! stall that long.
//!
//! 1. **No new leaderships.** Every replica here stops campaigning (openraft's `elect` off),
//!    the server refuses `TransferLeader` requests naming it, and its heartbeats tell the
//!    masters it drains (one is sent at once), so the leader master's leader balancing moves
//!    no leadership to it. It still votes and replicates: the groups keep their majorities.
//! 2. **Hand over.** Every round ([`ROUND`]), each group this server still leads hands its
//!    leadership to a voter whose server answers and that holds the leader's whole log in
//!    the leader's view (openraft ignores a transfer to a voter whose log is shorter). A
//!    group whose followers are reachable but a few entries behind (writes in flight) is
//!    tried again next round; a group with no reachable follower (its peers are down, or it
//!    has a single replica) is skipped: it keeps its leader until the server stops, exactly
//!    as without draining. A transfer that has not completed after an election timeout is
//!    started again.
//! 3. **Bounded.** The whole drain ends after the configured limit, well inside the pod's
//!    termination grace period, whatever is left; then the server stops.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::rt::watch::WatchReceiver;
use tokio::time::Instant;

use super::readiness::READY_MAX_LAG;
use super::replica::Replica;
use super::tablets::TabletManager;
use crate::ids::TServerId;

/// Interval between two hand-over rounds.
pub const ROUND: Duration = Duration::from_millis(20);

/// How long a drain waits for a follower's server to answer a ping.
pub const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// What a drain did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Groups this server led when the drain began.
    pub led: usize,
    /// Groups it still led when the drain ended.
    pub still_led: usize,
    /// Leadership transfers started.
    pub transfers: usize,
}

/// Whom a leader can hand its leadership to now.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Candidate {
    /// A reachable voter holding the leader's whole log.
    Ready(String),
    /// Reachable voters exist, a few entries behind: try again next round.
    CatchingUp,
    /// No reachable voter is close: keep the leadership.
    None,
}

/// One voter of a leader's group other than the leader, as a drain sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Follower {
    uuid: String,
    /// Its server answered the drain's ping.
    reachable: bool,
    /// The last log index the leader knows it holds (0: none known).
    matched: u64,
}

/// Whom a leader whose log ends at `last` hands its leadership to, among `followers`.
fn choose(last: u64, followers: &[Follower]) -> Candidate {
    let reachable = || followers.iter().filter(|f| f.reachable);
    if let Some(f) = reachable().find(|f| f.matched >= last) {
        return Candidate::Ready(f.uuid.clone());
    }
    if reachable().any(|f| f.matched.saturating_add(READY_MAX_LAG) >= last) {
        Candidate::CatchingUp
    } else {
        Candidate::None
    }
}

impl Replica {
    /// The voter to hand this leader's leadership to; `reachable` says whether the server
    /// with a uuid answers.
    fn transfer_candidate(&self, reachable: &dyn Fn(&str) -> bool) -> Candidate {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        let followers: Vec<Follower> = membership
            .voter_ids()
            .filter(|id| *id != self.node_id)
            .filter_map(|id| {
                let uuid = membership.get_node(&id)?.uuid.clone();
                let matched = m.replication.as_ref().and_then(|r| r.get(&id)).and_then(|l| l.as_ref()).map(|l| l.index);
                Some(Follower { reachable: reachable(&uuid), uuid, matched: matched.unwrap_or(0) })
            })
            .collect();
        choose(m.last_log_index.unwrap_or(0), &followers)
    }
}

impl TabletManager {
    /// Whether this server is draining (it takes no new leaderships).
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Stops every replica here from campaigning; `TransferLeader` requests naming this
    /// server are refused from now on, and heartbeats say it drains.
    pub fn stop_campaigning(&self) {
        self.draining.store(true, Ordering::SeqCst);
        for replica in self.running_replicas() {
            replica.raft.runtime_config().elect(false);
        }
    }

    /// Hands every leadership this server holds to a caught-up follower, for at most
    /// `limit` (see the module docs).
    pub async fn drain_leaderships(&self, limit: Duration) -> DrainOutcome {
        let deadline = Instant::now() + limit;
        self.stop_campaigning();
        let leaders =
            || -> Vec<Arc<Replica>> { self.running_replicas().into_iter().filter(|r| r.is_leader()).collect() };
        let mut outcome = DrainOutcome { led: leaders().len(), ..DrainOutcome::default() };
        let reachable = self.reachable_followers(&leaders()).await;
        let is_reachable = |uuid: &str| reachable.contains(uuid);
        let retry_after = self.election_timeout();
        let mut started: HashMap<String, Instant> = HashMap::new();
        let mut skipped: HashSet<String> = HashSet::new();
        loop {
            let pending: Vec<Arc<Replica>> =
                leaders().into_iter().filter(|r| !skipped.contains(r.tablet_id.as_str())).collect();
            if pending.is_empty() || Instant::now() >= deadline {
                break;
            }
            for replica in pending {
                let tablet = replica.tablet_id.to_string();
                if started.get(&tablet).is_some_and(|at| at.elapsed() < retry_after) {
                    continue;
                }
                match replica.transfer_candidate(&is_reachable) {
                    Candidate::Ready(uuid) => {
                        match replica.transfer_leadership(&TServerId::from(uuid.as_str())).await {
                            Ok(()) => {
                                tracing::info!(tablet = %tablet, to = %uuid, "draining: handing over the tablet's leadership");
                                started.insert(tablet, Instant::now());
                                outcome.transfers += 1;
                            }
                            Err(e) => tracing::debug!(tablet = %tablet, error = %e, "draining: transfer not started"),
                        }
                    }
                    Candidate::CatchingUp => {}
                    Candidate::None => {
                        tracing::info!(tablet = %tablet, "draining: no reachable caught-up follower; keeping the leadership");
                        skipped.insert(tablet);
                    }
                }
            }
            tokio::time::sleep(ROUND).await;
        }
        outcome.still_led = leaders().len();
        tracing::info!(
            led = outcome.led,
            still_led = outcome.still_led,
            transfers = outcome.transfers,
            "draining: tablet leaderships handed over"
        );
        outcome
    }

    /// The uuids of the servers hosting followers of `leaders` that answer a ping.
    async fn reachable_followers(&self, leaders: &[Arc<Replica>]) -> HashSet<String> {
        let mut addresses: HashMap<String, String> = HashMap::new();
        for replica in leaders {
            let m = replica.metrics();
            for (id, node) in m.membership_config.membership().nodes() {
                if *id != self.node_id()
                    && let Some(address) = self.params.book.get(&node.uuid)
                {
                    addresses.insert(node.uuid.clone(), address);
                }
            }
        }
        let pings = addresses
            .into_iter()
            .map(|(uuid, address)| async move { self.coalescer.ping(&address, PING_TIMEOUT).await.ok().map(|_| uuid) });
        futures::future::join_all(pings).await.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(uuid: &str, reachable: bool, matched: u64) -> Follower {
        Follower { uuid: uuid.into(), reachable, matched }
    }

    #[test]
    fn leadership_goes_only_to_a_reachable_follower_holding_the_whole_log() {
        assert_eq!(choose(50, &[f("a", true, 40), f("b", true, 50)]), Candidate::Ready("b".into()));
        assert_eq!(choose(50, &[f("a", false, 50), f("b", true, 49)]), Candidate::CatchingUp, "a is down");
        assert_eq!(choose(50, &[f("a", true, 50 - READY_MAX_LAG)]), Candidate::CatchingUp);
        assert_eq!(choose(50, &[f("a", true, 50 - READY_MAX_LAG - 1)]), Candidate::None, "far behind");
        assert_eq!(choose(50, &[f("a", false, 50), f("b", false, 50)]), Candidate::None, "all down");
        assert_eq!(choose(50, &[]), Candidate::None, "a single replica");
    }
}
