//! The Wing–Gong linearizability search shared by the history checkers (catalog names,
//! row registers): finds an order of one object's operations that respects real time and
//! that the model accepts, memoized on (linearized set, state).

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;

/// An operation with logical invocation and response times (`u64::MAX`: never returned).
pub trait Timed {
    fn invoked(&self) -> u64;
    fn returned(&self) -> u64;
}

struct Search<'a, O, S, F> {
    ops: &'a [O],
    step: F,
    seen: HashSet<(Vec<u64>, S)>,
    /// Deepest point reached: how many operations were linearized, in which state, which.
    deepest: (usize, S, Vec<u64>),
}

impl<O: Timed, S: Clone + Eq + Hash, F: Fn(&S, &O) -> Vec<S>> Search<'_, O, S, F> {
    fn run(&mut self, done: &mut Vec<u64>, remaining: usize, state: S) -> bool {
        if remaining == 0 {
            return true;
        }
        if !self.seen.insert((done.clone(), state.clone())) {
            return false;
        }
        let depth = self.ops.len() - remaining;
        if depth >= self.deepest.0 {
            self.deepest = (depth, state.clone(), done.clone());
        }
        let is_done = |done: &Vec<u64>, i: usize| done[i / 64] & (1 << (i % 64)) != 0;
        // Only operations invoked before every pending operation returned can go next.
        let horizon = (0..self.ops.len()).filter(|&i| !is_done(done, i)).map(|i| self.ops[i].returned()).min();
        let Some(horizon) = horizon else { return true };
        for i in 0..self.ops.len() {
            if is_done(done, i) || self.ops[i].invoked() > horizon {
                continue;
            }
            for next in (self.step)(&state, &self.ops[i]) {
                done[i / 64] |= 1 << (i % 64);
                if self.run(done, remaining - 1, next) {
                    return true;
                }
                done[i / 64] &= !(1 << (i % 64));
            }
        }
        false
    }
}

/// Checks one object's operations (sorted by invocation) from `initial`, where `step` gives
/// the states an operation can lead to (none: it cannot happen there). On failure,
/// describes where the search got stuck.
pub fn check_object<O, S, F>(ops: &[O], initial: S, step: F) -> Option<String>
where
    O: Timed + Debug,
    S: Clone + Eq + Hash + Debug,
    F: Fn(&S, &O) -> Vec<S>,
{
    let mut search = Search { ops, step, seen: HashSet::new(), deepest: (0, initial.clone(), Vec::new()) };
    let mut done = vec![0u64; ops.len().div_ceil(64)];
    if search.run(&mut done, ops.len(), initial) {
        return None;
    }
    let (depth, state, done) = search.deepest;
    let pending: Vec<String> = (0..ops.len())
        .filter(|&i| done.get(i / 64).is_none_or(|w| w & (1 << (i % 64)) == 0))
        .take(8)
        .map(|i| format!("[{}..{}] {:?}", ops[i].invoked(), ops[i].returned(), ops[i]))
        .collect();
    Some(format!(
        "stuck after {depth} of {} operations in state {state:?}; next pending: {}",
        ops.len(),
        pending.join("; ")
    ))
}
