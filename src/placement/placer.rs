//! Placement decisions over one snapshot of the tablet servers and their loads.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use rand::Rng;

use super::policy::{self, max_per_location};
use super::{Placed, PlacementError, Server, TablePlacement};
use crate::ids::TServerId;
use crate::location::Location;

/// Places replicas on a snapshot of the tablet servers. Every decision adds the chosen
/// replica to its server's load, so consecutive decisions (the tablets of one table, a
/// batch of re-replications) spread out. Randomness (power-of-two-choices) comes only from
/// the injected `rng`; every tie is broken deterministically (by location, then by id).
pub struct Placer<R> {
    /// Ordered by id.
    servers: Vec<Server>,
    index: HashMap<TServerId, usize>,
    /// Whether the servers span more than one location (see [`policy::applies`]).
    policy_applies: bool,
    rng: R,
}

/// Replicas per live server in one location, compared exactly as a fraction.
#[derive(Clone, Copy, Debug, Default)]
struct Load {
    replicas: usize,
    servers: usize,
}

impl Load {
    fn cmp_per_server(self, other: Load) -> Ordering {
        (self.replicas * other.servers.max(1)).cmp(&(other.replicas * self.servers.max(1)))
    }
}

impl<R: Rng> Placer<R> {
    /// A placer over `servers` (a server listed twice counts once).
    pub fn new(servers: impl IntoIterator<Item = Server>, rng: R) -> Self {
        let mut servers: Vec<Server> = servers.into_iter().collect();
        servers.sort_by(|a, b| a.id.cmp(&b.id));
        servers.dedup_by(|a, b| a.id == b.id);
        let index = servers.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
        let policy_applies = policy::applies(servers.iter().map(|s| &s.location));
        Placer { servers, index, policy_applies, rng }
    }

    /// The servers with their loads as placed so far.
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    /// The location of a known server.
    pub fn location_of(&self, id: &TServerId) -> Option<&Location> {
        self.index.get(id).map(|&i| &self.servers[i].location)
    }

    fn num_live(&self) -> usize {
        self.servers.iter().filter(|s| s.live).count()
    }

    /// Replicas for every tablet of a new table with `num_tablets` tablets.
    pub fn place_table(
        &mut self,
        num_tablets: usize,
        replication_factor: usize,
    ) -> Result<TablePlacement, PlacementError> {
        let mut placement = TablePlacement { tablets: Vec::with_capacity(num_tablets), violations: 0 };
        for _ in 0..num_tablets {
            let tablet = self.place_new_tablet(replication_factor)?;
            placement.violations += usize::from(tablet.violations > 0);
            placement.tablets.push(tablet.value);
        }
        Ok(placement)
    }

    /// `replication_factor` replicas of a new tablet on distinct live servers. Violations
    /// happen only when no compliant placement exists (each location's share is capped
    /// independently, so taking any location with room never blocks a later replica).
    pub fn place_new_tablet(&mut self, replication_factor: usize) -> Result<Placed<Vec<TServerId>>, PlacementError> {
        let live = self.num_live();
        if live < replication_factor {
            return Err(PlacementError::NotEnoughTabletServers { needed: replication_factor, live });
        }
        let mut chosen = Vec::with_capacity(replication_factor);
        let mut violations = 0;
        for _ in 0..replication_factor {
            let one = self.choose(&chosen, &[], replication_factor)?;
            violations += one.violations;
            chosen.push(one.value);
        }
        Ok(Placed { value: chosen, violations })
    }

    /// Where to add one replica to a tablet whose replicas are `current`, for a tablet of
    /// `replication_factor` replicas (at least one more than `current`), e.g. to restore
    /// an under-replicated tablet.
    pub fn add_replica(
        &mut self,
        current: &[TServerId],
        replication_factor: usize,
    ) -> Result<Placed<TServerId>, PlacementError> {
        self.choose(current, &[], replication_factor.max(current.len() + 1))
    }

