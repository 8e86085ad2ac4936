//! The leader's re-replication decisions, pure functions of the catalog and what the
//! registry knows of tablet servers, so every rule is table-tested:
//!
//! - [`failed_servers`]: which servers count as failed.
//! - [`plan_moves`]: which tablets get a move, and to where.
//! - [`next_action`]: what to do next for a move in progress.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;

use crate::catalog::{Catalog, ReplicaMove, Tablet, TabletMove};
use crate::ids::{TServerId, TabletId};
use crate::placement::{PlacementError, Placer};

/// Which tablet servers hosting replicas count as failed: every server the registry knows
/// but has not heard from within the unresponsive timeout (`live[id] == false`), and, when
/// `absent_are_failed` (this master has led for longer than that timeout, so every live
/// server has heartbeated to it), every server the catalog places replicas on that the
/// registry does not know at all.
pub fn failed_servers(
    catalog: &Catalog,
    live: &BTreeMap<TServerId, bool>,
    absent_are_failed: bool,
) -> BTreeSet<TServerId> {
    let mut failed: BTreeSet<TServerId> = live.iter().filter(|(_, live)| !**live).map(|(id, _)| id.clone()).collect();
    if absent_are_failed {
        let hosts = catalog.tablets().flat_map(|t| t.replicas.iter().chain(t.pending_move.as_ref().map(|m| &m.to)));
        failed.extend(hosts.filter(|id| !live.contains_key(*id)).cloned());
    }
    failed
}

/// Why a tablet in need of a replica gets no move now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skipped {
    /// Fewer than a majority of its voters are live: its group cannot change its
    /// configuration (and replacing a replica would risk losing acknowledged writes).
    NoQuorum { live: usize, voters: usize },
    /// No live server can take the replica.
    NoServer(PlacementError),
}

/// The moves to start in one round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub moves: Vec<TabletMove>,
    /// Replacements placed against the placement policy (no compliant server existed).
    pub violations: usize,
    /// Tablets that need a replica but get no move, and why.
    pub skipped: Vec<(TabletId, Skipped)>,
}

/// What one tablet needs.
struct Need<'a> {
    tablet: &'a Tablet,
    /// The failed voter to replace; `None`: the tablet lacks a voter (it only gains one).
    replace: Option<TServerId>,
    /// How many more voters the tablet can lose and keep a majority.
    margin: usize,
    /// Only moving a voter off a decommissioning server (nothing failed or missing).
    drain: bool,
}

/// Chooses the moves of one round, at most `max_concurrent` in progress in all (those of
/// the catalog included), at most one per tablet. A tablet needs a move when one of its
/// voters is on a failed server (the first by id is replaced), it has fewer voters than
/// its table's replication factor, or one of its voters is on a server the catalog marks
/// as decommissioning (the first by id is moved off, 3-4-3: it stays a voter until its
/// replacement is promoted), and it has no move in progress; only tablets with a live
/// majority of voters get one. Repairs (failed or missing voters) come before draining
/// decommissioning servers; then the most endangered tablets (fewest voters to lose before
/// losing the majority), then by id. Destinations are chosen by `placer` (location
/// policy, load), which must know the servers' loads including the destinations of moves
/// in progress, and must count decommissioning servers as not live (see
/// `TServerRegistry::placement_servers`).
pub fn plan_moves<R: Rng>(
    catalog: &Catalog,
    failed: &BTreeSet<TServerId>,
    placer: &mut Placer<R>,
    max_concurrent: usize,
) -> Plan {
    let mut plan = Plan::default();
    let mut budget = max_concurrent.saturating_sub(catalog.num_pending_moves());
    if budget == 0 {
        return plan;
    }
    let mut needs: Vec<Need<'_>> = Vec::new();
    for tablet in catalog.tablets().filter(|t| t.pending_move.is_none()) {
        let Some(table) = catalog.table(&tablet.table_id) else { continue };
        let voters = tablet.replicas.len();
        let dead: Vec<&TServerId> = tablet.replicas.iter().filter(|id| failed.contains(*id)).collect();
        let live = voters - dead.len();
        let draining = tablet.replicas.iter().find(|id| catalog.is_decommissioning(id));
        let (replace, drain) = match (dead.first(), draining) {
            (Some(first), _) => (Some((*first).clone()), false),
            (None, _) if voters < table.replication_factor as usize => (None, false),
            (None, Some(leaving)) => (Some(leaving.clone()), true),
            (None, None) => continue,
        };
        if live * 2 <= voters {
            plan.skipped.push((tablet.id.clone(), Skipped::NoQuorum { live, voters }));
            continue;
        }
        needs.push(Need { tablet, replace, margin: live - (voters / 2 + 1), drain });
    }
    needs.sort_by(|a, b| (a.drain, a.margin).cmp(&(b.drain, b.margin)).then_with(|| a.tablet.id.cmp(&b.tablet.id)));
    for need in needs {
        if budget == 0 {
            break;
        }
        let tablet = need.tablet;
        let placed = match &need.replace {
            Some(replaced) => placer.replace_replica(&tablet.replicas, replaced),
            None => {
                let rf = catalog.table(&tablet.table_id).map_or(0, |t| t.replication_factor as usize);
                placer.add_replica(&tablet.replicas, rf)
            }
        };
        match placed {
            Ok(placed) => {
                plan.violations += placed.violations;
                plan.moves.push(TabletMove {
                    tablet_id: tablet.id.clone(),
                    replica_move: ReplicaMove { from: need.replace, to: placed.value },
                });
                budget -= 1;
            }
            Err(e) => plan.skipped.push((tablet.id.clone(), Skipped::NoServer(e))),
        }
    }
    plan
}

