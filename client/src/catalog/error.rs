use serde::{Deserialize, Serialize};

use crate::error_code::ErrorCode;

/// Why a catalog operation was refused. Part of the replicated state machine's output, so
/// it is serializable and deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CatalogError {
    #[error("table '{0}' not found")]
    TableNotFound(String),
    #[error("table '{0}' already exists")]
    TableAlreadyExists(String),
    #[error("{0}")]
    InvalidTableName(String),
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    #[error("invalid alteration: {0}")]
    InvalidAlter(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl CatalogError {
    /// Stable machine-readable code, sent to clients with the error.
    pub fn code(&self) -> ErrorCode {
        match self {
            CatalogError::TableNotFound(_) => ErrorCode::TableNotFound,
            CatalogError::TableAlreadyExists(_) => ErrorCode::TableAlreadyExists,
            CatalogError::InvalidTableName(_) => ErrorCode::InvalidTableName,
            CatalogError::InvalidSchema(_) => ErrorCode::InvalidSchema,
            CatalogError::InvalidAlter(_) => ErrorCode::InvalidAlter,
            CatalogError::InvalidArgument(_) => ErrorCode::InvalidArgument,
        }
    }
}