    /// A replacement for the replica on `replaced` of a tablet whose replicas are `current`
    /// (re-replication of a failed replica, or a move): the result complies with the
    /// policy in the configuration `current` without `replaced` plus the new replica, and is
    /// never `replaced` itself nor a server already holding a replica.
    pub fn replace_replica(
        &mut self,
        current: &[TServerId],
        replaced: &TServerId,
    ) -> Result<Placed<TServerId>, PlacementError> {
        let kept: Vec<TServerId> = current.iter().filter(|id| *id != replaced).cloned().collect();
        let replication_factor = kept.len() + 1;
        self.choose(&kept, std::slice::from_ref(replaced), replication_factor)
    }

    /// Replicas per live server of every location.
    fn location_loads(&self) -> BTreeMap<&Location, Load> {
        let mut loads: BTreeMap<&Location, Load> = BTreeMap::new();
        for s in self.servers.iter().filter(|s| s.live) {
            let load = loads.entry(&s.location).or_default();
            load.replicas += s.replicas;
            load.servers += 1;
        }
        loads
    }

    /// One more replica for a tablet whose other replicas are `kept`, never on a server of
    /// `kept` or `excluded`; the policy is judged for `replication_factor` replicas.
    fn choose(
        &mut self,
        kept: &[TServerId],
        excluded: &[TServerId],
        replication_factor: usize,
    ) -> Result<Placed<TServerId>, PlacementError> {
        // Replicas on servers this placer does not know count in no location.
        let counts = policy::counts_by_location(kept.iter().filter_map(|id| self.location_of(id)));
        let mut eligible: BTreeMap<&Location, Vec<usize>> = BTreeMap::new();
        for (i, s) in self.servers.iter().enumerate() {
            if s.live && !kept.contains(&s.id) && !excluded.contains(&s.id) {
                eligible.entry(&s.location).or_default().push(i);
            }
        }
        let loads = self.location_loads();
        let count = |l: &Location| counts.get(l).copied().unwrap_or(0);
        let load = |l: &Location| loads.get(l).copied().unwrap_or_default();
        let allowed = eligible.iter().filter(|(l, _)| policy::has_room(count(l), replication_factor));
        // BTreeMap order makes `min_by` ties go to the first location by name.
        let compliant = allowed.min_by(|(a, _), (b, _)| load(a).cmp_per_server(load(b)).then(count(a).cmp(&count(b))));
        let (candidates, violation) = match compliant {
            Some((_, candidates)) => (candidates.clone(), false),
            None => {
                // No location has room: put it where this tablet has the fewest replicas.
                let fallback = eligible
                    .iter()
                    .min_by(|(a, _), (b, _)| count(a).cmp(&count(b)).then(load(a).cmp_per_server(load(b))));
                let Some((_, candidates)) = fallback else { return Err(no_eligible_server(kept)) };
                (candidates.clone(), true)
            }
        };
        let Some(chosen) = self.two_choices(&candidates) else { return Err(no_eligible_server(kept)) };
        let violation = violation && self.policy_applies;
        let server = &mut self.servers[chosen];
        server.replicas += 1;
        if violation {
            tracing::debug!(
                ts = %server.id,
                location = %server.location,
                max_per_location = max_per_location(replication_factor),
                "no compliant placement: placing the replica anyway"
            );
        }
        Ok(Placed { value: server.id.clone(), violations: usize::from(violation) })
    }

    /// Power-of-two-choices among `candidates` (indices of servers): two distinct random
    /// ones, the less loaded wins (ties: the smaller id).
    fn two_choices(&mut self, candidates: &[usize]) -> Option<usize> {
        match candidates {
            [] => None,
            [only] => Some(*only),
            _ => {
                let first = self.rng.random_range(0..candidates.len());
                let mut second = self.rng.random_range(0..candidates.len() - 1);
                if second >= first {
                    second += 1;
                }
                let (a, b) = (candidates[first], candidates[second]);
                let key = |i: usize| (self.servers[i].replicas, &self.servers[i].id);
                Some(if key(b) < key(a) { b } else { a })
            }
        }
    }
}

fn no_eligible_server(kept: &[TServerId]) -> PlacementError {
    PlacementError::NoEligibleServer { current: kept.iter().map(TServerId::as_str).collect::<Vec<_>>().join(", ") }
}
