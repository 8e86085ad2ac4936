//! The seed's examples, exactly, and the preferences of the placer.

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

/// Seeds every randomized example is run with.
const SEEDS: std::ops::Range<u64> = 0..200;

fn loc(s: &str) -> Location {
    s.parse().expect("location")
}

fn ids(names: &[&str]) -> Vec<TServerId> {
    names.iter().map(|n| TServerId::from(*n)).collect()
}

/// `(id, location, replicas, live)` rows.
fn servers(rows: &[(&str, &str, usize, bool)]) -> Vec<Server> {
    rows.iter()
        .map(|&(id, location, replicas, live)| Server { id: id.into(), location: loc(location), replicas, live })
        .collect()
}

fn placer(servers: Vec<Server>, seed: u64) -> Placer<StdRng> {
    Placer::new(servers, StdRng::seed_from_u64(seed))
}

/// The seed's cluster: A..E in /L0, /L0, /L1, /L1, /L2, all live and empty, except the
/// servers named in `dead`.
fn seed_cluster(dead: &[&str]) -> Vec<Server> {
    [("A", "/L0"), ("B", "/L0"), ("C", "/L1"), ("D", "/L1"), ("E", "/L2")]
        .into_iter()
        .map(|(id, location)| Server { id: id.into(), location: loc(location), replicas: 1, live: !dead.contains(&id) })
        .collect()
}

fn location_set(p: &Placer<StdRng>, replicas: &[TServerId]) -> BTreeSet<String> {
    replicas.iter().filter_map(|id| p.location_of(id)).map(|l| l.to_string()).collect()
}

#[test]
fn seed_a_new_rf3_tablet_gets_one_replica_in_each_location() {
    for seed in SEEDS {
        let mut p = placer(seed_cluster(&[]), seed);
        let placed = p.place_new_tablet(3).expect("placed");
        assert_eq!(placed.violations, 0, "seed {seed}");
        assert_eq!(location_set(&p, &placed.value), BTreeSet::from(["/L0".into(), "/L1".into(), "/L2".into()]));
        assert!(placed.value.contains(&"E".into()), "E is /L2's only server");
    }
    // A, B, C would put 2 of 3 replicas in /L0: the policy forbids it.
    let (l0, l1) = (loc("/L0"), loc("/L1"));
    assert_eq!(policy::majority_location([&l0, &l0, &l1], 3), Some(&l0));
}

#[test]
fn seed_replicas_on_a_c_e_and_c_fails_the_replacement_goes_to_d() {
    for seed in SEEDS {
        let mut p = placer(seed_cluster(&["C"]), seed);
        let placed = p.replace_replica(&ids(&["A", "C", "E"]), &"C".into()).expect("placed");
        assert_eq!(placed, Placed { value: "D".into(), violations: 0 }, "seed {seed}");
    }
}

#[test]
fn seed_replicas_on_a_c_e_and_e_fails_it_goes_to_b_or_d_as_a_counted_violation() {
    let mut chosen = BTreeSet::new();
    for seed in SEEDS {
        let mut p = placer(seed_cluster(&["E"]), seed);
        let placed = p.replace_replica(&ids(&["A", "C", "E"]), &"E".into()).expect("placed anyway");
        assert!(["B", "D"].contains(&placed.value.as_str()), "seed {seed}: {placed:?}");
        assert_eq!(placed.violations, 1, "seed {seed}");
        chosen.insert(placed.value);
    }
    // Equal loads: the tie goes to the first location by name, deterministically.
    assert_eq!(chosen, BTreeSet::from(["B".into()]));
}

#[test]
fn a_dead_replica_still_counts_in_its_location() {
    // Tablet on A (dead, /L0) and C (/L1), adding a third replica: /L0 already holds one.
    let mut p = placer(seed_cluster(&["A"]), 1);
    let placed = p.add_replica(&ids(&["A", "C"]), 3).expect("placed");
    assert_eq!(placed, Placed { value: "E".into(), violations: 0 });
}

#[test]
fn least_loaded_location_first_by_replicas_per_server() {
    // /L0: 20 replicas on 2 servers (10 each); /L1: 6 on 2 (3 each); /L2: 4 on 1; /L3: 0 on 1.
    let rows = servers(&[
        ("a0", "/L0", 10, true),
        ("a1", "/L0", 10, true),
        ("b0", "/L1", 3, true),
        ("b1", "/L1", 3, true),
        ("c0", "/L2", 4, true),
        ("d0", "/L3", 0, true),
        // Dead servers neither receive replicas nor count in their location's load.
        ("e0", "/L4", 0, false),
    ]);
    for seed in SEEDS {
        let mut p = placer(rows.clone(), seed);
        let placed = p.place_new_tablet(3).expect("placed");
        assert_eq!(placed.violations, 0);
        assert_eq!(location_set(&p, &placed.value), BTreeSet::from(["/L1".into(), "/L2".into(), "/L3".into()]));
        // Within /L1 the two servers tie: the smaller id.
        assert!(placed.value.contains(&"b0".into()), "seed {seed}: {placed:?}");
    }
}

