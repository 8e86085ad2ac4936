//! Two candidates against one fake Lease API: skewed wall clocks never give two leaders, a
//! hung API call makes the holder step down in time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::*;

const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/op";

/// An API server holding one Lease, with `resourceVersion` checks on replace; while
/// `hang` is set, requests are never answered.
#[derive(Clone, Default)]
struct FakeLeaseApi {
    lease: Arc<Mutex<Option<Value>>>,
    version: Arc<AtomicUsize>,
    hang: Arc<AtomicBool>,
    /// Requests received while hanging.
    hung: Arc<AtomicUsize>,
}

impl FakeLeaseApi {
    fn client(&self) -> Client {
        let fake = self.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let fake = fake.clone();
            async move { Ok::<_, std::convert::Infallible>(fake.handle(request).await) }
        });
        Client::new(service, "ops")
    }

    async fn handle(&self, request: Request<Body>) -> Response<Body> {
        if self.hang.load(Ordering::SeqCst) {
            self.hung.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let bytes = request.into_body().collect_bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut lease = self.lease.lock().unwrap();
        let (status, reply) = match method {
            Method::GET if path == LEASE_PATH => match lease.as_ref() {
                Some(stored) => (StatusCode::OK, stored.clone()),
                None => not_found(),
            },
            Method::POST if lease.is_none() => {
                let stored = self.stored(body);
                *lease = Some(stored.clone());
                (StatusCode::CREATED, stored)
            }
            Method::PUT if path == LEASE_PATH => {
                let current = lease.as_ref().map(|l| l["metadata"]["resourceVersion"].clone());
                if current.is_none() || current.as_ref() != Some(&body["metadata"]["resourceVersion"]) {
                    conflict()
                } else {
                    let stored = self.stored(body);
                    *lease = Some(stored.clone());
                    (StatusCode::OK, stored)
                }
            }
            _ => conflict(),
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap()
    }

    /// `lease` as stored: kind, name and a new resourceVersion.
    fn stored(&self, mut lease: Value) -> Value {
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        lease["apiVersion"] = json!("coordination.k8s.io/v1");
        lease["kind"] = json!("Lease");
        lease["metadata"]["namespace"] = json!("ops");
        lease["metadata"]["resourceVersion"] = json!(version.to_string());
        lease
    }
}

fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"}),
    )
}

fn conflict() -> (StatusCode, Value) {
    (
        StatusCode::CONFLICT,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 409, "reason": "Conflict"}),
    )
}

/// Simulated time shared by every candidate: each has its own monotonic origin (they are
/// not comparable across machines) and its own wall clock skew.
#[derive(Clone, Default)]
struct Time(Arc<Mutex<Duration>>);

impl Time {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }

    fn elapsed(&self) -> Duration {
        *self.0.lock().unwrap()
    }

    fn clock(&self, monotonic_origin: Instant, wall_skew: SignedDuration) -> Arc<dyn Clock> {
        Arc::new(ManualClock { time: self.clone(), monotonic_origin, wall_skew })
    }
}

struct ManualClock {
    time: Time,
    monotonic_origin: Instant,
    wall_skew: SignedDuration,
}

impl Clock for ManualClock {
    fn wall(&self) -> Timestamp {
        let origin = Timestamp::from_second(1_800_000_000).unwrap();
        origin + SignedDuration::try_from(self.time.elapsed()).unwrap() + self.wall_skew
    }

    fn now(&self) -> Instant {
        self.monotonic_origin + self.time.elapsed()
    }
}

const DURATION: Duration = Duration::from_secs(15);

/// A candidate of the schedule: its lock, and the simulated times it tries to lead at.
struct Candidate {
    name: &'static str,
    lock: LeaseLock,
    leadership: Leadership,
    next_try: Duration,
    /// Seconds during which it does not run at all (a stopped process).
    paused: std::ops::Range<u64>,
}

