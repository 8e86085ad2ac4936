//! Table tests of the rebalancing planner.

use std::collections::BTreeMap;

use super::*;

fn loc(s: &str) -> Location {
    s.parse().expect("location")
}

/// Servers `(id, location, live)` ("" for an unknown location).
fn servers(rows: &[(&str, &str, bool)]) -> Vec<ServerView> {
    rows.iter()
        .map(|&(id, location, live)| ServerView {
            id: id.into(),
            location: (!location.is_empty()).then(|| loc(location)),
            live,
        })
        .collect()
}

/// A tablet `id` of `table` with replication factor `rf` on `replicas`.
fn tablet(id: &str, table: &str, rf: usize, replicas: &[&str]) -> TabletView {
    TabletView {
        id: id.into(),
        table: table.into(),
        replication_factor: rf,
        replicas: replicas.iter().map(|r| TServerId::from(*r)).collect(),
        pending: None,
    }
}

fn options(seed: u64) -> Options {
    Options { seed, ..Options::default() }
}

/// The seed's servers A..E in /L0, /L0, /L1, /L1, /L2, and F in /L2.
const SIX: [(&str, &str, bool); 6] = [
    ("A", "/L0", true),
    ("B", "/L0", true),
    ("C", "/L1", true),
    ("D", "/L1", true),
    ("E", "/L2", true),
    ("F", "/L2", true),
];

#[test]
fn a_majority_in_one_location_moves_to_the_location_without_a_replica() {
    // A and B in /L0 hold two of three replicas; /L2 has none.
    let layout = Layout { servers: servers(&SIX), tablets: vec![tablet("t0", "t", 3, &["A", "B", "C"])] };
    for seed in 0..20 {
        let plan = plan(&layout, &options(seed));
        let [m] = plan.as_slice() else { panic!("one move: {plan:?}") };
        assert_eq!(m.reason, Reason::PlacementPolicy);
        assert!(["A", "B"].contains(&m.from.as_str()), "{m:?}");
        assert!(["E", "F"].contains(&m.to.as_str()), "{m:?}");
        assert_eq!(layout.balance(&options(seed)).policy_violations, 1);
        let (_, after) = simulate(&layout, &options(seed), 100);
        assert_eq!(after.balance(&options(seed)).policy_violations, 0);
    }
}

#[test]
fn the_seed_example_forced_violation_is_fixed_once_l2_has_room_again() {
    // E failed and its replica went to D (a counted violation: C and D in /L1); E is back
    // (empty). The rebalancer moves C's or D's replica to E.
    let rows = [("A", "/L0", true), ("B", "/L0", true), ("C", "/L1", true), ("D", "/L1", true), ("E", "/L2", true)];
    let layout = Layout { servers: servers(&rows), tablets: vec![tablet("t0", "t", 3, &["A", "C", "D"])] };
    let plan = plan(&layout, &options(7));
    let [m] = plan.as_slice() else { panic!("one move: {plan:?}") };
    assert!(["C", "D"].contains(&m.from.as_str()) && m.to.as_str() == "E", "{m:?}");
    // With E still dead there is nowhere compliant to go: no move at all.
    let rows = [("A", "/L0", true), ("B", "/L0", true), ("C", "/L1", true), ("D", "/L1", true), ("E", "/L2", false)];
    let layout = Layout { servers: servers(&rows), tablets: vec![tablet("t0", "t", 3, &["A", "C", "D"])] };
    assert_eq!(super::plan(&layout, &options(7)), vec![]);
}

#[test]
fn balanced_layouts_get_no_moves() {
    // One replica per location, two tablets per server.
    let tablets = vec![
        tablet("t0", "t", 3, &["A", "C", "E"]),
        tablet("t1", "t", 3, &["B", "D", "F"]),
        tablet("t2", "t", 3, &["A", "D", "E"]),
        tablet("t3", "t", 3, &["B", "C", "F"]),
    ];
    let layout = Layout { servers: servers(&SIX), tablets };
    for seed in 0..20 {
        assert_eq!(plan(&layout, &options(seed)), vec![], "seed {seed}");
    }
    let balance = layout.balance(&options(0));
    assert_eq!((balance.policy_violations, balance.server_skew, balance.table_skew), (0, 0, 0));
    assert_eq!(balance.location_skew, 0.0);
    // Without locations (one default location) and loads within one of each other.
    let flat = [("a", "/default", true), ("b", "/default", true), ("c", "/default", true), ("d", "/default", true)];
    let tablets = vec![tablet("t0", "t", 3, &["a", "b", "c"]), tablet("t1", "t", 3, &["b", "c", "d"])];
    assert_eq!(plan(&Layout { servers: servers(&flat), tablets }, &options(3)), vec![]);
}

