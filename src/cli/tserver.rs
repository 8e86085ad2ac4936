//! `kudu tserver ...`

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use kudu::tserver::{TServerConfig, TabletRaftTimings};
use serde::Serialize;

use super::output::print;
use super::{ClientArgs, SecurityArgs};

#[derive(Subcommand, Debug)]
pub enum TServerCommand {
    /// Run a tablet server process.
    Run(RunArgs),
    /// List the tablet servers the leader master knows.
    List(ClientArgs),
    /// Decommission tablet servers: move every replica off them (3-4-3) and place no new
    /// one there; `--cancel` ends a decommission. Progress shows in `kudu tserver list`.
    Decommission(DecommissionArgs),
}

#[derive(Args, Debug)]
pub struct DecommissionArgs {
    /// UUIDs of the tablet servers.
    #[arg(required = true)]
    uuids: Vec<String>,
    /// Cancel the decommission of these servers instead.
    #[arg(long)]
    cancel: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Directory of the tablet server's data.
    #[arg(long)]
    data_dir: PathBuf,
    /// Address the RPC server listens on.
    #[arg(long, default_value = "0.0.0.0:7050")]
    rpc_addr: String,
    /// Address masters and clients reach this server at (default: --rpc-addr).
    #[arg(long)]
    advertised_addr: Option<String>,
    /// Comma-separated master RPC addresses (a seed list).
    #[arg(long, env = "KUDU_MASTER_ADDRESSES", value_delimiter = ',', required = true)]
    master_addresses: Vec<String>,
    /// Interval between heartbeats to the masters.
    #[arg(long, default_value_t = 1_000)]
    heartbeat_interval_ms: u64,
    /// Address of the web server (/healthz, /metrics, /tablets); none if not given.
    #[arg(long)]
    http_addr: Option<String>,
    /// Interval of a tablet leader's Raft heartbeats to each follower.
    #[arg(long, default_value_t = 500)]
    tablet_raft_heartbeat_ms: u64,
    /// Least time a tablet follower waits for its leader before calling an election (the
    /// most is twice this); must exceed twice --tablet-raft-heartbeat-ms.
    #[arg(long, default_value_t = 1_500)]
    tablet_election_timeout_ms: u64,
    /// Snapshot a tablet replica (and purge its log) after this many applied entries.
    #[arg(long, default_value_t = 10_000)]
    tablet_snapshot_every: u64,
    /// Deadline of a replicated write or schema change, or of a scan's leadership check.
    #[arg(long, default_value_t = 10_000)]
    tablet_request_timeout_ms: u64,
    /// A tablet group without requests for this long stops its Raft heartbeats and election
    /// timer until the next request (quiescence); 0 never quiesces.
    #[arg(long, default_value_t = 5_000)]
    tablet_quiesce_after_ms: u64,
    /// On SIGTERM, hand tablet leaderships to caught-up followers for at most this long
    /// before stopping (keep it well below the pod's termination grace period); 0 stops at
    /// once.
    #[arg(long, default_value_t = 10_000)]
    drain_timeout_ms: u64,
    #[command(flatten)]
    security: SecurityArgs,
}

#[derive(Serialize)]
struct TServerOut {
    uuid: String,
    rpc_address: String,
    /// Empty when the server has none.
    location: String,
    live: bool,
    /// `live`, or `unresponsive` once no heartbeat arrived within the master's timeout.
    state: &'static str,
    millis_since_heartbeat: u64,
    replicas: u32,
    /// Why the server's registration failed (no replicas are placed on it); empty if not.
    registration_error: String,
    /// Its replicas are being moved off; it receives none.
    decommissioning: bool,
}

impl From<kudu::pb::master::TabletServerEntry> for TServerOut {
    fn from(s: kudu::pb::master::TabletServerEntry) -> Self {
        TServerOut {
            uuid: s.uuid,
            rpc_address: s.rpc_address,
            location: s.location,
            live: s.live,
            state: if s.live { "live" } else { "unresponsive" },
            millis_since_heartbeat: s.millis_since_heartbeat,
            replicas: s.num_replicas,
            registration_error: s.registration_error,
            decommissioning: s.decommissioning,
        }
    }
}

/// `1.2s ago` from milliseconds.
fn heartbeat_age(millis: u64) -> String {
    format!("{:.1}s ago", millis as f64 / 1000.0)
}

pub async fn run(cmd: TServerCommand) -> anyhow::Result<()> {
    match cmd {
        TServerCommand::Run(args) => {
            let security = args.security.security()?;
            security.require_role(kudu::security::Role::Tserver)?;
            let config = TServerConfig {
                data_dir: args.data_dir,
                advertised_addr: args.advertised_addr.unwrap_or_else(|| args.rpc_addr.clone()),
                rpc_bind: args.rpc_addr,
                master_addresses: args.master_addresses.iter().map(|a| a.trim().to_string()).collect(),
                heartbeat_interval: Duration::from_millis(args.heartbeat_interval_ms.max(10)),
                http_bind: args.http_addr,
                tablet_raft: TabletRaftTimings {
                    heartbeat_interval: Duration::from_millis(args.tablet_raft_heartbeat_ms.max(10)),
                    election_timeout: Duration::from_millis(args.tablet_election_timeout_ms),
                    snapshot_every: args.tablet_snapshot_every.max(1),
                    request_timeout: Duration::from_millis(args.tablet_request_timeout_ms.max(100)),
                    quiesce_after: (args.tablet_quiesce_after_ms > 0)
                        .then(|| Duration::from_millis(args.tablet_quiesce_after_ms)),
                },
                security,
                drain_timeout: Duration::from_millis(args.drain_timeout_ms),
            };
            kudu::tserver::run(config).await?;
        }
        TServerCommand::List(client_args) => {
            let servers = client_args.client()?.list_tablet_servers().await?;
            let out: Vec<TServerOut> = servers.into_iter().map(TServerOut::from).collect();
            let rows = out
                .iter()
                .map(|s| {
                    vec![
                        s.uuid.clone(),
                        s.rpc_address.clone(),
                        if s.location.is_empty() { "-".to_string() } else { s.location.clone() },
                        if s.decommissioning {
                            format!("{} DECOMMISSIONING", s.state.to_uppercase())
                        } else {
                            s.state.to_uppercase()
                        },
                        heartbeat_age(s.millis_since_heartbeat),
                        s.replicas.to_string(),
                    ]
                })
                .collect();
            let headers = ["UUID", "RPC ADDRESS", "LOCATION", "STATE", "LAST HEARTBEAT", "REPLICAS"];
            print(client_args.format, &out, &headers, rows)?;
            if client_args.format == super::Format::Text {
                for s in out.iter().filter(|s| !s.registration_error.is_empty()) {
                    println!("{}: registration failed: {}", s.uuid, s.registration_error);
                }
            }
        }
        TServerCommand::Decommission(args) => {
            args.client.client()?.set_tablet_server_state(&args.uuids, !args.cancel).await?;
            let what = if args.cancel { "decommission cancelled" } else { "decommissioning" };
            for uuid in &args.uuids {
                println!("{uuid}: {what}");
            }
        }
    }
    Ok(())
}
