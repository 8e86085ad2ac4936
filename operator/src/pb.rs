//! Generated master gRPC client and messages (see `proto/master.proto`).
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("kudu.master");
