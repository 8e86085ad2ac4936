//! A linearizability checker for catalog histories.
//!
//! Each table name is an independent object (operations on different names commute), so the
//! history is checked per name (P-compositionality) with the shared Wing–Gong search
//! (`wing_gong.rs`). Operations whose outcome is unknown (the client gave up) never
//! return: they may take effect at any point after their invocation, or not at all.

use std::collections::{BTreeMap, BTreeSet};

use crate::wing_gong::{Timed, check_object};

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Create,
    Delete,
    AddColumn(String),
    Read,
}

/// What came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Create/AddColumn succeeded with this table id; Delete succeeded (id of the deleted
    /// table); Read found the table.
    Ok { id: String, columns: BTreeSet<String> },
    /// The table did not exist (delete, alter or read).
    NotFound,
    /// The table already existed (create).
    AlreadyExists,
    /// Unknown: the operation may or may not have happened.
    Unknown,
    /// A definite refusal that changed nothing and reveals nothing (e.g. no live tablet
    /// servers to place a new table on).
    NoEffect,
    /// An answer no correct catalog gives (e.g. a duplicate column for a fresh name).
    Unexpected(String),
}

/// One completed or abandoned operation on one table name.
#[derive(Clone, Debug)]
pub struct Op {
    pub key: String,
    pub call: Call,
    pub outcome: Outcome,
    /// Logical time of the invocation and of the response (`u64::MAX` if none).
    pub invoked: u64,
    pub returned: u64,
}

/// State of one table name in the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum State {
    Absent,
    /// `id` is `None` when the table was created by an operation whose result is unknown.
    Present {
        id: Option<String>,
        columns: BTreeSet<String>,
    },
}

/// States the model can be in after applying `op` to `state`; empty if `op` cannot happen.
fn step(state: &State, op: &Op, base_columns: &BTreeSet<String>) -> Vec<State> {
    use Outcome::*;
    let mut next = Vec::new();
    match (&op.call, &op.outcome, state) {
        (Call::Create, Ok { id, columns }, State::Absent) if columns == base_columns => {
            next.push(State::Present { id: Some(id.clone()), columns: columns.clone() })
        }
        (Call::Create, AlreadyExists, State::Present { .. }) => next.push(state.clone()),
        (Call::Create, Unknown, State::Absent) => {
            next.push(State::Present { id: None, columns: base_columns.clone() });
            next.push(state.clone());
        }
        (Call::Delete, Ok { id, .. }, State::Present { id: current, .. })
            if current.as_ref().is_none_or(|c| c == id) =>
        {
            next.push(State::Absent)
        }
        (Call::Delete, NotFound, State::Absent) => next.push(State::Absent),
        (Call::Delete, Unknown, State::Present { .. }) => {
            next.push(State::Absent);
            next.push(state.clone());
        }
        (Call::AddColumn(c), Ok { id, columns }, State::Present { id: current, columns: before })
            if current.as_ref().is_none_or(|cur| cur == id) && !before.contains(c) && {
                let mut after = before.clone();
                after.insert(c.clone());
                after == *columns
            } =>
        {
            next.push(State::Present { id: Some(id.clone()), columns: columns.clone() })
        }
        (Call::AddColumn(_), NotFound, State::Absent) => next.push(State::Absent),
        (Call::AddColumn(c), Unknown, State::Present { id, columns }) if !columns.contains(c) => {
            let mut after = columns.clone();
            after.insert(c.clone());
            next.push(State::Present { id: id.clone(), columns: after });
            next.push(state.clone());
        }
        (Call::Read, Ok { id, columns }, State::Present { id: current, columns: cols })
            if cols == columns && current.as_ref().is_none_or(|c| c == id) =>
        {
            next.push(State::Present { id: Some(id.clone()), columns: columns.clone() })
        }
        (Call::Read, NotFound, State::Absent) => next.push(State::Absent),
        // Unknown outcomes of any kind may also have had no effect.
        (_, Unknown | NoEffect, _) => next.push(state.clone()),
        _ => {}
    }
    next
}

