//! Container lifecycle hooks: `preStop` exec handlers run before a pod's containers get
//! SIGTERM, in the container's environment, within the pod's termination grace period (as
//! the kubelet does; HTTP handlers and `postStart` are not supported).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::exec::ExecRegistry;
use super::process::{ProcessSpec, resolve_program, spawn};

/// One container's preStop command, ready to run.
#[derive(Debug, Clone)]
pub struct PreStop {
    /// The container.
    pub container: String,
    /// How to run the command.
    pub spec: ProcessSpec,
}

/// The preStop exec hooks of `pod`'s running containers.
pub fn pre_stop_hooks(pod: &Value, uid: &str, exec: &ExecRegistry, bin_dirs: &[std::path::PathBuf]) -> Vec<PreStop> {
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default();
    containers
        .iter()
        .filter_map(|c| {
            let name = c.get("name").and_then(Value::as_str)?;
            let argv: Vec<String> = c
                .pointer("/lifecycle/preStop/exec/command")
                .and_then(Value::as_array)?
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            let (first, rest) = argv.split_first()?;
            let mut spec = exec.spec(uid, name)?;
            spec.program = resolve_program(first, bin_dirs)?;
            spec.args = rest.to_vec();
            Some(PreStop { container: name.to_owned(), spec })
        })
        .collect()
}

/// Runs `hooks` in parallel (their output goes to the container logs) and waits for them,
/// at most `grace`; returns how much of the grace period is left.
pub async fn run_pre_stop(hooks: Vec<PreStop>, grace: Duration) -> Duration {
    let started = Instant::now();
    let runs = hooks.into_iter().map(|hook| async move {
        match spawn(&hook.spec) {
            Ok(mut child) => match tokio::time::timeout(grace, child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(status) => {
                    tracing::warn!(container = %hook.container, ?status, "preStop hook failed")
                }
                Err(_) => {
                    tracing::warn!(container = %hook.container, "preStop hook did not finish within the grace period");
                    let _ = child.kill().await;
                }
            },
            Err(e) => tracing::warn!(container = %hook.container, error = %e, "cannot run the preStop hook"),
        }
    });
    futures::future::join_all(runs).await;
    grace.saturating_sub(started.elapsed())
}
