//! Rebalancing (`kudu cluster rebalance`): which replica moves bring a cluster's layout
//! closer to the placement policy and to even loads. Pure functions of a [`Layout`] (the
//! servers with their locations and liveness, the tablets with their voters, replication
//! factors and moves in progress); the CLI gathers it and the master executes the moves.
//!
//! A plan ([`plan`]) proposes moves in Kudu's order:
//! 1. [`Reason::PlacementPolicy`]: a replica out of a location holding a majority of its
//!    tablet's replicas, into a location with room, where such a destination exists;
//! 2. [`Reason::LocationBalance`]: replicas from the location with the most replicas per
//!    server to the one with the fewest, never into a location that would then hold a
//!    majority of the tablet;
//! 3. [`Reason::ServerBalance`]: within a location, from the server with the most replicas
//!    to the one with the fewest (the tablet of the table most skewed between the two first);
//! 4. [`Reason::TableBalance`]: within a location, a table's replicas from a server with more
//!    of them to one with fewer, when that leaves the two servers' totals as even as before.
//!
//! At most one move per tablet (none for a tablet with a move in progress, under- or
//! over-replicated, or with a replica on an unresponsive or unlocated server); only live,
//! located servers outside [`Options::excluded`] receive replicas; at most
//! [`Options::max_moves_per_server`] moves touch a server (moves in progress included).
//!
//! Convergence: each move strictly lowers, in lexicographic order, (the replicas over the
//! policy's cap summed over tablets; the sum over locations of replicas² / servers; the sum
//! over servers of replicas²; the same per table and server). Phase 1 lowers the first,
//! phase 2 the second without raising the first, phase 3 the third without raising the
//! first two, phase 4 the fourth without raising the others. Applying plans over and over
//! therefore ends, with no move ever undone by a later one, and a plan of a layout where no
//! such move exists is empty. Ties are broken by a ranking derived from [`Options::seed`],
//! so a plan is deterministic given its seed.

mod model;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::catalog::ReplicaMove;
use crate::ids::{TServerId, TabletId};
use crate::location::Location;

/// A tablet server as the rebalancer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerView {
    pub id: TServerId,
    /// Its location; `None` when unknown (a failed or pending location mapping): it gets
    /// no replicas and its tablets are left alone. Without a mapping command every server
    /// is in [`Location::default_location`].
    pub location: Option<Location>,
    pub live: bool,
}

/// A tablet as the rebalancer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TabletView {
    pub id: TabletId,
    /// Its table (any stable name; tables are balanced separately in phase 4).
    pub table: String,
    pub replication_factor: usize,
    /// The voters of its Raft configuration.
    pub replicas: Vec<TServerId>,
    /// The move in progress, if any: the tablet is left alone, and the move is counted as
    /// done for the loads.
    pub pending: Option<ReplicaMove>,
}

/// The cluster as the rebalancer sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    pub servers: Vec<ServerView>,
    pub tablets: Vec<TabletView>,
}

/// Why a move is proposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// Takes a replica out of a location holding a majority of the tablet's replicas.
    PlacementPolicy,
    /// Evens replicas per server across locations.
    LocationBalance,
    /// Evens replica counts across the servers of a location.
    ServerBalance,
    /// Evens one table's replica counts across the servers of a location.
    TableBalance,
}

impl Reason {
    /// The name in output, e.g. `PLACEMENT_POLICY`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::PlacementPolicy => "PLACEMENT_POLICY",
            Reason::LocationBalance => "LOCATION_BALANCE",
            Reason::ServerBalance => "SERVER_BALANCE",
            Reason::TableBalance => "TABLE_BALANCE",
        }
    }
}

/// One proposed replica move: a replica of `tablet_id` from `from` to `to` (add `to` as a
/// non-voter, promote it, remove `from`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub tablet_id: TabletId,
    pub table: String,
    pub from: TServerId,
    pub to: TServerId,
    pub reason: Reason,
}

