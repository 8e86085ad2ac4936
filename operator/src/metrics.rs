//! Prometheus metrics of the operator.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label naming a reconcile error kind (a stable identifier, never a `Debug` string).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The error kind.
    pub error: &'static str,
}

/// Label naming a membership action.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// The action kind.
    pub action: &'static str,
}

/// The operator's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Reconciliations started.
    pub reconciliations: Counter,
    /// Reconciliations that failed, by error kind.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Membership actions executed, by kind.
    pub membership_actions: Family<ActionLabels, Counter>,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge,
}

impl Metrics {
    /// Metrics registered in a new registry.
    pub fn registered() -> (Self, Registry) {
        let metrics = Self::default();
        let mut registry = Registry::with_prefix("kudu_operator");
        registry.register("reconciliations", "Reconciliations started", metrics.reconciliations.clone());
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, by error kind",
            metrics.reconcile_errors.clone(),
        );
        registry.register(
            "membership_actions",
            "Master membership actions executed, by kind",
            metrics.membership_actions.clone(),
        );
        registry.register("leader", "1 while this replica holds the leader Lease", metrics.leader.clone());
        (metrics, registry)
    }
}

/// Render `registry` in the Prometheus text format.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_metrics() {
        let (metrics, registry) = Metrics::registered();
        metrics.reconciliations.inc();
        metrics.reconcile_errors.get_or_create(&ErrorLabels { error: "kube" }).inc();
        metrics.leader.set(1);
        let text = render(&registry).unwrap();
        assert!(text.contains("kudu_operator_reconciliations_total 1"), "{text}");
        assert!(text.contains("kudu_operator_reconcile_errors_total{error=\"kube\"} 1"), "{text}");
        assert!(text.contains("kudu_operator_leader 1"), "{text}");
    }
}
