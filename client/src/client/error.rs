/// A client operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The master refused the request with a Kudu error code (e.g. TABLE_NOT_FOUND).
    #[error("{message} ({code})")]
    Master { code: String, message: String },
    /// A tablet server refused the request, or the client refused it before sending
    /// (e.g. INVALID_ROW for a row that does not fit the schema); nothing was applied.
    #[error("{message} ({code})")]
    Refused { code: String, message: String },
    /// No leader master answered before the deadline.
    #[error("no leader master reachable within {timeout_ms} ms (tried {addresses}): {last_error}")]
    /// `reached` tells a group without a leader (some master answered) from masters none
    /// of which could be reached.
    NoLeader { timeout_ms: u128, addresses: String, last_error: String, reached: bool },
    /// No answer before the deadline: a write may or may not have been applied (a retry
    /// with the same sequence number would tell).
    #[error("timed out after {timeout_ms} ms waiting for {what}: {last_error}")]
    Timeout { what: String, timeout_ms: u128, last_error: String },
    /// One call to one master failed without an answer (connection refused, reset, or no
    /// answer in time): it may or may not have taken effect.
    #[error("no answer from {address}: {message}")]
    NoAnswer { address: String, message: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl ClientError {
    /// The Kudu error code, if a server (or the client's own check) gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Master { code, .. } | ClientError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the request may have taken effect although it failed.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, ClientError::Timeout { .. } | ClientError::NoLeader { .. } | ClientError::NoAnswer { .. })
    }
}
