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
    /// A tserver not heard from for this long is dead: it gets no new replicas and its
    /// replicas are replaced (re-replication).
    pub tserver_unresponsive_timeout: Duration,
    /// A dead tserver hosting no replica is forgotten after this long without a heartbeat.
    pub tserver_forget_after: Duration,
    /// Most replica moves (re-replication) in progress at once across the cluster; 0 turns
    /// re-replication off (moves already recorded still complete).
    pub max_concurrent_rereplications: usize,
    /// How often the leader looks for tablets to re-replicate and drives moves in progress.
    pub rereplication_interval: Duration,
    /// How often the leader evens out tablet leaders across tablet servers; `None`: never.
    pub leader_balance_interval: Option<Duration>,
    /// A master not heard from by the leader for this long counts as down for quorum checks.
    pub member_liveness_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    /// How long a new master may take to catch up as a learner before AddMaster gives up.
    pub catch_up_timeout: Duration,
    /// Take a snapshot (and purge the log) after this many applied entries.
    pub snapshot_every: u64,
    /// How tablet servers get their locations; none: every server shares the default one.
    pub location_mapping: Option<LocationMappingConfig>,
    /// Mutual TLS with a `master` certificate for every RPC served and sent, or plaintext.
    pub security: crate::security::Security,
}

/// The location mapping command and how its answers are cached.
#[derive(Clone, Debug)]
pub struct LocationMappingConfig {
    /// Program and leading arguments, split on whitespace (e.g. `kudu location`); the
    /// tablet server's IP or host name is appended.
    pub command: String,
    /// How long one run may take before it is killed (a registration error).
    pub timeout: Duration,
    /// How long a host's location is reused: a tablet server that registers again after
    /// this gets its location recomputed.
    pub cache_ttl: Duration,
    /// How long a failed lookup is remembered, so a broken command is not run on every
    /// heartbeat but a fixed one is picked up soon.
    pub failure_ttl: Duration,
    /// Most mapping commands running at once.
    pub max_concurrent: usize,
}

impl LocationMappingConfig {
    /// Defaults for `command`: 10 s timeout, 5 min cache, 10 s for failures, 4 at once.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            timeout: Duration::from_secs(10),
            cache_ttl: Duration::from_secs(300),
            failure_ttl: Duration::from_secs(10),
            max_concurrent: 4,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.command.trim().is_empty() {
            return Err("the location mapping command is empty".into());
        }
        if self.timeout.is_zero() {
            return Err("the location mapping timeout must be positive".into());
        }
        if self.max_concurrent == 0 {
            return Err("at least one location mapping command must be allowed to run".into());
        }
        Ok(())
    }
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
        if self.rereplication_interval.is_zero() {
            return Err("the re-replication interval must be positive".into());
        }
        if self.election_timeout <= self.heartbeat_interval * 2 {
            return Err("the election timeout must exceed twice the heartbeat interval".into());
        }
        if let Some(mapping) = &self.location_mapping {
            mapping.validate()?;
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
