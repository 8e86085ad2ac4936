//! The Kudu operator: reconciles `KuduCluster` objects into Kubernetes objects and drives
//! master Raft membership.
//!
//! The pure steps live here and are unit-tested without an API server:
//! [`validate`] (spec -> [`validate::ValidatedSpec`]), [`build`] (validated spec ->
//! owned objects), [`membership::decide`] (observed Raft + pods -> one action) and
//! [`location`] (node labels -> location string).

pub mod build;
pub mod crd;
pub mod location;
pub mod membership;
pub mod validate;
