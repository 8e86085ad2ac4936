//! Generated protobuf and gRPC code (see `proto/`). The master and tablet-server APIs are
//! generated in the `kudu-client` crate and re-exported here; the masters' Raft RPCs are
//! server-only and generated in this package.
#![allow(clippy::all, missing_docs)]

pub use kudu_client::pb::{master, tserver};

pub mod raft {
    tonic::include_proto!("kudu.raft");
}
