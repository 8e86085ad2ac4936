//! `kudu-bench`: our masters and etcd side by side on loopback, one system at a time, the
//! same workload through each; prints a table of figure, ours, etcd and ours' advantage.
//! `scripts/bench-etcd.sh` installs etcd, builds the release binaries and runs it.

mod catalog;
mod cpu;
mod failover;
mod heartbeats;
mod masters;
mod sim;
mod stats;
mod systems;
mod tablet_writes;
mod workload;
mod writes;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

use stats::{Row, millis, quantile};
use systems::{Group, Kind};
use workload::Writer;

/// Which figures to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Figure {
    Failover,
    Writes,
    /// Elections while the most clients write for `--stability-seconds` without faults.
    Stability,
    /// Simulated tablet servers heartbeating the leader (ours only).
    Heartbeats,
    /// A catalog of many tablets: new leader and restarted masters serving (ours only).
    Catalog,
    /// Rows into an RF 3 table (3 masters, 3 tablet servers), one per request, against etcd
    /// puts of the same size, for each `--clients` value.
    TabletWrites,
}

#[derive(Parser, Debug)]
#[command(about = "Our masters and etcd side by side: kill -9 failover and replicated writes")]
struct Args {
    /// The `kudu` binary (a release build for figures worth quoting).
    #[arg(long, env = "KUDU_BENCH_KUDU")]
    kudu: PathBuf,
    /// The `etcd` binary.
    #[arg(long, env = "KUDU_BENCH_ETCD", default_value = "etcd")]
    etcd: PathBuf,
    /// Where the members keep their data (a fresh temporary directory by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Figures to measure.
    #[arg(long, value_delimiter = ',', default_values = ["failover", "writes", "stability"])]
    figures: Vec<Figure>,
    /// Leader kills per system.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Concurrent clients of each replicated-write run.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    clients: Vec<usize>,
    /// Seconds of each replicated-write run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of the stability run (the most clients writing, no faults).
    #[arg(long, default_value_t = 300.0)]
    stability_seconds: f64,
    /// An extra flag for our masters (repeatable), e.g. `--master-flag=--raft-election-timeout-ms=1000`.
    #[arg(long = "master-flag", allow_hyphen_values = true)]
    master_flags: Vec<String>,
    /// Simulated tablet servers of the heartbeat figure.
    #[arg(long, default_value_t = 2000)]
    tservers: usize,
    /// Heartbeat interval of each simulated tablet server, in ms.
    #[arg(long, default_value_t = 1000)]
    heartbeat_interval_ms: u64,
    /// Seconds of heartbeats before the measured window (all servers register).
    #[arg(long, default_value_t = 10.0)]
    heartbeat_warmup: f64,
    /// Seconds of the heartbeat figure's measured window.
    #[arg(long, default_value_t = 30.0)]
    heartbeat_seconds: f64,
    /// Tables of the catalog figure.
    #[arg(long, default_value_t = 1000)]
    tables: usize,
    /// Tablets (partitions) of each table of the catalog figure.
    #[arg(long, default_value_t = 100)]
    partitions: u32,
    /// CreateTable requests in flight at once while building the catalog.
    #[arg(long, default_value_t = 8)]
    create_concurrency: usize,
    /// Tablets (hash partitions) of the tablet-writes figure's table.
    #[arg(long, default_value_t = 9)]
    tablet_partitions: u32,
    /// Bytes of a row of the tablet-writes figure (int64 key + string), and of the etcd
    /// put's key + value it is compared with.
    #[arg(long, default_value_t = 100)]
    row_bytes: usize,
    /// Rows per request of the tablet-writes figure's batched extra (1: none).
    #[arg(long, default_value_t = 100)]
    tablet_batch: usize,
    /// An extra flag for our tablet servers (repeatable; tablet-writes figure).
    #[arg(long = "tserver-flag", allow_hyphen_values = true)]
    tserver_flags: Vec<String>,
    /// Print the rows as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// What one system measured.
#[derive(Default)]
struct Measured {
    gaps: Vec<Duration>,
    writes: Vec<writes::Figures>,
    /// Leader changes during the stability run, and what it wrote.
    stability: Option<(u64, writes::Figures)>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0 || args.clients.contains(&0) || args.seconds <= 0.0 || args.stability_seconds <= 0.0 {
        bail!("--rounds, every --clients value, --seconds and --stability-seconds must be positive");
    }
    if args.tservers == 0 || args.tables == 0 || args.partitions == 0 || args.heartbeat_interval_ms == 0 {
        bail!("--tservers, --tables, --partitions and --heartbeat-interval-ms must be positive");
    }
    let tablet_settings = tablet_writes::Settings {
        clients: args.clients.clone(),
        duration: Duration::from_secs_f64(args.seconds),
        partitions: args.tablet_partitions,
        row_bytes: args.row_bytes,
        batch: args.tablet_batch,
        master_flags: args.master_flags.clone(),
        tserver_flags: args.tserver_flags.clone(),
    };
    tablet_writes::validate(&tablet_settings)?;
    let temp = tempfile_dir(args.dir.clone())?;
    if args.figures.iter().any(|f| matches!(f, Figure::Failover | Figure::Writes | Figure::Stability)) {
        let ours = measure(&args, Kind::Ours, &temp.join("ours")).await.context("measuring our masters")?;
        let etcd = measure(&args, Kind::Etcd, &temp.join("etcd")).await.context("measuring etcd")?;
        let rows = rows(&ours, &etcd);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
        } else {
            print!("{}", stats::table(&rows));
        }
    }
    if args.figures.contains(&Figure::TabletWrites) {
        let rows = tablet_writes::run(&args.kudu, &args.etcd, &temp.join("tablet-writes"), &tablet_settings).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
        } else {
            print!("{}", stats::table(&rows));
        }
    }
    let scale = scale_figures(&args, &temp).await?;
    if !scale.is_empty() {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&scale)?);
        } else {
            print!("{}", stats::goal_table(&scale));
        }
    }
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&temp);
    }
    Ok(())
}

