//! Runs the `--location-mapping-cmd` for a registering tablet server and caches the result
//! per host. A failing command or an invalid location is a registration error, never a
//! silent default.
//!
//! - Answers are reused for the cache TTL, so a server that registers again later (after
//!   a restart, a move, or a network partition) gets a fresh answer; a changed host is a
//!   new cache key anyway.
//! - Failures are remembered for a short TTL: a broken command is not run on every
//!   heartbeat, and a fixed one is picked up soon.
//! - One lookup per host runs at a time (concurrent callers share it), at most
//!   `max_concurrent` commands run at once, and a lookup runs to the end (or its timeout)
//!   even if the heartbeat that asked has given up, so its answer is cached.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::Semaphore;

use super::config::LocationMappingConfig;
use crate::location::{InvalidLocation, Location, validate_location};

/// Why a host got no location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("location mapping command '{command}' could not run for {host}: {message}")]
    Spawn { command: String, host: String, message: String },
    #[error("location mapping command '{command}' timed out after {timeout:?} for {host}")]
    Timeout { command: String, host: String, timeout: Duration },
    #[error("location mapping command '{command}' failed for {host} ({status}): {stderr}")]
    Failed { command: String, host: String, status: String, stderr: String },
    #[error("location mapping command '{command}' printed nothing for {host}")]
    Empty { command: String, host: String },
    #[error("location mapping command '{command}' printed an invalid location for {host}: {source}")]
    Invalid { command: String, host: String, source: InvalidLocation },
}

/// The time source of the caches (a test moves it by hand).
type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

type Lookup = Shared<BoxFuture<'static, Result<Location, MappingError>>>;

/// A remembered answer and when it expires.
struct Cached {
    outcome: Result<Location, MappingError>,
    expires: Instant,
}

#[derive(Default)]
struct State {
    cache: HashMap<String, Cached>,
    in_flight: HashMap<String, Lookup>,
}

struct Inner {
    /// Program and leading arguments; the host is appended as the last argument.
    argv: Vec<String>,
    config: LocationMappingConfig,
    permits: Semaphore,
    clock: Clock,
    state: Mutex<State>,
}

/// The configured mapping command with its per-host cache.
#[derive(Clone)]
pub struct LocationMapper {
    inner: Arc<Inner>,
}

impl LocationMapper {
    /// A mapper for `config`; `None` if the command is empty.
    pub fn new(config: LocationMappingConfig) -> Option<Self> {
        Self::with_clock(config, Arc::new(Instant::now))
    }

    fn with_clock(config: LocationMappingConfig, clock: Clock) -> Option<Self> {
        let argv: Vec<String> = config.command.split_whitespace().map(str::to_string).collect();
        if argv.is_empty() {
            return None;
        }
        let permits = Semaphore::new(config.max_concurrent.max(1));
        let inner = Inner { argv, config, permits, clock, state: Mutex::new(State::default()) };
        Some(Self { inner: Arc::new(inner) })
    }

    /// The location of `host` (an IP address or host name): a cached answer while it is
    /// fresh, else the command's (shared with concurrent callers for the same host).
    pub async fn location_of(&self, host: &str) -> Result<Location, MappingError> {
        let lookup = {
            let mut state = self.inner.lock();
            let now = (self.inner.clock)();
            if let Some(cached) = state.cache.get(host).filter(|c| c.expires > now) {
                return cached.outcome.clone();
            }
            match state.in_flight.get(host) {
                Some(lookup) => lookup.clone(),
                None => {
                    let lookup = self.start_lookup(host);
                    state.in_flight.insert(host.to_string(), lookup.clone());
                    lookup
                }
            }
        };
        lookup.await
    }

