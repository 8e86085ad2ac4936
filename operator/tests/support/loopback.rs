//! Real `kudu master run` processes on loopback, one per StatefulSet ordinal, each on its
//! own `127.0.0.x` address with a free port and a data directory in a temporary directory,
//! built on the workspace's one test kit (`kudu-testkit`).

use std::path::{Path, PathBuf};

use kudu_testkit::Process;
#[allow(unused_imports)] // each test crate uses a different part
pub use kudu_testkit::{WAIT, free_addr, wait_for};

/// One master process: the pod of one ordinal, its data directory the pod's volume.
pub struct Master {
    /// RPC address (also its address in the Raft membership).
    pub addr: String,
    /// Data directory.
    pub data_dir: PathBuf,
    process: Option<Process>,
}

impl Master {
    /// A master (not started) at `addr` with its data under `dir`.
    pub fn new(dir: &Path, ordinal: i32, addr: String) -> Self {
        Self { addr, data_dir: dir.join(format!("master-{ordinal}")), process: None }
    }

    /// Start it with the seed list `seeds`, as a StatefulSet pod reads it at start.
    pub fn start(&mut self, seeds: &[String]) {
        assert!(!self.is_running(), "{} already runs", self.addr);
        let args = [
            "master",
            "run",
            "--data-dir",
            &self.data_dir.display().to_string(),
            "--rpc-addr",
            &self.addr,
            "--master-addresses",
            &seeds.join(","),
            "--raft-heartbeat-interval-ms",
            "200",
            "--raft-election-timeout-ms",
            "1000",
            // As the operator's pods (its certificates are a later step).
            "--insecure",
        ]
        .map(String::from)
        .to_vec();
        let mut process = Process::new(kudu_testkit::workspace_bin("kudu"), args, &self.data_dir)
            .env("RUST_LOG", "info,openraft=warn");
        process.start();
        self.process = Some(process);
    }

    /// Whether the process was started and not stopped.
    pub fn is_running(&self) -> bool {
        self.process.as_ref().is_some_and(Process::is_running)
    }

    /// kill -9 (the pod is gone or its node died).
    pub fn kill(&mut self) {
        if let Some(process) = self.process.as_mut() {
            process.kill();
        }
    }

    /// Delete the data directory (the volume is lost); the process must be stopped.
    pub fn wipe(&mut self) {
        assert!(!self.is_running(), "wiping a running master");
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }

    /// The process output so far.
    pub fn log(&self) -> String {
        self.process.as_ref().map(Process::log).unwrap_or_default()
    }
}
