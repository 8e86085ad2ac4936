//! A real child process under test, with the faults tests inject.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A program run with fixed arguments; its stdout and stderr append to `<data_dir>.log` (so
/// restarts keep one log). Killed on drop, and dies with the test process.
pub struct Process {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Variables of the test's own environment the process must not inherit.
    env_removed: Vec<String>,
    data_dir: PathBuf,
    child: Option<Child>,
}

impl Process {
    /// A process (not started) running `program args` with its data under `data_dir`.
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args,
            env: Vec::new(),
            env_removed: Vec::new(),
            data_dir: data_dir.into(),
            child: None,
        }
    }

    /// Adds an environment variable for every start from now on.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Keeps `key` of the test's environment away from the process (e.g. a setting the
    /// arguments choose explicitly).
    pub fn without_env(mut self, key: &str) -> Self {
        self.env_removed.push(key.to_string());
        self
    }

    /// The arguments of the next start (e.g. to replace a seed list).
    pub fn args_mut(&mut self) -> &mut Vec<String> {
        &mut self.args
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

    /// Starts the process. Panics if it runs already or cannot be spawned (a test setup
    /// error).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already runs", self.data_dir.display());
        if let Some(parent) = self.data_dir.parent() {
            std::fs::create_dir_all(parent).expect("create the parent of the data directory");
        }
        let log = File::options().create(true).append(true).open(self.log_path()).expect("open the process log");
        let mut command = Command::new(&self.program);
        for key in &self.env_removed {
            command.env_remove(key);
        }
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; the child dies with the test process, even when
        // the test panics or is killed.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.child = Some(command.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", self.program.display())));
    }

    /// Its pid while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok())
    }

    /// Whether it was started and not stopped.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// kill -9 (after SIGCONT, so a paused process dies too).
    pub fn kill(&mut self) {
        self.resume();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait up to 30 s; true if it exited cleanly (status 0) in time, false if
    /// it had to be killed or failed.
    pub fn stop(&mut self) -> bool {
        self.resume();
        let Some(mut child) = self.child.take() else { return false };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// SIGSTOP: the process hangs (a long GC pause, a stalled disk).
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`Process::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// kill -9, then start again with the same data.
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    /// Deletes the data directory (the disk is lost); the process must be stopped.
    pub fn wipe(&mut self) {
        assert!(self.child.is_none(), "wiping the data of a running process");
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }

    /// Everything the process printed so far, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_pauses_kills_restarts_and_logs() {
        let dir = std::env::temp_dir().join(format!("kudu-testkit-{}", std::process::id()));
        let script = "echo started; exec sleep 30".to_string();
        let mut p = Process::new("/bin/sh", vec!["-c".into(), script], dir.join("p"));
        let started = |p: &Process, n: usize| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while p.log().matches("started").count() < n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            p.log().matches("started").count()
        };
        p.start();
        assert!(p.is_running() && p.pid().is_some());
        assert_eq!(started(&p, 1), 1);
        p.pause();
        p.kill();
        assert!(!p.is_running());
        p.restart();
        assert_eq!(started(&p, 2), 2, "one log over both starts: {}", p.log());
        p.stop();
        assert!(!p.is_running());
        p.wipe();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
