//! Heartbeat scale: many simulated tablet servers heartbeat the leader master at 1 Hz; the
//! leader's CPU (as % of one core) over a measured window, and the heartbeats' latency.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};

use crate::cpu::CpuWindow;
use crate::masters::Masters;
use crate::sim;
use crate::stats::{GoalRow, millis, quantile};

/// The leader's CPU goal, % of one core.
const CPU_GOAL: f64 = 20.0;

/// How the heartbeat figure runs.
pub struct Settings {
    pub servers: usize,
    pub period: Duration,
    /// Heartbeats before the measured window (every server registers during it).
    pub warmup: Duration,
    pub window: Duration,
}

/// Starts 3 masters under `dir`, runs the simulated servers against the leader, and
/// returns the rows.
pub async fn run(kudu: &Path, dir: &Path, flags: &[String], settings: &Settings) -> Result<Vec<GoalRow>> {
    // At the binary's default log level: the figure is the cost a user's masters pay.
    let masters = Masters::start_logging(kudu, dir, flags, &crate::systems::default_master_log_filter());
    let leader = masters.leader().await?;
    let pid = masters.members[leader].pid().ok_or_else(|| anyhow!("the leader is not running"))?;
    let servers = sim::fleet(settings.servers);
    let measure_from = Instant::now() + settings.warmup;
    let until = measure_from + settings.window;
    let beats =
        tokio::spawn(sim::run(masters.addresses[leader].clone(), servers, settings.period, measure_from, until));
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu = CpuWindow::start(pid)?;
    let own = CpuWindow::start(std::process::id() as i32)?;
    tokio::time::sleep_until(until.into()).await;
    let percent = cpu.percent_of_one_core()?;
    let simulator = own.percent_of_one_core()?;
    let beats = beats.await?.context("running the simulated tablet servers")?;
    let still_leader = masters.try_leader().await == Some(leader);
    eprintln!(
        "heartbeats: {} servers, {} answered by the leader in {:.0} s, {} by a non-leader, {} failed; \
         leader {} throughout: {still_leader}",
        settings.servers,
        beats.latencies.len(),
        settings.window.as_secs_f64(),
        beats.not_leader,
        beats.failed,
        masters.addresses[leader],
    );
    let n = settings.servers;
    let rate = beats.latencies.len() as f64 / settings.window.as_secs_f64();
    Ok(vec![
        GoalRow::new(
            format!("leader CPU, {n} tablet servers at {:.0} Hz", 1.0 / settings.period.as_secs_f64()),
            percent,
            "% of one core",
            format!("< {CPU_GOAL:.0}"),
            percent < CPU_GOAL,
        ),
        GoalRow::info(format!("heartbeats answered by the leader, {n} servers"), rate, "/s"),
        GoalRow::info("leader CPU per answered heartbeat", cpu_per_beat_ms(percent, rate) * 1000.0, "µs"),
        GoalRow::info("heartbeat latency p50", millis(quantile(&beats.latencies, 0.5)), "ms"),
        GoalRow::info("heartbeat latency p99", millis(quantile(&beats.latencies, 0.99)), "ms"),
        GoalRow::info("the simulator's own CPU (same machine)", simulator, "% of one core"),
        GoalRow::info("heartbeats failed or answered by a non-leader", (beats.failed + beats.not_leader) as f64, ""),
    ])
}

/// The leader's CPU time per answered heartbeat, in ms, from its CPU (% of one core) and the
/// rate of answered heartbeats (per second).
fn cpu_per_beat_ms(percent: f64, rate: f64) -> f64 {
    if rate <= 0.0 { 0.0 } else { percent / 100.0 * 1000.0 / rate }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_per_heartbeat() {
        // 20% of a core for 2 000 heartbeats a second: 0.1 ms each.
        assert!((super::cpu_per_beat_ms(20.0, 2000.0) - 0.1).abs() < 1e-12);
        assert_eq!(super::cpu_per_beat_ms(20.0, 0.0), 0.0);
    }
}
