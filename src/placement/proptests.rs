//! Property tests of the placer over random layouts: locations, servers per location,
//! loads, liveness and replication factors 1, 3 and 5.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

/// Cases per property.
const CASES: u32 = 512;

/// Up to 6 locations of up to 4 servers each, with random loads; about one server in six
/// is dead. Server ids are unique; some layouts have no server at all.
fn layout() -> impl Strategy<Value = Vec<Server>> {
    prop::collection::vec(prop::collection::vec((0usize..40, prop::bool::weighted(0.85)), 0..=4), 1..=6).prop_map(
        |locations| {
            locations
                .into_iter()
                .enumerate()
                .flat_map(|(l, servers)| {
                    servers.into_iter().enumerate().map(move |(i, (replicas, live))| Server {
                        id: TServerId(format!("ts-{l}-{i}")),
                        location: format!("/L{l}").parse().expect("valid location"),
                        replicas,
                        live,
                    })
                })
                .collect()
        },
    )
}

fn replication_factor() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![1usize, 3, 5])
}

fn location_of<'a>(servers: &'a [Server], id: &TServerId) -> Option<&'a Location> {
    servers.iter().find(|s| &s.id == id).map(|s| &s.location)
}

fn complies(servers: &[Server], replicas: &[TServerId], rf: usize) -> bool {
    policy::majority_location(replicas.iter().filter_map(|id| location_of(servers, id)), rf).is_none()
}

/// Whether some set of `rf` distinct live servers complies (each location can contribute
/// up to its cap, independently).
fn compliant_new_tablet_exists(servers: &[Server], rf: usize) -> bool {
    let mut live: BTreeMap<&Location, usize> = BTreeMap::new();
    for s in servers.iter().filter(|s| s.live) {
        *live.entry(&s.location).or_default() += 1;
    }
    live.values().map(|&n| n.min(policy::max_per_location(rf))).sum::<usize>() >= rf
}

fn check_distinct_live(servers: &[Server], replicas: &[TServerId]) -> Result<(), TestCaseError> {
    let distinct: BTreeSet<&TServerId> = replicas.iter().collect();
    prop_assert_eq!(distinct.len(), replicas.len(), "distinct servers: {:?}", replicas);
    for id in replicas {
        prop_assert!(servers.iter().any(|s| &s.id == id && s.live), "{} is not a live server", id);
    }
    Ok(())
}

