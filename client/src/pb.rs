//! Generated protobuf and gRPC code of the master and tablet-server APIs (see `proto/`;
//! the masters' Raft RPCs are generated in the `kudu` package).
#![allow(clippy::all, missing_docs)]

pub mod master {
    tonic::include_proto!("kudu.master");
}

pub mod tserver {
    tonic::include_proto!("kudu.tserver");
}
