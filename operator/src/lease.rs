//! Leader election with a `coordination.k8s.io/v1` Lease: only the holder reconciles.
//!
//! [`decide_lease`] is the pure rule; [`LeaseLock`] applies it against the API server
//! with optimistic concurrency (a `replace` carries the `resourceVersion` read, so two
//! candidates cannot both win).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// What a candidate should do with the Lease it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseDecision {
    /// Nobody holds a valid Lease: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds a valid Lease.
    Follow {
        /// The current holder.
        holder: String,
    },
}

/// Decide from the Lease `spec` (if the Lease exists) whether `me` may lead at `now`.
pub fn decide_lease(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> LeaseDecision {
    let Some(spec) = spec else {
        return LeaseDecision::Acquire;
    };
    let Some(holder) = spec.holder_identity.as_deref().filter(|h| !h.is_empty()) else {
        return LeaseDecision::Acquire;
    };
    if holder == me {
        return LeaseDecision::Renew;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0);
    match renewed {
        Some(renewed) if renewed + duration > now => LeaseDecision::Follow { holder: holder.to_owned() },
        _ => LeaseDecision::Acquire,
    }
}

/// The Lease spec `me` writes when acquiring (`previous` is the spec it replaces) or
/// renewing.
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

/// Errors talking to the API server about the Lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The API call failed.
    #[error("lease {name}: {source}")]
    Kube {
        /// The Lease name.
        name: String,
        /// The failure.
        #[source]
        source: kube::Error,
    },
}

/// One candidate's handle on the Lease.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl LeaseLock {
    /// A lock on Lease `namespace/name` for candidate `identity`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        Self { api: Api::namespaced(client, namespace), name: name.to_owned(), identity: identity.to_owned(), duration }
    }

    /// How often to call [`LeaseLock::try_lead`]: a third of the Lease duration.
    pub fn retry_period(&self) -> Duration {
        self.duration / 3
    }

    /// Try to acquire or renew the Lease; `Ok(true)` when we lead afterwards. Losing a
    /// race (conflict) is `Ok(false)`, not an error.
    pub async fn try_lead(&self) -> Result<bool, LeaseError> {
        let kube_err = |source| LeaseError::Kube { name: self.name.clone(), source };
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await.map_err(kube_err)?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        match decide_lease(spec, &self.identity, now) {
            LeaseDecision::Follow { .. } => Ok(false),
            LeaseDecision::Acquire | LeaseDecision::Renew => {
                let spec = next_spec(spec, &self.identity, now, self.duration);
                let result = match current {
                    None => {
                        let lease = Lease {
                            metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                            spec: Some(spec),
                        };
                        self.api.create(&PostParams::default(), &lease).await
                    }
                    Some(mut lease) => {
                        lease.spec = Some(spec);
                        self.api.replace(&self.name, &PostParams::default(), &lease).await
                    }
                };
                match result {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                    Err(e) => Err(kube_err(e)),
                }
            }
        }
    }
}

impl LeaseLock {
    /// Give the Lease up if we hold it, so a successor need not wait for it to expire.
    pub async fn release(&self) -> Result<(), LeaseError> {
        let kube_err = |source| LeaseError::Kube { name: self.name.clone(), source };
        let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(kube_err)? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        *spec = released(spec);
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            // Someone else changed it meanwhile: it is not ours to release any more.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(kube_err(e)),
        }
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

    #[test]
    fn missing_or_unheld_lease_is_acquired() {
        assert_eq!(decide_lease(None, "a", at(0)), LeaseDecision::Acquire);
        let empty = LeaseSpec { holder_identity: Some(String::new()), ..LeaseSpec::default() };
        assert_eq!(decide_lease(Some(&empty), "a", at(0)), LeaseDecision::Acquire);
    }

    #[test]
    fn own_lease_is_renewed_even_if_expired() {
        assert_eq!(decide_lease(Some(&held_by("a", 0)), "a", at(100)), LeaseDecision::Renew);
    }

    #[test]
    fn valid_foreign_lease_is_followed_until_it_expires() {
        let spec = held_by("b", 10);
        assert_eq!(decide_lease(Some(&spec), "a", at(24)), LeaseDecision::Follow { holder: "b".to_owned() });
        assert_eq!(decide_lease(Some(&spec), "a", at(25)), LeaseDecision::Acquire);
    }

    #[test]
    fn released_lease_is_acquired_at_once() {
        let spec = released(&held_by("b", 10));
        assert_eq!(spec.lease_transitions, Some(2));
        assert_eq!(decide_lease(Some(&spec), "a", at(11)), LeaseDecision::Acquire);
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_does_not() {
        let previous = held_by("b", 10);
        let taken = next_spec(Some(&previous), "a", at(30), Duration::from_secs(15));
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(3));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(30))));
        let renewed = next_spec(Some(&taken), "a", at(35), Duration::from_secs(15));
        assert_eq!(renewed.lease_transitions, Some(3));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(30))));
        assert_eq!(renewed.renew_time, Some(MicroTime(at(35))));
        assert_eq!(renewed.lease_duration_seconds, Some(15));
    }
}