#[tokio::test]
async fn skewed_wall_clocks_never_give_two_leaders() {
    for skew in [3600, -3600, 10, -10, 0] {
        let api = FakeLeaseApi::default();
        let time = Time::default();
        let skew = SignedDuration::from_secs(skew);
        let candidate = |name: &'static str, clock: Arc<dyn Clock>, paused, first_try| {
            let lock = LeaseLock::with_clock(api.client(), "ops", "op", name, DURATION, clock);
            let leadership = lock.leadership();
            Candidate { name, lock, leadership, next_try: first_try, paused }
        };
        // `a` leads first, stops (SIGSTOP, a long pause) from 40 s to 80 s, then runs again;
        // `b`'s wall clock is skewed against `a`'s.
        let mut candidates = [
            candidate("a", time.clock(Instant::now(), SignedDuration::ZERO), 40..80, Duration::ZERO),
            candidate("b", time.clock(Instant::now() + Duration::from_secs(1000), skew), 0..0, Duration::from_secs(1)),
        ];
        let mut leaders_seen = Vec::new();
        for second in 0..150_u64 {
            for c in candidates.iter_mut() {
                if time.elapsed() >= c.next_try && !c.paused.contains(&second) {
                    let led = c.lock.try_lead().await.unwrap();
                    assert_eq!(led, c.leadership.is_leading(), "skew {skew}: {} at {second}s", c.name);
                    c.next_try = time.elapsed() + c.lock.retry_period();
                }
            }
            let leading: Vec<&str> = candidates.iter().filter(|c| c.leadership.is_leading()).map(|c| c.name).collect();
            assert!(leading.len() <= 1, "skew {skew}: {leading:?} both lead at {second}s");
            if let Some(leader) = leading.first()
                && leaders_seen.last() != Some(leader)
            {
                leaders_seen.push(*leader);
            }
            time.advance(Duration::from_millis(500));
            for c in candidates.iter() {
                assert!(
                    !c.leadership.is_leading() || c.leadership.ensure().is_ok() || c.paused.contains(&second),
                    "skew {skew}: {} leads with too little time left while renewing",
                    c.name
                );
            }
            time.advance(Duration::from_millis(500));
        }
        // `a` led, `b` took over once `a` stopped renewing, and `a` came back as a follower.
        assert_eq!(leaders_seen, ["a", "b"], "skew {skew}");
        assert!(!candidates[0].leadership.is_leading());
    }
}

#[tokio::test]
async fn every_lease_call_is_bounded_by_a_timeout() {
    let api = FakeLeaseApi::default();
    api.hang.store(true, Ordering::SeqCst);
    let lock = LeaseLock::new(api.client(), "ops", "op", "a", Duration::from_secs(5));
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(60), lock.try_lead()).await;
    assert!(matches!(result, Ok(Err(LeaseError::Timeout { .. }))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "a call took {:?}", started.elapsed());
    assert!(!lock.leadership().is_leading());
}

#[tokio::test]
async fn a_hung_renewal_makes_the_holder_step_down_before_anyone_can_take_over() {
    // The default duration: stepping down takes its renew deadline (10 s), and leaves 5 s
    // of slack for a slow machine before anyone else could take over.
    let duration = DURATION;
    let api = FakeLeaseApi::default();
    let lock = LeaseLock::new(api.client(), "ops", "op", "a", duration);
    let leadership = lock.leadership();
    let renewed = Instant::now();
    assert!(lock.try_lead().await.unwrap());
    assert!(leadership.is_leading());

    // From now on the API server accepts requests and never answers.
    api.hang.store(true, Ordering::SeqCst);
    let (_stop, stop) = watch::channel(false);
    let renewal = tokio::time::timeout(duration * 10, keep_renewing(&lock, stop)).await;
    let stepped_down = renewed.elapsed();

    assert_eq!(renewal, Ok(Renewal::Lost));
    assert!(api.hung.load(Ordering::SeqCst) > 0, "no renewal was attempted");
    assert!(!leadership.is_leading());
    assert!(leadership.ensure().is_err());
    // Another replica saw the last renewal no earlier than it was sent, and waits a whole
    // duration from then: the holder stopped acting before that.
    assert!(stepped_down < duration, "stepped down {stepped_down:?} after the last renewal");
    assert!(stepped_down >= lock.timing().renew_deadline, "stepped down early, after {stepped_down:?}");
}
