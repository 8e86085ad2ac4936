//! `kudu-operator run`: the HTTP server, leader election, and the controller while this
//! replica leads. Losing the Lease (another replica took it, or it was not renewed in time)
//! drops the controller at once, cancelling the reconciliations in flight, and ends the run
//! with an error, so the pod restarts as a follower instead of acting next to the new
//! leader.

use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::cli::RunArgs;
use crate::controller::masters::MasterAdmin;
use crate::controller::{self, Context};
use crate::http::{self, Readiness};
use crate::lease::{LeaseError, LeaseLock, Renewal, keep_renewing, while_leading};
use crate::metrics::Metrics;

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No Kubernetes client configuration.
    #[error("cannot configure a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The HTTP server failed.
    #[error("HTTP server on {addr}: {source}")]
    Http {
        /// The address.
        addr: std::net::SocketAddr,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The Lease was lost to another replica or could not be renewed in time.
    #[error("lost the leader Lease")]
    LostLease,
    /// The Lease could not be read or written.
    #[error(transparent)]
    Lease(#[from] LeaseError),
}

/// Resolves when the process is asked to stop (SIGTERM or Ctrl-C).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Run the operator with `masters` as the master administration client.
pub async fn run<M: MasterAdmin>(args: RunArgs, masters: M) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::Client)?;
    let (metrics, registry) = Metrics::registered();
    let metrics = Arc::new(metrics);
    let readiness = Readiness::default();

    // `stop` flips to true on a signal or when leadership is lost.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            stop_signal().await;
            info!("stop requested");
            let _ = stop_tx.send(true);
        });
    }
    let router = http::router(Arc::new(registry), readiness.clone());
    let http_addr = args.http_addr;
    let listener =
        tokio::net::TcpListener::bind(http_addr).await.map_err(|source| RunError::Http { addr: http_addr, source })?;
    let server = tokio::spawn(http::serve(listener, router, stopped(stop_rx.clone())));

    // The Lease has a client of its own: its own connection to the API server, so a
    // renewal never queues behind the reconciles' requests in a shared connection pool.
    let lease_client = Client::try_default().await.map_err(RunError::Client)?;
    let lock =
        LeaseLock::new(lease_client, &args.lease_namespace, &args.lease_name, &args.identity, args.lease_duration());
    // Stand by until we lead or are asked to stop.
    loop {
        match lock.try_lead().await {
            Ok(true) => break,
            Ok(false) => readiness.set(true),
            Err(error) => warn!(%error, "leader election"),
        }
        let mut rx = stop_rx.clone();
        tokio::select! {
            _ = tokio::time::sleep(lock.retry_period()) => {}
            _ = rx.wait_for(|stop| *stop) => return finish(server, http_addr, Ok(())).await,
        }
    }
    info!(identity = %args.identity, "leading");
    metrics.leader.set(1);
    readiness.set(true);

    // Renew in the background until the controller finished (graceful shutdown included);
    // leadership ends when no renewal succeeded within the renew deadline (every call to
    // the API server is bounded), or another replica holds the Lease.
    let lock = Arc::new(lock);
    let leadership = lock.leadership();
    let (renew_stop_tx, renew_stop_rx) = watch::channel(false);
    let renewal = {
        let lock = lock.clone();
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            let renewal = keep_renewing(&lock, renew_stop_rx).await;
            if renewal.lost() {
                warn!("lost the leader Lease; stopping");
                let _ = stop_tx.send(true);
            }
            renewal
        })
    };

    let reporter = Reporter { controller: "kudu-operator".to_owned(), instance: Some(args.identity.clone()) };
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client, reporter),
        metrics: metrics.clone(),
        masters,
        leadership: leadership.clone(),
        env: args.operator_env(),
        stuck: Default::default(),
    });
    // On a stop request the controller finishes the reconciliations in flight (we still
    // lead); on losing the Lease it is dropped at once, cancelling them.
    if while_leading(&leadership, controller::run(ctx, stopped(stop_rx))).await.is_none() {
        warn!("leadership lost: reconciliations in flight cancelled");
    }
    metrics.leader.set(0);
    // Whatever ended the controller, stop renewing and serving.
    let _ = renew_stop_tx.send(true);
    let _ = stop_tx.send(true);
    let lost = renewal.await.map_or(true, Renewal::lost) || !leadership.is_leading();
    let result = if lost {
        Err(RunError::LostLease)
    } else {
        // Stopped on request: hand the Lease over without making the successor wait.
        if let Err(error) = lock.release().await {
            warn!(%error, "releasing the Lease");
        }
        Ok(())
    };
    finish(server, http_addr, result).await
}

async fn finish(
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    addr: std::net::SocketAddr,
    result: Result<(), RunError>,
) -> Result<(), RunError> {
    match server.await {
        Ok(Err(source)) => Err(RunError::Http { addr, source }),
        _ => result,
    }
}
