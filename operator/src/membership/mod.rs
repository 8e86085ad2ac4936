//! Master Raft membership: compare the membership the leader reports with the master
//! pods and pick the next safe change. [`decide()`] is pure; the reconciler observes,
//! calls it, and executes the one action it returns.

pub mod confirm;
pub mod decide;
pub mod observed;

pub use confirm::{NotLost, confirm_lost};
pub use decide::{Action, LostBecause, QuorumLoss, RemoveReason, WaitReason, decide, quorum, quorum_loss};
pub use observed::{
    CannotRun, MasterPod, NodeId, NodeState, Observed, PodPhase, RaftMember, RaftView, ReplacementPolicy,
};

#[cfg(test)]
mod simulation;
#[cfg(test)]
mod tests;
