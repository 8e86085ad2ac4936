//! Property tests of the rebalancing planner over random layouts: locations, servers per
//! location, liveness, unknown locations, excluded servers, replication factors 1, 3 and 5,
//! and moves in progress.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::placement::policy;

/// Cases per property.
const CASES: u32 = 256;

/// A random layout and options: 1-4 locations of 0-4 servers (about one in ten dead, one
/// in twenty without a location, some excluded), 0-40 tablets of 3 tables, each on random
/// distinct servers (any, dead ones included), about one in ten with a move in progress.
fn layout_and_options() -> impl Strategy<Value = (Layout, Options)> {
    let servers = prop::collection::vec(
        prop::collection::vec(
            (prop::bool::weighted(0.9), prop::bool::weighted(0.95), prop::bool::weighted(0.1)),
            0..=4,
        ),
        1..=4,
    );
    let tablets = prop::collection::vec(
        (0usize..3, prop::sample::select(vec![1usize, 3, 3, 3, 5]), any::<u64>(), prop::bool::weighted(0.1)),
        0..=40,
    );
    (servers, tablets, any::<u64>(), 0usize..4).prop_map(|(locations, tablets, seed, max_moves)| {
        let mut servers = Vec::new();
        let mut excluded = BTreeSet::new();
        for (l, members) in locations.into_iter().enumerate() {
            for (i, (live, located, exclude)) in members.into_iter().enumerate() {
                let id = TServerId(format!("ts-{l}-{i}"));
                if exclude {
                    excluded.insert(id.clone());
                }
                let location = located.then(|| format!("/L{l}").parse().expect("valid location"));
                servers.push(ServerView { id, location, live });
            }
        }
        let ids: Vec<TServerId> = servers.iter().map(|s| s.id.clone()).collect();
        let tablets = tablets
            .into_iter()
            .enumerate()
            .filter_map(|(i, (table, rf, pick, moving))| {
                if ids.len() < rf {
                    return None;
                }
                let mut pool = ids.clone();
                let mut state = pick;
                let mut replicas = Vec::new();
                for _ in 0..rf {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    replicas.push(pool.remove((state >> 33) as usize % pool.len()));
                }
                let pending = (moving && !pool.is_empty()).then(|| ReplicaMove {
                    from: Some(replicas[0].clone()),
                    to: pool[(state >> 40) as usize % pool.len()].clone(),
                });
                Some(TabletView {
                    id: TabletId(format!("tablet-{i}")),
                    table: format!("table-{table}"),
                    replication_factor: rf,
                    replicas,
                    pending,
                })
            })
            .collect();
        (Layout { servers, tablets }, Options { max_moves_per_server: max_moves, excluded, seed })
    })
}

fn location_of<'a>(layout: &'a Layout, id: &TServerId) -> Option<&'a Location> {
    layout.servers.iter().find(|s| &s.id == id).and_then(|s| s.location.as_ref())
}

fn policy_applies(layout: &Layout) -> bool {
    policy::applies(layout.servers.iter().filter_map(|s| s.location.as_ref()))
}

/// Replicas over the policy's cap in the tablet's locations.
fn excess(layout: &Layout, replicas: &[TServerId], rf: usize) -> usize {
    let counts = policy::counts_by_location(replicas.iter().filter_map(|r| location_of(layout, r)));
    counts.values().map(|c| c.saturating_sub(policy::max_per_location(rf))).sum()
}

/// The potential every move lowers, lexicographically (see the module docs): policy excess,
/// Σ replicas²/servers over locations (scaled to an integer), Σ replicas² over servers, and
/// the same per table. Moves in progress count as done.
fn potential(layout: &Layout, options: &Options) -> (usize, u128, u128, u128) {
    let mut done = layout.clone();
    done.complete_pending();
    let eligible: BTreeMap<&TServerId, &Location> = done
        .servers
        .iter()
        .filter(|s| s.live && !options.excluded.contains(&s.id))
        .filter_map(|s| Some((&s.id, s.location.as_ref()?)))
        .collect();
    let applies = policy_applies(&done);
    let mut load: BTreeMap<&TServerId, u128> = BTreeMap::new();
    let mut table_load: BTreeMap<(&str, &TServerId), u128> = BTreeMap::new();
    let mut total_excess = 0;
    for t in &done.tablets {
        if applies {
            total_excess += excess(&done, &t.replicas, t.replication_factor);
        }
        for r in t.replicas.iter().filter(|r| eligible.contains_key(r)) {
            *load.entry(r).or_default() += 1;
            *table_load.entry((t.table.as_str(), r)).or_default() += 1;
        }
    }
    let mut by_location: BTreeMap<&Location, (u128, u128)> = BTreeMap::new();
    for (id, location) in &eligible {
        let entry = by_location.entry(location).or_default();
        entry.0 += load.get(id).copied().unwrap_or(0);
        entry.1 += 1;
    }
    // 840 = lcm(1..=8): every location here has at most 4 servers.
    let locations = by_location.values().map(|(r, n)| r * r * (840 / n)).sum();
    let servers = load.values().map(|r| r * r).sum();
    let tables = table_load.values().map(|r| r * r).sum();
    (total_excess, locations, servers, tables)
}

