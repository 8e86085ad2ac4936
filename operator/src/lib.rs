//! The Kudu operator: reconciles `KuduCluster` objects into Kubernetes objects and drives
//! master Raft membership.
//!
//! The pure steps live here and are unit-tested without an API server:
//! [`validate`] (spec -> [`validate::ValidatedSpec`]), [`build`] (validated spec ->
//! owned objects), [`membership::decide`] (observed Raft + pods -> one action) and
//! [`location`] (node labels -> location string).

pub mod build;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod http;
pub mod lease;
pub mod location;
pub mod membership;
pub mod metrics;
pub mod pb;
pub mod runner;
pub mod validate;
