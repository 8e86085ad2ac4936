//! Rolling restart and upgrade of a whole cluster: which pod goes next, and when.
//!
//! The StatefulSets use the `OnDelete` update strategy; the operator deletes one outdated
//! pod at a time (its `controller-revision-hash` differs from the StatefulSet's
//! `updateRevision`), masters first, then tablet servers, each only when the guards hold.
//! All state lives in Kubernetes objects (pod labels, StatefulSet status, the KuduCluster
//! status), so a restarted operator resumes where the last one stopped. [`decide()`] is
//! pure; the reconciler observes, calls it and carries out the one step it returns.

pub mod decide;
pub mod observed;

pub use decide::{Step, decide};
pub use observed::{
    MasterProgress, Member, MemberRaft, RoleObserved, RolloutObserved, TabletLeader, TabletView, TabletsView,
};

#[cfg(test)]
mod tests;