/// How a plan is made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Most moves touching one server (as source or destination) at once, moves in
    /// progress included; 0: no limit.
    pub max_moves_per_server: usize,
    /// Servers that never receive a replica (e.g. being decommissioned). They take no part
    /// in balancing, but a replica of theirs may still be moved to fix the policy.
    pub excluded: BTreeSet<TServerId>,
    /// Seeds the tie-breaking ranking of servers and tablets.
    pub seed: u64,
}

/// The moves of one round for `layout` (see the module docs). Applying them (once they
/// complete) and planning again converges.
pub fn plan(layout: &Layout, options: &Options) -> Vec<Move> {
    let mut model = model::Model::new(layout, options);
    model.fix_policy();
    model.balance_locations();
    model.balance_servers();
    model.balance_tables();
    model.into_moves()
}

/// Every move until the plan is empty, simulating that each round's moves (and the moves in
/// progress) complete; returns the moves in order and the layout they lead to. Stops after
/// `max_rounds` rounds.
pub fn simulate(layout: &Layout, options: &Options, max_rounds: usize) -> (Vec<Move>, Layout) {
    let mut layout = layout.clone();
    layout.complete_pending();
    let mut all = Vec::new();
    for _ in 0..max_rounds {
        let moves = plan(&layout, options);
        if moves.is_empty() {
            break;
        }
        layout.apply(&moves);
        all.extend(moves);
    }
    (all, layout)
}

impl Layout {
    /// The layout after `moves` completed (moves of unknown tablets, or whose source is not
    /// a voter, are ignored).
    pub fn apply(&mut self, moves: &[Move]) {
        let by_id: BTreeMap<&TabletId, &Move> = moves.iter().map(|m| (&m.tablet_id, m)).collect();
        for tablet in &mut self.tablets {
            let Some(m) = by_id.get(&tablet.id) else { continue };
            if tablet.replicas.contains(&m.to) {
                continue;
            }
            if let Some(slot) = tablet.replicas.iter_mut().find(|r| **r == m.from) {
                *slot = m.to.clone();
            }
        }
    }

    /// The layout once every move in progress completed.
    pub fn complete_pending(&mut self) {
        for tablet in &mut self.tablets {
            if let Some(m) = tablet.pending.take() {
                tablet.replicas = effective_replicas(&tablet.replicas, Some(&m));
            }
        }
    }

    /// How balanced the layout is (moves in progress counted as done).
    pub fn balance(&self, options: &Options) -> Balance {
        model::Model::new(self, options).balance()
    }
}

/// A tablet's voters once its move in progress (if any) completed.
fn effective_replicas(replicas: &[TServerId], pending: Option<&ReplicaMove>) -> Vec<TServerId> {
    let mut out: Vec<TServerId> = replicas.to_vec();
    if let Some(m) = pending {
        if let Some(from) = &m.from {
            out.retain(|r| r != from);
        }
        if !out.contains(&m.to) {
            out.push(m.to.clone());
        }
    }
    out
}

/// Replica counts of one location.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocationLoad {
    pub location: String,
    /// Live servers that may receive replicas.
    pub servers: usize,
    /// Replicas on those servers.
    pub replicas: usize,
    pub replicas_per_server: f64,
    /// Fewest and most replicas on one of those servers.
    pub min_per_server: usize,
    pub max_per_server: usize,
}

/// How balanced a layout is.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Balance {
    /// Tablets with a majority of their replicas in one location (servers spanning at least
    /// two locations).
    pub policy_violations: usize,
    pub locations: Vec<LocationLoad>,
    /// Replicas per live server, by uuid.
    pub servers: BTreeMap<String, usize>,
    /// Most minus fewest replicas per server between locations.
    pub location_skew: f64,
    /// The largest difference in replicas between two servers of one location.
    pub server_skew: usize,
    /// The largest difference in one table's replicas between two servers of one location.
    pub table_skew: usize,
}
