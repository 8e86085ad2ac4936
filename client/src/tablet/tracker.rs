//! Exactly-once writes, like Kudu's result tracker: per client, the responses of its recent
//! writes, so a retried `(client_id, seq_no)` gets the first answer and changes nothing.
//!
//! Per client the tracker keeps the responses of seq_nos at or above the client's
//! `first_incomplete_seq_no` (the client's promise that it has every earlier answer), at
//! most [`MAX_RESPONSES_PER_CLIENT`] of them: when more arrive, the lowest are forgotten
//! and the floor rises past them. A seq_no below the floor is refused as stale, never
//! applied again; so a client must keep fewer than that many writes in flight. At most
//! [`MAX_TRACKED_CLIENTS`] clients are remembered; the one whose last write is oldest (by
//! log index) is forgotten first, and a forgotten client's in-flight retries are no longer
//! deduplicated. All of it is replicated state, persisted as [`ClientRecord`]s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::TabletResponse;
use super::record::Mutation;

/// Most clients remembered per tablet.
pub const MAX_TRACKED_CLIENTS: usize = 10_000;
/// Most responses remembered per client.
pub const MAX_RESPONSES_PER_CLIENT: usize = 64;

/// One client's remembered writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client_id: String,
    /// Seq_nos below this are stale: their answers are forgotten.
    pub first_incomplete_seq_no: u64,
    /// Log index of the client's last applied write (eviction order).
    pub last_log_index: u64,
    /// Responses by seq_no.
    pub responses: BTreeMap<u64, TabletResponse>,
}

/// What the tracker knows about a write before it is applied.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    /// Not applied before: apply it.
    New,
    /// Applied before: answer this, change nothing.
    Retry(TabletResponse),
    /// Below the client's floor: refuse, change nothing.
    Stale { first_incomplete: u64 },
}

/// Remembered responses of recent writes, per client.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResultTracker {
    clients: BTreeMap<String, ClientRecord>,
    /// Clients by the log index of their last write, oldest first.
    order: BTreeMap<u64, String>,
}

impl ResultTracker {
    /// Classifies write `seq_no` of `client_id` that reports `first_incomplete`.
    pub fn check(&self, client_id: &str, seq_no: u64, first_incomplete: u64) -> Seen {
        let floor = match self.clients.get(client_id) {
            Some(client) => {
                if let Some(response) = client.responses.get(&seq_no) {
                    return Seen::Retry(response.clone());
                }
                client.first_incomplete_seq_no.max(first_incomplete)
            }
            None => first_incomplete,
        };
        if seq_no < floor { Seen::Stale { first_incomplete: floor } } else { Seen::New }
    }

    /// Remembers the response of a write just applied at `log_index`, trims the client's
    /// history and evicts clients over the limit; the changes go to `out`.
    pub fn record(
        &mut self,
        client_id: &str,
        seq_no: u64,
        first_incomplete: u64,
        log_index: u64,
        response: &TabletResponse,
        out: &mut Vec<Mutation>,
    ) {
        let client = self.clients.entry(client_id.to_string()).or_insert_with(|| ClientRecord {
            client_id: client_id.to_string(),
            first_incomplete_seq_no: 0,
            last_log_index: log_index,
            responses: BTreeMap::new(),
        });
        self.order.remove(&client.last_log_index);
        client.first_incomplete_seq_no = client.first_incomplete_seq_no.max(first_incomplete);
        client.responses.insert(seq_no, response.clone());
        client.responses = client.responses.split_off(&client.first_incomplete_seq_no);
        while client.responses.len() > MAX_RESPONSES_PER_CLIENT {
            let Some((oldest, _)) = client.responses.pop_first() else { break };
            client.first_incomplete_seq_no = client.first_incomplete_seq_no.max(oldest.saturating_add(1));
        }
        client.last_log_index = log_index;
        self.order.insert(log_index, client_id.to_string());
        out.push(Mutation::PutClient(client.clone()));
        while self.clients.len() > MAX_TRACKED_CLIENTS {
            let Some((_, evicted)) = self.order.pop_first() else { break };
            self.clients.remove(&evicted);
            out.push(Mutation::DeleteClient { client_id: evicted });
        }
    }

