//! The Lease rules (pure): who may take the Lease, and what a holder writes.
//!
//! Expiry is judged on this process's monotonic clock: a candidate notes *when it saw* the
//! holder's record change, and takes the Lease only once the record has not changed for the
//! holder's lease duration since then. The `renewTime` in the record is another machine's
//! wall clock; comparing it with the local wall clock would let clock skew between operator
//! replicas hand out two leases at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

/// What a candidate should do with the Lease it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseDecision {
    /// Nobody holds a valid Lease: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds a Lease that has not expired by our clock.
    Follow {
        /// The current holder.
        holder: String,
    },
}

/// A Lease record as this process saw it, and since when it has been unchanged (on this
/// process's monotonic clock).
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The record; `None` when the Lease does not exist.
    pub spec: Option<LeaseSpec>,
    /// When this process first saw this record.
    pub since: Instant,
}

impl Observation {
    /// The observation after reading `spec` at `now`: the time is kept while the record is
    /// unchanged since `previous`, and restarts when it changed (the holder renewed, or
    /// someone else took over).
    pub fn update(previous: Option<&Observation>, spec: Option<&LeaseSpec>, now: Instant) -> Observation {
        match previous {
            Some(previous) if previous.spec.as_ref() == spec => previous.clone(),
            _ => Observation { spec: spec.cloned(), since: now },
        }
    }
}

/// Decide from `observed` whether `me` may lead at `now`; `default_duration` applies to a
/// record that names no duration.
pub fn decide_lease(observed: &Observation, me: &str, default_duration: Duration, now: Instant) -> LeaseDecision {
    let Some(spec) = observed.spec.as_ref() else {
        return LeaseDecision::Acquire;
    };
    let Some(holder) = spec.holder_identity.as_deref().filter(|h| !h.is_empty()) else {
        return LeaseDecision::Acquire;
    };
    if holder == me {
        return LeaseDecision::Renew;
    }
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .map_or(default_duration, Duration::from_secs);
    if now.saturating_duration_since(observed.since) >= duration {
        LeaseDecision::Acquire
    } else {
        LeaseDecision::Follow { holder: holder.to_owned() }
    }
}

/// The Lease spec `me` writes when acquiring (`previous` is the spec it replaces) or
/// renewing; `now` is the local wall time, for people and tools reading the Lease.
pub fn next_spec(previous: Option<&LeaseSpec>, me: &str, now: Timestamp, duration: Duration) -> LeaseSpec {
    let renewing = previous.and_then(|p| p.holder_identity.as_deref()) == Some(me);
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if renewing { previous.and_then(|p| p.acquire_time.clone()) } else { Some(MicroTime(now)) },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if renewing || previous.is_none() { transitions } else { transitions + 1 }),
        ..LeaseSpec::default()
    }
}

/// The Lease spec after its holder gave it up: no holder, so the next candidate acquires
/// it at once.
pub fn released(spec: &LeaseSpec) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        acquire_time: None,
        renew_time: None,
        lease_duration_seconds: Some(1),
        ..spec.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DURATION: Duration = Duration::from_secs(15);

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn held_by(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(at(renewed))),
            acquire_time: Some(MicroTime(at(0))),
            lease_transitions: Some(2),
            ..LeaseSpec::default()
        }
    }

    fn seen(spec: Option<LeaseSpec>, since: Instant) -> Observation {
        Observation { spec, since }
    }

    #[test]
    fn missing_or_unheld_lease_is_acquired() {
        let t0 = Instant::now();
        assert_eq!(decide_lease(&seen(None, t0), "a", DURATION, t0), LeaseDecision::Acquire);
        let empty = LeaseSpec { holder_identity: Some(String::new()), ..LeaseSpec::default() };
        assert_eq!(decide_lease(&seen(Some(empty), t0), "a", DURATION, t0), LeaseDecision::Acquire);
    }

    #[test]
    fn own_lease_is_renewed_even_if_expired() {
        let t0 = Instant::now();
        let observed = seen(Some(held_by("a", 0)), t0);
        assert_eq!(decide_lease(&observed, "a", DURATION, t0 + DURATION * 10), LeaseDecision::Renew);
    }

    #[test]
    fn foreign_lease_is_followed_for_its_duration_after_it_was_seen_to_change() {
        let t0 = Instant::now();
        // Its renewTime is far in the past by any clock: irrelevant, we just saw it.
        let observed = seen(Some(held_by("b", -100_000)), t0);
        let follow = LeaseDecision::Follow { holder: "b".to_owned() };
        assert_eq!(decide_lease(&observed, "a", DURATION, t0 + Duration::from_secs(14)), follow);
        assert_eq!(decide_lease(&observed, "a", DURATION, t0 + DURATION), LeaseDecision::Acquire);
    }

    #[test]
    fn an_observation_restarts_when_the_record_changes_and_only_then() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(5);
        let first = Observation::update(None, Some(&held_by("b", 10)), t0);
        assert_eq!(first.since, t0);
        let same = Observation::update(Some(&first), Some(&held_by("b", 10)), t1);
        assert_eq!(same.since, t0, "an unchanged record keeps aging");
        let renewed = Observation::update(Some(&same), Some(&held_by("b", 12)), t1);
        assert_eq!(renewed.since, t1, "a renewal restarts the clock");
        // A renewal whose wall time goes backwards (the holder's clock was stepped) is a
        // change all the same.
        let stepped = Observation::update(Some(&renewed), Some(&held_by("b", -3600)), t1 + DURATION);
        assert_eq!(stepped.since, t1 + DURATION);
    }

    #[test]
    fn released_lease_is_acquired_at_once() {
        let t0 = Instant::now();
        let spec = released(&held_by("b", 10));
        assert_eq!(spec.lease_transitions, Some(2));
        assert_eq!(decide_lease(&seen(Some(spec), t0), "a", DURATION, t0), LeaseDecision::Acquire);
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_does_not() {
        let previous = held_by("b", 10);
        let taken = next_spec(Some(&previous), "a", at(30), DURATION);
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(3));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(30))));
        let renewed = next_spec(Some(&taken), "a", at(35), DURATION);
        assert_eq!(renewed.lease_transitions, Some(3));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(30))));
        assert_eq!(renewed.renew_time, Some(MicroTime(at(35))));
        assert_eq!(renewed.lease_duration_seconds, Some(15));
    }
}
