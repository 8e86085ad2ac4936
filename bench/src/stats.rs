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

/// One figure of our system alone, with its goal (scale figures have no etcd side).
#[derive(Clone, Debug, serde::Serialize)]
pub struct GoalRow {
    pub figure: String,
    pub value: f64,
    pub unit: &'static str,
    /// The goal as written (e.g. `< 1000`); empty for a figure without one.
    pub goal: String,
    /// Whether the goal is met; `None` for a figure without one.
    pub met: Option<bool>,
}

impl GoalRow {
    /// A figure with a goal.
    pub fn new(figure: impl Into<String>, value: f64, unit: &'static str, goal: String, met: bool) -> Self {
        Self { figure: figure.into(), value, unit, goal, met: Some(met) }
    }

    /// A figure shown for context, without a goal.
    pub fn info(figure: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Self { figure: figure.into(), value, unit, goal: String::new(), met: None }
    }
}

/// The rows as an aligned text table: figure, value, goal, and whether it is met.
pub fn goal_table(rows: &[GoalRow]) -> String {
    let named = |r: &GoalRow| if r.unit.is_empty() { r.figure.clone() } else { format!("{} ({})", r.figure, r.unit) };
    let width = rows.iter().map(|r| named(r).len()).max().unwrap_or(6).max(6);
    let mut out = format!("{:<width$}  {:>10}  {:>10}  {:>4}\n", "figure", "value", "goal", "met");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        out.push_str(&format!("{:<width$}  {:>10.1}  {:>10}  {met:>4}\n", named(r), r.value, r.goal));
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

    #[test]
    fn goal_rows_say_whether_the_goal_is_met() {
        let rows = [
            GoalRow::new("leader CPU", 12.5, "% of one core", "< 20".into(), true),
            GoalRow::new("new leader serves", 1500.0, "ms", "< 1000".into(), false),
            GoalRow::info("heartbeats failed", 0.0, ""),
        ];
        let printed = goal_table(&rows);
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines.len(), 4, "{printed}");
        assert!(lines[1].contains("leader CPU (% of one core)") && lines[1].ends_with("yes"), "{printed}");
        assert!(lines[2].contains("1500.0") && lines[2].ends_with("NO"), "{printed}");
        assert!(lines[3].starts_with("heartbeats failed ") && lines[3].trim_end().ends_with("0.0"), "{printed}");
    }
}
