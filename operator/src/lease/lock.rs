//! One candidate's handle on the Lease: reads and writes it against the API server, every
//! call bounded by a timeout, with optimistic concurrency (a `replace` carries the
//! `resourceVersion` read, so two candidates cannot both win), and keeps the
//! [`Leadership`] the rest of the operator checks.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::clock::{Clock, SystemClock};
use super::leadership::{Leadership, Validity};
use super::rules::{LeaseDecision, Observation, decide_lease, next_spec, released};

/// Errors talking to the API server about the Lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The API call failed.
    #[error("lease {name}: {what}: {source}")]
    Kube {
        /// The Lease name.
        name: String,
        /// What was being done.
        what: &'static str,
        /// The failure.
        #[source]
        source: kube::Error,
    },
    /// The API call did not answer in time.
    #[error("lease {name}: {what}: no answer within {timeout:?}")]
    Timeout {
        /// The Lease name.
        name: String,
        /// What was being done.
        what: &'static str,
        /// The time allowed.
        timeout: Duration,
    },
}

/// The Lease's timings, all derived from its duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a record stays valid without a renewal (what others wait for).
    pub duration: Duration,
    /// How often to renew, and to retry while following.
    pub retry_period: Duration,
    /// The longest any one API call may take.
    pub call_timeout: Duration,
    /// How long after a renewal *started* this replica goes on acting as the leader:
    /// shorter than `duration`, so it stops before anyone else can take over.
    pub renew_deadline: Duration,
    /// Time that must be left to start a removal or deletion.
    pub guard: Duration,
}

impl Timing {
    /// The timings of a Lease of `duration`.
    pub fn for_duration(duration: Duration) -> Self {
        let fifth = duration / 5;
        Self { duration, retry_period: fifth, call_timeout: fifth, renew_deadline: duration * 2 / 3, guard: fifth }
    }
}

/// One candidate's handle on the Lease.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    clock: Arc<dyn Clock>,
    /// The record as last read, and since when it is unchanged.
    observed: Mutex<Option<Observation>>,
    validity: watch::Sender<Validity>,
}

impl LeaseLock {
    /// A lock on Lease `namespace/name` for candidate `identity`, on the system clocks.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        Self::with_clock(client, namespace, name, identity, duration, Arc::new(SystemClock))
    }

    /// [`LeaseLock::new`] reading time from `clock`.
    pub fn with_clock(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing: Timing::for_duration(duration),
            clock,
            observed: Mutex::new(None),
            validity: watch::channel(Validity::NotLeading).0,
        }
    }

    /// The timings.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// How often to call [`LeaseLock::try_lead`].
    pub fn retry_period(&self) -> Duration {
        self.timing.retry_period
    }

    /// This candidate's leadership, as the rest of the operator checks it.
    pub fn leadership(&self) -> Leadership {
        Leadership::new(self.validity.subscribe(), self.clock.clone(), self.timing.guard)
    }

    /// `call`, failing after the call timeout.
    async fn bounded<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<Result<T, kube::Error>, LeaseError> {
        let timeout = self.timing.call_timeout;
        tokio::time::timeout(timeout, call).await.map_err(|_| LeaseError::Timeout {
            name: self.name.clone(),
            what,
            timeout,
        })
    }

    fn kube_err(&self, what: &'static str) -> impl FnOnce(kube::Error) -> LeaseError + '_ {
        move |source| LeaseError::Kube { name: self.name.clone(), what, source }
    }

    fn lose(&self) {
        let was = self.validity.send_replace(Validity::NotLeading);
        if was != Validity::NotLeading {
            info!(identity = %self.identity, "no longer holding the leader Lease");
        }
    }

    /// Try to acquire or renew the Lease; `Ok(true)` when we lead afterwards. Losing a
    /// race (conflict) is `Ok(false)`, not an error. On an error the leadership stays as it
    /// was and lapses when its time is up.
    pub async fn try_lead(&self) -> Result<bool, LeaseError> {
        // Others see our write no earlier than now: leadership counts from here.
        let started = self.clock.now();
        let current = self.bounded("reading", self.api.get_opt(&self.name)).await?.map_err(self.kube_err("reading"))?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let observation = {
            let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
            let updated = Observation::update(observed.as_ref(), spec, self.clock.now());
            *observed = Some(updated.clone());
            updated
        };
        match decide_lease(&observation, &self.identity, self.timing.duration, self.clock.now()) {
            LeaseDecision::Follow { holder } => {
                debug!(%holder, "the leader Lease is held by another replica");
                self.lose();
                Ok(false)
            }
            LeaseDecision::Acquire | LeaseDecision::Renew => {
                let spec = next_spec(spec, &self.identity, self.clock.wall(), self.timing.duration);
                let written = match current {
                    None => {
                        let lease = Lease {
                            metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                            spec: Some(spec),
                        };
                        self.bounded("creating", self.api.create(&PostParams::default(), &lease)).await?
                    }
                    Some(mut lease) => {
                        lease.spec = Some(spec);
                        self.bounded("renewing", self.api.replace(&self.name, &PostParams::default(), &lease)).await?
                    }
                };
                match written {
                    Ok(_) => {
                        self.validity.send_replace(Validity::Until(started + self.timing.renew_deadline));
                        Ok(true)
                    }
                    Err(kube::Error::Api(status)) if status.code == 409 => {
                        // Someone else wrote it since we read it.
                        self.lose();
                        Ok(false)
                    }
                    Err(e) => Err(self.kube_err("writing")(e)),
                }
            }
        }
    }

    /// Give the Lease up if we hold it, so a successor need not wait for it to expire.
    pub async fn release(&self) -> Result<(), LeaseError> {
        self.lose();
        let Some(mut lease) =
            self.bounded("reading", self.api.get_opt(&self.name)).await?.map_err(self.kube_err("reading"))?
        else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        *spec = released(spec);
        match self.bounded("releasing", self.api.replace(&self.name, &PostParams::default(), &lease)).await? {
            Ok(_) => Ok(()),
            // Someone else changed it meanwhile: it is not ours to release any more.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(self.kube_err("releasing")(e)),
        }
    }
}

