//! Real `kudu master run` processes on loopback, one per StatefulSet ordinal, each on its
//! own `127.0.0.x` address with a free port and a data directory in a temporary directory.
//! Children die with the test process (`PR_SET_PDEATHSIG`) and are killed on drop.

use std::fs::File;
use std::future::Future;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Deadline for anything cluster-wide on a slow, shared 2-core machine.
pub const WAIT: Duration = Duration::from_secs(90);

/// The `kudu` binary the workspace build produced: next to the test executable's
/// directory (`target/debug/deps/..`), else under `$CARGO_TARGET_DIR/debug`.
pub fn kudu_bin() -> PathBuf {
    let beside_tests = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.join("kudu")));
    let from_env = std::env::var_os("CARGO_TARGET_DIR").map(|dir| Path::new(&dir).join("debug").join("kudu"));
    beside_tests.into_iter().chain(from_env).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("the kudu binary is missing: build it first with `cargo build --workspace` (same CARGO_TARGET_DIR)")
    })
}

/// A free `127.0.0.x:port` address (bind port 0, read it, drop the listener).
pub fn free_addr() -> String {
    let mut seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    loop {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let ip = format!("127.0.0.{}", 2 + (seed >> 16) % 250);
        if let Ok(listener) = TcpListener::bind(format!("{ip}:0"))
            && let Ok(addr) = listener.local_addr()
        {
            return addr.to_string();
        }
    }
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One master process: the pod of one ordinal, its data directory the pod's volume.
pub struct Master {
    /// RPC address (also its address in the Raft membership).
    pub addr: String,
    /// Data directory.
    pub data_dir: PathBuf,
    child: Option<Child>,
}

impl Master {
    /// A master (not started) at `addr` with its data under `dir`.
    pub fn new(dir: &Path, ordinal: i32, addr: String) -> Self {
        Self { addr, data_dir: dir.join(format!("master-{ordinal}")), child: None }
    }

    /// Start it with the seed list `seeds`, as a StatefulSet pod reads it at start.
    pub fn start(&mut self, seeds: &[String]) {
        assert!(self.child.is_none(), "{} already runs", self.addr);
        std::fs::create_dir_all(&self.data_dir).expect("create the data directory");
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .expect("open the process log");
        let mut command = Command::new(kudu_bin());
        command
            .args(["master", "run", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--rpc-addr", &self.addr, "--master-addresses", &seeds.join(",")])
            .args(["--raft-heartbeat-interval-ms", "200", "--raft-election-timeout-ms", "1000"])
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; the child dies with the test process.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.child = Some(command.spawn().expect("spawn kudu master"));
    }

    /// Whether the process was started and not stopped.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// kill -9 (the pod is gone or its node died).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Delete the data directory (the volume is lost); the process must be stopped.
    pub fn wipe(&mut self) {
        assert!(self.child.is_none(), "wiping a running master");
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }

    /// The process output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        self.kill();
    }
}
