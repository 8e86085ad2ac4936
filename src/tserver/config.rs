//! Settings of a tablet server's Raft groups: one openraft configuration shared by every
//! tablet replica it hosts.

use std::time::Duration;

/// Timings of every tablet Raft group of a tablet server. The defaults keep an idle server
/// with many replicas cheap: a leader sends one heartbeat per follower every 500 ms and a
/// follower waits 1.5 to 3 s without one before it calls an election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TabletRaftTimings {
    /// Interval of a leader's heartbeats to each follower.
    pub heartbeat_interval: Duration,
    /// Least time a follower waits for a leader before calling an election; the most is
    /// twice this.
    pub election_timeout: Duration,
    /// Take a snapshot (and purge the log) after this many applied entries.
    pub snapshot_every: u64,
    /// Deadline of one replicated write or schema change, or of confirming leadership for a
    /// scan; a write past it answers TIMED_OUT (the client retries with the same seq_no).
    pub request_timeout: Duration,
    /// How long a group goes without requests before it quiesces (stops its heartbeats and
    /// election timer; see [`super::quiesce`]); `None` never quiesces.
    pub quiesce_after: Option<Duration>,
}

impl Default for TabletRaftTimings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(500),
            election_timeout: Duration::from_millis(1_500),
            snapshot_every: 10_000,
            request_timeout: Duration::from_secs(10),
            quiesce_after: Some(Duration::from_secs(5)),
        }
    }
}

/// Invalid tablet Raft settings.
#[derive(Debug, thiserror::Error)]
pub enum TimingsError {
    #[error(
        "the tablet election timeout ({election:?}) must exceed twice the tablet heartbeat interval ({heartbeat:?})"
    )]
    ElectionTooShort { election: Duration, heartbeat: Duration },
    #[error("tablet Raft configuration: {0}")]
    Raft(#[from] openraft::ConfigError),
}

impl TabletRaftTimings {
    /// How long heartbeats to one tablet server wait for other groups' heartbeats to share
    /// their call: a fiftieth of the heartbeat interval, at most 10 ms (10 ms with the
    /// defaults), so a heartbeat is late by at most 2% of its interval.
    pub fn heartbeat_batch_window(&self) -> Duration {
        (self.heartbeat_interval / 50).min(Duration::from_millis(10))
    }

    /// The openraft configuration of every tablet group.
    pub fn raft_config(&self) -> Result<openraft::Config, TimingsError> {
        if self.election_timeout <= self.heartbeat_interval * 2 {
            return Err(TimingsError::ElectionTooShort {
                election: self.election_timeout,
                heartbeat: self.heartbeat_interval,
            });
        }
        let election_ms = u64::try_from(self.election_timeout.as_millis()).unwrap_or(u64::MAX / 4);
        let config = openraft::Config {
            cluster_name: "kudu-tablets".into(),
            heartbeat_interval: u64::try_from(self.heartbeat_interval.as_millis()).unwrap_or(u64::MAX / 8),
            election_timeout_min: election_ms,
            election_timeout_max: election_ms.saturating_mul(2),
            install_snapshot_timeout: 30_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            // A new or lagging replica further behind than this gets the snapshot instead.
            max_in_snapshot_log_to_keep: self.snapshot_every.min(1_000),
            // A replica that was paused or cut off must not depose a healthy leader.
            enable_pre_vote: Some(true),
            ..Default::default()
        };
        Ok(config.validate()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_short_elections_refused() {
        let config = TabletRaftTimings::default().raft_config().unwrap();
        assert_eq!(
            (config.heartbeat_interval, config.election_timeout_min, config.election_timeout_max),
            (500, 1500, 3000)
        );
        assert_eq!(TabletRaftTimings::default().heartbeat_batch_window(), Duration::from_millis(10));
        assert_eq!(config.max_in_snapshot_log_to_keep, 1_000);
        let often = TabletRaftTimings { snapshot_every: 10, ..Default::default() };
        assert_eq!(often.raft_config().unwrap().max_in_snapshot_log_to_keep, 10, "never more than a snapshot's worth");
        let fast = TabletRaftTimings { heartbeat_interval: Duration::from_millis(100), ..Default::default() };
        assert_eq!(fast.heartbeat_batch_window(), Duration::from_millis(2));
        let bad = TabletRaftTimings { election_timeout: Duration::from_millis(1000), ..Default::default() };
        assert!(bad.raft_config().unwrap_err().to_string().contains("must exceed twice"));
    }
}
