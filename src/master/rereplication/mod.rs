//! Re-replication (Kudu's 3-4-3 scheme): the replicas of a tablet server unresponsive for
//! longer than `--tserver-unresponsive-timeout-ms` are replaced, tablet by tablet, through
//! each tablet's own Raft group.
//!
//! Every round the leader master
//! 1. plans moves ([`plan::plan_moves`], pure): for each tablet with a voter on a failed
//!    server (or fewer voters than its replication factor), a live majority and no move in
//!    progress, a destination chosen by the placement policy; at most
//!    `--max-concurrent-rereplications` moves in progress cluster-wide;
//! 2. records them in the catalog through Raft (`StartReplicaMoves`), so a new leader
//!    resumes them;
//! 3. drives each recorded move ([`driver`]): the destination's heartbeat answer tells it to
//!    create an empty *joining* replica (it never initializes the group), and the tablet's
//!    leader is asked (`TabletServerService.ChangeConfig`) to take the next step: add the
//!    destination as a non-voter, promote it once caught up, remove the failed voter. Each
//!    call does at most one configuration change decided from the leader's current
//!    configuration, so repeating it after any crash is safe.
//!
//! The move ends when a reported configuration shows its outcome (the catalog follows the
//! reported configurations by their Raft log index); a destination that dies before its
//! promotion is removed from the group and the move cancelled. A failed server that comes
//! back finds its replaced replicas no longer wanted by the catalog: the heartbeat answer
//! tombstones them.

mod driver;
pub mod plan;

pub use driver::run;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::ids::TabletId;

/// The tablets whose move this master is driving right now (one driver per tablet).
#[derive(Clone, Default)]
pub struct MovesInFlight {
    tablets: Arc<Mutex<HashSet<TabletId>>>,
}

/// Marks a tablet's move as driven until dropped.
pub struct Driving {
    tablets: Arc<Mutex<HashSet<TabletId>>>,
    tablet: TabletId,
}

impl Drop for Driving {
    fn drop(&mut self) {
        self.tablets.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.tablet);
    }
}

impl MovesInFlight {
    /// Marks `tablet` as driven, unless it already is.
    pub fn begin(&self, tablet: &TabletId) -> Option<Driving> {
        let mut tablets = self.tablets.lock().unwrap_or_else(|p| p.into_inner());
        tablets.insert(tablet.clone()).then(|| Driving { tablets: self.tablets.clone(), tablet: tablet.clone() })
    }
}