#[test]
fn a_server_added_later_gets_replicas_until_loads_differ_by_at_most_one() {
    // 6 tablets of replication factor 3 on a, b, c (6 each); d is new and empty.
    let flat = [("a", "/default", true), ("b", "/default", true), ("c", "/default", true), ("d", "/default", true)];
    let tablets: Vec<TabletView> = (0..6).map(|i| tablet(&format!("t{i}"), "t", 3, &["a", "b", "c"])).collect();
    let layout = Layout { servers: servers(&flat), tablets };
    let first = plan(&layout, &options(1));
    assert!(!first.is_empty());
    assert!(first.iter().all(|m| m.to.as_str() == "d" && m.reason == Reason::ServerBalance), "{first:?}");
    let (all, after) = simulate(&layout, &options(1), 100);
    let loads = after.balance(&options(1)).servers;
    assert_eq!(loads.values().sum::<usize>(), 18);
    assert!(loads.values().all(|&n| n == 4 || n == 5), "{loads:?}");
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(plan(&after, &options(99)), vec![], "balanced for any seed");
}

#[test]
fn locations_are_evened_by_replicas_per_server_without_breaking_the_policy() {
    // Replication factor 1: /L0 (one server) holds 6 replicas, /L1 (two servers) none.
    let rows = [("a", "/L0", true), ("b", "/L1", true), ("c", "/L1", true)];
    let tablets: Vec<TabletView> = (0..6).map(|i| tablet(&format!("t{i}"), "t", 1, &["a"])).collect();
    let layout = Layout { servers: servers(&rows), tablets };
    let (all, after) = simulate(&layout, &options(0), 100);
    assert!(all.iter().all(|m| m.reason == Reason::LocationBalance), "{all:?}");
    assert_eq!(after.balance(&options(0)).servers, BTreeMap::from([("a".into(), 2), ("b".into(), 2), ("c".into(), 2)]));
    // Replication factor 3 over A..E: /L2's single server holds a replica of every tablet
    // (the most per server), but moving any to /L0 or /L1 would give it a majority there.
    let rows = [("A", "/L0", true), ("B", "/L0", true), ("C", "/L1", true), ("D", "/L1", true), ("E", "/L2", true)];
    let tablets = vec![
        tablet("t0", "t", 3, &["A", "C", "E"]),
        tablet("t1", "t", 3, &["B", "D", "E"]),
        tablet("t2", "t", 3, &["A", "D", "E"]),
        tablet("t3", "t", 3, &["B", "C", "E"]),
    ];
    let layout = Layout { servers: servers(&rows), tablets };
    assert_eq!(plan(&layout, &options(5)), vec![]);
}

#[test]
fn policy_fixes_come_first_then_location_then_server_balance() {
    // t0 breaks the policy; a, in /L0, holds many more replicas than b.
    let rows = [("a", "/L0", true), ("b", "/L0", true), ("c", "/L1", true), ("d", "/L1", true), ("e", "/L2", true)];
    let mut tablets = vec![tablet("t0", "t", 3, &["c", "d", "a"])];
    tablets.extend((1..7).map(|i| tablet(&format!("t{i}"), "u", 1, &["a"])));
    let layout = Layout { servers: servers(&rows), tablets };
    let plan = plan(&layout, &options(2));
    assert_eq!(plan[0].reason, Reason::PlacementPolicy, "{plan:?}");
    assert_eq!((plan[0].tablet_id.as_str(), plan[0].to.as_str()), ("t0", "e"));
    let reasons: Vec<Reason> = plan.iter().map(|m| m.reason).collect();
    let mut sorted = reasons.clone();
    sorted.sort();
    assert_eq!(reasons, sorted, "phases in order: {plan:?}");
    let tablets: Vec<&TabletId> = plan.iter().map(|m| &m.tablet_id).collect();
    let distinct: std::collections::BTreeSet<&TabletId> = tablets.iter().copied().collect();
    assert_eq!(distinct.len(), tablets.len(), "one move per tablet");
}

