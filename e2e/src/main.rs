//! `local-cluster up`: runs a local control plane until SIGINT/SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kudu_e2e::cluster::{ClusterConfig, LocalCluster};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(name = "local-cluster", about = "A local Kubernetes control plane for tests and demos")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the control plane and print `KUBECONFIG=<path>` once serving.
    Up {
        /// Number of nodes, spread over three zones.
        #[arg(long, default_value_t = 6)]
        nodes: usize,
        /// Directory for the kubeconfig and pod data (default: a new directory under $TMPDIR).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Port to listen on (0 = any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Directories searched (before this binary's own directory, then the PATH) for the
        /// binaries that images name.
        #[arg(long = "bin-dir")]
        bin_dirs: Vec<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let Command::Up { nodes, state_dir, port, bin_dirs } = Cli::parse().command;
    let state_dir =
        state_dir.unwrap_or_else(|| std::env::temp_dir().join(format!("local-cluster-{}", std::process::id())));
    let mut config = ClusterConfig::new(&state_dir);
    config.nodes = nodes;
    config.bin_dirs.splice(0..0, bin_dirs);
    config.bind.set_port(port);
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let cluster = LocalCluster::start(config).await.context("starting the local cluster")?;
    println!("KUBECONFIG={}", cluster.kubeconfig().display());
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
    cluster.shutdown().await;
    Ok(())
}
