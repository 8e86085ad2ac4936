//! The clocks the Lease uses, injectable so tests can skew them.

use std::time::Instant;

use k8s_openapi::jiff::Timestamp;

/// Where the Lease reads time.
pub trait Clock: Send + Sync + 'static {
    /// Wall time: only written into the Lease for people and tools to read, never compared
    /// with a time another replica wrote.
    fn wall(&self) -> Timestamp;
    /// Monotonic time: every expiry is judged on it.
    fn now(&self) -> Instant;
}

/// The system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> Timestamp {
        Timestamp::now()
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}
