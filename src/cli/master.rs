//! `kudu master ...`

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use kudu::master::{LocationMappingConfig, MasterConfig};
use kudu::pb::master::Role;
use serde::Serialize;

use super::output::print;
use super::{ClientArgs, SecurityArgs};

#[derive(Subcommand, Debug)]
pub enum MasterCommand {
    /// Run a master process.
    Run(RunArgs),
    /// List the masters of the Raft group with their roles.
    List(ClientArgs),
    /// Add the (already running) master at ADDR to the Raft group.
    Add {
        /// RPC address of the new master, exactly as it advertises itself.
        address: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove a master from the Raft group, by address or node id.
    Remove {
        /// RPC address or numeric node id of the member.
        member: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Ask the leader to hand leadership to another master.
    StepDown {
        /// Node id of the master that should lead (default: the most caught-up one).
        #[arg(long)]
        to: Option<u64>,
        /// Only step down if the leader is the master at this address (for preStop hooks).
        #[arg(long)]
        if_leader: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// UNSAFE: after a majority of masters is lost for good, make a stopped surviving master
    /// the only voter of the group, keeping its catalog (Kudu's unsafe_change_config).
    UnsafeRecover(super::master_recover::UnsafeRecoverArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Directory of the master's RocksDB and snapshots.
    #[arg(long)]
    data_dir: PathBuf,
    /// Address the RPC server listens on.
    #[arg(long, default_value = "0.0.0.0:7051")]
    rpc_addr: String,
    /// Address others reach this master at (default: --rpc-addr). Must appear verbatim in
    /// --master-addresses for a first start.
    #[arg(long)]
    advertised_addr: Option<String>,
    /// Comma-separated RPC addresses of the masters started together, or of an existing
    /// cluster to join (then this master waits until it is added).
    #[arg(long, env = "KUDU_MASTER_ADDRESSES", value_delimiter = ',', required = true)]
    master_addresses: Vec<String>,
    /// Address of the web server (/healthz, /metrics, /masters, /tables, /tablet-servers).
    #[arg(long)]
    http_addr: Option<String>,
    /// A tablet server silent for this long is considered dead: it gets no new replicas
    /// and its replicas are re-replicated onto live servers (Kudu's default is 60 s).
    #[arg(long, default_value_t = 60_000)]
    tserver_unresponsive_timeout_ms: u64,
    /// A dead tablet server that hosts no replica is forgotten (no longer listed) after
    /// this long without a heartbeat; one that hosts replicas stays listed. It registers
    /// again with its next heartbeat.
    #[arg(long, default_value_t = 3_600_000)]
    tserver_forget_after_ms: u64,
    /// Most replica moves (re-replication of dead servers' replicas) in progress at once
    /// across the cluster; 0 turns re-replication off.
    #[arg(long, default_value_t = 10)]
    max_concurrent_rereplications: usize,
    /// Raft heartbeat interval.
    #[arg(long, default_value_t = 50)]
    raft_heartbeat_interval_ms: u64,
    /// Minimum Raft election timeout (the maximum is 1.5 times this). A follower calls an
    /// election once it has heard nothing from the leader for the leader's lease (the
    /// maximum) plus its own timeout: 375-450 ms with the defaults; must exceed twice the
    /// heartbeat interval.
    #[arg(long, default_value_t = 150)]
    raft_election_timeout_ms: u64,
    /// Take a catalog snapshot and purge the log every this many entries.
    #[arg(long, default_value_t = 1_000)]
    snapshot_every: u64,
    /// Command printing a tablet server's location given its IP or host name (e.g.
    /// `kudu location`); without it tablet servers get no location.
    #[arg(long)]
    location_mapping_cmd: Option<String>,
    /// How long the location mapping command may run.
    #[arg(long, default_value_t = 10_000)]
    location_mapping_timeout_ms: u64,
    /// How long a host's location is reused; a tablet server registering again after this
    /// (restarted, moved, or back after being unresponsive) gets it recomputed.
    #[arg(long, default_value_t = 300_000)]
    location_mapping_cache_ttl_ms: u64,
    /// How long a failed location lookup is remembered before the command is run again.
    #[arg(long, default_value_t = 10_000)]
    location_mapping_failure_ttl_ms: u64,
    /// Most location mapping commands running at once.
    #[arg(long, default_value_t = 4)]
    location_mapping_max_concurrent: usize,
    /// How often the leader master evens out tablet leaders across tablet servers (by
    /// leadership transfers); 0 never.
    #[arg(long, default_value_t = 10_000)]
    leader_balance_interval_ms: u64,
    /// Check the configuration and exit.
    #[arg(long)]
    config_check: bool,
    #[command(flatten)]
    security: SecurityArgs,
}

impl RunArgs {
    fn config(&self) -> anyhow::Result<MasterConfig> {
        let election = Duration::from_millis(self.raft_election_timeout_ms);
        let security = self.security.security()?;
        security.require_role(kudu::security::Role::Master)?;
        Ok(MasterConfig {
            data_dir: self.data_dir.clone(),
            rpc_bind: self.rpc_addr.clone(),
            advertised_addr: self.advertised_addr.clone().unwrap_or_else(|| self.rpc_addr.clone()),
            master_addresses: self.master_addresses.iter().map(|a| a.trim().to_string()).collect(),
            http_bind: self.http_addr.clone(),
            rpc_timeout: Duration::from_secs(10),
            tserver_unresponsive_timeout: Duration::from_millis(self.tserver_unresponsive_timeout_ms),
            tserver_forget_after: Duration::from_millis(self.tserver_forget_after_ms),
            max_concurrent_rereplications: self.max_concurrent_rereplications,
            rereplication_interval: Duration::from_secs(1),
            leader_balance_interval: (self.leader_balance_interval_ms > 0)
                .then(|| Duration::from_millis(self.leader_balance_interval_ms)),
            member_liveness_timeout: (election * 2).max(Duration::from_secs(2)),
            heartbeat_interval: Duration::from_millis(self.raft_heartbeat_interval_ms),
            election_timeout: election,
            catch_up_timeout: Duration::from_secs(60),
            snapshot_every: self.snapshot_every,
            location_mapping: self.location_mapping_cmd.as_ref().filter(|c| !c.trim().is_empty()).map(|command| {
                LocationMappingConfig {
                    command: command.clone(),
                    timeout: Duration::from_millis(self.location_mapping_timeout_ms),
                    cache_ttl: Duration::from_millis(self.location_mapping_cache_ttl_ms),
                    failure_ttl: Duration::from_millis(self.location_mapping_failure_ttl_ms),
                    max_concurrent: self.location_mapping_max_concurrent,
                }
            }),
            security,
        })
    }
}

#[derive(Serialize)]
struct MemberOut {
    node_id: u64,
    address: String,
    role: String,
    voter: bool,
    live: bool,
    term: u64,
    matched_index: u64,
}

pub async fn run(cmd: MasterCommand) -> anyhow::Result<()> {
    match cmd {
        MasterCommand::Run(args) => {
            let config = args.config()?;
            config.validate().map_err(anyhow::Error::msg).context("invalid configuration")?;
            if args.config_check {
                println!("configuration ok");
                return Ok(());
            }
            kudu::master::run(config).await?;
        }
        MasterCommand::UnsafeRecover(args) => super::master_recover::run(args).await?,
        MasterCommand::List(client_args) => {
            let client = client_args.client()?;
            let list = client.list_masters().await?;
            let members: Vec<MemberOut> = list
                .members
                .into_iter()
                .map(|m| MemberOut {
                    node_id: m.node_id,
                    role: Role::try_from(m.role).map(|r| r.as_str_name()).unwrap_or("UNKNOWN").to_string(),
                    address: m.address,
                    voter: m.voter,
                    live: m.live,
                    term: list.term,
                    matched_index: m.matched_index,
                })
                .collect();
            let rows = members
                .iter()
                .map(|m| {
                    vec![
                        m.node_id.to_string(),
                        m.address.clone(),
                        m.role.clone(),
                        m.voter.to_string(),
                        m.live.to_string(),
                        m.term.to_string(),
                    ]
                })
                .collect();
            print(client_args.format, &members, &["NODE ID", "ADDRESS", "ROLE", "VOTER", "LIVE", "TERM"], rows)?;
        }
        MasterCommand::Add { address, client } => {
            let node_id = client.client()?.add_master(&address).await?;
            print(
                client.format,
                &serde_json::json!({ "node_id": node_id, "address": address }),
                &["ADDED"],
                vec![vec![format!("{address} as node {node_id}")]],
            )?;
        }
        MasterCommand::Remove { member, client } => {
            let c = client.client()?;
            let removed = match member.parse::<u64>() {
                Ok(id) => c.remove_master(None, Some(id)).await?,
                Err(_) => c.remove_master(Some(&member), None).await?,
            };
            print(
                client.format,
                &serde_json::json!({ "node_id": removed }),
                &["REMOVED"],
                vec![vec![removed.to_string()]],
            )?;
        }
        MasterCommand::StepDown { to, if_leader, client } => {
            let c = client.client()?;
            if let Some(address) = if_leader {
                let list = c.list_masters().await?;
                let leader = list.members.iter().find(|m| m.node_id == list.leader_id);
                if leader.is_none_or(|l| l.address != address) {
                    print(
                        client.format,
                        &serde_json::json!({ "stepped_down": false }),
                        &["STEP-DOWN"],
                        vec![vec![format!("{address} is not the leader; nothing to do")]],
                    )?;
                    return Ok(());
                }
            }
            let new_leader = c.step_down(to).await?;
            print(
                client.format,
                &serde_json::json!({ "stepped_down": true, "new_leader_id": new_leader }),
                &["NEW LEADER"],
                vec![vec![new_leader.to_string()]],
            )?;
        }
    }
    Ok(())
}
