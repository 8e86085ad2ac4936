//! Whether this replica leads, as the work it does sees it: a handle checked right before
//! any removal or deletion, and a future that resolves the moment leadership ends, so work
//! in flight can be dropped.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::clock::{Clock, SystemClock};

/// How long this replica may act as the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// It does not lead.
    NotLeading,
    /// It leads until then (monotonic), unless the Lease is renewed.
    Until(Instant),
    /// It leads without a Lease (a single replica, or tests).
    Always,
}

/// Why acting now is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotLeading {
    /// The Lease is not held.
    #[error("this operator replica does not hold the leader Lease")]
    NotHeld,
    /// The Lease is held, but expires before an action could safely finish.
    #[error("the leader Lease expires in {remaining:?}, too soon to act (at least {needed:?} needed)")]
    ExpiresSoon {
        /// Time left.
        remaining: Duration,
        /// Time an action needs left.
        needed: Duration,
    },
}

/// A view of this replica's leadership. Cheap to clone.
#[derive(Clone)]
pub struct Leadership {
    validity: watch::Receiver<Validity>,
    clock: Arc<dyn Clock>,
    /// Time that must be left on the Lease to start a destructive action.
    guard: Duration,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership").field("validity", &*self.validity.borrow()).field("guard", &self.guard).finish()
    }
}

impl Leadership {
    /// A replica that leads without a Lease: every check passes, it is never lost.
    pub fn unconditional() -> Self {
        let (_, validity) = watch::channel(Validity::Always);
        Self { validity, clock: Arc::new(SystemClock), guard: Duration::ZERO }
    }

    /// A view of `validity` judged on `clock`, requiring `guard` left to act.
    pub(crate) fn new(validity: watch::Receiver<Validity>, clock: Arc<dyn Clock>, guard: Duration) -> Self {
        Self { validity, clock, guard }
    }

    /// Time left, `None` for [`Validity::Always`].
    fn remaining(&self) -> Result<Option<Duration>, NotLeading> {
        match *self.validity.borrow() {
            Validity::Always => Ok(None),
            Validity::NotLeading => Err(NotLeading::NotHeld),
            Validity::Until(until) => match until.checked_duration_since(self.clock.now()) {
                Some(left) if !left.is_zero() => Ok(Some(left)),
                _ => Err(NotLeading::NotHeld),
            },
        }
    }

    /// Whether this replica leads now.
    pub fn is_leading(&self) -> bool {
        self.remaining().is_ok()
    }

    /// Check right before a removal or deletion: the Lease is held and does not expire
    /// within the guard time.
    pub fn ensure(&self) -> Result<(), NotLeading> {
        match self.remaining()? {
            Some(remaining) if remaining < self.guard => Err(NotLeading::ExpiresSoon { remaining, needed: self.guard }),
            _ => Ok(()),
        }
    }

    /// Resolves once this replica no longer leads (at once if it does not now); never for
    /// [`Leadership::unconditional`].
    pub async fn lost(&self) {
        let mut validity = self.validity.clone();
        loop {
            let current = *validity.borrow_and_update();
            match current {
                Validity::NotLeading => return,
                Validity::Always => {
                    // Only a renewal can change it; without a sender it never will.
                    if validity.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                Validity::Until(until) => {
                    let Some(left) = until.checked_duration_since(self.clock.now()).filter(|d| !d.is_zero()) else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(left) => {}
                        changed = validity.changed() => {
                            if changed.is_err() {
                                // Nobody renews any more: it ends at `until`.
                                tokio::time::sleep(left).await;
                                return;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Run `work` while `leadership` holds. The moment it is lost, `work` is dropped, which
/// cancels whatever it has in flight, and `None` is returned.
pub async fn while_leading<T>(leadership: &Leadership, work: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        _ = leadership.lost() => None,
        output = work => Some(output),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn leading_for(left: Duration, guard: Duration) -> (watch::Sender<Validity>, Leadership) {
        let (tx, rx) = watch::channel(Validity::Until(Instant::now() + left));
        (tx, Leadership::new(rx, Arc::new(SystemClock), guard))
    }

    #[test]
    fn acting_needs_the_guard_time_left() {
        let (tx, leadership) = leading_for(Duration::from_secs(60), Duration::from_secs(5));
        assert!(leadership.is_leading());
        assert_eq!(leadership.ensure(), Ok(()));
        tx.send_replace(Validity::Until(Instant::now() + Duration::from_secs(2)));
        assert!(leadership.is_leading());
        assert!(matches!(leadership.ensure(), Err(NotLeading::ExpiresSoon { .. })), "{:?}", leadership.ensure());
        tx.send_replace(Validity::Until(Instant::now()));
        assert!(!leadership.is_leading());
        assert_eq!(leadership.ensure(), Err(NotLeading::NotHeld));
        tx.send_replace(Validity::NotLeading);
        assert_eq!(leadership.ensure(), Err(NotLeading::NotHeld));
        assert_eq!(Leadership::unconditional().ensure(), Ok(()));
    }

    #[tokio::test]
    async fn work_in_flight_stops_when_leadership_lapses() {
        // Leadership that is never renewed lapses on its own; the work (a reconciler that
        // writes every 20 ms) is dropped then and writes nothing after.
        let (_tx, leadership) = leading_for(Duration::from_millis(300), Duration::ZERO);
        let writes = Arc::new(AtomicUsize::new(0));
        let work = {
            let writes = writes.clone();
            async move {
                loop {
                    writes.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let outcome = tokio::time::timeout(Duration::from_secs(30), while_leading(&leadership, work)).await;
        assert_eq!(outcome, Ok(None), "the work ran past the end of leadership");
        assert!(!leadership.is_leading());
        let at_loss = writes.load(Ordering::SeqCst);
        assert!(at_loss > 0);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(writes.load(Ordering::SeqCst), at_loss, "writes after leadership was lost");
    }

    #[tokio::test]
    async fn losing_the_lease_to_another_replica_ends_leadership_at_once() {
        let (tx, leadership) = leading_for(Duration::from_secs(3600), Duration::ZERO);
        let waiting = tokio::spawn({
            let leadership = leadership.clone();
            async move { leadership.lost().await }
        });
        tx.send_replace(Validity::NotLeading);
        let lost = tokio::time::timeout(Duration::from_secs(30), waiting).await;
        assert!(matches!(lost, Ok(Ok(()))), "{lost:?}");
    }
}