/// What to do next for a move in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Ask the tablet's leader to take the next step (add, promote, remove).
    Advance,
    /// The destination failed before it became a voter: have the leader remove it (if it
    /// was added as a non-voter), then cancel the move; a new one is planned afterwards.
    GiveUp,
}

/// The next action for `replica_move` of `tablet`, given the failed servers. A destination
/// that is already a voter is never given up (the group needs it); the move goes on.
pub fn next_action(tablet: &Tablet, replica_move: &ReplicaMove, failed: &BTreeSet<TServerId>) -> Action {
    if failed.contains(&replica_move.to) && !tablet.replicas.contains(&replica_move.to) {
        Action::GiveUp
    } else {
        Action::Advance
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::catalog::{CatalogCommand, Column, ColumnType, Schema, Table, TabletConfigUpdate};
    use crate::ids::TableId;
    use crate::location::Location;
    use crate::placement::Server;

    fn loc(s: &str) -> Location {
        s.parse().expect("location")
    }

    fn ids(names: &[&str]) -> Vec<TServerId> {
        names.iter().map(|n| TServerId::from(*n)).collect()
    }

    /// A catalog with one table `t` of replication factor `rf` whose tablets `t0, t1, ...`
    /// have the given voters.
    fn catalog(rf: u32, tablets: &[&[&str]]) -> Catalog {
        catalog_of(&[("t", rf, tablets)])
    }

    /// A catalog with tables `(name, rf, voters of each tablet)`; tablets are named after
    /// their table and partition (`t0`, `u0`, ...).
    fn catalog_of(tables: &[(&str, u32, &[&[&str]])]) -> Catalog {
        let mut c = Catalog::default();
        c.apply(&CatalogCommand::SetClusterId { cluster_id: "c".into() }, 1);
        for (index, (name, rf, tablets)) in (2u64..).zip(tables) {
            let table_id = TableId(format!("{name}-id"));
            let table = Table::new(
                table_id.clone(),
                name.to_string(),
                Schema { columns: vec![Column::new("id", ColumnType::Int64, false)], primary_key: vec!["id".into()] }
                    .with_fresh_ids(),
                tablets.len() as u32,
                *rf,
            );
            let tablets = (0u32..)
                .zip(tablets.iter())
                .map(|(partition, voters)| {
                    Tablet::new(TabletId(format!("{name}{partition}")), table_id.clone(), partition, ids(voters))
                })
                .collect();
            c.apply(&CatalogCommand::CreateTable { request_id: format!("r-{name}"), table, tablets }, index);
        }
        c
    }

    /// `(id, location, live)`: servers with their loads in `catalog`; decommissioning ones
    /// count as not live, as `TServerRegistry::placement_servers` has them.
    fn servers(catalog: &Catalog, rows: &[(&str, &str, bool)]) -> Vec<Server> {
        rows.iter()
            .map(|&(id, location, live)| {
                let id = TServerId::from(id);
                let replicas = catalog.tablets().filter(|t| t.wants_replica_on(&id)).count();
                let live = live && !catalog.is_decommissioning(&id);
                Server { id, location: loc(location), replicas, live }
            })
            .collect()
    }

    fn decommission(catalog: &mut Catalog, names: &[&str]) {
        for (index, name) in (100u64..).zip(names) {
            catalog.apply(&CatalogCommand::SetTServerState { uuid: (*name).into(), decommissioning: true }, index);
        }
    }

    /// Applies the outcome of every move of `plan`, as the tablets' reports would.
    fn complete(catalog: &mut Catalog, plan: &Plan, index: u64) {
        catalog.apply(&CatalogCommand::StartReplicaMoves(plan.moves.clone()), index);
        let updates = plan
            .moves
            .iter()
            .map(|m| {
                let tablet = catalog.tablet(&m.tablet_id).expect("tablet");
                let mut replicas: Vec<TServerId> =
                    tablet.replicas.iter().filter(|r| Some(*r) != m.replica_move.from.as_ref()).cloned().collect();
                replicas.push(m.replica_move.to.clone());
                TabletConfigUpdate {
                    tablet_id: m.tablet_id.clone(),
                    term: tablet.term + 1,
                    replicas,
                    leader: None,
                    config_index: Some(tablet.config_index.unwrap_or(0) + 10),
                }
            })
            .collect();
        catalog.apply(&CatalogCommand::UpdateTabletConfigs(updates), index + 1);
    }

    fn failed(names: &[&str]) -> BTreeSet<TServerId> {
        ids(names).into_iter().collect()
    }

    fn plan(catalog: &Catalog, rows: &[(&str, &str, bool)], max: usize, seed: u64) -> Plan {
        let dead: Vec<&str> = rows.iter().filter(|r| !r.2).map(|r| r.0).collect();
        let mut placer = Placer::new(servers(catalog, rows), StdRng::seed_from_u64(seed));
        plan_moves(catalog, &failed(&dead), &mut placer, max)
    }

    fn moves(plan: &Plan) -> Vec<(String, Option<String>, String)> {
        plan.moves
            .iter()
            .map(|m| {
                (
                    m.tablet_id.to_string(),
                    m.replica_move.from.as_ref().map(ToString::to_string),
                    m.replica_move.to.to_string(),
                )
            })
            .collect()
    }

    const FLAT: [(&str, &str, bool); 4] = [("a", "/L", true), ("b", "/L", true), ("c", "/L", true), ("d", "/L", true)];

    fn with_dead<'a>(rows: &[(&'a str, &'a str, bool)], dead: &[&str]) -> Vec<(&'a str, &'a str, bool)> {
        rows.iter().map(|&(id, l, live)| (id, l, live && !dead.contains(&id))).collect()
    }

    #[test]
    fn nothing_to_do_while_every_replica_is_live() {
        let c = catalog(3, &[&["a", "b", "c"], &["b", "c", "d"]]);
        for seed in 0..20 {
            assert_eq!(plan(&c, &FLAT, 10, seed), Plan::default());
        }
        // A dead server without replicas changes nothing either.
        let c = catalog(3, &[&["a", "b", "c"]]);
        assert_eq!(plan(&c, &with_dead(&FLAT, &["d"]), 10, 0), Plan::default());
    }

    #[test]
    fn each_replica_on_a_dead_server_gets_one_replacement_on_a_live_one() {
        let c = catalog(3, &[&["a", "b", "c"], &["b", "c", "d"], &["a", "b", "d"]]);
        let rows = with_dead(&FLAT, &["c"]);
        for seed in 0..20 {
            let p = plan(&c, &rows, 10, seed);
            // t0 -> d (the only live server without a replica); t1 -> a.
            assert_eq!(
                moves(&p),
                vec![("t0".into(), Some("c".into()), "d".into()), ("t1".into(), Some("c".into()), "a".into()),],
                "seed {seed}"
            );
            assert_eq!((p.violations, p.skipped.len()), (0, 0));
        }
    }

    #[test]
    fn concurrency_is_bounded_counting_moves_in_progress() {
        let voters: Vec<[&str; 3]> = (0..6).map(|_| ["a", "b", "c"]).collect();
        let tablets: Vec<&[&str]> = voters.iter().map(|v| v.as_slice()).collect();
        let mut c = catalog(3, &tablets);
        let rows = [("a", "/L", true), ("b", "/L", true), ("c", "/L", false), ("d", "/L", true), ("e", "/L", true)];
        let p = plan(&c, &rows, 4, 0);
        assert_eq!(p.moves.len(), 4);
        assert_eq!(p.moves.iter().map(|m| m.tablet_id.as_str()).collect::<Vec<_>>(), ["t0", "t1", "t2", "t3"]);
        // Two of them in progress: two more may start, never for a tablet already moving.
        c.apply(&CatalogCommand::StartReplicaMoves(p.moves[..2].to_vec()), 3);
        let p = plan(&c, &rows, 4, 0);
        assert_eq!(p.moves.iter().map(|m| m.tablet_id.as_str()).collect::<Vec<_>>(), ["t2", "t3"]);
        c.apply(&CatalogCommand::StartReplicaMoves(p.moves.clone()), 4);
        assert_eq!(plan(&c, &rows, 4, 0), Plan::default(), "the budget is used up");
        assert_eq!(plan(&c, &rows, 0, 0), Plan::default(), "0 disables re-replication");
        // Destinations spread: the placer counts the moves in progress as load.
        let p = plan(&c, &rows, 6, 0);
        let to: Vec<String> = p.moves.iter().map(|m| m.replica_move.to.to_string()).collect();
        assert_eq!(p.moves.len(), 2);
        assert!(to.iter().all(|t| t == "d" || t == "e"), "{to:?}");
    }

    #[test]
    fn tablets_without_a_live_majority_or_a_destination_are_skipped() {
        // t0 lost two of three voters; t1 (replication factor 1) its only one.
        let c = catalog(3, &[&["a", "b", "c"], &["a", "d", "e"]]);
        let rows = [("a", "/L", false), ("b", "/L", false), ("c", "/L", true), ("d", "/L", true), ("e", "/L", true)];
        let p = plan(&c, &rows, 10, 0);
        assert_eq!(p.skipped, vec![(TabletId::from("t0"), Skipped::NoQuorum { live: 1, voters: 3 })]);
        // t1 -> b is dead too, c is the only live server left.
        assert_eq!(moves(&p), vec![("t1".into(), Some("a".into()), "c".into())]);
        let single = catalog(1, &[&["a"]]);
        let p = plan(&single, &rows, 10, 0);
        assert_eq!(p.skipped, vec![(TabletId::from("t0"), Skipped::NoQuorum { live: 0, voters: 1 })]);
        assert!(p.moves.is_empty());
        // Three servers for replication factor 3: nowhere to go.
        let c = catalog(3, &[&["a", "b", "c"]]);
        let p = plan(&c, &[("a", "/L", true), ("b", "/L", true), ("c", "/L", false)], 10, 0);
        assert!(matches!(p.skipped.as_slice(), [(_, Skipped::NoServer(_))]), "{p:?}");
    }

    #[test]
    fn the_most_endangered_tablets_go_first_and_short_tablets_gain_a_replica() {
        // Failed: d, and x (not even registered). t0 can lose one more voter, t1 none; u0
        // has two voters for replication factor 3 and cannot lose any either.
        let c = catalog_of(&[
            ("t", 5, &[&["a", "b", "c", "d", "e"], &["a", "b", "c", "d", "x"]]),
            ("u", 3, &[&["f", "g"]]),
        ]);
        let rows: Vec<(&str, &str, bool)> =
            ["a", "b", "c", "d", "e", "f", "g", "h"].iter().map(|id| (*id, "/L", *id != "d")).collect();
        let dead = failed(&["d", "x"]);
        let run = |max| {
            let mut placer = Placer::new(servers(&c, &rows), StdRng::seed_from_u64(1));
            plan_moves(&c, &dead, &mut placer, max)
        };
        let p = run(2);
        assert_eq!(p.moves.iter().map(|m| m.tablet_id.as_str()).collect::<Vec<_>>(), ["t1", "u0"]);
        assert_eq!(p.moves[0].replica_move.from, Some("d".into()), "the first failed voter by id");
        assert_eq!(p.moves[1].replica_move.from, None, "u0 only gains a replica");
        assert!(!["f", "g"].contains(&p.moves[1].replica_move.to.as_str()));
        let p = run(3);
        assert_eq!(p.moves.iter().map(|m| m.tablet_id.as_str()).collect::<Vec<_>>(), ["t1", "u0", "t0"]);
    }

    #[test]
    fn seed_example_replacement_lands_on_d_and_a_forced_one_is_a_violation() {
        // Replicas on A, C, E in /L0, /L1, /L2 of A..E (/L0, /L0, /L1, /L1, /L2).
        let c = catalog(3, &[&["A", "C", "E"]]);
        let cluster = [("A", "/L0"), ("B", "/L0"), ("C", "/L1"), ("D", "/L1"), ("E", "/L2")];
        let rows =
            |dead: &str| -> Vec<(&str, &str, bool)> { cluster.iter().map(|&(id, l)| (id, l, id != dead)).collect() };
        for seed in 0..50 {
            let p = plan(&c, &rows("C"), 10, seed);
            assert_eq!(moves(&p), vec![("t0".into(), Some("C".into()), "D".into())], "seed {seed}");
            assert_eq!(p.violations, 0);
            // E fails: /L2 has no other server; B or D, against the policy, rather than
            // staying under-replicated.
            let p = plan(&c, &rows("E"), 10, seed);
            let [m] = p.moves.as_slice() else { panic!("one move: {p:?}") };
            assert!(["B", "D"].contains(&m.replica_move.to.as_str()), "seed {seed}: {m:?}");
            assert_eq!(p.violations, 1);
        }
    }

    #[test]
    fn a_new_leader_resumes_the_recorded_moves_and_gives_up_dead_destinations() {
        let mut c = catalog(3, &[&["a", "b", "c"]]);
        let rows = with_dead(&FLAT, &["c"]);
        let p = plan(&c, &rows, 10, 0);
        c.apply(&CatalogCommand::StartReplicaMoves(p.moves.clone()), 3);
        // The catalog (replicated, so any new leader's) holds the move: nothing new is
        // planned, and the recorded move is advanced.
        let rebuilt = Catalog::from_records(c.records());
        assert_eq!(plan(&rebuilt, &rows, 10, 0), Plan::default());
        let tablet = rebuilt.tablet(&"t0".into()).expect("t0");
        let recorded = tablet.pending_move.clone().expect("move recorded");
        assert_eq!(recorded, ReplicaMove { from: Some("c".into()), to: "d".into() });
        assert_eq!(next_action(tablet, &recorded, &failed(&["c"])), Action::Advance);
        // The destination dies before its promotion: give up, then plan anew.
        assert_eq!(next_action(tablet, &recorded, &failed(&["c", "d"])), Action::GiveUp);
        // Once it is a voter the move goes on whatever happens to it.
        let promoted = TabletConfigUpdate {
            tablet_id: "t0".into(),
            term: 1,
            replicas: ids(&["a", "b", "c", "d"]),
            leader: Some("a".into()),
            config_index: Some(4),
        };
        c.apply(&CatalogCommand::UpdateTabletConfigs(vec![promoted]), 4);
        let tablet = c.tablet(&"t0".into()).expect("t0");
        assert_eq!(next_action(tablet, &recorded, &failed(&["c", "d"])), Action::Advance);
    }

    #[test]
    fn every_replica_leaves_a_decommissioning_server_and_none_lands_on_one() {
        let c0 = catalog(3, &[&["a", "b", "c"], &["b", "c", "d"], &["a", "c", "e"], &["a", "b", "d"]]);
        let rows = [("a", "/L", true), ("b", "/L", true), ("c", "/L", true), ("d", "/L", true), ("e", "/L", true)];
        for seed in 0..20 {
            let mut c = c0.clone();
            decommission(&mut c, &["c", "e"]);
            let p = plan(&c, &rows, 10, seed);
            // t0, t1 move off c; t2 off c (the first decommissioning voter by id).
            assert_eq!(
                moves(&p).iter().map(|(t, from, _)| (t.clone(), from.clone())).collect::<Vec<_>>(),
                vec![("t0".into(), Some("c".into())), ("t1".into(), Some("c".into())), ("t2".into(), Some("c".into()))],
                "seed {seed}"
            );
            assert!(p.moves.iter().all(|m| !["c", "e"].contains(&m.replica_move.to.as_str())), "seed {seed}: {p:?}");
            assert_eq!((p.violations, p.skipped.len()), (0, 0));
            // Once those complete, t2 still has a voter on e: it moves next, to a or b or d
            // not already in it.
            complete(&mut c, &p, 200);
            let p = plan(&c, &rows, 10, seed);
            let [m] = p.moves.as_slice() else { panic!("one move: {p:?}") };
            assert_eq!((m.tablet_id.as_str(), m.replica_move.from.as_ref().map(TServerId::as_str)), ("t2", Some("e")));
            complete(&mut c, &p, 300);
            assert_eq!(plan(&c, &rows, 10, seed), Plan::default(), "seed {seed}: drained");
            for server in ["c", "e"] {
                assert_eq!(c.tablets().filter(|t| t.replicas.contains(&server.into())).count(), 0);
            }
            assert!(c.tablets().all(|t| t.replicas.len() == 3));
        }
    }

    #[test]
    fn decommissioning_destinations_follow_the_location_policy() {
        // A..E in /L0, /L0, /L1, /L1, /L2; replicas on A, C, E; C is decommissioned: the
        // only compliant destination is D (B would put two in /L0).
        let mut c = catalog(3, &[&["A", "C", "E"]]);
        decommission(&mut c, &["C"]);
        let rows = [("A", "/L0", true), ("B", "/L0", true), ("C", "/L1", true), ("D", "/L1", true), ("E", "/L2", true)];
        for seed in 0..50 {
            let p = plan(&c, &rows, 10, seed);
            assert_eq!(moves(&p), vec![("t0".into(), Some("C".into()), "D".into())], "seed {seed}");
            assert_eq!(p.violations, 0);
        }
        // With D decommissioned too, C's replica still leaves (to B, a counted violation),
        // rather than staying on a server that is going away.
        decommission(&mut c, &["D"]);
        let p = plan(&c, &rows, 10, 0);
        assert_eq!(moves(&p), vec![("t0".into(), Some("C".into()), "B".into())]);
        assert_eq!(p.violations, 1);
    }

    #[test]
    fn repairs_come_before_draining_and_nowhere_to_go_is_skipped() {
        // t0 lost c (failed); t1 only has a voter on decommissioning a. Budget one: t0.
        let mut c = catalog(3, &[&["a", "b", "c"], &["a", "d", "e"]]);
        decommission(&mut c, &["a"]);
        let rows = [("a", "/L", true), ("b", "/L", true), ("c", "/L", false), ("d", "/L", true), ("e", "/L", true)];
        let p = plan(&c, &rows, 1, 0);
        assert_eq!(moves(&p).iter().map(|m| m.0.as_str()).collect::<Vec<_>>(), ["t0"]);
        assert_eq!(p.moves[0].replica_move.from, Some("c".into()));
        assert_ne!(p.moves[0].replica_move.to, TServerId::from("a"));
        // Three servers for replication factor 3, one decommissioning: nowhere to go.
        let mut c = catalog(3, &[&["a", "b", "c"]]);
        decommission(&mut c, &["a"]);
        let p = plan(&c, &[("a", "/L", true), ("b", "/L", true), ("c", "/L", true)], 10, 0);
        assert!(p.moves.is_empty());
        assert!(matches!(p.skipped.as_slice(), [(_, Skipped::NoServer(_))]), "{p:?}");
        // Cancelling the decommission: nothing left to do.
        c.apply(&CatalogCommand::SetTServerState { uuid: "a".into(), decommissioning: false }, 500);
        assert_eq!(plan(&c, &[("a", "/L", true), ("b", "/L", true), ("c", "/L", true)], 10, 0), Plan::default());
    }

    #[test]
    fn failed_servers_are_silent_ones_and_unknown_ones_once_the_leader_waited() {
        let c = catalog(3, &[&["a", "b", "c"]]);
        let live: BTreeMap<TServerId, bool> = [("a".into(), true), ("b".into(), false)].into();
        assert_eq!(failed_servers(&c, &live, false), failed(&["b"]));
        assert_eq!(failed_servers(&c, &live, true), failed(&["b", "c"]));
    }
}
