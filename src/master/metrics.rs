//! Prometheus metrics of a master.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

/// Gauges refreshed at each scrape from Raft metrics and the catalog.
#[derive(Default)]
pub struct StateGauges {
    pub is_leader: Gauge,
    pub term: Gauge,
    pub commit_index: Gauge,
    pub applied_index: Gauge,
    pub snapshot_index: Gauge,
    pub purged_index: Gauge,
    pub members: Gauge,
    pub tables: Gauge,
    pub tablets: Gauge,
    pub live_tservers: Gauge,
    pub replica_moves: Gauge,
}

/// Every metric a master exports.
pub struct Metrics {
    registry: Registry,
    rpcs: Family<RpcLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
    /// Replicas placed against the placement policy because no compliant placement existed.
    pub placement_violations: Counter,
    /// Replica moves (re-replication) started, completed and given up by this master.
    pub replica_moves_started: Counter,
    pub replica_moves_completed: Counter,
    pub replica_moves_cancelled: Counter,
    /// Read-index rounds started for tablet server heartbeats (one serves many heartbeats).
    pub heartbeat_read_rounds: Counter,
    pub state: StateGauges,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kudu_master");
        let rpcs = Family::<RpcLabels, Counter>::default();
        registry.register("rpc_requests", "RPCs handled, by method and result code", rpcs.clone());
        let latency = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register("rpc_duration_seconds", "RPC handling time", latency.clone());
        let state = StateGauges::default();
        registry.register("is_leader", "1 if this master is the Raft leader", state.is_leader.clone());
        registry.register("raft_term", "Current Raft term", state.term.clone());
        registry.register("raft_commit_index", "Last committed log index", state.commit_index.clone());
        registry.register("raft_applied_index", "Last applied log index", state.applied_index.clone());
        registry.register("raft_snapshot_index", "Last log index in the latest snapshot", state.snapshot_index.clone());
        registry.register("raft_purged_index", "Last log index purged from the log", state.purged_index.clone());
        registry.register("raft_members", "Members of the Raft configuration", state.members.clone());
        registry.register("catalog_tables", "Tables in the catalog", state.tables.clone());
        registry.register("catalog_tablets", "Tablets in the catalog", state.tablets.clone());
        registry.register("live_tablet_servers", "Tablet servers heard from recently", state.live_tservers.clone());
        let placement_violations = Counter::default();
        registry.register(
            "placement_policy_violations",
            "Tablets placed (or replicas re-placed) with a majority of replicas in one location, \
             because no placement complying with the policy existed",
            placement_violations.clone(),
        );
        registry.register(
            "replica_moves_in_progress",
            "Tablets with a replica move (re-replication) in progress, per the catalog",
            state.replica_moves.clone(),
        );
        let replica_moves_started = Counter::default();
        registry.register(
            "replica_moves_started",
            "Replica moves (re-replication of replicas on dead tablet servers) started by this master",
            replica_moves_started.clone(),
        );
        let replica_moves_completed = Counter::default();
        registry.register(
            "replica_moves_completed",
            "Replica moves this master drove to completion",
            replica_moves_completed.clone(),
        );
        let replica_moves_cancelled = Counter::default();
        registry.register(
            "replica_moves_cancelled",
            "Replica moves given up because their destination died before its promotion",
            replica_moves_cancelled.clone(),
        );
        let heartbeat_read_rounds = Counter::default();
        registry.register(
            "heartbeat_read_rounds",
            "Read-index rounds started to answer tablet server heartbeats (each serves every \
             heartbeat that arrived within a few milliseconds)",
            heartbeat_read_rounds.clone(),
        );
        Self {
            registry,
            rpcs,
            latency,
            placement_violations,
            replica_moves_started,
            replica_moves_completed,
            replica_moves_cancelled,
            heartbeat_read_rounds,
            state,
        }
    }

    /// Records one finished RPC.
    pub fn observe(&self, method: &str, code: &str, started: Instant) {
        self.rpcs.get_or_create(&RpcLabels { method: method.to_string(), code: code.to_string() }).inc();
        self.latency
            .get_or_create(&MethodLabels { method: method.to_string() })
            .observe(started.elapsed().as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}