impl Timed for Op {
    fn invoked(&self) -> u64 {
        self.invoked
    }

    fn returned(&self) -> u64 {
        self.returned
    }
}

/// Checks one name's operations; on failure, describes where the search got stuck.
fn check_key(key_ops: &[Op], base: &BTreeSet<String>) -> Option<String> {
    check_object(key_ops, State::Absent, |state, op| step(state, op, base))
}

/// Checks the whole history; returns a report per name whose history is not linearizable.
pub fn check(ops: &[Op], base_columns: &BTreeSet<String>) -> Vec<String> {
    let mut by_key: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for op in ops {
        by_key.entry(&op.key).or_default().push(op.clone());
    }
    let mut bad = Vec::new();
    for (key, mut key_ops) in by_key {
        key_ops.sort_by_key(|o| o.invoked);
        if let Some(report) = check_key(&key_ops, base_columns) {
            bad.push(format!("{key}: {report}"));
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BTreeSet<String> {
        ["id".to_string()].into()
    }

    fn op(call: Call, outcome: Outcome, invoked: u64, returned: u64) -> Op {
        Op { key: "t".into(), call, outcome, invoked, returned }
    }

    fn ok(id: &str, cols: &[&str]) -> Outcome {
        Outcome::Ok { id: id.into(), columns: cols.iter().map(|c| c.to_string()).collect() }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = vec![
            op(Call::Create, ok("a", &["id"]), 1, 2),
            op(Call::AddColumn("x".into()), ok("a", &["id", "x"]), 3, 4),
            op(Call::Read, ok("a", &["id", "x"]), 5, 6),
            op(Call::Delete, ok("a", &[]), 7, 8),
            op(Call::Read, Outcome::NotFound, 9, 10),
        ];
        assert!(check(&h, &base()).is_empty());
    }

    #[test]
    fn lost_acknowledged_create_is_detected() {
        let h = vec![op(Call::Create, ok("a", &["id"]), 1, 2), op(Call::Read, Outcome::NotFound, 3, 4)];
        let bad = check(&h, &base());
        assert_eq!(bad.len(), 1);
        assert!(bad[0].starts_with("t: stuck after 1 of 2"), "{bad:?}");
    }

    #[test]
    fn table_created_twice_is_detected() {
        // Two acknowledged creates with no delete in between.
        let h = vec![op(Call::Create, ok("a", &["id"]), 1, 2), op(Call::Create, ok("b", &["id"]), 3, 4)];
        assert_eq!(check(&h, &base()).len(), 1);
    }

    #[test]
    fn concurrent_operations_may_take_either_order() {
        // Read overlaps the create: it may see the table absent.
        let h = vec![op(Call::Create, ok("a", &["id"]), 1, 4), op(Call::Read, Outcome::NotFound, 2, 3)];
        assert!(check(&h, &base()).is_empty());
        // But not after the create returned.
        let h = vec![op(Call::Create, ok("a", &["id"]), 1, 2), op(Call::Read, Outcome::NotFound, 3, 4)];
        assert!(!check(&h, &base()).is_empty());
    }

    #[test]
    fn unknown_outcomes_may_or_may_not_apply() {
        let applied = vec![op(Call::Create, Outcome::Unknown, 1, u64::MAX), op(Call::Read, ok("z", &["id"]), 5, 6)];
        assert!(check(&applied, &base()).is_empty());
        let not_applied =
            vec![op(Call::Create, Outcome::Unknown, 1, u64::MAX), op(Call::Read, Outcome::NotFound, 5, 6)];
        assert!(check(&not_applied, &base()).is_empty());
        // A stale read after a later acknowledged alteration is still caught.
        let stale = vec![
            op(Call::Create, ok("a", &["id"]), 1, 2),
            op(Call::AddColumn("x".into()), ok("a", &["id", "x"]), 3, 4),
            op(Call::Read, ok("a", &["id"]), 5, 6),
        ];
        assert!(!check(&stale, &base()).is_empty());
    }
}
