//! An in-memory Kubernetes API server speaking HTTP/1.1 + JSON.

pub mod apply;
pub mod builtin_validation;
pub mod cel;
pub mod crd;
pub mod defaults;
pub mod delete;
pub mod discovery;
pub mod disruption;
pub mod error;
pub mod exec;
pub mod handlers;
pub mod openapi;
pub mod ops;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod scale;
pub mod selector;
pub mod store;
pub mod table;
pub mod util;
pub mod validation;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use error::ApiError;
pub use ops::Api;

use handlers::AppState;
use ops::WriteOptions;

/// Failure to start the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the listen socket failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Creating the initial namespaces failed.
    #[error("bootstrapping: {0}")]
    Bootstrap(#[from] ApiError),
}

/// Namespaces every cluster starts with.
pub const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// A running API server.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    api: Api,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ApiServer {
    /// Creates the initial namespaces and serves `api` on `bind` (use port 0 for a free port).
    pub async fn start(api: Api, bind: SocketAddr) -> Result<Self, ServerError> {
        let listener = TcpListener::bind(bind).await.map_err(|source| ServerError::Bind { addr: bind, source })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: bind, source })?;
        let namespaces = api.resource("", "namespaces")?;
        for ns in INITIAL_NAMESPACES {
            if api.get(&namespaces, "v1", None, ns).is_err() {
                api.create(&namespaces, "v1", None, json!({"metadata": {"name": ns}}), &WriteOptions::default())?;
            }
        }
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let state =
            Arc::new(AppState { api: api.clone(), shutdown: shutdown_rx.clone(), server_address: addr.to_string() });
        let app = axum::Router::new().fallback(handlers::handle).with_state(state);
        let mut stop = shutdown_rx;
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "API server stopped");
            }
        });
        tracing::info!(%addr, "API server listening");
        Ok(Self { addr, api, shutdown, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API behind the server (for in-process controllers and tests).
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// Stops serving: ends watch streams and waits for the server task.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        let _ = self.task.await;
    }
}
