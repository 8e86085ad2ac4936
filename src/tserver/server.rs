//! Start-up and shutdown of a tablet server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::address_book::AddressBook;
use super::cluster::ClusterGuard;
use super::config::{TabletRaftTimings, TimingsError};
use super::heartbeat;
use super::metrics::TServerMetrics;
use super::service::TServerRpc;
use super::store::{StoreError, TServerStore};
use super::tablets::{ManagerError, ManagerParams, TabletManager};
use crate::ids::TServerId;
use crate::pb::master as mpb;
use crate::pb::raft::raft_service_server::RaftServiceServer;
use crate::pb::tserver::tablet_server_service_server::TabletServerServiceServer;
use crate::raft::{MAX_MESSAGE, RaftRpc};
use crate::rpc::ChannelPool;
use crate::serve::{join_tasks, spawn_grpc_server};
use crate::shutdown::wait_for_signal;

/// Settings of a tablet server.
#[derive(Clone, Debug)]
pub struct TServerConfig {
    pub data_dir: PathBuf,
    pub rpc_bind: String,
    /// Address masters, peers and clients reach this server at; empty or port 0 means the
    /// bound address.
    pub advertised_addr: String,
    /// Seed list of masters; the current membership is learned from the leader. Empty only
    /// in tests, which give instructions directly.
    pub master_addresses: Vec<String>,
    pub heartbeat_interval: Duration,
    /// Address of the web server (`/healthz`, `/metrics`, `/tablets`), if any.
    pub http_bind: Option<String>,
    /// Timings of the tablet Raft groups.
    pub tablet_raft: TabletRaftTimings,
    /// Mutual TLS with a `tserver` certificate for every RPC served and sent, or plaintext.
    pub security: crate::security::Security,
    /// On SIGTERM, how long the server hands its tablet leaderships to caught-up followers
    /// before it stops ([`super::drain`]); zero stops at once.
    pub drain_timeout: Duration,
}

/// A tablet server failed to start.
#[derive(Debug, thiserror::Error)]
pub enum TServerError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Timings(#[from] TimingsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Replicas(#[from] ManagerError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
}

/// State shared by the tablet server's tasks.
pub struct TServerState {
    pub uuid: TServerId,
    pub advertised_addr: String,
    pub store: TServerStore,
    pub pool: ChannelPool,
    /// Every replica this server hosts.
    pub tablets: Arc<TabletManager>,
    /// Addresses of the tablet servers hosting peers of this server's replicas.
    pub book: AddressBook,
    /// The cluster this server joined.
    pub cluster: ClusterGuard,
    pub metrics: TServerMetrics,
    /// True while RPCs are served.
    pub serving: AtomicBool,
    /// True once a leader master of this server's cluster answered a heartbeat (since this
    /// process started).
    pub registered: AtomicBool,
    /// Random per process start, sent in heartbeats: masters treat a new one as a new
    /// registration.
    pub instance_id: String,
    /// The location the leader master last assigned (empty: none).
    pub location: Mutex<String>,
    masters: Mutex<Vec<String>>,
}