/// How [`keep_renewing`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Asked to stop while still leading.
    Stopped,
    /// Leadership was lost: another replica holds the Lease, or it was not renewed in time.
    Lost,
}

/// Renew the Lease every retry period until `stop` turns true or leadership is lost. Loss
/// is reported the moment leadership lapses, even while a renewal call is still pending.
///
/// Each renewal says where its time went when it was slow (more than a third of the call
/// timeout): `woke_late_ms`, how much later than due this task ran (the operator's own
/// workers were busy), and `took_ms`, how long the API calls took (the API server).
pub async fn keep_renewing(lock: &LeaseLock, mut stop: watch::Receiver<bool>) -> Renewal {
    let leadership = lock.leadership();
    let period = lock.retry_period();
    loop {
        let slept_at = tokio::time::Instant::now();
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.wait_for(|stop| *stop) => return Renewal::Stopped,
            _ = leadership.lost() => return Renewal::Lost,
        }
        let started = tokio::time::Instant::now();
        let woke_late = started.duration_since(slept_at).saturating_sub(period);
        tokio::select! {
            renewed = lock.try_lead() => {
                let took = started.elapsed();
                let (woke_late_ms, took_ms) = (woke_late.as_millis(), took.as_millis());
                match renewed {
                    Ok(true) if woke_late + took > lock.timing.call_timeout / 3 => {
                        warn!(woke_late_ms, took_ms, "slow leader Lease renewal");
                    }
                    Ok(true) => debug!(woke_late_ms, took_ms, "renewed the leader Lease"),
                    Ok(false) => return Renewal::Lost,
                    Err(error) => warn!(%error, woke_late_ms, took_ms, "renewing the leader Lease"),
                }
            },
            _ = leadership.lost() => {
                warn!(woke_late_ms = woke_late.as_millis(), took_ms = started.elapsed().as_millis(),
                      "the leader Lease lapsed while renewing");
                return Renewal::Lost;
            }
        }
    }
}

impl Renewal {
    /// Whether leadership was lost.
    pub fn lost(self) -> bool {
        self == Self::Lost
    }
}
