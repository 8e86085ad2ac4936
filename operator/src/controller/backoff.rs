//! Requeue back-off for clusters whose masters do not run (every master pod Pending, say:
//! no node to run on, an image still pulling). Such a cluster has nothing to ask its
//! masters, and what unsticks it is a change the controller watches (a master pod's
//! phase, the `KuduCluster`, its StatefulSets), which reconciles it at once. So while it
//! stays stuck with nothing observed changing, its timer requeue doubles from
//! [`super::BUSY_REQUEUE`] up to [`STUCK_REQUEUE_MAX`]; any change starts it over.
//!
//! Pure bookkeeping: the reconciler says what it saw, this module answers with the delay
//! and whether the stuck state is new (worth one log line).

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

/// The longest requeue of a stuck cluster (10 s doubled four times).
pub const STUCK_REQUEUE_MAX: Duration = Duration::from_secs(160);

/// A cluster, by namespace and name.
type Key = (String, String);

/// What was seen last of one stuck cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    /// Hash of what was observed.
    fingerprint: u64,
    /// The requeue given.
    delay: Duration,
}

/// The next requeue of a stuck cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StuckRequeue {
    /// When to look again (watch events come sooner).
    pub after: Duration,
    /// Whether what was observed differs from the last reconcile (or the cluster just got
    /// stuck): log it once, not on every requeue.
    pub changed: bool,
}

/// Per stuck cluster, what was observed and the requeue given (one small entry each;
/// removed when the cluster runs again or is deleted).
#[derive(Debug, Default)]
pub struct StuckClusters {
    seen: Mutex<HashMap<Key, Seen>>,
}

/// A fingerprint of `observed` (anything hashable: generation, pods' phases and nodes).
pub fn fingerprint(observed: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    observed.hash(&mut hasher);
    hasher.finish()
}

impl StuckClusters {
    /// The cluster at `namespace/name` is stuck and looks like `fingerprint`: `first`
    /// when it just got so or something changed, double the last delay otherwise (at most
    /// [`STUCK_REQUEUE_MAX`]).
    pub fn stuck(&self, namespace: &str, name: &str, fingerprint: u64, first: Duration) -> StuckRequeue {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let key = (namespace.to_owned(), name.to_owned());
        let next = match seen.get(&key) {
            Some(last) if last.fingerprint == fingerprint => {
                StuckRequeue { after: last.delay.saturating_mul(2).min(STUCK_REQUEUE_MAX).max(first), changed: false }
            }
            _ => StuckRequeue { after: first, changed: true },
        };
        seen.insert(key, Seen { fingerprint, delay: next.after });
        next
    }

    /// The cluster is not stuck (any more), or is gone: forget it. Returns whether it was
    /// stuck.
    pub fn clear(&self, namespace: &str, name: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.remove(&(namespace.to_owned(), name.to_owned())).is_some()
    }

    /// How many clusters are stuck.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no cluster is stuck.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_secs(10);

    #[test]
    fn an_unchanged_stuck_cluster_backs_off_to_the_cap_and_a_change_starts_over() {
        let stuck = StuckClusters::default();
        let delays: Vec<(u64, bool)> =
            (0..7).map(|_| stuck.stuck("ns", "c", 1, FIRST)).map(|r| (r.after.as_secs(), r.changed)).collect();
        assert_eq!(
            delays,
            [(10, true), (20, false), (40, false), (80, false), (160, false), (160, false), (160, false)]
        );
        // Something observed changed (a pod's phase, a new generation): back to the start.
        assert_eq!(stuck.stuck("ns", "c", 2, FIRST), StuckRequeue { after: FIRST, changed: true });
        assert_eq!(stuck.stuck("ns", "c", 2, FIRST).after, Duration::from_secs(20));
        // Other clusters count on their own.
        assert_eq!(stuck.stuck("ns", "d", 2, FIRST), StuckRequeue { after: FIRST, changed: true });
        assert_eq!(stuck.len(), 2);
    }

    #[test]
    fn a_cluster_that_runs_again_or_is_deleted_is_forgotten() {
        let stuck = StuckClusters::default();
        stuck.stuck("ns", "c", 1, FIRST);
        stuck.stuck("ns", "c", 1, FIRST);
        assert!(stuck.clear("ns", "c"));
        assert!(!stuck.clear("ns", "c"));
        assert!(stuck.is_empty());
        // Stuck again later: from the start, and said so.
        assert_eq!(stuck.stuck("ns", "c", 1, FIRST), StuckRequeue { after: FIRST, changed: true });
    }

    #[test]
    fn a_shorter_first_delay_than_the_last_one_is_kept_as_the_floor() {
        let stuck = StuckClusters::default();
        stuck.stuck("ns", "c", 1, Duration::from_secs(1));
        // A certificate due sooner than the doubling would wait is the caller's to apply;
        // here the floor only grows.
        assert_eq!(stuck.stuck("ns", "c", 1, Duration::from_secs(5)).after, Duration::from_secs(5));
    }
}
