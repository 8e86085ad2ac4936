//! One read-index round for every heartbeat that arrives within a few milliseconds.
//!
//! A heartbeat's answer is read from the catalog, so the leader must know it still leads
//! when it reads: a quorum must acknowledge a Raft heartbeat sent after the request arrived
//! (read index). Done per request, 2 000 tablet servers at 1 Hz cost 2 000 rounds a second.
//! Here a request joins the round that has not started yet (or opens one); the round waits
//! [`HEARTBEAT_READ_WINDOW`], stops accepting requests, and only then asks openraft for a
//! read index. Every request in it therefore arrived before the round's quorum
//! confirmation was requested, which is all linearizability needs: the same guarantee as
//! one read index per request, at most one round per window plus the one in flight.
//!
//! A round does not make the leader broadcast a Raft heartbeat of its own (as
//! `ReadPolicy::ReadIndex` would, two RPCs to the followers per round, the largest part of
//! the leader's CPU for heartbeats after the requests themselves): it waits for the quorum's
//! acknowledgement of the next periodic Raft heartbeat (or replication) sent after the round
//! began, at most one Raft heartbeat interval later. The condition is the one ReadIndex
//! checks, a quorum acknowledging a message sent after the read was requested; only who sends
//! that message changes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use openraft::LinearizerOption;
use prometheus_client::metrics::counter::Counter;

use super::raft_types::Raft;

/// How long a round gathers requests before it asks for its read index.
pub const HEARTBEAT_READ_WINDOW: Duration = Duration::from_millis(5);

/// Whether the round confirmed leadership and applied everything committed before it.
type Round = Shared<BoxFuture<'static, bool>>;

/// The round that still accepts requests, with an id to tell it from its successors.
struct Open {
    id: u64,
    round: Round,
}

#[derive(Default)]
struct State {
    open: Option<Open>,
    next_id: u64,
}

/// Shares read-index rounds among concurrent requests. Cheap to clone.
#[derive(Clone)]
pub struct ReadBatcher {
    raft: Raft,
    window: Duration,
    timeout: Duration,
    state: Arc<Mutex<State>>,
    rounds: Counter,
}

impl ReadBatcher {
    /// Rounds on `raft` gathering for `window`, each given up (as not leading) after
    /// `timeout`; `rounds` counts the rounds started.
    pub fn new(raft: Raft, window: Duration, timeout: Duration, rounds: Counter) -> Self {
        Self { raft, window, timeout, state: Arc::default(), rounds }
    }

    /// Waits for a read-index round that starts after this call; true once the leader has
    /// confirmed its leadership with a quorum and applied everything committed before the
    /// round, so a catalog read next is linearizable. False if it does not lead (or the
    /// round timed out).
    pub async fn confirm(&self) -> bool {
        let round = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match &state.open {
                Some(open) => open.round.clone(),
                None => {
                    let id = state.next_id;
                    state.next_id += 1;
                    let round = self.clone().round(id).boxed().shared();
                    state.open = Some(Open { id, round: round.clone() });
                    round
                }
            }
        };
        round.await
    }

    /// One round: gathers for the window, closes to newcomers, then confirms leadership.
    async fn round(self, id: u64) -> bool {
        tokio::time::sleep(self.window).await;
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.open.as_ref().is_some_and(|open| open.id == id) {
                state.open = None;
            }
        }
        self.rounds.inc();
        matches!(
            tokio::time::timeout(
                self.timeout,
                self.raft.ensure_linearizable(read_index_on_next_heartbeat(self.timeout))
            )
            .await,
            Ok(Ok(_))
        )
    }
}

/// ReadIndex (a quorum must acknowledge a message sent after the read was requested; no
/// earlier acknowledgement counts) satisfied by the leader's periodic heartbeats instead of
/// a broadcast of its own, waiting up to `wait` for them (openraft's default wait is the
/// leader lease, 225 ms by default: on a starved machine the next periodic acknowledgement
/// can take longer, and the heartbeats would be answered as by a non-leader for nothing).
fn read_index_on_next_heartbeat(wait: Duration) -> LinearizerOption {
    LinearizerOption::new(Some(Duration::ZERO), false).with_wait_timeout(wait)
}
