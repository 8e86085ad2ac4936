//! Leader election with a `coordination.k8s.io/v1` Lease: only the holder reconciles.
//!
//! [`rules`] is the pure rule (expiry judged on this process's monotonic clock, from when it
//! saw the record change, never from another replica's wall clock); [`lock`] applies it
//! against the API server with every call bounded by a timeout; [`leadership`] is what the
//! rest of the operator checks before acting, and drops work in flight when leadership ends.

pub mod clock;
pub mod leadership;
pub mod lock;
pub mod rules;

pub use clock::{Clock, SystemClock};
pub use leadership::{Leadership, NotLeading, Validity, while_leading};
pub use lock::{LeaseError, LeaseLock, Renewal, Timing, keep_renewing};
pub use rules::{LeaseDecision, Observation, decide_lease, next_spec, released};

#[cfg(test)]
mod tests;