/// The figures of our masters alone (heartbeat and catalog scale), each on a fresh group.
async fn scale_figures(args: &Args, temp: &std::path::Path) -> Result<Vec<stats::GoalRow>> {
    let mut rows = Vec::new();
    if args.figures.contains(&Figure::Heartbeats) {
        let settings = heartbeats::Settings {
            servers: args.tservers,
            period: Duration::from_millis(args.heartbeat_interval_ms),
            warmup: Duration::from_secs_f64(args.heartbeat_warmup.max(0.0)),
            window: Duration::from_secs_f64(args.heartbeat_seconds.max(1.0)),
        };
        let dir = temp.join("heartbeats");
        rows.extend(heartbeats::run(&args.kudu, &dir, &args.master_flags, &settings).await.context("heartbeat scale")?);
    }
    if args.figures.contains(&Figure::Catalog) {
        let settings = catalog::Settings {
            tables: args.tables,
            partitions: args.partitions,
            concurrency: args.create_concurrency,
        };
        let dir = temp.join("catalog");
        rows.extend(catalog::run(&args.kudu, &dir, &args.master_flags, &settings).await.context("catalog scale")?);
    }
    Ok(rows)
}

fn tempfile_dir(dir: Option<PathBuf>) -> Result<PathBuf> {
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join(format!("kudu-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Starts `kind`'s group, measures the chosen figures, and stops it.
async fn measure(args: &Args, kind: Kind, dir: &std::path::Path) -> Result<Measured> {
    let mut group = match kind {
        Kind::Ours => Group::start_ours(&args.kudu, dir, &args.master_flags),
        Kind::Etcd => Group::start_etcd(&args.etcd, dir),
    };
    group.leader().await?;
    let most = args.clients.iter().copied().max().unwrap_or(1);
    if kind == Kind::Ours {
        let client = group.master_client()?;
        let client = &client;
        systems::settle("a tablet server to register", || async move {
            client.list_tablet_servers().await.is_ok_and(|s| s.iter().any(|t| t.live))
        })
        .await?;
        workload::create_tables(client, most).await?;
    }
    let mut measured = Measured::default();
    if args.figures.contains(&Figure::Writes) {
        for &clients in &args.clients {
            let mut writers = Vec::with_capacity(clients);
            for i in 0..clients {
                writers.push(writer(&group, i).await?);
            }
            let figures = writes::run(writers, Duration::from_secs_f64(args.seconds), &group.server_pids()).await?;
            eprintln!(
                "{kind:?} writes, {clients} clients: {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, {} failed, server CPU {:.3} ms/write",
                figures.per_second,
                millis(figures.p50),
                millis(figures.p99),
                figures.failed,
                figures.server_cpu_ms_per_write
            );
            measured.writes.push(figures);
        }
    }
    if args.figures.contains(&Figure::Stability) {
        let mut writers = Vec::with_capacity(most);
        for i in 0..most {
            writers.push(writer(&group, i).await?);
        }
        let before = group.term().await?;
        let figures =
            writes::run(writers, Duration::from_secs_f64(args.stability_seconds), &group.server_pids()).await?;
        let changes = group.term().await?.saturating_sub(before);
        eprintln!(
            "{kind:?} stability, {most} clients for {} s: {changes} leader changes, {:.0} writes/s, p99 {:.1} ms, {} failed",
            args.stability_seconds,
            figures.per_second,
            millis(figures.p99),
            figures.failed
        );
        measured.stability = Some((changes, figures));
    }
    if args.figures.contains(&Figure::Failover) {
        let writer = writer(&group, 0).await?;
        measured.gaps = failover::run(&mut group, writer, args.rounds).await?;
    }
    Ok(measured)
}

/// A writer for client `i` with its own connections.
async fn writer(group: &Group, i: usize) -> Result<Writer> {
    match group.kind {
        Kind::Ours => Writer::ours(group.master_client()?, i).await,
        Kind::Etcd => Ok(Writer::etcd(group.etcd_client().await?.kv_client(), i)),
    }
}

/// The side-by-side rows of what both systems measured.
fn rows(ours: &Measured, etcd: &Measured) -> Vec<Row> {
    let mut rows = Vec::new();
    if !ours.gaps.is_empty() && !etcd.gaps.is_empty() {
        let (mut a, mut b) = (ours.gaps.clone(), etcd.gaps.clone());
        a.sort_unstable();
        b.sort_unstable();
        for (name, q) in [("median", 0.5), ("p99", 0.99), ("max", 1.0)] {
            rows.push(Row {
                figure: format!("failover {name}, kill -9 leader to next write, {} rounds", a.len()),
                ours: millis(quantile(&a, q)),
                etcd: millis(quantile(&b, q)),
                unit: "ms",
                lower_is_better: true,
            });
        }
    }
    for (a, b) in ours.writes.iter().zip(&etcd.writes) {
        let n = a.clients;
        rows.push(Row {
            figure: format!("replicated writes, {n} clients"),
            ours: a.per_second,
            etcd: b.per_second,
            unit: "writes/s",
            lower_is_better: false,
        });
        rows.push(Row {
            figure: format!("write latency p50, {n} clients"),
            ours: millis(a.p50),
            etcd: millis(b.p50),
            unit: "ms",
            lower_is_better: true,
        });
        rows.push(Row {
            figure: format!("write latency p99, {n} clients"),
            ours: millis(a.p99),
            etcd: millis(b.p99),
            unit: "ms",
            lower_is_better: true,
        });
        rows.push(Row {
            figure: format!("server CPU per write, {n} clients"),
            ours: a.server_cpu_ms_per_write,
            etcd: b.server_cpu_ms_per_write,
            unit: "ms",
            lower_is_better: true,
        });
    }
    if let (Some((a, fa)), Some((b, _))) = (&ours.stability, &etcd.stability) {
        rows.push(Row {
            figure: format!("leader changes, {} clients writing for {:.0} s, no faults", fa.clients, fa.seconds),
            ours: *a as f64,
            etcd: *b as f64,
            unit: "elections",
            lower_is_better: true,
        });
    }
    rows
}