fn check_moves(layout: &Layout, options: &Options, moves: &[Move]) -> Result<(), TestCaseError> {
    let applies = policy_applies(layout);
    let mut touched: BTreeMap<&TServerId, usize> = BTreeMap::new();
    for t in &layout.tablets {
        if let Some(m) = &t.pending {
            for id in m.from.iter().chain([&m.to]) {
                *touched.entry(id).or_default() += 1;
            }
        }
    }
    let mut moved = BTreeSet::new();
    for m in moves {
        prop_assert!(moved.insert(&m.tablet_id), "two moves for {}", m.tablet_id);
        let tablet = layout.tablets.iter().find(|t| t.id == m.tablet_id).expect("a known tablet");
        prop_assert!(tablet.pending.is_none(), "a tablet with a move in progress moved: {m:?}");
        prop_assert_eq!(tablet.replicas.len(), tablet.replication_factor);
        prop_assert!(tablet.replicas.contains(&m.from) && !tablet.replicas.contains(&m.to), "{m:?} {tablet:?}");
        let to = layout.servers.iter().find(|s| s.id == m.to).expect("a known server");
        prop_assert!(to.live && to.location.is_some() && !options.excluded.contains(&to.id), "{m:?}");
        for r in &tablet.replicas {
            let s = layout.servers.iter().find(|s| &s.id == r).expect("a known server");
            prop_assert!(s.live && s.location.is_some(), "a tablet on {r} moved: {m:?}");
        }
        let after: Vec<TServerId> =
            tablet.replicas.iter().map(|r| if *r == m.from { m.to.clone() } else { r.clone() }).collect();
        let (before_excess, after_excess) = (
            excess(layout, &tablet.replicas, tablet.replication_factor),
            excess(layout, &after, tablet.replication_factor),
        );
        if applies {
            prop_assert!(after_excess <= before_excess, "{m:?} makes {tablet:?} worse");
            if m.reason == Reason::PlacementPolicy {
                prop_assert!(after_excess < before_excess, "{m:?} fixes nothing");
            }
        } else {
            prop_assert_ne!(m.reason, Reason::PlacementPolicy);
        }
        for id in [&m.from, &m.to] {
            *touched.entry(id).or_default() += 1;
            if options.max_moves_per_server > 0 {
                prop_assert!(touched[id] <= options.max_moves_per_server, "{id} over its move limit");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    /// Every proposed move is allowed and never makes its tablet's compliance worse.
    #[test]
    fn moves_keep_or_improve_compliance((layout, options) in layout_and_options()) {
        check_moves(&layout, &options, &plan(&layout, &options))?;
    }

    /// Applying plans round after round converges: each move lowers the potential (so no
    /// move is ever undone), and the layout reached gets no moves, whatever the seed.
    #[test]
    fn repeated_application_converges_without_ping_pong((layout, options) in layout_and_options()) {
        let mut current = layout.clone();
        current.complete_pending();
        let mut rounds = 0;
        loop {
            let moves = plan(&current, &options);
            if moves.is_empty() {
                break;
            }
            check_moves(&current, &options, &moves)?;
            for m in &moves {
                let before = potential(&current, &options);
                current.apply(std::slice::from_ref(m));
                let after = potential(&current, &options);
                prop_assert!(after < before, "{m:?}: potential {before:?} -> {after:?}");
            }
            rounds += 1;
            prop_assert!(rounds <= 1_000, "no convergence");
        }
        let reseeded = Options { seed: options.seed.wrapping_add(1), ..options.clone() };
        prop_assert_eq!(plan(&current, &reseeded), vec![], "a balanced layout got moves");
        let (all, simulated) = simulate(&layout, &options, 1_000);
        prop_assert_eq!(plan(&simulated, &options), vec![]);
        prop_assert!(all.len() >= rounds);
    }

    /// With three or more locations that have live servers, every tablet of replication
    /// factor 3 on live, located servers ends up complying.
    #[test]
    fn fixable_violations_get_fixed((layout, options) in layout_and_options()) {
        let usable: BTreeSet<&Location> = layout
            .servers
            .iter()
            .filter(|s| s.live && !options.excluded.contains(&s.id))
            .filter_map(|s| s.location.as_ref())
            .collect();
        prop_assume!(usable.len() >= 3);
        let (_, after) = simulate(&layout, &options, 1_000);
        for t in after.tablets.iter().filter(|t| t.replication_factor == 3) {
            let placed = t.replicas.iter().all(|r| {
                after.servers.iter().any(|s| &s.id == r && s.live && s.location.is_some())
            });
            if placed && t.replicas.len() == 3 {
                prop_assert_eq!(excess(&after, &t.replicas, 3), 0, "{:?}", t);
            }
        }
    }
}
