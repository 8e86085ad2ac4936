//! Replica placement with locations: which tablet servers get a tablet's replicas.
//!
//! The policy (from Kudu's rack awareness): never place a majority of a tablet's replicas
//! in one location. Among the locations that may take a replica, the least loaded one
//! (replicas per live server) is chosen; within it, the server is picked by load with
//! power-of-two-choices. Where the policy cannot be met, the replica is placed anyway
//! (a tablet is never left under-replicated for the policy's sake) and the decision is
//! reported as a violation for the caller to count.
//!
//! - [`policy`]: what complies (pure arithmetic on per-location replica counts);
//! - [`Placer`]: the decisions for new tablets, added replicas and replacements, over one
//!   snapshot of the servers and their loads;
//! - [`rebalance`]: the replica moves `kudu cluster rebalance` proposes.

mod placer;
pub mod policy;
pub mod rebalance;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use placer::Placer;

use crate::ids::TServerId;
use crate::location::Location;

/// A tablet server as placement sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub id: TServerId,
    /// Its location ([`Location::default_location`] when it has none).
    pub location: Location,
    /// Replicas it hosts now (its load).
    pub replicas: usize,
    /// Only live servers receive replicas; dead ones still tell where current replicas are.
    pub live: bool,
}

impl Server {
    /// A live server.
    pub fn live(id: impl Into<TServerId>, location: Location, replicas: usize) -> Server {
        Server { id: id.into(), location, replicas, live: true }
    }
}

/// A placement decision and whether it had to break the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed<T> {
    pub value: T,
    /// Replicas placed where the policy did not allow them (no compliant choice existed).
    pub violations: usize,
}

/// Replicas for the tablets of a new table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablePlacement {
    /// The replicas of each tablet, in partition order.
    pub tablets: Vec<Vec<TServerId>>,
    /// Tablets whose placement violates the policy because no compliant one existed.
    pub violations: usize,
}

/// Placement could not be done at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("not enough live tablet servers: replication factor {needed} needs {needed}, only {live} live")]
    NotEnoughTabletServers { needed: usize, live: usize },
    #[error("no live tablet server can take another replica of a tablet with replicas on {current}")]
    NoEligibleServer { current: String },
}
