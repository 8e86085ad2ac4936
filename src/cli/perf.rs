//! `kudu perf write|scan`: drives an existing cluster through [`KuduClient`] and prints
//! throughput and latency, for `scripts/perf-rows.sh` and anyone measuring by hand.
//!
//! - `write`: N clients (each its own [`KuduClient`], so its own connections and sequence
//!   numbers) insert batches of B rows of about `--row-bytes` bytes (an int64 key and a
//!   string) for S seconds; prints rows/s, batches/s and p50/p99/max batch latency.
//! - `scan`: N clients repeat full scans of the table for S seconds; prints rows/s.
//!
//! Timing goals belong in this output, not in tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use futures::future::join_all;
use kudu::catalog::{Column, ColumnType, Schema};
use kudu::client::{KuduClient, RowWrite, ScanSpec};
use kudu::tablet::{JsonRow, OpKind};
use serde::Serialize;

use super::output::print;
use super::{ClientArgs, Format};

/// Key column of the tables `perf write --create` makes.
const KEY_COLUMN: &str = "id";
/// Payload column of the tables `perf write --create` makes.
const PAYLOAD_COLUMN: &str = "payload";
/// Bytes of a row besides its payload string (the int64 key).
const KEY_BYTES: usize = 8;
/// Keys are `run << RUN_SHIFT | client << CLIENT_SHIFT | n`: runs (a random id each) and
/// clients never collide, so a table can take several runs.
const RUN_SHIFT: u32 = 48;
const CLIENT_SHIFT: u32 = 32;

#[derive(Subcommand, Debug)]
pub enum PerfCommand {
    /// Insert batches of rows from N clients for S seconds; print throughput and latency.
    Write(WriteArgs),
    /// Repeat full scans from N clients for S seconds; print rows/s.
    Scan(ScanArgs),
    /// Issue DDL (create and delete a table) without pause for S seconds, optionally with
    /// row writes; print running totals (requests, failed, slowest, leader changes) as JSON.
    Ddl(super::perf_ddl::DdlArgs),
}

/// Options of both workloads.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// The table.
    #[arg(long)]
    table: String,
    /// Concurrent clients, each with its own connections.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct WriteArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Rows per write (one batch per tablet touched).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Approximate bytes per row (an 8-byte key and a string payload).
    #[arg(long, default_value_t = 100)]
    row_bytes: usize,
    /// Create the table first (`id:int64` key, `payload:string`) and wait for its leaders.
    #[arg(long)]
    create: bool,
    /// Tablets of a created table.
    #[arg(long, default_value_t = 3)]
    partitions: u32,
    /// Replication factor of a created table.
    #[arg(long, default_value_t = 3)]
    replicas: u32,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    #[command(flatten)]
    load: LoadArgs,
}

/// Latency percentiles of a run, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What one run measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub workload: &'static str,
    pub table: String,
    pub clients: usize,
    /// Rows per write (0 for scans).
    pub batch: usize,
    pub seconds: f64,
    pub rows: u64,
    /// Writes (or full scans) that succeeded.
    pub operations: u64,
    /// Writes (or scans) that failed, and rows a tablet refused.
    pub errors: u64,
    pub rows_per_sec: f64,
    pub operations_per_sec: f64,
    pub latency: Latency,
}

/// What one client did.
#[derive(Default)]
struct ClientTally {
    rows: u64,
    operations: u64,
    errors: u64,
    latencies: Vec<Duration>,
    first_error: Option<String>,
}

/// The value at quantile `q` (0..=1) of sorted `values`, by the nearest-rank method.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// Latency percentiles of `latencies` (sorted here).
fn latency_of(mut latencies: Vec<Duration>) -> Latency {
    latencies.sort_unstable();
    Latency {
        p50_ms: millis(quantile(&latencies, 0.50)),
        p99_ms: millis(quantile(&latencies, 0.99)),
        max_ms: millis(latencies.last().copied().unwrap_or_default()),
    }
}

/// Sums the clients' tallies into a report.
fn report(
    workload: &'static str,
    load: &LoadArgs,
    batch: usize,
    elapsed: Duration,
    tallies: Vec<ClientTally>,
) -> Report {
    let (mut rows, mut operations, mut errors, mut latencies) = (0, 0, 0, Vec::new());
    for t in tallies {
        rows += t.rows;
        operations += t.operations;
        errors += t.errors;
        latencies.extend(t.latencies);
    }
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let rate = |n: u64| (n as f64 / seconds * 10.0).round() / 10.0;
    Report {
        workload,
        table: load.table.clone(),
        clients: load.clients,
        batch,
        seconds: (seconds * 100.0).round() / 100.0,
        rows,
        operations,
        errors,
        rows_per_sec: rate(rows),
        operations_per_sec: rate(operations),
        latency: latency_of(latencies),
    }
}

