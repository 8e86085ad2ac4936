//! Accepting TLS connections with the process's current certificates: each new connection
//! is handshaken with the configuration of the moment ([`Security::server_config`]), so a
//! certificate renewed on disk and reloaded ([`spawn_reload`]) is served without a restart.
//! Handshakes run concurrently, each bounded in time, beside the accept loop.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use crate::security::{SERVER_HANDSHAKE_TIMEOUT, Security};

/// Handshaken connections waiting for the gRPC server.
const ACCEPT_QUEUE: usize = 64;

/// What the server knows of a TLS peer (in every request's extensions).
#[derive(Clone, Debug)]
pub struct TlsPeer {
    /// The peer's address.
    pub remote_addr: Option<SocketAddr>,
    /// The peer's certificate chain, if it presented one (verified against the CA).
    pub certs: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// A server-side TLS connection.
pub struct TlsConnection(TlsStream<TcpStream>);

impl Connected for TlsConnection {
    type ConnectInfo = TlsPeer;

    fn connect_info(&self) -> TlsPeer {
        let (tcp, session) = self.0.get_ref();
        TlsPeer {
            remote_addr: tcp.peer_addr().ok(),
            certs: session
                .peer_certificates()
                .map(|certs| Arc::new(certs.iter().map(|c| c.clone().into_owned()).collect())),
        }
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// The TLS connections accepted on `listener`, handshaken with `security`'s configuration
/// of the moment. The accept loop ends when the stream is dropped (the server stopped).
pub fn incoming(
    listener: TcpListener,
    security: Security,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsConnection>> {
    let (tx, rx) = tokio::sync::mpsc::channel(ACCEPT_QUEUE);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (tcp, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off a little, keep serving.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Some(config) = security.server_config() else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                match tokio::time::timeout(SERVER_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(TlsConnection(stream))).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// How often servers look for renewed certificate files by default.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// Re-reads the certificates directory of `security` every `interval` until `stop` turns
/// true (see [`Security::reload`]); a renewal is logged, an unusable new set is logged and
/// the previous certificates stay.
pub fn spawn_reload(
    security: Security,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !security.is_tls() {
            return;
        }
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
            match security.reload() {
                Ok(true) => tracing::info!(generation = security.generation(), "renewed certificates loaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "renewed certificates not usable yet; keeping the current ones"),
            }
        }
    })
}
