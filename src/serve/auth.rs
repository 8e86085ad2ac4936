//! The servers' authorization check: a layer in front of every gRPC service that reads the
//! client certificate of the TLS connection, checks its role against the one table
//! ([`crate::security::policy`]) and hands the [`Identity`] to the handler (in the
//! request's extensions, see [`crate::security::peer_identity`]) or answers
//! `UNAUTHENTICATED`/`PERMISSION_DENIED` naming the role and the RPC.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::codegen::http;

use super::tls::TlsPeer;

use crate::error_code::ErrorCode;
use crate::security::Identity;
use crate::security::policy::{self, Refusal, Server};

/// Wraps a server's services in [`Authorized`].
#[derive(Clone, Copy, Debug)]
pub struct AuthLayer {
    server: Server,
    /// Off with `--insecure`: nothing to check.
    enforce: bool,
}

impl AuthLayer {
    /// The check for a `server`; `enforce` false lets every request through (plaintext).
    pub fn new(server: Server, enforce: bool) -> Self {
        Self { server, enforce }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Authorized<S>;

    fn layer(&self, inner: S) -> Authorized<S> {
        Authorized { inner, layer: *self }
    }
}

/// The services of a server behind the role check.
#[derive(Clone, Debug)]
pub struct Authorized<S> {
    inner: S,
    layer: AuthLayer,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// The status a refusal answers with (`UNAUTHENTICATED` or `PERMISSION_DENIED`, with the
/// Kudu error code, which clients never retry).
fn refusal_status(refusal: &Refusal) -> tonic::Status {
    let code = match refusal {
        Refusal::Unauthenticated { .. } => ErrorCode::Unauthenticated,
        Refusal::Denied { .. } | Refusal::Unknown { .. } => ErrorCode::NotAuthorized,
    };
    crate::rpc::status(code, refusal.to_string())
}

impl<S, B> tower_service::Service<http::Request<B>> for Authorized<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if !self.layer.enforce {
            return Box::pin(self.inner.call(request));
        }
        let certs = request.extensions().get::<TlsPeer>().and_then(|peer| peer.certs.clone());
        let peer = certs.as_ref().and_then(|c| c.first()).map(|der| Identity::from_der(der));
        match policy::authorize(self.layer.server, request.uri().path(), peer) {
            Ok(identity) => {
                request.extensions_mut().insert(identity);
                Box::pin(self.inner.call(request))
            }
            Err(refusal) => {
                let remote = request.extensions().get::<TlsPeer>().and_then(|peer| peer.remote_addr);
                tracing::warn!(?remote, %refusal, "request refused");
                let response = refusal_status(&refusal).into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}