    /// Restores a client from its durable record.
    pub fn insert_record(&mut self, record: ClientRecord) {
        if let Some(previous) = self.clients.get(&record.client_id) {
            self.order.remove(&previous.last_log_index);
        }
        self.order.insert(record.last_log_index, record.client_id.clone());
        self.clients.insert(record.client_id.clone(), record);
    }

    /// Every client's record, ordered by client id.
    pub fn records(&self) -> impl Iterator<Item = &ClientRecord> {
        self.clients.values()
    }

    /// The record of one client.
    pub fn client(&self, client_id: &str) -> Option<&ClientRecord> {
        self.clients.get(client_id)
    }

    /// Number of clients remembered.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tablet::command::{RowError, RowFailure, TabletOutcome};

    fn ok(n: u32) -> TabletResponse {
        let row_errors = (0..n).map(|index| RowError { index, failure: RowFailure::NotFound }).collect();
        TabletResponse(Ok(TabletOutcome::Written { row_errors }))
    }

    #[test]
    fn retries_get_the_first_answer_and_old_seq_nos_are_stale() {
        let mut t = ResultTracker::default();
        let mut out = Vec::new();
        assert_eq!(t.check("c", 1, 1), Seen::New);
        t.record("c", 1, 1, 10, &ok(1), &mut out);
        assert!(matches!(out.as_slice(), [Mutation::PutClient(r)] if r.responses.len() == 1));
        assert_eq!(t.check("c", 1, 1), Seen::Retry(ok(1)));
        t.record("c", 2, 1, 11, &ok(2), &mut out);
        // Reporting 2 as first incomplete forgets 1.
        t.record("c", 3, 2, 12, &ok(3), &mut out);
        assert_eq!(t.check("c", 1, 2), Seen::Stale { first_incomplete: 2 });
        assert_eq!(t.check("c", 2, 2), Seen::Retry(ok(2)));
        assert_eq!(t.client("c").map(|c| c.responses.keys().copied().collect::<Vec<_>>()), Some(vec![2, 3]));
        // A request that itself says seq_no is complete is stale too.
        assert_eq!(t.check("c", 4, 5), Seen::Stale { first_incomplete: 5 });
        assert_eq!(t.check("new", 0, 3), Seen::Stale { first_incomplete: 3 });
    }

    #[test]
    fn responses_per_client_are_bounded() {
        let mut t = ResultTracker::default();
        let mut out = Vec::new();
        let n = MAX_RESPONSES_PER_CLIENT as u64;
        for seq in 0..n + 3 {
            t.record("c", seq, 0, seq + 1, &ok(0), &mut out);
        }
        let client = t.client("c").expect("tracked");
        assert_eq!(client.responses.len(), MAX_RESPONSES_PER_CLIENT);
        assert_eq!(client.first_incomplete_seq_no, 3);
        assert_eq!(t.check("c", 2, 0), Seen::Stale { first_incomplete: 3 });
        assert_eq!(t.check("c", 3, 0), Seen::Retry(ok(0)));
    }

    #[test]
    fn least_recently_written_clients_are_evicted() {
        let mut t = ResultTracker::default();
        let mut out = Vec::new();
        for i in 0..MAX_TRACKED_CLIENTS as u64 {
            t.record(&format!("c{i}"), 0, 0, i + 1, &ok(0), &mut out);
        }
        // c0 writes again: c1 is now the least recent.
        t.record("c0", 1, 0, 100_000, &ok(0), &mut out);
        out.clear();
        t.record("late", 0, 0, 100_001, &ok(0), &mut out);
        assert_eq!(t.len(), MAX_TRACKED_CLIENTS);
        assert!(t.client("c1").is_none() && t.client("c0").is_some() && t.client("late").is_some());
        assert!(
            matches!(out.as_slice(), [Mutation::PutClient(_), Mutation::DeleteClient { client_id }] if client_id == "c1")
        );
    }

    #[test]
    fn records_rebuild_the_tracker() {
        let mut t = ResultTracker::default();
        let mut out = Vec::new();
        t.record("a", 0, 0, 1, &ok(1), &mut out);
        t.record("b", 0, 0, 2, &ok(2), &mut out);
        t.record("a", 1, 0, 3, &ok(3), &mut out);
        let mut rebuilt = ResultTracker::default();
        for record in t.records() {
            let json = serde_json::to_string(record).expect("serializes");
            rebuilt.insert_record(serde_json::from_str(&json).expect("parses"));
        }
        assert_eq!(rebuilt, t);
    }
}