fn single_location(servers: &[Server]) -> bool {
    !policy::applies(servers.iter().map(|s| &s.location))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    /// A new tablet: RF replicas on distinct live servers whenever RF servers are live;
    /// compliant whenever a compliant placement exists; violations reported exactly when
    /// the result does not comply (and the policy applies).
    #[test]
    fn new_tablets_comply_whenever_possible(servers in layout(), rf in replication_factor(), seed in any::<u64>()) {
        let live = servers.iter().filter(|s| s.live).count();
        let mut placer = Placer::new(servers.clone(), StdRng::seed_from_u64(seed));
        match placer.place_new_tablet(rf) {
            Err(e) => {
                prop_assert!(live < rf, "{e} with {live} live servers");
                prop_assert_eq!(e, PlacementError::NotEnoughTabletServers { needed: rf, live });
            }
            Ok(placed) => {
                prop_assert!(live >= rf);
                prop_assert_eq!(placed.value.len(), rf);
                check_distinct_live(&servers, &placed.value)?;
                let ok = complies(&servers, &placed.value, rf);
                if compliant_new_tablet_exists(&servers, rf) {
                    prop_assert!(ok, "a compliant placement exists but {:?} was chosen", placed.value);
                }
                let expected = if ok || single_location(&servers) { 0 } else { 1 };
                prop_assert_eq!(placed.violations.min(1), expected);
            }
        }
    }

    /// A whole table: every tablet as above, and the placer's loads add up.
    #[test]
    fn tables_comply_and_track_loads(
        servers in layout(),
        rf in replication_factor(),
        tablets in 1usize..12,
        seed in any::<u64>(),
    ) {
        let mut placer = Placer::new(servers.clone(), StdRng::seed_from_u64(seed));
        let Ok(table) = placer.place_table(tablets, rf) else {
            prop_assert!(servers.iter().filter(|s| s.live).count() < rf);
            return Ok(());
        };
        prop_assert_eq!(table.tablets.len(), tablets);
        let mut violating = 0;
        for replicas in &table.tablets {
            prop_assert_eq!(replicas.len(), rf);
            check_distinct_live(&servers, replicas)?;
            if compliant_new_tablet_exists(&servers, rf) {
                prop_assert!(complies(&servers, replicas, rf), "{:?}", replicas);
            }
            violating += usize::from(!complies(&servers, replicas, rf) && !single_location(&servers));
        }
        prop_assert_eq!(table.violations, violating);
        let before: usize = servers.iter().map(|s| s.replicas).sum();
        let after: usize = placer.servers().iter().map(|s| s.replicas).sum();
        prop_assert_eq!(after, before + tablets * rf);
    }

    /// Replacing one replica of a tablet (on a live or dead server): never a server of the
    /// tablet nor the replaced one; compliant whenever some eligible server gives a
    /// compliant configuration; among the locations with room, the least loaded one.
    #[test]
    fn replacements_comply_whenever_possible(
        servers in layout(),
        rf in replication_factor(),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 5),
        replaced in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        prop_assume!(servers.len() >= rf);
        // The tablet's current replicas: rf distinct servers, any liveness.
        let mut pool: Vec<TServerId> = servers.iter().map(|s| s.id.clone()).collect();
        let mut current = Vec::new();
        for pick in picks.iter().take(rf) {
            current.push(pool.remove(pick.index(pool.len())));
        }
        let replaced = current[replaced.index(current.len())].clone();
        let kept: Vec<TServerId> = current.iter().filter(|id| **id != replaced).cloned().collect();
        let eligible: Vec<&Server> =
            servers.iter().filter(|s| s.live && !current.contains(&s.id)).collect();

        let mut placer = Placer::new(servers.clone(), StdRng::seed_from_u64(seed));
        let result = placer.replace_replica(&current, &replaced);
        let Ok(placed) = result else {
            prop_assert!(eligible.is_empty(), "{:?} with eligible servers {:?}", result, eligible);
            return Ok(());
        };
        prop_assert!(eligible.iter().any(|s| s.id == placed.value), "{} is not eligible", placed.value);
        let mut after = kept.clone();
        after.push(placed.value.clone());
        let compliant_exists = eligible.iter().any(|s| {
            let mut candidate = kept.clone();
            candidate.push(s.id.clone());
            complies(&servers, &candidate, rf)
        });
        if compliant_exists {
            prop_assert!(complies(&servers, &after, rf), "compliant choice existed; chose {}", placed.value);
            prop_assert_eq!(placed.violations, 0);
        }
        // The chosen location is the least loaded (replicas per live server) among the
        // locations with an eligible server and room for the replica.
        let counts = policy::counts_by_location(kept.iter().filter_map(|id| location_of(&servers, id)));
        let load = |l: &Location| {
            let live: Vec<&Server> = servers.iter().filter(|s| s.live && &s.location == l).collect();
            (live.iter().map(|s| s.replicas).sum::<usize>(), live.len())
        };
        let chosen = location_of(&servers, &placed.value).expect("known");
        if policy::has_room(counts.get(chosen).copied().unwrap_or(0), rf) {
            let (cr, cn) = load(chosen);
            for s in &eligible {
                if policy::has_room(counts.get(&s.location).copied().unwrap_or(0), rf) {
                    let (r, n) = load(&s.location);
                    prop_assert!(cr * n <= r * cn, "{} ({cr}/{cn}) chosen over {} ({r}/{n})", chosen, s.location);
                }
            }
        }
    }

    /// The same seed gives the same decisions.
    #[test]
    fn decisions_are_reproducible(servers in layout(), rf in replication_factor(), seed in any::<u64>()) {
        let first = Placer::new(servers.clone(), StdRng::seed_from_u64(seed)).place_table(4, rf);
        let second = Placer::new(servers, StdRng::seed_from_u64(seed)).place_table(4, rf);
        prop_assert_eq!(first, second);
    }
}
