//! Prometheus metrics of a tablet server: counters updated by the service, gauges refreshed
//! from the replicas at each scrape.

use std::collections::HashMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::replica::ReplicaStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    role: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

/// Every metric a tablet server exports.
pub struct TServerMetrics {
    registry: Registry,
    replicas: Family<ReplicaLabels, Gauge>,
    max_term: Gauge,
    quiesced: Gauge,
    writes: Family<CodeLabels, Counter>,
    rows_written: Counter,
    scans: Family<CodeLabels, Counter>,
    rows_scanned: Counter,
}

impl Default for TServerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl TServerMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kudu_tserver");
        let replicas = Family::<ReplicaLabels, Gauge>::default();
        registry.register("replicas", "Tablet replicas by Raft role and state", replicas.clone());
        let max_term = Gauge::default();
        registry.register("raft_max_term", "Highest Raft term of the running replicas", max_term.clone());
        let quiesced = Gauge::default();
        registry.register(
            "replicas_quiesced",
            "Running replicas whose idle group stopped its Raft timers (quiescence)",
            quiesced.clone(),
        );
        let writes = Family::<CodeLabels, Counter>::default();
        registry.register("writes", "Write RPCs by result code (OK or an error code)", writes.clone());
        let rows_written = Counter::default();
        registry.register("rows_written", "Row operations in applied writes", rows_written.clone());
        let scans = Family::<CodeLabels, Counter>::default();
        registry.register("scans", "Scan RPCs by result code (OK or an error code)", scans.clone());
        let rows_scanned = Counter::default();
        registry.register("rows_scanned", "Rows returned by scans", rows_scanned.clone());
        Self { registry, replicas, max_term, quiesced, writes, rows_written, scans, rows_scanned }
    }

    /// Records a finished write of `rows` operations with result `code`.
    pub fn write(&self, code: &str, rows: usize) {
        self.writes.get_or_create(&CodeLabels { code: code.to_string() }).inc();
        if code == "OK" {
            self.rows_written.inc_by(rows as u64);
        }
    }

    /// Records a finished scan returning `rows` rows with result `code`.
    pub fn scan(&self, code: &str, rows: usize) {
        self.scans.get_or_create(&CodeLabels { code: code.to_string() }).inc();
        self.rows_scanned.inc_by(rows as u64);
    }

    /// Refreshes the replica gauges from `statuses`.
    pub fn refresh(&self, statuses: &[ReplicaStatus]) {
        let mut counts: HashMap<ReplicaLabels, i64> = HashMap::new();
        for s in statuses {
            let role = s.role.map(|r| r.name()).unwrap_or("NONE").to_string();
            *counts.entry(ReplicaLabels { role, state: s.meta.state.name().to_string() }).or_default() += 1;
        }
        self.replicas.clear();
        for (labels, count) in counts {
            self.replicas.get_or_create(&labels).set(count);
        }
        let max_term = statuses.iter().map(|s| s.term).max().unwrap_or(0);
        self.max_term.set(i64::try_from(max_term).unwrap_or(i64::MAX));
        self.quiesced.set(i64::try_from(statuses.iter().filter(|s| s.quiesced).count()).unwrap_or(i64::MAX));
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
