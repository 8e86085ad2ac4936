//! `kubectl exec` support: the kubelet records how each running container was started, and
//! an exec runs the requested command the same way (environment, mounts, hostname).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use tokio::process::Child;

use super::process::{ProcessSpec, resolve_program, spawn_piped};
use crate::apiserver::exec::PodExec;

/// Running containers by (pod UID, container name).
#[derive(Debug, Default)]
pub struct ExecRegistry {
    specs: Mutex<HashMap<(String, String), ProcessSpec>>,
    bin_dirs: Vec<PathBuf>,
}

impl ExecRegistry {
    /// A registry resolving commands in `bin_dirs` before the PATH.
    pub fn new(bin_dirs: Vec<PathBuf>) -> Self {
        Self { specs: Mutex::default(), bin_dirs }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), ProcessSpec>> {
        self.specs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records how `container` of pod `uid` runs.
    pub fn register(&self, uid: &str, container: &str, spec: ProcessSpec) {
        self.lock().insert((uid.to_string(), container.to_string()), spec);
    }

    /// How `container` of pod `uid` runs, if it does.
    pub fn spec(&self, uid: &str, container: &str) -> Option<ProcessSpec> {
        self.lock().get(&(uid.to_string(), container.to_string())).cloned()
    }

    /// Forgets every container of pod `uid`.
    pub fn forget_pod(&self, uid: &str) {
        self.lock().retain(|(u, _), _| u != uid);
    }
}

impl PodExec for ExecRegistry {
    fn spawn(&self, pod_uid: &str, container: &str, argv: &[String]) -> Result<Child, String> {
        let mut spec = self
            .lock()
            .get(&(pod_uid.to_string(), container.to_string()))
            .cloned()
            .ok_or_else(|| format!("container {container:?} is not running in this pod"))?;
        let (first, rest) = argv.split_first().ok_or("no command given")?;
        spec.program = resolve_program(first, &self.bin_dirs)
            .ok_or_else(|| format!("exec: {first:?}: executable file not found in $PATH"))?;
        spec.args = rest.to_vec();
        spawn_piped(&spec).map_err(|e| e.to_string())
    }
}