    /// Spawns the lookup of `host`, so it completes (and is cached) even if every caller
    /// stops waiting.
    fn start_lookup(&self, host: &str) -> Lookup {
        let inner = self.inner.clone();
        let owned = host.to_string();
        let task = tokio::spawn(async move { inner.lookup(owned).await });
        let command = self.inner.command();
        let host = host.to_string();
        async move {
            task.await.unwrap_or_else(|e| {
                Err(MappingError::Spawn { command, host, message: format!("the lookup task failed: {e}") })
            })
        }
        .boxed()
        .shared()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn command(&self) -> String {
        self.argv.join(" ")
    }

    /// Runs the command for `host` (within the concurrency bound) and caches the outcome.
    async fn lookup(&self, host: String) -> Result<Location, MappingError> {
        let outcome = match self.permits.acquire().await {
            Ok(_permit) => self.run(&host).await,
            Err(e) => Err(MappingError::Spawn { command: self.command(), host: host.clone(), message: e.to_string() }),
        };
        match &outcome {
            Ok(location) => tracing::info!(%host, %location, "location mapping command assigned a location"),
            Err(e) => tracing::warn!(%host, error = %e, "location mapping failed"),
        }
        let ttl = if outcome.is_ok() { self.config.cache_ttl } else { self.config.failure_ttl };
        let now = (self.clock)();
        let mut state = self.lock();
        state.cache.retain(|_, cached| cached.expires > now);
        state.cache.insert(host.clone(), Cached { outcome: outcome.clone(), expires: now + ttl });
        state.in_flight.remove(&host);
        outcome
    }

    /// One run of the command for `host`.
    async fn run(&self, host: &str) -> Result<Location, MappingError> {
        let command = self.command();
        let output = tokio::process::Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .arg(host)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let timeout = self.config.timeout;
        let output = match tokio::time::timeout(timeout, output).await {
            Err(_) => return Err(MappingError::Timeout { command, host: host.to_string(), timeout }),
            Ok(Err(e)) => return Err(MappingError::Spawn { command, host: host.to_string(), message: e.to_string() }),
            Ok(Ok(output)) => output,
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().lines().last().unwrap_or("").to_string();
            return Err(MappingError::Failed {
                command,
                host: host.to_string(),
                status: output.status.to_string(),
                stderr,
            });
        }
        let printed = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if printed.is_empty() {
            return Err(MappingError::Empty { command, host: host.to_string() });
        }
        validate_location(&printed).map_err(|source| MappingError::Invalid { command, host: host.to_string(), source })
    }
}

/// The host part of `host:port` (brackets of IPv6 literals removed).
pub fn host_of(address: &str) -> &str {
    let host = match address.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => address,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use super::*;

    /// Writes an executable shell script `name` in `dir`.
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    fn config(command: &Path) -> LocationMappingConfig {
        LocationMappingConfig {
            timeout: Duration::from_secs(20),
            ..LocationMappingConfig::new(command.display().to_string())
        }
    }

    fn mapper(dir: &Path, name: &str, body: &str) -> LocationMapper {
        LocationMapper::new(config(&script(dir, name, body))).expect("mapper")
    }

    /// A clock that only moves when told to.
    struct ManualClock(Arc<Mutex<Instant>>);

    impl ManualClock {
        fn new() -> (ManualClock, Clock) {
            let now = Arc::new(Mutex::new(Instant::now()));
            let reader = now.clone();
            (ManualClock(now), Arc::new(move || *reader.lock().expect("clock")))
        }

        fn advance(&self, by: Duration) {
            *self.0.lock().expect("clock") += by;
        }
    }

    /// A script that appends its argument to `calls` and prints the content of `answer`
    /// (failing if it is `fail`), so a test can change the answer between runs.
    fn counting_script(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let calls = dir.join("calls");
        let answer = dir.join("answer");
        let body = format!(
            "echo \"$1\" >> {calls}\nanswer=$(cat {answer})\n[ \"$answer\" = fail ] && {{ echo broken >&2; exit 1; }}\necho \"$answer\"",
            calls = calls.display(),
            answer = answer.display()
        );
        (script(dir, "map", &body), calls, answer)
    }

    fn calls(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
    }

    #[test]
    fn host_of_strips_ports() {
        assert_eq!(host_of("10.0.0.1:7050"), "10.0.0.1");
        assert_eq!(host_of("ts-0.ts.ns.svc.cluster.local:7050"), "ts-0.ts.ns.svc.cluster.local");
        assert_eq!(host_of("[::1]:7050"), "::1");
        assert_eq!(host_of("plainhost"), "plainhost");
    }

    #[tokio::test]
    async fn runs_the_command_with_the_host_and_caches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let calls = dir.path().join("calls");
        let m = mapper(dir.path(), "map", &format!("echo x >> {}\necho /dc-0/rack-$1", calls.display()));
        assert_eq!(m.location_of("7").await.expect("location").as_str(), "/dc-0/rack-7");
        assert_eq!(m.location_of("7").await.expect("location").as_str(), "/dc-0/rack-7");
        assert_eq!(std::fs::read_to_string(&calls).expect("calls").lines().count(), 1, "second lookup cached");
    }