impl TServerState {
    /// Masters to heartbeat to.
    pub fn masters(&self) -> Vec<String> {
        self.masters.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records the location the leader assigned, logging a change.
    pub fn set_location(&self, location: &str) {
        let mut current = self.location.lock().unwrap_or_else(|p| p.into_inner());
        if *current != location {
            tracing::info!(%location, previous = %current, "the leader master assigned this tablet server's location");
            *current = location.to_string();
        }
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
    pub http_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    heartbeat_interval: Duration,
}

async fn bind(addr: &str) -> Result<(tokio::net::TcpListener, SocketAddr), TServerError> {
    let bind_error = |source| TServerError::Bind { addr: addr.to_string(), source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

/// The advertised address: as configured, or the bound one when empty or on port 0.
fn advertised(configured: &str, bound: SocketAddr) -> String {
    if configured.is_empty() || configured.ends_with(":0") { bound.to_string() } else { configured.to_string() }
}

impl TabletServer {
    /// Opens the data directory, reopens every running replica and serves.
    pub async fn start(config: TServerConfig) -> Result<Self, TServerError> {
        let raft_config = Arc::new(config.tablet_raft.raft_config()?);
        let (listener, rpc_addr) = bind(&config.rpc_bind).await?;
        let advertised_addr = advertised(&config.advertised_addr, rpc_addr);
        let store = TServerStore::open(&config.data_dir)?;
        let uuid = store.uuid()?;
        let pool = ChannelPool::default().with_security(config.security.clone());
        let book = AddressBook::new(uuid.as_str(), &advertised_addr);
        let tablets = TabletManager::open(ManagerParams {
            uuid: uuid.clone(),
            address: advertised_addr.clone(),
            data_dir: config.data_dir.clone(),
            store: store.clone(),
            pool: pool.clone(),
            book: book.clone(),
            raft_config,
            request_timeout: config.tablet_raft.request_timeout,
            heartbeat_batch_window: config.tablet_raft.heartbeat_batch_window(),
            quiesce_after: config.tablet_raft.quiesce_after,
        })
        .await?;
        let state = Arc::new(TServerState {
            uuid: uuid.clone(),
            advertised_addr,
            cluster: ClusterGuard::open(store.clone())?,
            store,
            pool,
            tablets: tablets.clone(),
            book,
            metrics: TServerMetrics::new(),
            serving: AtomicBool::new(false),
            registered: AtomicBool::new(false),
            instance_id: uuid::Uuid::new_v4().to_string(),
            location: Mutex::new(String::new()),
            masters: Mutex::new(config.master_addresses.clone()),
        });
        let (stop, stopped) = watch::channel(false);
        let grpc = crate::serve::grpc_server(&config.security, crate::security::policy::Server::Tserver)?
            .add_service(
                TabletServerServiceServer::new(TServerRpc { state: state.clone() })
                    .max_decoding_message_size(MAX_MESSAGE),
            )
            .add_service(
                RaftServiceServer::new(RaftRpc::new(tablets.clone()))
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
            );
        let mut tasks = vec![spawn_grpc_server(grpc, listener, &config.security, stopped.clone())];
        tasks.push(crate::serve::spawn_reload(config.security.clone(), crate::serve::RELOAD_INTERVAL, stopped.clone()));
        tasks.push(tokio::spawn(heartbeat::run(state.clone(), config.heartbeat_interval, stopped.clone())));
        tasks.push(tokio::spawn(tablets.clone().run_duties(config.tablet_raft.heartbeat_interval, stopped.clone())));
        tasks.push(tokio::spawn(tablets.run_quiescence(stopped.clone())));
        let mut http_addr = None;
        if let Some(addr) = &config.http_bind {
            let (listener, local) = bind(addr).await?;
            http_addr = Some(local);
            let app = super::http::router(state.clone());
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
        state.serving.store(true, Ordering::SeqCst);
        tracing::info!(%uuid, %rpc_addr, ?http_addr, cluster_id = ?state.cluster.id(), "tablet server serving");
        Ok(Self { state, rpc_addr, http_addr, stop, tasks, heartbeat_interval: config.heartbeat_interval })
    }

    /// Applies a leader master's heartbeat answer as the heartbeat does (tests give
    /// instructions this way without masters). Returns whether it was obeyed.
    pub async fn apply_master_answer(&self, answer: mpb::TsHeartbeatResponse) -> bool {
        heartbeat::apply_answer(&self.state, answer, "test").await
    }

    /// Hands this server's tablet leaderships to caught-up followers for at most `limit`;
    /// from now on its replicas take no new leadership and `/ready` answers 503.
    pub async fn drain(&self, limit: Duration) -> super::drain::DrainOutcome {
        self.state.tablets.stop_campaigning();
        // The masters learn at once that no leadership may move here.
        if let Err(e) = heartbeat::beat(&self.state, self.heartbeat_interval).await {
            tracing::warn!(error = %e, "heartbeat announcing the drain failed");
        }
        self.state.tablets.drain_leaderships(limit).await
    }

    /// Stops serving, stops every replica's Raft group and releases the data directory.
    pub async fn shutdown(self) {
        self.state.serving.store(false, Ordering::SeqCst);
        let _ = self.stop.send(true);
        join_tasks(self.tasks, Duration::from_secs(5)).await;
        self.state.tablets.shutdown().await;
    }
}

/// Runs a tablet server until SIGINT or SIGTERM.
pub async fn run(config: TServerConfig) -> Result<(), TServerError> {
    if config.master_addresses.is_empty() {
        return Err(TServerError::Config("--master-addresses must list at least one master".into()));
    }
    let drain_timeout = config.drain_timeout;
    let server = TabletServer::start(config).await?;
    wait_for_signal().await;
    if !drain_timeout.is_zero() {
        tracing::info!(limit = ?drain_timeout, "tablet server draining: handing over its tablet leaderships");
        server.drain(drain_timeout).await;
    }
    tracing::info!("tablet server shutting down");
    server.shutdown().await;
    Ok(())
}