/// A batch of `batch` inserts for client `client` of run `run` (15 bits), starting at its
/// row number `first`.
fn batch_rows(run: u16, client: usize, first: u64, batch: usize, payload: &str) -> Vec<RowWrite> {
    let base = (i64::from(run & 0x7fff) << RUN_SHIFT) | (((client as i64) & 0xffff) << CLIENT_SHIFT);
    (0..batch as u64)
        .map(|i| {
            let key = base | ((first + i) as i64 & 0xffff_ffff);
            let row: JsonRow = [
                (KEY_COLUMN.to_string(), serde_json::Value::from(key)),
                (PAYLOAD_COLUMN.to_string(), serde_json::Value::from(payload)),
            ]
            .into_iter()
            .collect();
            RowWrite { kind: OpKind::Insert, row }
        })
        .collect()
}

/// The schema of tables `perf write --create` makes.
fn perf_schema() -> Schema {
    Schema {
        columns: vec![
            Column::new(KEY_COLUMN, ColumnType::Int64, false),
            Column::new(PAYLOAD_COLUMN, ColumnType::String, false),
        ],
        primary_key: vec![KEY_COLUMN.to_string()],
    }
}

fn check_load(load: &LoadArgs) -> anyhow::Result<Duration> {
    if load.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if !(load.seconds.is_finite() && load.seconds > 0.0) {
        bail!("--seconds must be a positive number");
    }
    Ok(Duration::from_secs_f64(load.seconds))
}

/// One client per task, each with its own connections; the first learns the routes before
/// the clock starts so start-up is not measured.
async fn clients(load: &LoadArgs) -> anyhow::Result<Vec<Arc<KuduClient>>> {
    let mut out = Vec::with_capacity(load.clients);
    for _ in 0..load.clients {
        let client = Arc::new(load.client.kudu_client()?);
        client.routes(&load.table).await.with_context(|| format!("table '{}'", load.table))?;
        out.push(client);
    }
    Ok(out)
}

