//! Command-line parsing and dispatch.

mod cluster;
mod ksck;
mod location;
mod master;
mod master_recover;
mod output;
mod perf;
mod row;
mod table;
mod tserver;

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kudu::client::{ClientOptions, KuduClient, MasterClient};

/// Kudu-style masters replicated with Raft, tablet servers, and their command-line client.
#[derive(Parser, Debug)]
#[command(name = "kudu", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run or manage masters.
    #[command(subcommand)]
    Master(master::MasterCommand),
    /// Run or list tablet servers.
    #[command(subcommand)]
    Tserver(tserver::TServerCommand),
    /// Create, inspect, alter and delete tables.
    #[command(subcommand)]
    Table(table::TableCommand),
    /// Check the whole cluster.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Write rows (JSON lines on stdin, or --json) and scan them.
    #[command(subcommand)]
    Row(row::RowCommand),
    /// Print the location of a tablet server from its node's topology labels (the built-in
    /// location mapping command, run inside Kubernetes).
    Location(location::LocationArgs),
    /// Measure write and scan throughput and latency against a running cluster.
    #[command(subcommand)]
    Perf(perf::PerfCommand),
}

/// Output format of client commands.
#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq, Eq)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Options every client command takes.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Comma-separated master RPC addresses (a seed list; the current membership is learned).
    /// Defaults to KUDU_MASTERS, then KUDU_MASTER_ADDRESSES (set in master and tserver pods).
    #[arg(short = 'm', long = "masters", env = "KUDU_MASTERS", value_delimiter = ',')]
    pub masters: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Overall deadline of the operation, retries included, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
}

impl ClientArgs {
    /// The operation's overall deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    fn options(&self) -> ClientOptions {
        ClientOptions {
            timeout: self.timeout(),
            rpc_timeout: Duration::from_millis(self.timeout_ms.clamp(1_000, 10_000)),
        }
    }

    /// A client of the masters only.
    pub fn client(&self) -> anyhow::Result<MasterClient> {
        MasterClient::new(self.master_addresses()?, self.options()).context("cannot create the client")
    }

    /// A client of the whole cluster (rows too).
    pub fn kudu_client(&self) -> anyhow::Result<KuduClient> {
        KuduClient::new(self.master_addresses()?, self.options()).context("cannot create the client")
    }

    fn master_addresses(&self) -> anyhow::Result<Vec<String>> {
        let mut masters = self.masters.clone();
        if masters.is_empty()
            && let Ok(from_pod) = std::env::var("KUDU_MASTER_ADDRESSES")
        {
            masters = from_pod.split(',').map(str::to_string).collect();
        }
        if masters.iter().all(|m| m.trim().is_empty()) {
            anyhow::bail!("no masters given: use -m/--masters or set KUDU_MASTERS");
        }
        Ok(masters)
    }
}

/// Server processes log at info, client commands at warn; `RUST_LOG` overrides;
/// `KUDU_LOG_FORMAT=json` gives JSON lines. Tablet servers log openraft's messages from warn
/// up only: it logs each election of each group at info, thousands of lines a second from a
/// server with 1 000 replicas while its tablets elect leaders.
pub fn init_logging(cli: &Cli) {
    let default = match cli.command {
        Command::Master(master::MasterCommand::Run(_)) => "info",
        Command::Tserver(tserver::TServerCommand::Run(_)) => "info,openraft=warn",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if std::env::var("KUDU_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Master(cmd) => master::run(cmd).await,
        Command::Tserver(cmd) => tserver::run(cmd).await,
        Command::Table(cmd) => table::run(cmd).await,
        Command::Row(cmd) => row::run(cmd).await,
        Command::Cluster(cmd) => cluster::run(cmd).await,
        Command::Location(args) => location::run(args).await,
        Command::Perf(cmd) => perf::run(cmd).await,
    }
}
