//! The rebalancer's working copy of a layout: loads kept up to date as moves are chosen,
//! and the four phases of a plan (see the module docs of [`super`]).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::{Balance, Layout, LocationLoad, Move, Options, Reason, effective_replicas};
use crate::ids::{TServerId, TabletId};
use crate::location::Location;
use crate::placement::policy;

/// A server with its load.
struct Srv {
    location: Option<Location>,
    live: bool,
    /// Receives replicas and takes part in balancing: live, located and not excluded.
    eligible: bool,
    /// Replicas, moves in progress and planned counted as done.
    load: usize,
    /// Moves touching it: in progress and planned.
    moves: usize,
    rank: u64,
}

/// A tablet with its voters, moves in progress and planned counted as done.
struct Tab {
    id: TabletId,
    table: String,
    rf: usize,
    replicas: Vec<TServerId>,
    /// Whether a move may be planned for it (see [`Model::new`]).
    movable: bool,
}

/// A layout being rebalanced.
pub(super) struct Model<'a> {
    options: &'a Options,
    servers: BTreeMap<TServerId, Srv>,
    /// In tie-breaking order (by seeded rank).
    tablets: Vec<Tab>,
    /// Replicas per table and server.
    table_load: BTreeMap<(String, TServerId), usize>,
    /// Whether the servers span at least two locations.
    policy_applies: bool,
    moves: Vec<Move>,
}

/// A location's replicas and its servers that take part in balancing.
#[derive(Clone, Copy, Debug, Default)]
struct Load {
    replicas: usize,
    servers: usize,
}

impl Load {
    /// Compares replicas per server exactly.
    fn cmp_per_server(self, other: Load) -> Ordering {
        (self.replicas * other.servers.max(1)).cmp(&(other.replicas * self.servers.max(1)))
    }

    /// Whether moving one replica from a location loaded `self` to one loaded `to` lowers
    /// the sum over locations of replicas² / servers: (2·r_to + 1)/n_to < (2·r − 1)/n.
    fn improves_by_giving_to(self, to: Load) -> bool {
        self.replicas > 0 && (2 * to.replicas + 1) * self.servers < (2 * self.replicas - 1) * to.servers
    }
}

