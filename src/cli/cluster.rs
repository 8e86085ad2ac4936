//! `kudu cluster ...`

use clap::Subcommand;

use super::{ClientArgs, ksck, rebalance};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Check the cluster's health: masters, tablet servers, tablets, placement; exits
    /// non-zero if anything is wrong.
    Ksck(ClientArgs),
    /// Move replicas to fix placement-policy violations, then to even replica counts across
    /// locations and across the servers of each location (`--report-only`: only print the
    /// plan). Safe to interrupt and rerun.
    Rebalance(rebalance::RebalanceArgs),
}

pub async fn run(cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Ksck(args) => ksck::run(args).await,
        ClusterCommand::Rebalance(args) => rebalance::run(args).await,
    }
}
