//! gRPC plumbing shared by masters, tablet servers and clients: one lazily connected channel
//! per peer address, client-side deadlines, and the error metadata every Kudu RPC error
//! carries. (Serving helpers live in the `kudu` package's `rpc` module, which re-exports
//! this one.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::error_code::ErrorCode;
use crate::security::Security;

/// Metadata key of the machine-readable error code (e.g. `NOT_THE_LEADER`).
pub const ERROR_CODE_KEY: &str = "kudu-error-code";
/// Metadata key of the leader's node id on `NOT_THE_LEADER`.
pub const LEADER_ID_KEY: &str = "kudu-leader-id";
/// Metadata key of the leader's RPC address on `NOT_THE_LEADER`.
pub const LEADER_ADDR_KEY: &str = "kudu-leader-addr";

/// Largest response a client accepts (tonic's default is 4 MiB; a catalog of many tables
/// or a scan page can be larger). Servers send up to the same size.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// How long establishing a TCP connection may take (unless the pool says otherwise).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Channels by address, created lazily and reused for every RPC to that peer, all over
/// the pool's transport security (plaintext by default, see [`ChannelPool::with_security`]).
#[derive(Clone)]
pub struct ChannelPool {
    /// The channels, made with the certificates of the generation kept beside them.
    channels: Arc<Mutex<(u64, HashMap<String, Channel>)>>,
    connect_timeout: Duration,
    security: Security,
}

impl Default for ChannelPool {
    fn default() -> Self {
        Self::with_connect_timeout(CONNECT_TIMEOUT)
    }
}

impl ChannelPool {
    /// An empty pool whose channels give up connecting after `connect_timeout`.
    pub fn with_connect_timeout(connect_timeout: Duration) -> Self {
        Self { channels: Arc::default(), connect_timeout, security: Security::Insecure }
    }

    /// The pool with channels over `security` (TLS with this process's certificate, or
    /// plaintext). Set before the first channel is made.
    pub fn with_security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// The transport security of the pool's channels.
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// The channel to `address` (`host:port`); connects on first use and reconnects as needed.
    /// After this process's certificates were renewed ([`Security::reload`]) the pool
    /// starts over, so new connections present the new certificate (calls in flight keep
    /// their channels).
    pub fn get(&self, address: &str) -> Result<Channel, tonic::transport::Error> {
        let mut guard = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.security.generation();
        if guard.0 != generation {
            *guard = (generation, HashMap::new());
        }
        let channels = &mut guard.1;
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let mut endpoint = Endpoint::from_shared(format!("{}://{address}", self.security.scheme()))?;
        if let Some(tls) = self.security.client_tls() {
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }

    /// Forgets the channel to `address` so the next use reconnects from scratch.
    pub fn evict(&self, address: &str) {
        self.channels.lock().unwrap_or_else(|p| p.into_inner()).1.remove(address);
    }

    /// Whether the pool holds a channel to `address`.
    pub fn contains(&self, address: &str) -> bool {
        self.channels.lock().unwrap_or_else(|p| p.into_inner()).1.contains_key(address)
    }
}

/// The Kudu error code a status carries, as sent (also codes this build does not know).
pub fn error_code(status: &tonic::Status) -> Option<&str> {
    status.metadata().get(ERROR_CODE_KEY).and_then(|v| v.to_str().ok())
}

/// The Kudu error code a status carries, if it is one this build knows.
pub fn known_error_code(status: &tonic::Status) -> Option<ErrorCode> {
    error_code(status).and_then(|c| c.parse().ok())
}

/// Longest error message sent: the message travels in an HTTP/2 header, which peers limit
/// (16 KiB by default), so a longer one would turn a clear error into a protocol error.
pub const MAX_STATUS_MESSAGE: usize = 4096;

/// `message` cut to at most [`MAX_STATUS_MESSAGE`] bytes (at a character boundary), saying
/// how long it was.
fn bounded(message: String) -> String {
    if message.len() <= MAX_STATUS_MESSAGE {
        return message;
    }
    let mut end = MAX_STATUS_MESSAGE - 64;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... (message of {} bytes cut)", &message[..end], message.len())
}

/// The one conversion of an error to the wire: a status with the code's gRPC status and
/// the code in the metadata, its message at most [`MAX_STATUS_MESSAGE`] bytes.
pub fn status(code: ErrorCode, message: impl Into<String>) -> tonic::Status {
    let mut status = tonic::Status::new(code.grpc_code(), bounded(message.into()));
    if let Ok(value) = code.as_str().parse() {
        status.metadata_mut().insert(ERROR_CODE_KEY, value);
    }
    status
}

/// Runs an RPC future with a client-side deadline. (`Request::set_timeout` only tells the
/// server; a paused or partitioned peer would otherwise hold the caller until TCP gives up.)
pub async fn with_deadline<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(tonic::Status::deadline_exceeded(format!("no answer within {timeout:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_to_fit_a_header() {
        let short = status(ErrorCode::TableNotFound, "table 't' not found");
        assert_eq!(short.message(), "table 't' not found");
        let message = format!("table '{}' not found", "é".repeat(1 << 20));
        let long = status(ErrorCode::TableNotFound, message.clone());
        assert!(long.message().len() <= MAX_STATUS_MESSAGE, "{}", long.message().len());
        let suffix = format!("(message of {} bytes cut)", message.len());
        assert!(long.message().starts_with("table 'éé") && long.message().ends_with(&suffix));
        assert_eq!(error_code(&long), Some("TABLE_NOT_FOUND"));
    }
}
