//! Why a tablet server RPC failed, and the one conversion of those errors to the wire
//! (through [`crate::rpc::status`], with the codes documented in `proto/tserver.proto`).

use std::time::Duration;

use crate::error_code::ErrorCode;
use crate::rpc::{self, LEADER_ADDR_KEY, LEADER_ID_KEY};
use crate::tablet::{TabletError, WriteError};

/// A refused or failed tablet server request.
#[derive(Debug, thiserror::Error)]
pub enum TabletServiceError {
    #[error("tablet {tablet_id} has no running replica on this tablet server")]
    TabletNotFound { tablet_id: String },
    #[error("this replica of tablet {tablet_id} is not its leader{}", leader_hint(.leader_uuid.as_deref()))]
    NotTheLeader { tablet_id: String, leader_uuid: Option<String>, leader_addr: Option<String> },
    #[error("tablet {tablet_id} has no schema yet; retry shortly")]
    NotReady { tablet_id: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidRow(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    InvalidSchema(String),
    #[error("{0}")]
    InvalidAlter(String),
    #[error("{0}")]
    StaleWrite(String),
    #[error("tablet {tablet_id}: {what} did not complete within {after:?}; it may still take effect")]
    TimedOut { tablet_id: String, what: &'static str, after: Duration },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

fn leader_hint(leader: Option<&str>) -> String {
    match leader {
        Some(uuid) => format!("; the leader is tablet server {uuid}"),
        None => "; no leader is known".to_string(),
    }
}

impl TabletServiceError {
    /// The wire code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            TabletServiceError::TabletNotFound { .. } => ErrorCode::TabletNotFound,
            TabletServiceError::NotTheLeader { .. } => ErrorCode::NotTheLeader,
            TabletServiceError::NotReady { .. } => ErrorCode::TabletNotReady,
            TabletServiceError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            TabletServiceError::InvalidRow(_) => ErrorCode::InvalidRow,
            TabletServiceError::TooLarge(_) => ErrorCode::TooLarge,
            TabletServiceError::InvalidSchema(_) => ErrorCode::InvalidSchema,
            TabletServiceError::InvalidAlter(_) => ErrorCode::InvalidAlter,
            TabletServiceError::StaleWrite(_) => ErrorCode::StaleWrite,
            TabletServiceError::TimedOut { .. } => ErrorCode::TimedOut,
            TabletServiceError::Unavailable(_) => ErrorCode::ServiceUnavailable,
            TabletServiceError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// A write refused before proposing: bad rows are INVALID_ROW, rows or batches over the
    /// size limits TOO_LARGE, an empty write INVALID_ARGUMENT.
    pub fn from_write(e: WriteError) -> Self {
        match e {
            WriteError::Empty => TabletServiceError::InvalidArgument(e.to_string()),
            WriteError::TooManyOps { .. }
            | WriteError::BatchTooLarge { .. }
            | WriteError::ClientIdTooLong { .. }
            | WriteError::KeyTooLarge { .. }
            | WriteError::RowTooLarge { .. } => TabletServiceError::TooLarge(e.to_string()),
            _ => TabletServiceError::InvalidRow(e.to_string()),
        }
    }

    /// A command the tablet refused as a whole (a replicated outcome).
    pub fn from_tablet(tablet_id: &str, e: TabletError) -> Self {
        match e {
            TabletError::Stale { .. } => TabletServiceError::StaleWrite(e.to_string()),
            TabletError::NoSchema => TabletServiceError::NotReady { tablet_id: tablet_id.to_string() },
            TabletError::InvalidSchema(_) => TabletServiceError::InvalidSchema(e.to_string()),
            TabletError::KeyChanged { .. } => TabletServiceError::InvalidAlter(e.to_string()),
        }
    }
}

impl From<TabletServiceError> for tonic::Status {
    fn from(e: TabletServiceError) -> Self {
        let mut status = rpc::status(e.code(), e.to_string());
        if let TabletServiceError::NotTheLeader { leader_uuid, leader_addr, .. } = &e {
            for (key, value) in [(LEADER_ID_KEY, leader_uuid), (LEADER_ADDR_KEY, leader_addr)] {
                if let Some(value) = value.as_deref().and_then(|v| v.parse().ok()) {
                    status.metadata_mut().insert(key, value);
                }
            }
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{ERROR_CODE_KEY, known_error_code};

    fn meta<'a>(status: &'a tonic::Status, key: &str) -> Option<&'a str> {
        status.metadata().get(key).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn not_the_leader_carries_the_hint() {
        let e = TabletServiceError::NotTheLeader {
            tablet_id: "t".into(),
            leader_uuid: Some("abc".into()),
            leader_addr: Some("127.0.0.1:9".into()),
        };
        let status = tonic::Status::from(e);
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert_eq!(meta(&status, ERROR_CODE_KEY), Some("NOT_THE_LEADER"));
        assert_eq!(meta(&status, LEADER_ID_KEY), Some("abc"));
        assert_eq!(meta(&status, LEADER_ADDR_KEY), Some("127.0.0.1:9"));
        assert!(status.message().contains("the leader is tablet server abc"), "{}", status.message());
        let unknown = tonic::Status::from(TabletServiceError::NotTheLeader {
            tablet_id: "t".into(),
            leader_uuid: None,
            leader_addr: None,
        });
        assert_eq!(meta(&unknown, LEADER_ID_KEY), None);
        assert!(unknown.message().ends_with("no leader is known"));
    }

    #[test]
    fn write_and_tablet_errors_map_to_documented_codes() {
        let cases = [
            (TabletServiceError::from_write(WriteError::Empty), ErrorCode::InvalidArgument),
            (
                TabletServiceError::from_write(WriteError::UnknownColumn { row: 1, column: "x".into() }),
                ErrorCode::InvalidRow,
            ),
            (
                TabletServiceError::from_write(WriteError::MissingKey { row: 0, column: "k".into() }),
                ErrorCode::InvalidRow,
            ),
            (TabletServiceError::from_write(WriteError::TooManyOps { ops: 9, limit: 1 }), ErrorCode::TooLarge),
            (TabletServiceError::from_write(WriteError::ClientIdTooLong { bytes: 9, limit: 1 }), ErrorCode::TooLarge),
            (
                TabletServiceError::from_write(WriteError::RowTooLarge { row: 0, bytes: 9, limit: 1 }),
                ErrorCode::TooLarge,
            ),
            (
                TabletServiceError::from_tablet(
                    "t",
                    TabletError::Stale { client_id: "c".into(), seq_no: 1, first_incomplete: 3 },
                ),
                ErrorCode::StaleWrite,
            ),
            (TabletServiceError::from_tablet("t", TabletError::NoSchema), ErrorCode::TabletNotReady),
            (TabletServiceError::from_tablet("t", TabletError::KeyChanged { version: 2 }), ErrorCode::InvalidAlter),
            (
                TabletServiceError::TimedOut { tablet_id: "t".into(), what: "write", after: Duration::from_secs(1) },
                ErrorCode::TimedOut,
            ),
            (TabletServiceError::TabletNotFound { tablet_id: "t".into() }, ErrorCode::TabletNotFound),
        ];
        for (error, code) in cases {
            let message = error.to_string();
            let status = tonic::Status::from(error);
            assert_eq!(known_error_code(&status), Some(code), "{message}");
            assert_eq!(status.code(), code.grpc_code());
            assert!(!message.contains('\n'), "one line: {message}");
        }
    }
}
