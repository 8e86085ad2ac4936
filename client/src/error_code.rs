//! The stable, machine-readable error codes every Kudu RPC error carries (gRPC metadata
//! `kudu-error-code`), shared by masters, tablet servers, the client, the CLI and the
//! operator. Whether a code is worth retrying, and which gRPC status it travels with, is
//! decided here once.

use std::fmt;
use std::str::FromStr;

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal, $grpc:ident, $retry:literal;)*) => {
        /// An error code of the Kudu RPC protocol.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it travels on the wire and appears in messages.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                }
            }

            /// The gRPC status code an error with this code is sent with.
            pub fn grpc_code(self) -> tonic::Code {
                match self {
                    $(ErrorCode::$variant => tonic::Code::$grpc,)*
                }
            }

            /// Whether the same request may succeed if retried later (against the leader the
            /// error names, or after a leader change); permanent errors are never retried.
            pub fn is_retryable(self) -> bool {
                match self {
                    $(ErrorCode::$variant => $retry,)*
                }
            }
        }
    };
}

codes! {
    /// A follower refused a leader-only request; the error names the leader if known.
    NotTheLeader = "NOT_THE_LEADER", FailedPrecondition, true;
    /// The request did not complete in time; it may or may not have taken effect.
    TimedOut = "TIMED_OUT", DeadlineExceeded, true;
    /// The server is starting, shutting down or catching up.
    ServiceUnavailable = "SERVICE_UNAVAILABLE", Unavailable, true;
    TableNotFound = "TABLE_NOT_FOUND", NotFound, false;
    TableAlreadyExists = "TABLE_ALREADY_EXISTS", AlreadyExists, false;
    InvalidTableName = "INVALID_TABLE_NAME", InvalidArgument, false;
    InvalidSchema = "INVALID_SCHEMA", InvalidArgument, false;
    InvalidAlter = "INVALID_ALTER", InvalidArgument, false;
    InvalidArgument = "INVALID_ARGUMENT", InvalidArgument, false;
    NotEnoughTabletServers = "NOT_ENOUGH_TABLET_SERVERS", FailedPrecondition, false;
    /// Refused at once (callers decide whether to wait for the change in flight).
    MembershipChangeInProgress = "MEMBERSHIP_CHANGE_IN_PROGRESS", Aborted, false;
    WouldLoseQuorum = "WOULD_LOSE_QUORUM", FailedPrecondition, false;
    UnknownMember = "UNKNOWN_MEMBER", NotFound, false;
    PeerUnreachable = "PEER_UNREACHABLE", FailedPrecondition, false;
    LocationMappingFailed = "LOCATION_MAPPING_FAILED", FailedPrecondition, false;
    /// A heartbeat or instruction from a process of another cluster (cluster ids differ).
    WrongCluster = "WRONG_CLUSTER", FailedPrecondition, false;
    /// The tablet server hosts no running replica of the tablet.
    TabletNotFound = "TABLET_NOT_FOUND", NotFound, true;
    /// The tablet has no schema yet (its group just formed); retry shortly.
    TabletNotReady = "TABLET_NOT_READY", Unavailable, true;
    /// The write names columns the tablet's schema does not have, or has a wrong value.
    InvalidRow = "INVALID_ROW", InvalidArgument, false;
    /// A batch or row over the documented size limits.
    TooLarge = "TOO_LARGE", InvalidArgument, false;
    /// A write with a sequence number the tablet already forgot (older than the client's
    /// first incomplete one): never applied twice, never answered again.
    StaleWrite = "STALE_WRITE", FailedPrecondition, false;
    Internal = "INTERNAL", Internal, false;
    /// No usable client certificate: mutual TLS needs one signed by the cluster CA.
    Unauthenticated = "UNAUTHENTICATED", Unauthenticated, false;
    /// The certificate's role may not call the RPC, or a tablet server heartbeated as
    /// another server than its certificate names.
    NotAuthorized = "NOT_AUTHORIZED", PermissionDenied, false;
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code this build does not know (a newer server's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0}")]
pub struct UnknownCode(pub String);

impl FromStr for ErrorCode {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s).ok_or_else(|| UnknownCode(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(*code));
        }
        assert!("NOPE".parse::<ErrorCode>().is_err());
        assert!(ErrorCode::NotTheLeader.is_retryable() && !ErrorCode::TableNotFound.is_retryable());
    }
}
