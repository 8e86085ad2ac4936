//! Start-up and shutdown of a master process: storage, Raft, gRPC and HTTP servers.

use std::net::SocketAddr;
use std::sync::Arc;

use rand::SeedableRng;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::config::MasterConfig;
use super::limits::{MAX_CATALOG_SNAPSHOT_BYTES, MAX_REQUEST_BYTES};
use super::location_mapping::LocationMapper;
use super::metrics::Metrics;
use super::node::MasterNode;
use super::raft_types::{Network, Raft};
use super::read_batch::{HEARTBEAT_READ_WINDOW, ReadBatcher};
use super::service::MasterRpc;
use super::store::{self, LogStore, StateMachineStore, StoreError};
use super::tservers::TServerRegistry;
use super::{bootstrap, cluster_id, housekeeping, http, leader_balance, rereplication};
use crate::pb::master::master_service_server::MasterServiceServer;
use crate::pb::raft::raft_service_server::RaftServiceServer;
use crate::raft::{DEFAULT_GROUP, GroupPrefix, MAX_MESSAGE, RaftRpc};
use crate::rpc::ChannelPool;
use crate::serve::{join_tasks, spawn_grpc_server};
use crate::shutdown::wait_for_signal;

/// How long in-flight requests may take to finish at shutdown.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A master failed to start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("raft: {0}")]
    Raft(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
}

/// A started master.
pub struct MasterServer {
    pub node: Arc<MasterNode>,
    pub rpc_addr: SocketAddr,
    pub http_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn bind(addr: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr: addr.to_string(), source })
}

impl MasterServer {
    /// Opens storage, starts Raft and the servers, and begins the first-start bootstrap.
    pub async fn start(config: MasterConfig) -> Result<MasterServer, ServerError> {
        config.validate().map_err(ServerError::Config)?;
        let raft_config = config.raft_config().map_err(|e| ServerError::Config(e.to_string()))?;
        // A refused recovery is logged with its reason; the master then starts unchanged.
        if let Ok(Some(plan)) = store::recover::run_requested(&config.data_dir).await {
            tracing::warn!(
                node_id = plan.node_id,
                term = plan.new_term,
                index = plan.new_index,
                "UNSAFE RECOVERY done: this master is the only voter; add masters back with AddMaster"
            );
        }
        let (db, id) = store::open(&config.data_dir)?;
        let log_store = LogStore::new(db.clone(), GroupPrefix::default());
        let state_machine = StateMachineStore::open(db, &config.data_dir).map_err(StoreError::Io)?;
        let catalog = state_machine.catalog();
        let pool = ChannelPool::default().with_security(config.security.clone());
        let network = Network::new(pool.clone(), DEFAULT_GROUP, crate::raft::BasicNodeAddress);
        let raft = Raft::new(id, Arc::new(raft_config), network, log_store, state_machine)
            .await
            .map_err(|e| ServerError::Raft(e.to_string()))?;
        let metrics = Metrics::new();
        let heartbeat_reads = ReadBatcher::new(
            raft.clone(),
            HEARTBEAT_READ_WINDOW,
            config.rpc_timeout,
            metrics.heartbeat_read_rounds.clone(),
        );
        let node = Arc::new(MasterNode {
            id,
            address: config.advertised_addr.clone(),
            raft,
            catalog,
            tservers: TServerRegistry::new(config.tserver_unresponsive_timeout),
            locations: config.location_mapping.clone().and_then(LocationMapper::new),
            placement_rng: std::sync::Mutex::new(rand::rngs::StdRng::from_os_rng()),
            pool,
            metrics,
            heartbeat_reads,
            tablets_by_server: Default::default(),
            background_pushes: Default::default(),
            membership_lock: tokio::sync::Mutex::new(()),
            leader_since: std::sync::Mutex::new(None),
            moves_in_flight: Default::default(),
            config: config.clone(),
        });
        tracing::info!(node_id = id, address = %node.address, data_dir = %config.data_dir.display(), "master starting");

        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let listener = bind(&config.rpc_bind).await?;
        let rpc_addr =
            listener.local_addr().map_err(|source| ServerError::Bind { addr: config.rpc_bind.clone(), source })?;
        // Clients and tablet servers: requests up to MAX_REQUEST_BYTES (larger ones are refused
        // before they are read); peers: Raft messages up to MAX_MESSAGE both ways.
        let grpc = crate::serve::grpc_server(&config.security, crate::security::policy::Server::Master)?
            .add_service(
                MasterServiceServer::new(MasterRpc { node: node.clone() })
                    .max_decoding_message_size(MAX_REQUEST_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE),
            )
            .add_service(
                RaftServiceServer::new(RaftRpc::new(node.clone()).with_max_snapshot_bytes(MAX_CATALOG_SNAPSHOT_BYTES))
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
            );
        tasks.push(spawn_grpc_server(grpc, listener, &config.security, stopped.clone()));
        tasks.push(crate::serve::spawn_reload(config.security.clone(), crate::serve::RELOAD_INTERVAL, stopped.clone()));

        let mut http_addr = None;
        if let Some(addr) = &config.http_bind {
            let listener = bind(addr).await?;
            http_addr = listener.local_addr().ok();
            let app = http::router(node.clone());
            let mut http_stop = stopped.clone();
            tasks.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = http_stop.wait_for(|s| *s).await;
                };
                if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            }));
        }
        tasks.push(tokio::spawn(bootstrap::run(node.clone())));
        tasks.push(tokio::spawn(cluster_id::run(node.clone())));
        tasks.push(tokio::spawn(housekeeping::run(node.clone())));
        tasks.push(tokio::spawn(super::membership::finish_joint_configs(node.clone())));
        tasks.push(tokio::spawn(rereplication::run(node.clone(), stopped.clone())));
        if let Some(interval) = config.leader_balance_interval {
            tasks.push(tokio::spawn(leader_balance::run(node.clone(), interval, stopped.clone())));
        }
        let tracker = node.clone();
        tasks.push(tokio::spawn(async move { tracker.track_leadership().await }));
        tracing::info!(%rpc_addr, ?http_addr, "master serving");
        Ok(MasterServer { node, rpc_addr, http_addr, stop, tasks })
    }

    /// Stops Raft and the servers.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.node.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown failed");
        }
        join_tasks(self.tasks, SHUTDOWN_GRACE).await;
    }
}

/// Runs a master until SIGINT or SIGTERM.
pub async fn run(config: MasterConfig) -> Result<(), ServerError> {
    let server = MasterServer::start(config).await?;
    wait_for_signal().await;
    tracing::info!("master shutting down");
    server.shutdown().await;
    Ok(())
}