/// A deterministic ranking of `id` for tie-breaking: FNV-1a over the seed and the id, then
/// a SplitMix64 finalizer.
fn rank(seed: u64, id: &str) -> u64 {
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let start = 0xcbf2_9ce4_8422_2325u64;
    let mut h = seed.to_be_bytes().iter().fold(start, |h, b| (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME));
    h = id.bytes().fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME));
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl<'a> Model<'a> {
    /// The model of `layout`. A tablet is movable when it has no move in progress and
    /// exactly its replication factor of distinct voters, all on live servers with a
    /// location (re-replication looks after the others).
    pub(super) fn new(layout: &Layout, options: &'a Options) -> Self {
        let mut servers: BTreeMap<TServerId, Srv> = BTreeMap::new();
        for s in &layout.servers {
            let eligible = s.live && s.location.is_some() && !options.excluded.contains(&s.id);
            let srv = Srv {
                location: s.location.clone(),
                live: s.live,
                eligible,
                load: 0,
                moves: 0,
                rank: rank(options.seed, s.id.as_str()),
            };
            servers.insert(s.id.clone(), srv);
        }
        let policy_applies = policy::applies(servers.values().filter_map(|s| s.location.as_ref()));
        let mut table_load: BTreeMap<(String, TServerId), usize> = BTreeMap::new();
        let mut ranked = Vec::with_capacity(layout.tablets.len());
        for t in &layout.tablets {
            let replicas = effective_replicas(&t.replicas, t.pending.as_ref());
            if let Some(m) = &t.pending {
                for id in m.from.iter().chain([&m.to]) {
                    if let Some(s) = servers.get_mut(id) {
                        s.moves += 1;
                    }
                }
            }
            for r in &replicas {
                if let Some(s) = servers.get_mut(r) {
                    s.load += 1;
                }
                *table_load.entry((t.table.clone(), r.clone())).or_default() += 1;
            }
            let distinct = replicas.iter().collect::<BTreeSet<_>>().len() == replicas.len();
            let placed = replicas.iter().all(|r| servers.get(r).is_some_and(|s| s.live && s.location.is_some()));
            let movable = t.pending.is_none() && distinct && placed && replicas.len() == t.replication_factor;
            let tab = Tab { id: t.id.clone(), table: t.table.clone(), rf: t.replication_factor, replicas, movable };
            ranked.push((rank(options.seed, t.id.as_str()), tab));
        }
        ranked.sort_by(|(ra, a), (rb, b)| ra.cmp(rb).then_with(|| a.id.cmp(&b.id)));
        let tablets = ranked.into_iter().map(|(_, t)| t).collect();
        Model { options, servers, tablets, table_load, policy_applies, moves: Vec::new() }
    }

    /// The moves chosen so far, in order.
    pub(super) fn into_moves(self) -> Vec<Move> {
        self.moves
    }

    fn location_of(&self, id: &TServerId) -> Option<&Location> {
        self.servers.get(id).and_then(|s| s.location.as_ref())
    }

    fn load_of(&self, id: &TServerId) -> usize {
        self.servers.get(id).map_or(0, |s| s.load)
    }

    fn table_load_of(&self, table: &str, id: &TServerId) -> usize {
        self.table_load.get(&(table.to_string(), id.clone())).copied().unwrap_or(0)
    }

    /// Whether another move may touch `id`.
    fn free(&self, id: &TServerId) -> bool {
        let max = self.options.max_moves_per_server;
        max == 0 || self.servers.get(id).is_some_and(|s| s.moves < max)
    }

    /// Eligible servers with room for another move, optionally only those in `location`.
    fn candidates(&self, location: Option<&Location>) -> Vec<&TServerId> {
        self.servers
            .iter()
            .filter(|(id, s)| s.eligible && self.free(id) && (location.is_none() || s.location.as_ref() == location))
            .map(|(id, _)| id)
            .collect()
    }

    /// Orders servers lightest first: by load, then rank, then id.
    fn lighter(&self, a: &TServerId, b: &TServerId) -> Ordering {
        let key = |id: &TServerId| self.servers.get(id).map(|s| (s.load, s.rank));
        key(a).cmp(&key(b)).then_with(|| a.cmp(b))
    }

    /// The tablet's replicas per location.
    fn counts(&self, tablet: &Tab) -> BTreeMap<Location, usize> {
        let mut counts = BTreeMap::new();
        for location in tablet.replicas.iter().filter_map(|r| self.location_of(r)) {
            *counts.entry(location.clone()).or_default() += 1;
        }
        counts
    }

    /// Replicas and eligible servers of each location with at least one eligible server.
    fn location_loads(&self) -> BTreeMap<Location, Load> {
        let mut loads: BTreeMap<Location, Load> = BTreeMap::new();
        for s in self.servers.values().filter(|s| s.eligible) {
            if let Some(location) = &s.location {
                let load = loads.entry(location.clone()).or_default();
                load.replicas += s.load;
                load.servers += 1;
            }
        }
        loads
    }

    /// Records a move of `tablet`'s replica from `from` to `to`.
    fn apply(&mut self, tablet: usize, from: TServerId, to: TServerId, reason: Reason) {
        let t = &mut self.tablets[tablet];
        if let Some(slot) = t.replicas.iter_mut().find(|r| **r == from) {
            *slot = to.clone();
        }
        t.movable = false;
        let table = t.table.clone();
        let id = t.id.clone();
        for (server, gains) in [(&from, false), (&to, true)] {
            if let Some(s) = self.servers.get_mut(server) {
                s.moves += 1;
                s.load = if gains { s.load + 1 } else { s.load.saturating_sub(1) };
            }
            let count = self.table_load.entry((table.clone(), server.clone())).or_default();
            *count = if gains { *count + 1 } else { count.saturating_sub(1) };
        }
        tracing::trace!(tablet = %id, %from, %to, ?reason, "rebalancing move planned");
        self.moves.push(Move { tablet_id: id, table, from, to, reason });
    }

    /// Phase 1: one move out of the majority location of each tablet breaking the policy,
    /// into the least loaded location with room for it, where one has an eligible server.
    pub(super) fn fix_policy(&mut self) {
        if !self.policy_applies {
            return;
        }
        for tablet in 0..self.tablets.len() {
            if self.tablets[tablet].movable
                && let Some((from, to)) = self.policy_fix(&self.tablets[tablet])
            {
                self.apply(tablet, from, to, Reason::PlacementPolicy);
            }
        }
    }

    fn policy_fix(&self, tablet: &Tab) -> Option<(TServerId, TServerId)> {
        let cap = policy::max_per_location(tablet.rf);
        let counts = self.counts(tablet);
        let (over, _) =
            counts.iter().filter(|(_, c)| **c > cap).max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))?;
        // The most loaded replica of the majority location leaves.
        let from = tablet
            .replicas
            .iter()
            .filter(|r| self.location_of(r) == Some(over) && self.free(r))
            .max_by(|a, b| self.lighter(a, b))?;
        let loads = self.location_loads();
        let count = |l: &Location| counts.get(l).copied().unwrap_or(0);
        let load = |l: &Location| loads.get(l).copied().unwrap_or_default();
        let to = self
            .candidates(None)
            .into_iter()
            .filter(|id| !tablet.replicas.contains(id))
            .filter_map(|id| Some((id, self.location_of(id)?)))
            .filter(|(_, l)| *l != over && count(l) < cap)
            .min_by(|(a, la), (b, lb)| {
                load(la)
                    .cmp_per_server(load(lb))
                    .then_with(|| count(la).cmp(&count(lb)))
                    .then_with(|| self.table_load_of(&tablet.table, a).cmp(&self.table_load_of(&tablet.table, b)))
                    .then_with(|| self.lighter(a, b))
            })?
            .0;
        Some((from.clone(), to.clone()))
    }

    /// Phase 2: moves from the location with the most replicas per server to the one with
    /// the fewest while that lowers the sum of replicas² / servers.
    pub(super) fn balance_locations(&mut self) {
        loop {
            let mut loads: Vec<(Location, Load)> = self.location_loads().into_iter().collect();
            if loads.len() < 2 {
                return;
            }
            loads.sort_by(|(la, a), (lb, b)| b.cmp_per_server(*a).then_with(|| la.cmp(lb)));
            let found = loads.iter().find_map(|(from, heavy)| {
                loads
                    .iter()
                    .rev()
                    .filter(|(to, light)| to != from && heavy.improves_by_giving_to(*light))
                    .find_map(|(to, _)| self.cross_location_move(from, to))
            });
            let Some((tablet, from, to)) = found else { return };
            self.apply(tablet, from, to, Reason::LocationBalance);
        }
    }

    /// A movable tablet with a replica in `from_location` that `to_location` has room for,
    /// with its source (most loaded first) and destination (least loaded first).
    fn cross_location_move(
        &self,
        from_location: &Location,
        to_location: &Location,
    ) -> Option<(usize, TServerId, TServerId)> {
        let mut sources = self.candidates(Some(from_location));
        sources.sort_by(|a, b| self.lighter(b, a));
        let mut destinations = self.candidates(Some(to_location));
        destinations.sort_by(|a, b| self.lighter(a, b));
        for s in &sources {
            for d in &destinations {
                let room = |t: &Tab| {
                    let in_destination = t.replicas.iter().filter(|r| self.location_of(r) == Some(to_location)).count();
                    policy::has_room(in_destination, t.rf)
                };
                if let Some(tablet) = self.best_tablet(s, d, None, room) {
                    return Some((tablet, (*s).clone(), (*d).clone()));
                }
            }
        }
        None
    }

    /// Phase 3: within each location, moves from the server with the most replicas to the
    /// one with the fewest while they differ by two or more.
    pub(super) fn balance_servers(&mut self) {
        for location in self.location_loads().into_keys() {
            loop {
                let mut by_load = self.candidates(Some(&location));
                by_load.sort_by(|a, b| self.lighter(a, b));
                let found = by_load.iter().rev().find_map(|s| {
                    by_load
                        .iter()
                        .take_while(|d| self.load_of(s) >= self.load_of(d) + 2)
                        .find_map(|d| Some((self.best_tablet(s, d, None, |_| true)?, (*s).clone(), (*d).clone())))
                });
                let Some((tablet, from, to)) = found else { break };
                self.apply(tablet, from, to, Reason::ServerBalance);
            }
        }
    }

    /// Phase 4: within each location, a table's replicas from a server with two or more
    /// of them than another to that other, when the first holds more replicas in all.
    pub(super) fn balance_tables(&mut self) {
        let tables: BTreeSet<String> = self.tablets.iter().map(|t| t.table.clone()).collect();
        for location in self.location_loads().into_keys() {
            loop {
                let servers = self.candidates(Some(&location));
                let found = tables.iter().find_map(|table| {
                    let mut by_table: Vec<&TServerId> = servers.clone();
                    by_table.sort_by(|a, b| {
                        self.table_load_of(table, a).cmp(&self.table_load_of(table, b)).then_with(|| self.lighter(a, b))
                    });
                    by_table.iter().rev().find_map(|s| {
                        by_table
                            .iter()
                            .take_while(|d| self.table_load_of(table, s) >= self.table_load_of(table, d) + 2)
                            .filter(|d| self.load_of(s) > self.load_of(d))
                            .find_map(|d| {
                                Some((self.best_tablet(s, d, Some(table), |_| true)?, (*s).clone(), (*d).clone()))
                            })
                    })
                });
                let Some((tablet, from, to)) = found else { break };
                self.apply(tablet, from, to, Reason::TableBalance);
            }
        }
    }

    /// The movable tablet (of `table`, if given) with a replica on `from` and none on `to`
    /// that `allowed` accepts, of the table most skewed from `from` to `to` (ties: rank).
    fn best_tablet(
        &self,
        from: &TServerId,
        to: &TServerId,
        table: Option<&str>,
        allowed: impl Fn(&Tab) -> bool,
    ) -> Option<usize> {
        let skew = |t: &Tab| self.table_load_of(&t.table, from) as i64 - self.table_load_of(&t.table, to) as i64;
        let mut best: Option<(usize, i64)> = None;
        for (i, t) in self.tablets.iter().enumerate() {
            if !t.movable
                || table.is_some_and(|table| t.table != table)
                || !t.replicas.contains(from)
                || t.replicas.contains(to)
                || !allowed(t)
            {
                continue;
            }
            let s = skew(t);
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
        best.map(|(i, _)| i)
    }

    /// How balanced the model is.
    pub(super) fn balance(&self) -> Balance {
        let policy_violations = if self.policy_applies {
            self.tablets
                .iter()
                .filter(|t| {
                    let locations = t.replicas.iter().filter_map(|r| self.location_of(r));
                    policy::majority_location(locations, t.rf).is_some()
                })
                .count()
        } else {
            0
        };
        let tables: BTreeSet<&str> = self.tablets.iter().map(|t| t.table.as_str()).collect();
        let mut locations = Vec::new();
        let (mut server_skew, mut table_skew) = (0, 0);
        for (location, load) in self.location_loads() {
            let members: Vec<&TServerId> = self
                .servers
                .iter()
                .filter(|(_, s)| s.eligible && s.location.as_ref() == Some(&location))
                .map(|(id, _)| id)
                .collect();
            let loads: Vec<usize> = members.iter().map(|id| self.load_of(id)).collect();
            let (min, max) = (loads.iter().copied().min().unwrap_or(0), loads.iter().copied().max().unwrap_or(0));
            server_skew = server_skew.max(max - min);
            for table in &tables {
                let counts: Vec<usize> = members.iter().map(|id| self.table_load_of(table, id)).collect();
                let spread = counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0);
                table_skew = table_skew.max(spread);
            }
            locations.push(LocationLoad {
                location: location.to_string(),
                servers: load.servers,
                replicas: load.replicas,
                replicas_per_server: load.replicas as f64 / load.servers.max(1) as f64,
                min_per_server: min,
                max_per_server: max,
            });
        }
        let per_server: Vec<f64> = locations.iter().map(|l| l.replicas_per_server).collect();
        let location_skew =
            match (per_server.iter().copied().reduce(f64::max), per_server.iter().copied().reduce(f64::min)) {
                (Some(max), Some(min)) => max - min,
                _ => 0.0,
            };
        let servers = self.servers.iter().filter(|(_, s)| s.live).map(|(id, s)| (id.to_string(), s.load)).collect();
        Balance { policy_violations, locations, servers, location_skew, server_skew, table_skew }
    }
}
