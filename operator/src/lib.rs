//! The Kudu operator: reconciles `KuduCluster` objects into Kubernetes objects and drives
//! master Raft membership.
//!
//! The pure steps are unit-tested without an API server: [`validate`] (spec ->
//! [`validate::ValidatedSpec`]), [`build`] (validated spec -> owned objects),
//! [`membership::decide()`] (observed Raft + pods -> one action), [`rolling::decide()`]
//! (pods, revisions, Raft progress and tablets -> the next rolling-restart step),
//! [`controller::status`]
//! (observations -> status). (Node labels -> location is `kudu::location`, used by the
//! `kudu location` command that masters run.) The
//! [`controller`] wires them to the API server and the masters; [`runner`] adds leader
//! election ([`lease`]) and the HTTP server ([`http`], [`metrics`]).
#![warn(missing_docs)]

pub mod alloc;
pub mod build;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod http;
pub mod lease;
pub mod membership;
pub mod metrics;
pub mod rolling;
pub mod runner;
pub mod tls;
pub mod tservers;
pub mod validate;
pub mod zones;