    #[tokio::test]
    async fn answers_expire_after_the_ttl_and_a_new_host_is_looked_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (command, calls_file, answer) = counting_script(dir.path());
        std::fs::write(&answer, "/zone-a\n").expect("answer");
        let (clock, time) = ManualClock::new();
        let ttl = Duration::from_secs(300);
        let m = LocationMapper::with_clock(LocationMappingConfig { cache_ttl: ttl, ..config(&command) }, time)
            .expect("mapper");
        assert_eq!(m.location_of("h1").await.expect("location").as_str(), "/zone-a");
        // The pod moved to another zone: within the TTL the cached answer stands...
        std::fs::write(&answer, "/zone-b\n").expect("answer");
        clock.advance(ttl - Duration::from_secs(1));
        assert_eq!(m.location_of("h1").await.expect("cached").as_str(), "/zone-a");
        // ... a host not seen before is looked up at once...
        assert_eq!(m.location_of("h2").await.expect("new host").as_str(), "/zone-b");
        // ... and after the TTL the command runs again.
        clock.advance(Duration::from_secs(2));
        assert_eq!(m.location_of("h1").await.expect("recomputed").as_str(), "/zone-b");
        assert_eq!(calls(&calls_file), ["h1", "h2", "h1"]);
    }

    #[tokio::test]
    async fn failures_are_cached_briefly_then_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (command, calls_file, answer) = counting_script(dir.path());
        std::fs::write(&answer, "fail\n").expect("answer");
        let (clock, time) = ManualClock::new();
        let failure_ttl = Duration::from_secs(10);
        let m = LocationMapper::with_clock(LocationMappingConfig { failure_ttl, ..config(&command) }, time)
            .expect("mapper");
        for _ in 0..5 {
            let err = m.location_of("h").await.expect_err("broken command");
            assert!(matches!(&err, MappingError::Failed { stderr, .. } if stderr == "broken"), "{err}");
        }
        assert_eq!(calls(&calls_file).len(), 1, "a failure is not retried on every lookup");
        // Fixed, but the failure is still remembered...
        std::fs::write(&answer, "/rack-1\n").expect("answer");
        clock.advance(failure_ttl - Duration::from_secs(1));
        assert!(m.location_of("h").await.is_err());
        // ... until its short TTL passes: the command recovers.
        clock.advance(Duration::from_secs(2));
        assert_eq!(m.location_of("h").await.expect("recovered").as_str(), "/rack-1");
        assert_eq!(calls(&calls_file).len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commands_are_bounded_and_one_per_host() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        // Each run logs its start and end around a pause.
        let body = format!("echo start >> {log}\nsleep 0.3\necho end >> {log}\necho /l/$1", log = log.display());
        let command = script(dir.path(), "map", &body);
        let m = LocationMapper::new(LocationMappingConfig { max_concurrent: 2, ..config(&command) }).expect("mapper");
        // 6 hosts, each asked for 3 times at once.
        let lookups = (0..18).map(|i| {
            let m = m.clone();
            async move { m.location_of(&format!("h{}", i % 6)).await }
        });
        let results = futures::future::join_all(lookups).await;
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.as_ref().expect("location").as_str(), format!("/l/h{}", i % 6));
        }
        let events = calls(&log);
        assert_eq!(events.iter().filter(|e| *e == "start").count(), 6, "one run per host: {events:?}");
        let (mut running, mut most) = (0i32, 0i32);
        for e in &events {
            running += if e == "start" { 1 } else { -1 };
            most = most.max(running);
        }
        assert!(most <= 2, "at most 2 commands at once: {events:?}");
    }

    #[tokio::test]
    async fn a_lookup_finishes_and_is_cached_when_its_caller_gives_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (command, calls_file, answer) = counting_script(dir.path());
        std::fs::write(&answer, "/slow\n").expect("answer");
        let m = mapper(dir.path(), "slow", &format!("sleep 0.5\nexec {} \"$1\"", command.display()));
        let gave_up = tokio::time::timeout(Duration::from_millis(50), m.location_of("h")).await;
        assert!(gave_up.is_err(), "the caller stopped waiting");
        assert_eq!(m.location_of("h").await.expect("location").as_str(), "/slow");
        assert_eq!(calls(&calls_file).len(), 1, "the abandoned lookup was reused");
    }

    #[tokio::test]
    async fn failures_and_invalid_output_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = mapper(dir.path(), "fail", "echo boom >&2\nexit 3").location_of("h").await.expect_err("failing");
        assert!(matches!(&err, MappingError::Failed { stderr, .. } if stderr == "boom"), "{err}");
        let err = mapper(dir.path(), "bad", "echo rack-04").location_of("h").await.expect_err("invalid");
        assert!(err.to_string().contains("must start with '/'"), "{err}");
        let err = mapper(dir.path(), "eq", "echo /rack=1").location_of("h").await.expect_err("invalid char");
        assert!(matches!(err, MappingError::Invalid { .. }), "{err}");
        let err = mapper(dir.path(), "empty", "true").location_of("h").await.expect_err("nothing printed");
        assert!(matches!(err, MappingError::Empty { .. }), "{err}");
        assert!(err.to_string().contains("printed nothing"), "{err}");
        let missing = LocationMapper::new(LocationMappingConfig::new("/nonexistent/mapper")).expect("mapper");
        assert!(matches!(missing.location_of("h").await, Err(MappingError::Spawn { .. })));
        let slow = LocationMapper::new(LocationMappingConfig {
            timeout: Duration::from_millis(200),
            ..LocationMappingConfig::new("sleep")
        })
        .expect("mapper");
        assert!(matches!(slow.location_of("5").await, Err(MappingError::Timeout { .. })));
    }
}