#[test]
fn power_of_two_choices_within_a_location_prefers_the_less_loaded() {
    // Two servers: both are always the two choices, so the less loaded one wins.
    let rows = servers(&[("x", "/L0", 7, true), ("y", "/L0", 2, true), ("z", "/L1", 0, true)]);
    for seed in SEEDS {
        let mut p = placer(rows.clone(), seed);
        assert_eq!(p.add_replica(&ids(&["z"]), 3).expect("placed").value, TServerId::from("y"));
    }
    // Many servers: never the most loaded of a location unless all tie; same seed, same choice.
    let many: Vec<Server> = (0..8).map(|i| Server::live(TServerId(format!("s{i}")), loc("/L0"), i * 10)).collect();
    for seed in SEEDS {
        let first = placer(many.clone(), seed).place_new_tablet(1).expect("placed");
        assert_ne!(first.value, ids(&["s7"]));
        assert_eq!(first, placer(many.clone(), seed).place_new_tablet(1).expect("placed"), "deterministic");
    }
}

#[test]
fn a_table_spreads_evenly_over_locations_and_servers() {
    // 3 locations of 2 servers; 30 tablets of RF 3: each location one replica per tablet,
    // each server 15 replicas.
    let rows: Vec<Server> =
        (0..6).map(|i| Server::live(TServerId(format!("ts{i}")), loc(&format!("/L{}", i % 3)), 0)).collect();
    let mut p = placer(rows, 7);
    let table = p.place_table(30, 3).expect("placed");
    assert_eq!(table.violations, 0);
    let mut per_server: BTreeMap<TServerId, usize> = BTreeMap::new();
    for replicas in &table.tablets {
        assert_eq!(location_set(&p, replicas).len(), 3, "{replicas:?}");
        for r in replicas {
            *per_server.entry(r.clone()).or_default() += 1;
        }
    }
    assert!(per_server.values().all(|&n| n == 15), "{per_server:?}");
    assert!(p.servers().iter().all(|s| s.replicas == 15), "loads are tracked");
}

#[test]
fn one_location_or_none_is_never_a_violation() {
    // Without a mapping command every server shares the default location.
    let rows: Vec<Server> =
        (0..4).map(|i| Server::live(TServerId(format!("ts{i}")), Location::default_location(), 0)).collect();
    let mut p = placer(rows, 3);
    let table = p.place_table(6, 3).expect("placed");
    assert_eq!(table.violations, 0);
    let mut counts: BTreeMap<&TServerId, usize> = BTreeMap::new();
    for replicas in &table.tablets {
        assert_eq!(replicas.iter().collect::<BTreeSet<_>>().len(), 3, "distinct: {replicas:?}");
        for r in replicas {
            *counts.entry(r).or_default() += 1;
        }
    }
    // 18 replicas on 4 servers, by load: close to 4.5 each.
    let (min, max) = (counts.values().min().copied(), counts.values().max().copied());
    assert!(counts.len() == 4 && max.zip(min).is_some_and(|(max, min)| max - min <= 2), "{counts:?}");
}

#[test]
fn rf5_over_three_locations_puts_at_most_two_in_each() {
    let rows: Vec<Server> =
        (0..9).map(|i| Server::live(TServerId(format!("ts{i}")), loc(&format!("/L{}", i % 3)), 0)).collect();
    for seed in SEEDS {
        let mut p = placer(rows.clone(), seed);
        let placed = p.place_new_tablet(5).expect("placed");
        assert_eq!(placed.violations, 0);
        let locations: Vec<&Location> = placed.value.iter().filter_map(|id| p.location_of(id)).collect();
        assert_eq!(policy::majority_location(locations, 5), None, "seed {seed}: {placed:?}");
    }
}

#[test]
fn too_few_servers_or_none_eligible_are_errors() {
    let mut p = placer(seed_cluster(&["A", "B", "C"]), 0);
    assert_eq!(p.place_new_tablet(3), Err(PlacementError::NotEnoughTabletServers { needed: 3, live: 2 }));
    let err = p.replace_replica(&ids(&["A", "D", "E"]), &"A".into()).expect_err("D and E hold replicas");
    assert_eq!(err, PlacementError::NoEligibleServer { current: "D, E".into() });
}
