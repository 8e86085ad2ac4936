//! Generated protobuf and gRPC code (see `proto/`).
#![allow(clippy::all, missing_docs)]

pub mod master {
    tonic::include_proto!("kudu.master");
}

pub mod raft {
    tonic::include_proto!("kudu.raft");
}

pub mod tserver {
    tonic::include_proto!("kudu.tserver");
}
