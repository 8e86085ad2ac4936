//! `kudu-operator`: thin binary over the `kudu_operator` library.

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Kubernetes operator for KuduCluster resources.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the KuduCluster CustomResourceDefinition as YAML.
    Crd,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => {
            let yaml = kudu_operator::crd::crd_yaml().context("generating the CRD")?;
            std::io::stdout()
                .write_all(yaml.as_bytes())
                .context("writing the CRD to stdout")?;
        }
    }
    Ok(())
}
