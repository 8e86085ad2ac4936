//! Command line of `kudu-operator`, in the library so tests can check that the Helm
//! chart's arguments parse.

use std::collections::BTreeMap;
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

    /// Watch and manage KuduClusters in this namespace only, with namespaced Roles (no
    /// ClusterRole): masters then run no location mapping command, since they could not
    /// be granted to read nodes. Unset: every namespace.
    #[arg(long, env = "KUDU_OPERATOR_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Labels (`key=value,...`) selecting the operator's own pods in its namespace; each
    /// cluster's NetworkPolicy admits them.
    #[arg(long, env = "KUDU_OPERATOR_POD_LABELS", default_value = "app.kubernetes.io/name=kudu-operator", value_parser = parse_labels)]
    pub pod_labels: BTreeMap<String, String>,

    /// Threads of the async runtime. The operator mostly waits on the network: two threads
    /// keep up with hundreds of clusters, and one per core of a big node only costs memory.
    #[arg(long, env = "KUDU_OPERATOR_WORKER_THREADS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub worker_threads: u16,
}

/// Parse `key=value,...` into labels.
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(format!("{pair:?} is not key=value")),
        })
        .collect::<Result<BTreeMap<_, _>, _>>()
        .and_then(|labels| if labels.is_empty() { Err("no labels".to_owned()) } else { Ok(labels) })
}

impl RunArgs {
    /// How long a Lease stays valid without renewal.
    pub fn lease_duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.lease_duration_seconds))
    }

    /// Where the operator runs and what it may do, for the builders.
    pub fn operator_env(&self) -> crate::build::OperatorEnv {
        crate::build::OperatorEnv {
            peer: crate::build::networkpolicy::OperatorPeer {
                namespace: self.lease_namespace.clone(),
                pod_labels: self.pod_labels.clone(),
            },
            watch_namespace: self.watch_namespace.clone().filter(|ns| !ns.is_empty()),
        }
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
        assert_eq!(args.worker_threads, 2);
        let env = args.operator_env();
        assert_eq!(env.watch_namespace, None);
        assert!(env.cluster_scoped());
        assert_eq!(env.peer.namespace, "ops");
        assert_eq!(env.peer.pod_labels, BTreeMap::from([("app.kubernetes.io/name".into(), "kudu-operator".into())]));
    }

    #[test]
    fn watch_namespace_and_pod_labels_parse() {
        let cli = Cli::try_parse_from([
            "kudu-operator",
            "run",
            "--lease-namespace=ops",
            "--identity=op-0",
            "--watch-namespace=team-a",
            "--pod-labels=a=b, c=d",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        let env = args.operator_env();
        assert_eq!(env.watch_namespace.as_deref(), Some("team-a"));
        assert!(!env.cluster_scoped());
        assert_eq!(env.peer.pod_labels, BTreeMap::from([("a".into(), "b".into()), ("c".into(), "d".into())]));
        for bad in ["--pod-labels=a", "--pod-labels=", "--pod-labels==b"] {
            let parsed = Cli::try_parse_from(["kudu-operator", "run", "--lease-namespace=ops", "--identity=x", bad]);
            assert!(parsed.is_err(), "{bad}");
        }
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