async fn run_write(args: WriteArgs) -> anyhow::Result<Report> {
    let load = &args.load;
    let duration = check_load(load)?;
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if args.create {
        let kudu = load.client.kudu_client()?;
        kudu.masters().create_table(&load.table, &perf_schema(), args.partitions, args.replicas).await?;
        kudu.wait_for_leaders(&load.table, load.client.timeout()).await?;
    }
    let payload = "x".repeat(args.row_bytes.saturating_sub(KEY_BYTES).max(1));
    let clients = clients(load).await?;
    let run: u16 = rand::random();
    let start = Instant::now();
    let deadline = start + duration;
    let tasks = clients.into_iter().enumerate().map(|(index, client)| {
        let payload = payload.clone();
        let batch = args.batch;
        let table = load.table.clone();
        tokio::spawn(async move {
            let mut tally = ClientTally::default();
            let mut next = 0u64;
            while Instant::now() < deadline {
                let rows = batch_rows(run, index, next, batch, &payload);
                next += batch as u64;
                let began = Instant::now();
                match client.write(&table, &rows).await {
                    Ok(outcome) => {
                        tally.latencies.push(began.elapsed());
                        tally.operations += 1;
                        tally.rows += outcome.applied as u64;
                        tally.errors += outcome.failures.len() as u64;
                        if let Some(f) = outcome.failures.first() {
                            tally.first_error.get_or_insert_with(|| format!("{}: {}", f.code, f.message));
                        }
                    }
                    Err(e) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            tally
        })
    });
    let tallies = collect(join_all(tasks).await)?;
    Ok(report("write", load, args.batch, start.elapsed(), tallies))
}

async fn run_scan(args: ScanArgs) -> anyhow::Result<Report> {
    let load = &args.load;
    let duration = check_load(load)?;
    let clients = clients(load).await?;
    let start = Instant::now();
    let deadline = start + duration;
    let tasks = clients.into_iter().map(|client| {
        let table = load.table.clone();
        tokio::spawn(async move {
            let mut tally = ClientTally::default();
            while Instant::now() < deadline {
                let began = Instant::now();
                match client.scan(&table, &ScanSpec::default()).await {
                    Ok(rows) => {
                        tally.latencies.push(began.elapsed());
                        tally.operations += 1;
                        tally.rows += rows.len() as u64;
                    }
                    Err(e) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            tally
        })
    });
    let tallies = collect(join_all(tasks).await)?;
    Ok(report("scan", load, 0, start.elapsed(), tallies))
}

/// The clients' tallies; fails when no operation succeeded, with the first error seen.
fn collect(results: Vec<Result<ClientTally, tokio::task::JoinError>>) -> anyhow::Result<Vec<ClientTally>> {
    let tallies = results.into_iter().collect::<Result<Vec<_>, _>>().context("a client task failed")?;
    if let Some(error) = tallies.iter().find_map(|t| t.first_error.clone()) {
        tracing::warn!(%error, "first error of the run");
        if tallies.iter().all(|t| t.operations == 0) {
            bail!("no operation succeeded: {error}");
        }
    }
    Ok(tallies)
}

const HEADERS: [&str; 11] =
    ["WORKLOAD", "CLIENTS", "BATCH", "SECONDS", "ROWS", "ROWS/S", "OPS/S", "ERRORS", "P50 MS", "P99 MS", "MAX MS"];

fn print_report(format: Format, r: &Report) -> anyhow::Result<()> {
    let row = vec![
        r.workload.to_string(),
        r.clients.to_string(),
        r.batch.to_string(),
        r.seconds.to_string(),
        r.rows.to_string(),
        r.rows_per_sec.to_string(),
        r.operations_per_sec.to_string(),
        r.errors.to_string(),
        r.latency.p50_ms.to_string(),
        r.latency.p99_ms.to_string(),
        r.latency.max_ms.to_string(),
    ];
    match format {
        // One object a line, so a script can collect several runs.
        Format::Json => println!("{}", serde_json::to_string(r)?),
        Format::Text => print(format, r, &HEADERS, vec![row])?,
    }
    Ok(())
}

pub async fn run(cmd: PerfCommand) -> anyhow::Result<()> {
    let (format, report) = match cmd {
        PerfCommand::Write(args) => (args.load.client.format, run_write(args).await?),
        PerfCommand::Scan(args) => (args.load.client.format, run_scan(args).await?),
        PerfCommand::Ddl(args) => return super::perf_ddl::run(args).await,
    };
    print_report(format, &report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let latency = latency_of(ms(&[5, 1, 4, 2, 3, 100, 6, 7, 8, 9]));
        assert_eq!(latency, Latency { p50_ms: 5.0, p99_ms: 100.0, max_ms: 100.0 });
        assert_eq!(latency_of(Vec::new()), Latency::default());
        assert_eq!(quantile(&ms(&[7]), 0.99), Duration::from_millis(7));
    }

    #[test]
    fn clients_write_disjoint_keys_of_the_requested_size() {
        let a = batch_rows(0, 0, 0, 3, "xx");
        let b = batch_rows(0, 1, 0, 3, "xx");
        let c = batch_rows(3, 1, 0, 1, "xx");
        let keys =
            |rows: &[RowWrite]| -> Vec<i64> { rows.iter().map(|r| r.row[KEY_COLUMN].as_i64().unwrap()).collect() };
        assert_eq!(keys(&a), [0, 1, 2]);
        assert_eq!(keys(&b), [1 << 32, (1 << 32) + 1, (1 << 32) + 2]);
        assert_eq!(keys(&c), [(3 << 48) | (1 << 32)]);
        assert!(batch_rows(u16::MAX, 1, 0, 1, "x").iter().all(|r| r.row[KEY_COLUMN].as_i64().unwrap() > 0));
        assert!(a.iter().all(|r| r.kind == OpKind::Insert && r.row[PAYLOAD_COLUMN] == "xx"));
        assert_eq!(perf_schema().primary_key, [KEY_COLUMN]);
    }

    #[test]
    fn reports_sum_the_clients() {
        let load = LoadArgs {
            table: "t".into(),
            clients: 2,
            seconds: 2.0,
            client: ClientArgs {
                masters: vec![],
                format: Format::Json,
                timeout_ms: 1,
                security: super::super::SecurityArgs { certs_dir: None, insecure: true },
            },
        };
        let tally = |rows, lat: &[u64]| ClientTally {
            rows,
            operations: lat.len() as u64,
            latencies: ms(lat),
            ..Default::default()
        };
        let r = report("write", &load, 100, Duration::from_secs(2), vec![tally(300, &[1, 2, 3]), tally(100, &[9])]);
        assert_eq!((r.rows, r.operations, r.errors), (400, 4, 0));
        assert_eq!((r.rows_per_sec, r.operations_per_sec), (200.0, 2.0));
        assert_eq!(r.latency.max_ms, 9.0);
    }
}
