//! Percentiles and the side-by-side table.

use std::time::Duration;

/// The value at quantile `q` (0..=1) of `sorted`, by the nearest-rank method.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with a fraction.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One figure measured on both systems; `lower_is_better` decides which way the ratio reads.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    pub figure: String,
    pub ours: f64,
    pub etcd: f64,
    pub unit: &'static str,
    pub lower_is_better: bool,
}

impl Row {
    /// How many times better ours is (above 1: ours wins).
    pub fn advantage(&self) -> f64 {
        if self.ours == self.etcd {
            // Also 0 against 0 (no elections on either side): neither is better.
            1.0
        } else if self.lower_is_better {
            self.etcd / self.ours
        } else {
            self.ours / self.etcd
        }
    }
}

/// The rows as an aligned text table: figure, ours, etcd, and ours' advantage.
pub fn table(rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.figure.len() + r.unit.len() + 3).max().unwrap_or(6).max(6);
    let mut out = format!("{:<width$}  {:>10}  {:>10}  {:>10}\n", "figure", "ours", "etcd", "ours better");
    for r in rows {
        let figure = format!("{} ({})", r.figure, r.unit);
        out.push_str(&format!("{figure:<width$}  {:>10.1}  {:>10.1}  {:>9.2}x\n", r.ours, r.etcd, r.advantage()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let sorted = ms(&[10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
        assert_eq!(quantile(&sorted, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&sorted, 0.99), Duration::from_millis(100));
        assert_eq!(quantile(&sorted, 0.0), Duration::from_millis(10));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn advantage_reads_the_right_way() {
        let latency = Row { figure: "f".into(), ours: 500.0, etcd: 1000.0, unit: "ms", lower_is_better: true };
        assert!((latency.advantage() - 2.0).abs() < 1e-9);
        let throughput = Row { figure: "t".into(), ours: 500.0, etcd: 1000.0, unit: "ops/s", lower_is_better: false };
        assert!((throughput.advantage() - 0.5).abs() < 1e-9);
        let printed = table(&[latency, throughput]);
        assert!(printed.contains("2.00x") && printed.contains("0.50x"), "{printed}");
    }

    #[test]
    fn no_elections_on_either_side_is_a_tie() {
        let none = Row { figure: "e".into(), ours: 0.0, etcd: 0.0, unit: "elections", lower_is_better: true };
        assert_eq!(none.advantage(), 1.0);
    }
}
