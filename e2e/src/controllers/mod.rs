//! In-process controllers that play the role of kube-controller-manager.

pub mod gc;
