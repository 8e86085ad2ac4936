//! Settings of a master process.

use std::path::PathBuf;
use std::time::Duration;

/// Validated settings of one master.
#[derive(Clone, Debug)]
pub struct MasterConfig {
    pub data_dir: PathBuf,
    /// Address the RPC server binds to.
    pub rpc_bind: String,
    /// Address peers, tservers and clients use; must appear verbatim in `master_addresses`
    /// for a first start.
    pub advertised_addr: String,
    /// Seed list: the masters started together (first start) or an existing cluster.
    pub master_addresses: Vec<String>,
    pub http_bind: Option<String>,
    /// Deadline of one replicated write or linearizable read.
    pub rpc_timeout: Duration,
    /// A tserver not heard from for this long is dead.
    pub tserver_unresponsive_timeout: Duration,
    /// A dead tserver hosting no replica is forgotten after this long without a heartbeat.
    pub tserver_forget_after: Duration,
    /// A master not heard from by the leader for this long counts as down for quorum checks.
    pub member_liveness_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    /// How long a new master may take to catch up as a learner before AddMaster gives up.
    pub catch_up_timeout: Duration,
    /// Take a snapshot (and purge the log) after this many applied entries.
    pub snapshot_every: u64,
    /// Command printing a tablet server's location, given its IP or host name.
    pub location_mapping_cmd: Option<String>,
    pub location_mapping_timeout: Duration,
}

impl MasterConfig {
    /// Checks the settings for what would fail later in a less clear way.
    pub fn validate(&self) -> Result<(), String> {
        if self.master_addresses.is_empty() {
            return Err("--master-addresses must list at least one master".into());
        }
        if self.advertised_addr.is_empty() {
            return Err("the advertised address is empty".into());
        }
        if self.election_timeout <= self.heartbeat_interval * 2 {
            return Err("the election timeout must exceed twice the heartbeat interval".into());
        }
        if self.tserver_forget_after < self.tserver_unresponsive_timeout {
            return Err("tablet servers must be forgotten no sooner than they are considered dead".into());
        }
        Ok(())
    }

    /// The openraft configuration these settings imply.
    pub fn raft_config(&self) -> Result<openraft::Config, openraft::ConfigError> {
        let election_ms = self.election_timeout.as_millis() as u64;
        openraft::Config {
            cluster_name: "kudu-masters".into(),
            heartbeat_interval: self.heartbeat_interval.as_millis() as u64,
            election_timeout_min: election_ms,
            // openraft holds the leader lease for election_timeout_max, so a narrow range
            // keeps failover short; 50% spread still avoids split votes among 3-7 masters.
            election_timeout_max: election_ms + election_ms / 2,
            install_snapshot_timeout: 30_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: 100,
            // A full batch of the largest commands fits one Raft message (see `limits`).
            max_payload_entries: super::limits::MAX_PAYLOAD_ENTRIES,
            // A master that was paused or cut off must not disrupt a healthy leader when it
            // comes back with a higher term.
            enable_pre_vote: Some(true),
            ..Default::default()
        }
        .validate()
    }
}
