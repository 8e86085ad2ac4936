//! Command line of `kudu-operator`, in the library so tests can check that the Helm
//! chart's arguments parse.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Kubernetes operator for KuduCluster resources.
#[derive(Debug, Parser)]
#[command(name = "kudu-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the KuduCluster CustomResourceDefinition as YAML.
    Crd,
    /// Run the operator.
    Run(RunArgs),
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Arguments of `kudu-operator run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Address of the HTTP server with /metrics, /healthz and /readyz.
    #[arg(long, env = "KUDU_OPERATOR_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Name of the leader election Lease.
    #[arg(long, default_value = "kudu-operator")]
    pub lease_name: String,

    /// Namespace of the leader election Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: String,

    /// Identity in the Lease; the pod name.
    #[arg(long, env = "POD_NAME")]
    pub identity: String,

    /// Seconds a Lease stays valid without renewal.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(5..=300))]
    pub lease_duration_seconds: u32,

    /// Log format.
    #[arg(long, value_enum, default_value = "json")]
    pub log_format: LogFormat,

    /// Directory with an `admin` certificate (ca.crt, tls.crt, tls.key) for masters the
    /// operator has no certificate of its own for yet. Usually unneeded: for every
    /// KuduCluster the operator issues itself an `admin` certificate from the cluster's CA
    /// (`spec.tls`), and talks plaintext to clusters with `tls.mode: Disabled`.
    #[arg(long, env = "KUDU_CERTS_DIR")]
    pub certs_dir: Option<PathBuf>,
}

impl RunArgs {
    /// How long a Lease stays valid without renewal.
    pub fn lease_duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.lease_duration_seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_parses_with_defaults() {
        let cli = Cli::try_parse_from(["kudu-operator", "run", "--lease-namespace=ops", "--identity=op-0"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        assert_eq!(args.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(args.lease_name, "kudu-operator");
        assert_eq!(args.lease_duration(), Duration::from_secs(15));
        assert_eq!(args.log_format, LogFormat::Json);
    }

    #[test]
    fn lease_duration_is_bounded() {
        let parsed = Cli::try_parse_from([
            "kudu-operator",
            "run",
            "--lease-namespace=ops",
            "--identity=op-0",
            "--lease-duration-seconds=1",
        ]);
        assert!(parsed.is_err());
    }
}
