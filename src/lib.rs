//! Kudu-style masters replicated with Raft, tablet servers, and the client library and CLI
//! built on them.

pub mod catalog;
pub mod client;
pub mod convert;
pub mod error_code;
pub mod ids;
pub mod location;
pub mod master;
pub mod pb;
pub mod placement;
pub mod raft;
pub mod rpc;
pub mod shutdown;
pub mod tablet;
pub mod tserver;
pub mod web;
