//! Local Kubernetes control plane for end-to-end tests and demos (never deployed).
//!
//! [`cluster::LocalCluster`] starts an in-memory API server that real clients (kubectl,
//! Helm, kube-rs) accept, plus the controllers that make it behave like a cluster.

pub mod apiserver;
pub mod cluster;
pub mod controllers;
pub mod kubelet;
pub mod target;