#[test]
fn tablets_moving_or_on_dead_or_unlocated_servers_are_left_alone() {
    let rows = [("a", "/L", true), ("b", "/L", true), ("c", "/L", true), ("d", "/L", false), ("x", "", true)];
    let mut pending = tablet("t0", "t", 1, &["a"]);
    pending.pending = Some(ReplicaMove { from: Some("a".into()), to: "b".into() });
    let tablets = vec![
        pending,
        tablet("t1", "t", 1, &["d"]),
        tablet("t2", "t", 1, &["x"]),
        tablet("t3", "t", 3, &["a", "b"]),
        tablet("t4", "t", 1, &["a"]),
        tablet("t5", "t", 1, &["a"]),
        tablet("t6", "t", 1, &["a"]),
    ];
    let layout = Layout { servers: servers(&rows), tablets };
    let plan = plan(&layout, &options(0));
    // The move in progress counts as done: a has t3..t6 (4), b t0 and t3 (2), c none.
    assert_eq!(plan.len(), 2, "{plan:?}");
    for m in &plan {
        assert!(["t4", "t5", "t6"].contains(&m.tablet_id.as_str()), "{m:?}");
        assert_eq!((m.from.as_str(), m.to.as_str()), ("a", "c"), "{m:?}");
    }
}

#[test]
fn excluded_servers_and_the_per_server_limit_are_respected() {
    let flat = [("a", "/default", true), ("b", "/default", true), ("c", "/default", true)];
    let tablets: Vec<TabletView> = (0..8).map(|i| tablet(&format!("t{i}"), "t", 1, &["a"])).collect();
    let layout = Layout { servers: servers(&flat), tablets };
    let limited = Options { max_moves_per_server: 2, ..options(0) };
    let plan = plan(&layout, &limited);
    assert_eq!(plan.len(), 2, "a takes part in at most 2 moves: {plan:?}");
    let excluded = Options { excluded: ["c".into()].into(), ..options(0) };
    let (all, after) = simulate(&layout, &excluded, 100);
    assert!(all.iter().all(|m| m.to.as_str() == "b"), "{all:?}");
    assert_eq!(after.balance(&excluded).servers.get("c"), Some(&0));
    // A move in progress touching a uses up its budget too.
    let mut busy = layout.clone();
    busy.tablets[0].pending = Some(ReplicaMove { from: Some("a".into()), to: "b".into() });
    let one = Options { max_moves_per_server: 1, ..options(0) };
    assert!(super::plan(&busy, &one).iter().all(|m| m.from.as_str() != "a"));
}

#[test]
fn table_skew_within_a_location_is_evened_when_totals_allow() {
    // a holds 3 replicas of table x, b one of y: totals 3 vs 1 (server balance moves an x
    // replica first, preferring the most skewed table).
    let flat = [("a", "/default", true), ("b", "/default", true)];
    let tablets = vec![
        tablet("x0", "x", 1, &["a"]),
        tablet("x1", "x", 1, &["a"]),
        tablet("x2", "x", 1, &["a"]),
        tablet("y0", "y", 1, &["b"]),
    ];
    let layout = Layout { servers: servers(&flat), tablets };
    let plan = plan(&layout, &options(0));
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert_eq!((plan[0].table.as_str(), plan[0].to.as_str(), plan[0].reason), ("x", "b", Reason::ServerBalance));
    // Totals 3 vs 2 with all of x on a and all of y on b: an x replica moves to b for the
    // table's sake (b then holds more in all), then a y replica to a.
    let tablets = vec![
        tablet("x0", "x", 1, &["a"]),
        tablet("x1", "x", 1, &["a"]),
        tablet("x2", "x", 1, &["a"]),
        tablet("y0", "y", 1, &["b"]),
        tablet("y1", "y", 1, &["b"]),
    ];
    let layout = Layout { servers: servers(&flat), tablets };
    let plan = super::plan(&layout, &options(0));
    let steps: Vec<(&str, &str, &str, Reason)> =
        plan.iter().map(|m| (m.table.as_str(), m.from.as_str(), m.to.as_str(), m.reason)).collect();
    assert_eq!(steps, [("x", "a", "b", Reason::TableBalance), ("y", "b", "a", Reason::TableBalance)], "{plan:?}");
    let mut after = layout.clone();
    after.apply(&plan);
    let balance = after.balance(&options(0));
    assert_eq!((balance.server_skew, balance.table_skew), (1, 1));
    assert_eq!(super::plan(&after, &options(0)), vec![]);
}

#[test]
fn plans_are_deterministic_given_the_seed() {
    let flat = [("a", "/default", true), ("b", "/default", true), ("c", "/default", true), ("d", "/default", true)];
    let tablets: Vec<TabletView> = (0..12).map(|i| tablet(&format!("t{i}"), "t", 1, &["a"])).collect();
    let layout = Layout { servers: servers(&flat), tablets };
    for seed in 0..10 {
        assert_eq!(plan(&layout, &options(seed)), plan(&layout, &options(seed)));
    }
    let distinct: std::collections::BTreeSet<Vec<String>> =
        (0..10).map(|seed| plan(&layout, &options(seed)).iter().map(|m| m.tablet_id.to_string()).collect()).collect();
    assert!(distinct.len() > 1, "the seed breaks ties");
}
