//! Replicated writes: N clients, each with its own connections, write without pause for a
//! fixed time; throughput and latency of the acknowledged writes.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::future::join_all;

use crate::cpu::cpu_seconds;
use crate::stats::quantile;
use crate::workload::Writer;

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Figures {
    pub clients: usize,
    /// How long the clients wrote.
    pub seconds: f64,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub failed: usize,
    /// CPU time the system's server processes used per acknowledged write, in ms.
    pub server_cpu_ms_per_write: f64,
    /// The first failure's error, to tell why writes failed.
    pub first_error: Option<String>,
}

/// Runs `writers` concurrently for `duration`; `servers` are the system's server processes,
/// whose CPU time is counted.
pub async fn run(writers: Vec<Writer>, duration: Duration, servers: &[i32]) -> Result<Figures> {
    let clients = writers.len();
    let cpu_before = cpu_seconds(servers)?;
    let start = Instant::now();
    let deadline = start + duration;
    let tasks = writers.into_iter().map(|mut writer| {
        tokio::spawn(async move {
            let (mut latencies, mut failed, mut first_error) = (Vec::new(), 0usize, None);
            while Instant::now() < deadline {
                let t = Instant::now();
                match writer.write().await {
                    Ok(()) => latencies.push(t.elapsed()),
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (latencies, failed, first_error)
        })
    });
    let mut latencies = Vec::new();
    let mut failed = 0;
    let mut first_error = None;
    for result in join_all(tasks).await {
        let (l, f, e) = result?;
        latencies.extend(l);
        failed += f;
        first_error = first_error.or(e);
    }
    let elapsed = start.elapsed();
    let cpu = cpu_seconds(servers)? - cpu_before;
    if latencies.is_empty() {
        bail!("no write succeeded in {elapsed:?} ({failed} failed; first: {})", first_error.unwrap_or_default());
    }
    latencies.sort_unstable();
    Ok(Figures {
        clients,
        seconds: elapsed.as_secs_f64(),
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: quantile(&latencies, 0.50),
        p99: quantile(&latencies, 0.99),
        failed,
        server_cpu_ms_per_write: 1000.0 * cpu / latencies.len() as f64,
        first_error,
    })
}
