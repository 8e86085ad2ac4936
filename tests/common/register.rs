//! A linearizability checker for rows used as registers: per primary key, upserts of unique
//! values, deletes and reads. Keys are independent objects (P-compositionality), each
//! checked with the shared Wing–Gong search (`wing_gong.rs`). Operations whose
//! outcome is unknown never return: they may take effect at any point after their
//! invocation, or not at all.

use std::collections::BTreeMap;

use crate::wing_gong::{Timed, check_object};

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Upsert(String),
    Delete,
    Read,
}

/// What came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A write succeeded.
    Written,
    /// A read found this value (`None`: no row).
    Read(Option<String>),
    /// A delete found no row.
    NotFound,
    /// The operation may or may not have happened.
    Unknown,
}

/// One operation on one key; times are logical (`u64::MAX`: never returned).
#[derive(Clone, Debug)]
pub struct Op {
    pub key: i64,
    pub call: Call,
    pub outcome: Outcome,
    pub invoked: u64,
    pub returned: u64,
}

type State = Option<String>;

fn step(state: &State, op: &Op) -> Vec<State> {
    match (&op.call, &op.outcome) {
        (Call::Upsert(v), Outcome::Written) => vec![Some(v.clone())],
        (Call::Upsert(v), Outcome::Unknown) => vec![Some(v.clone()), state.clone()],
        (Call::Delete, Outcome::Written) if state.is_some() => vec![None],
        (Call::Delete, Outcome::NotFound) if state.is_none() => vec![None],
        (Call::Delete, Outcome::Unknown) => vec![None, state.clone()],
        (Call::Read, Outcome::Read(seen)) if seen == state => vec![state.clone()],
        (Call::Read, Outcome::Unknown) => vec![state.clone()],
        _ => Vec::new(),
    }
}

impl Timed for Op {
    fn invoked(&self) -> u64 {
        self.invoked
    }

    fn returned(&self) -> u64 {
        self.returned
    }
}

/// Checks the whole history; returns a report per key whose history is not linearizable.
pub fn check(ops: &[Op]) -> Vec<String> {
    let mut by_key: BTreeMap<i64, Vec<Op>> = BTreeMap::new();
    for op in ops {
        by_key.entry(op.key).or_default().push(op.clone());
    }
    by_key
        .into_iter()
        .filter_map(|(key, mut key_ops)| {
            key_ops.sort_by_key(|o| o.invoked);
            check_object(&key_ops, None, step).map(|r| format!("key {key}: {r}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: Call, outcome: Outcome, invoked: u64, returned: u64) -> Op {
        Op { key: 1, call, outcome, invoked, returned }
    }

    fn up(v: &str) -> Call {
        Call::Upsert(v.into())
    }

    fn read(v: Option<&str>) -> Outcome {
        Outcome::Read(v.map(str::to_string))
    }

    #[test]
    fn sequential_and_concurrent_histories() {
        let ok = vec![
            op(up("a"), Outcome::Written, 1, 2),
            op(Call::Read, read(Some("a")), 3, 4),
            op(Call::Delete, Outcome::Written, 5, 6),
            op(Call::Read, read(None), 7, 8),
            op(Call::Delete, Outcome::NotFound, 9, 10),
        ];
        assert!(check(&ok).is_empty());
        // A read overlapping a write may see either value.
        let overlap = vec![
            op(up("a"), Outcome::Written, 1, 2),
            op(up("b"), Outcome::Written, 3, 6),
            op(Call::Read, read(Some("a")), 4, 5),
        ];
        assert!(check(&overlap).is_empty());
    }

    #[test]
    fn stale_reads_and_lost_writes_are_caught() {
        let stale = vec![
            op(up("a"), Outcome::Written, 1, 2),
            op(up("b"), Outcome::Written, 3, 4),
            op(Call::Read, read(Some("a")), 5, 6),
        ];
        assert_eq!(check(&stale).len(), 1);
        let lost = vec![op(up("a"), Outcome::Written, 1, 2), op(Call::Read, read(None), 3, 4)];
        assert_eq!(check(&lost).len(), 1);
    }

    #[test]
    fn unknown_writes_may_or_may_not_apply() {
        let applied = vec![op(up("a"), Outcome::Unknown, 1, u64::MAX), op(Call::Read, read(Some("a")), 5, 6)];
        assert!(check(&applied).is_empty());
        let not = vec![op(up("a"), Outcome::Unknown, 1, u64::MAX), op(Call::Read, read(None), 5, 6)];
        assert!(check(&not).is_empty());
        // But once read, an unknown write cannot un-happen.
        let flicker = vec![
            op(up("a"), Outcome::Unknown, 1, u64::MAX),
            op(Call::Read, read(Some("a")), 5, 6),
            op(Call::Read, read(None), 7, 8),
        ];
        assert_eq!(check(&flicker).len(), 1);
    }
}
