//! Kudu-style masters replicated with Raft, tablet servers, and the client library and CLI
//! built on them.

pub use kudu_client::{catalog, client, convert, error_code, ids, rpc, security, tablet};

pub mod location;
pub mod master;
pub mod pb;
pub mod placement;
pub mod raft;
pub mod serve;
pub mod shutdown;
pub mod tserver;
pub mod web;
