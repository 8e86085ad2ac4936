//! Serving gRPC, which only the servers need (the client side of the plumbing, the
//! channel pool, deadlines and error metadata, is `kudu_client::rpc`, re-exported as
//! [`crate::rpc`]).

mod auth;
pub mod tls;

use std::time::Duration;

pub use auth::{AuthLayer, Authorized};
pub use tls::{RELOAD_INTERVAL, TlsPeer, spawn_reload};

use crate::security::Security;
use crate::security::policy::Server;

/// A server could not be set up for its transport security.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("TLS setup failed: {0}")]
    Tls(#[from] tonic::transport::Error),
}

/// The gRPC server builder every server of the cluster uses.
pub type GrpcServer = tonic::transport::Server<tower_layer::Stack<AuthLayer, tower_layer::Identity>>;
/// A server's services, ready to serve.
pub type GrpcRouter = tonic::transport::server::Router<tower_layer::Stack<AuthLayer, tower_layer::Identity>>;

/// How many streams a client may reset before the server accepted them, per connection,
/// before the server closes the connection. h2's default is 20 (a guard against "rapid
/// reset" floods). Our clients reset a stream whenever a call times out; a tablet server whose
/// peers time out a few dozen of its thousand groups' calls at once would otherwise lose the
/// whole connection (`GOAWAY(ENHANCE_YOUR_CALM)`), failing every other group's call on it.
const MAX_PENDING_ACCEPT_RESETS: usize = 1024;

/// A gRPC server builder with the HTTP/2 settings every server of the cluster uses,
/// checking, over TLS, every request of every service against the role table
/// ([`crate::security::policy`]) for a `server`. TLS itself is [`spawn_grpc_server`]'s.
pub fn grpc_server(security: &Security, server: Server) -> Result<GrpcServer, ServeError> {
    let builder =
        tonic::transport::Server::builder().http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESETS));
    Ok(builder.layer(AuthLayer::new(server, security.is_tls())))
}

/// Serves `router` on `listener` over `security` (mutual TLS with the certificates of the
/// moment, see [`tls`], or plaintext) until `stop` turns true, letting in-flight RPCs
/// finish.
pub fn spawn_grpc_server(
    router: GrpcRouter,
    listener: tokio::net::TcpListener,
    security: &Security,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let security = security.clone();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        let served = if security.is_tls() {
            router.serve_with_incoming_shutdown(tls::incoming(listener, security), shutdown).await
        } else {
            // TCP_NODELAY on every accepted connection (tonic's own `tcp_nodelay` applies only
            // to listeners it binds): without it a response written in more than one segment
            // waits for the peer's delayed ACK, ~40 ms per call on Linux.
            let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            router.serve_with_incoming_shutdown(incoming, shutdown).await
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "gRPC server failed");
        }
    })
}

/// Waits up to `grace` in all for `tasks` to finish (after their stop signal was sent),
/// then aborts the rest.
pub async fn join_tasks(tasks: Vec<tokio::task::JoinHandle<()>>, grace: Duration) {
    let deadline = tokio::time::Instant::now() + grace;
    for mut task in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
        }
    }
}
