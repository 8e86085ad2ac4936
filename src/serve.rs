//! Serving gRPC, which only the servers need (the client side of the plumbing, the
//! channel pool, deadlines and error metadata, is `kudu_client::rpc`, re-exported as
//! [`crate::rpc`]).

use std::time::Duration;

/// Serves `router` on `listener` until `stop` turns true, letting in-flight RPCs finish.
pub fn spawn_grpc_server(
    router: tonic::transport::server::Router,
    listener: tokio::net::TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, shutdown).await {
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
