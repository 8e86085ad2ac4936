/// A client operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The master refused the request with a Kudu error code (e.g. TABLE_NOT_FOUND).
    #[error("{message} ({code})")]
    Master { code: String, message: String },
    /// No leader answered before the deadline.
    #[error("no leader master reachable within {timeout_ms} ms (tried {addresses}): {last_error}")]
    NoLeader { timeout_ms: u128, addresses: String, last_error: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl ClientError {
    /// The Kudu error code, if the master sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Master { code, .. } => Some(code),
            _ => None,
        }
    }
}
