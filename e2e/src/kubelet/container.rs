//! Container supervision: start, restart per restartPolicy with back-off, stop on request,
//! and the state the kubelet reports in `containerStatuses`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::process::{ProcessSpec, Unstartable, spawn, terminate};
use crate::apiserver::util::now_rfc3339;

/// What the kubelet knows about one container.
#[derive(Debug, Clone)]
pub struct ContainerState {
    /// Container name.
    pub name: String,
    /// Image as given in the spec.
    pub image: String,
    /// Readiness as last probed (true while running when there is no readiness probe).
    pub ready: bool,
    /// Has been started at least once.
    pub started: bool,
    /// Restarts so far.
    pub restart_count: u32,
    /// `state` in containerStatuses.
    pub state: Value,
    /// `lastState` in containerStatuses.
    pub last_state: Value,
    /// Exited and will not restart.
    pub done: bool,
    /// Exit code of the last run.
    pub exit_code: Option<i32>,
    /// Whether a readiness probe decides `ready`.
    pub has_readiness: bool,
}

impl ContainerState {
    /// Initial (waiting) state.
    pub fn new(name: &str, image: &str, has_readiness: bool) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            ready: false,
            started: false,
            restart_count: 0,
            state: json!({"waiting": {"reason": "ContainerCreating"}}),
            last_state: json!({}),
            done: false,
            exit_code: None,
            has_readiness,
        }
    }

    /// Whether the process is running now.
    pub fn running(&self) -> bool {
        self.state.get("running").is_some()
    }

    /// The `containerStatuses` entry.
    pub fn to_status(&self) -> Value {
        json!({
            "name": self.name, "image": self.image, "imageID": format!("local://{}", self.image),
            "containerID": format!("local://{}", self.name),
            "ready": self.ready, "started": self.running(), "restartCount": self.restart_count,
            "state": self.state, "lastState": self.last_state,
        })
    }
}

/// State shared between a pod's supervisors, probes and the kubelet loop.
#[derive(Debug)]
pub struct PodShared {
    /// One entry per container, in spec order.
    pub containers: Mutex<Vec<ContainerState>>,
    /// Wakes the kubelet loop to publish status.
    pub kick: Arc<Notify>,
}

impl PodShared {
    /// Updates container `i` and wakes the kubelet.
    pub fn update(&self, i: usize, f: impl FnOnce(&mut ContainerState)) {
        {
            let mut cs = self.containers.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = cs.get_mut(i) {
                f(c);
            }
        }
        self.kick.notify_one();
    }

    /// A snapshot of all containers.
    pub fn snapshot(&self) -> Vec<ContainerState> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How to run one container.
#[derive(Debug, Clone)]
pub struct Supervised {
    /// Index in the pod's containers.
    pub index: usize,
    /// Process to run (`Err` holds why it cannot be started).
    pub spec: Result<ProcessSpec, Unstartable>,
    /// `Always`, `OnFailure` or `Never`.
    pub restart_policy: String,
    /// Termination grace period.
    pub grace: Duration,
}

fn stop_requested(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

const MAX_BACKOFF: Duration = Duration::from_secs(10);

async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

/// Runs the container until `stop` turns true (or it exits for good).
pub async fn supervise(c: Supervised, shared: Arc<PodShared>, mut stop: watch::Receiver<bool>, restart: Arc<Notify>) {
    let i = c.index;
    let mut backoff = Duration::from_secs(1);
    loop {
        if stop_requested(&stop) {
            return;
        }
        let spec = match &c.spec {
            Ok(s) => s,
            Err(Unstartable { reason, message }) => {
                let waiting = json!({"waiting": {"reason": reason, "message": message}});
                shared.update(i, |s| s.state = waiting);
                let _ = stop.wait_for(|s| *s).await;
                return;
            }
        };
        let mut child = match spawn(spec) {
            Ok(child) => child,
            Err(e) => {
                let msg = e.to_string();
                tracing::warn!(error = %msg, "container failed to start");
                shared.update(i, |s| s.state = json!({"waiting": {"reason": "CreateContainerError", "message": msg}}));
                if pause(backoff, &mut stop).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let started = Instant::now();
        shared.update(i, |s| {
            s.state = json!({"running": {"startedAt": now_rfc3339()}});
            s.started = true;
            s.ready = !s.has_readiness;
        });
        let mut stopping = false;
        let status = tokio::select! {
            st = child.wait() => st.ok(),
            _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                stopping = true;
                terminate(&mut child, c.grace).await
            }
            _ = restart.notified() => terminate(&mut child, c.grace).await,
        };
        let code = status.map(super::process::exit_code).unwrap_or(137);
        let terminated = json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }, "startedAt": now_rfc3339(), "finishedAt": now_rfc3339()}});
        let again = !stopping && (c.restart_policy == "Always" || (c.restart_policy == "OnFailure" && code != 0));
        shared.update(i, |s| {
            s.ready = false;
            s.exit_code = Some(code);
            if again {
                s.restart_count += 1;
                s.last_state = terminated.clone();
                s.state = json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off restarting failed container (exit code {code})")}});
            } else {
                s.state = terminated.clone();
                s.done = !stopping;
            }
        });
        if !again {
            return;
        }
        if started.elapsed() > MAX_BACKOFF {
            backoff = Duration::from_secs(1);
        }
        if pause(backoff, &mut stop).await {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
