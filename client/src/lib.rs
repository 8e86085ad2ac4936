//! Everything a Kudu client needs, and nothing that pulls in RocksDB or openraft: the
//! generated wire types ([`pb`]), gRPC helpers ([`rpc`]), the one [`error_code`] enum,
//! [`ids`], the pure domain the client routes and encodes with ([`catalog`], [`tablet`],
//! [`convert`]) and the client itself ([`client`]: leader discovery, retries, routing).
//! The `kudu` package (masters, tablet servers, CLI) re-exports these modules under the
//! same paths; the operator uses them directly.

pub mod catalog;
pub mod client;
pub mod convert;
pub mod error_code;
pub mod ids;
pub mod pb;
pub mod rpc;
pub mod security;
pub mod tablet;
