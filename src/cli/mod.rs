//! Command-line parsing and dispatch.

mod cert;
mod cluster;
mod ksck;
mod location;
mod master;
mod master_recover;
mod output;
mod perf;
mod perf_ddl;
mod rebalance;
mod row;
mod table;
mod tserver;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kudu::client::{ClientOptions, KuduClient, MasterClient};
use kudu::security::Security;

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
    /// Create a cluster CA and the certificates it signs (mutual TLS with roles).
    #[command(subcommand)]
    Cert(cert::CertCommand),
}

/// Transport security of a server or a client command: exactly one of the two.
#[derive(Args, Debug, Clone)]
pub struct SecurityArgs {
    /// Directory with ca.crt, tls.crt and tls.key (a Kubernetes TLS Secret's layout, see
    /// `kudu cert`): mutual TLS, identities and roles checked.
    #[arg(long, env = "KUDU_CERTS_DIR", value_name = "DIR")]
    pub certs_dir: Option<PathBuf>,
    /// Plaintext gRPC without authentication: anyone who reaches a port may do anything.
    /// (Also KUDU_INSECURE=1, for scripts.)
    #[arg(long, env = "KUDU_INSECURE", value_parser = clap::builder::FalseyValueParser::new())]
    pub insecure: bool,
}

impl SecurityArgs {
    /// The chosen security, loaded; neither flag is a one-line error naming both.
    pub fn security(&self) -> anyhow::Result<Security> {
        let certs_dir = self.certs_dir.as_deref().filter(|d| !d.as_os_str().is_empty());
        Ok(Security::from_flags(certs_dir, self.insecure)?)
    }
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
    #[command(flatten)]
    pub security: SecurityArgs,
}

impl ClientArgs {
    /// The operation's overall deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    fn options(&self) -> anyhow::Result<ClientOptions> {
        Ok(ClientOptions {
            timeout: self.timeout(),
            rpc_timeout: Duration::from_millis(self.timeout_ms.clamp(1_000, 10_000)),
            security: self.security.security()?,
        })
    }

    /// A client of the masters only.
    pub fn client(&self) -> anyhow::Result<MasterClient> {
        let options = self.options()?;
        MasterClient::new(self.master_addresses()?, options).context("cannot create the client")
    }

    /// A client of the whole cluster (rows too).
    pub fn kudu_client(&self) -> anyhow::Result<KuduClient> {
        let options = self.options()?;
        KuduClient::new(self.master_addresses()?, options).context("cannot create the client")
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
        Command::Cert(cmd) => cert::run(cmd),
    }
}
