//! `kudu cluster ...`

use clap::Subcommand;

use super::{ClientArgs, ksck};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Check the cluster's health: masters, tablet servers, tablets, placement; exits
    /// non-zero if anything is wrong.
    Ksck(ClientArgs),
}

pub async fn run(cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Ksck(args) => ksck::run(args).await,
    }
}
