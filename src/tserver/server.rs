//! Start-up and shutdown of a tablet server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::heartbeat;
use super::service::TServerRpc;
use super::store::{StoreError, TServerStore};
use crate::ids::TServerId;
use crate::pb::tserver::tablet_server_service_server::TabletServerServiceServer;
use crate::rpc::{ChannelPool, join_tasks, spawn_grpc_server};
use crate::shutdown::wait_for_signal;

/// Settings of a tablet server.
#[derive(Clone, Debug)]
pub struct TServerConfig {
    pub data_dir: PathBuf,
    pub rpc_bind: String,
    pub advertised_addr: String,
    /// Seed list of masters; the current membership is learned from the leader.
    pub master_addresses: Vec<String>,
    pub heartbeat_interval: Duration,
}

/// A tablet server failed to start.
#[derive(Debug, thiserror::Error)]
pub enum TServerError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
}

/// State shared by the tablet server's tasks.
pub struct TServerState {
    pub uuid: TServerId,
    pub advertised_addr: String,
    pub store: TServerStore,
    pub pool: ChannelPool,
    masters: Mutex<Vec<String>>,
}

impl TServerState {
    /// Masters to heartbeat to.
    pub fn masters(&self) -> Vec<String> {
        self.masters.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Follows the current membership reported by the leader.
    pub fn set_masters(&self, masters: Vec<String>) {
        let mut current = self.masters.lock().unwrap_or_else(|p| p.into_inner());
        if *current != masters {
            tracing::info!(?masters, "master membership changed");
            *current = masters;
        }
    }
}

/// A started tablet server.
pub struct TabletServer {
    pub state: Arc<TServerState>,
    pub rpc_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TabletServer {
    pub async fn start(config: TServerConfig) -> Result<Self, TServerError> {
        if config.master_addresses.is_empty() {
            return Err(TServerError::Config("--master-addresses must list at least one master".into()));
        }
        let store = TServerStore::open(&config.data_dir)?;
        let uuid = store.uuid()?;
        let state = Arc::new(TServerState {
            uuid: uuid.clone(),
            advertised_addr: config.advertised_addr.clone(),
            store,
            pool: ChannelPool::default(),
            masters: Mutex::new(config.master_addresses.clone()),
        });
        let listener = tokio::net::TcpListener::bind(&config.rpc_bind)
            .await
            .map_err(|source| TServerError::Bind { addr: config.rpc_bind.clone(), source })?;
        let rpc_addr =
            listener.local_addr().map_err(|source| TServerError::Bind { addr: config.rpc_bind.clone(), source })?;
        let (stop, stopped) = watch::channel(false);
        let grpc = tonic::transport::Server::builder()
            .add_service(TabletServerServiceServer::new(TServerRpc { state: state.clone() }));
        let mut tasks = vec![spawn_grpc_server(grpc, listener, stopped.clone())];
        tasks.push(tokio::spawn(heartbeat::run(state.clone(), config.heartbeat_interval, stopped)));
        tracing::info!(%uuid, %rpc_addr, "tablet server serving");
        Ok(Self { state, rpc_addr, stop, tasks })
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        join_tasks(self.tasks, Duration::from_secs(5)).await;
    }
}

/// Runs a tablet server until SIGINT or SIGTERM.
pub async fn run(config: TServerConfig) -> Result<(), TServerError> {
    let server = TabletServer::start(config).await?;
    wait_for_signal().await;
    tracing::info!("tablet server shutting down");
    server.shutdown().await;
    Ok(())
}
