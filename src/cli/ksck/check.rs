//! The checks of `kudu cluster ksck`: a pure function from what the masters and tablet
//! servers answered ([`Snapshot`]) to a [`Report`] of the cluster's health.

use std::collections::{BTreeMap, BTreeSet};

use kudu::location::Location;
use kudu::pb::master as pb;
use kudu::pb::tserver as tpb;
use kudu::placement::policy;
use serde::Serialize;

/// One master's answer to ConnectToMaster, or why there was none.
#[derive(Clone, Debug)]
pub struct MasterAnswer {
    pub address: String,
    pub answer: Result<pb::ConnectToMasterResponse, String>,
}

/// A table and its tablets as the leader master's catalog has them.
#[derive(Clone, Debug)]
pub struct TableView {
    pub table: pb::TableInfo,
    pub tablets: Vec<pb::TabletLocations>,
}

/// Everything ksck asked, as answered.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub masters: Vec<MasterAnswer>,
    /// From the leader master (empty if none answered).
    pub tservers: Vec<pb::TabletServerEntry>,
    pub tables: Vec<TableView>,
    /// Each live tablet server's own list of replicas (by uuid), or why it did not answer.
    pub replicas: BTreeMap<String, Result<Vec<tpb::TabletReplica>, String>>,
    /// Why the leader master could not be asked about tablet servers and tables, if so.
    pub leader_error: Option<String>,
}

/// What kind of problem was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProblemKind {
    MasterUnreachable,
    NoLeaderMaster,
    MastersDisagree,
    TabletServerUnresponsive,
    TabletServerUnreachable,
    RegistrationFailed,
    WrongReplicaCount,
    UnderReplicated,
    ReplicaMoveInProgress,
    NoTabletLeader,
    ReplicaUnavailable,
    ReplicaMissing,
    ConfigMismatch,
    PlacementViolation,
}

impl ProblemKind {
    /// The name in JSON output, e.g. `REPLICA_UNAVAILABLE`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::MasterUnreachable => "MASTER_UNREACHABLE",
            ProblemKind::NoLeaderMaster => "NO_LEADER_MASTER",
            ProblemKind::MastersDisagree => "MASTERS_DISAGREE",
            ProblemKind::TabletServerUnresponsive => "TABLET_SERVER_UNRESPONSIVE",
            ProblemKind::TabletServerUnreachable => "TABLET_SERVER_UNREACHABLE",
            ProblemKind::RegistrationFailed => "REGISTRATION_FAILED",
            ProblemKind::WrongReplicaCount => "WRONG_REPLICA_COUNT",
            ProblemKind::UnderReplicated => "UNDER_REPLICATED",
            ProblemKind::ReplicaMoveInProgress => "REPLICA_MOVE_IN_PROGRESS",
            ProblemKind::NoTabletLeader => "NO_TABLET_LEADER",
            ProblemKind::ReplicaUnavailable => "REPLICA_UNAVAILABLE",
            ProblemKind::ReplicaMissing => "REPLICA_MISSING",
            ProblemKind::ConfigMismatch => "CONFIG_MISMATCH",
            ProblemKind::PlacementViolation => "PLACEMENT_VIOLATION",
        }
    }
}

/// One problem, with what it concerns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The master, tablet server or tablet concerned.
    pub subject: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct MasterRow {
    pub address: String,
    pub node_id: u64,
    pub role: String,
    pub term: u64,
    pub leader_id: u64,
    pub error: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct TServerRow {
    pub uuid: String,
    pub rpc_address: String,
    pub location: String,
    pub live: bool,
    pub replicas: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct TableRow {
    pub name: String,
    pub replication_factor: u32,
    pub tablets: usize,
    /// Tablets without any problem.
    pub healthy_tablets: usize,
}

/// The outcome of ksck.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub healthy: bool,
    pub masters: Vec<MasterRow>,
    pub tablet_servers: Vec<TServerRow>,
    pub tables: Vec<TableRow>,
    /// Tablets with a majority of their replicas in one location.
    pub placement_violations: usize,
    /// Tablets with fewer replicas on live tablet servers than their replication factor.
    pub under_replicated_tablets: usize,
    /// Tablets with a replica move (re-replication) in progress.
    pub moves_in_progress: usize,
    pub problems: Vec<Problem>,
}

/// Checks everything in `snapshot`.
pub fn check(snapshot: &Snapshot) -> Report {
    let mut problems = check_masters(&snapshot.masters);
    if let Some(e) = &snapshot.leader_error {
        problems.push(Problem {
            kind: ProblemKind::NoLeaderMaster,
            subject: "masters".into(),
            message: format!("tablet servers and tables could not be checked: {e}"),
        });
    }
    problems.extend(check_tservers(snapshot));
    let (tables, tablet_problems, placement_violations) = check_tables(snapshot);
    problems.extend(tablet_problems);
    let tablets_with = |kind| {
        let subjects: BTreeSet<&str> = problems.iter().filter(|p| p.kind == kind).map(|p| p.subject.as_str()).collect();
        subjects.len()
    };
    let under_replicated_tablets = tablets_with(ProblemKind::UnderReplicated);
    let moves_in_progress = tablets_with(ProblemKind::ReplicaMoveInProgress);
    Report {
        healthy: problems.is_empty(),
        masters: snapshot.masters.iter().map(master_row).collect(),
        tablet_servers: snapshot
            .tservers
            .iter()
            .map(|s| TServerRow {
                uuid: s.uuid.clone(),
                rpc_address: s.rpc_address.clone(),
                location: s.location.clone(),
                live: s.live,
                replicas: s.num_replicas,
            })
            .collect(),
        tables,
        placement_violations,
        under_replicated_tablets,
        moves_in_progress,
        problems,
    }
}

fn master_row(m: &MasterAnswer) -> MasterRow {
    match &m.answer {
        Ok(a) => MasterRow {
            address: m.address.clone(),
            node_id: a.node_id,
            role: pb::Role::try_from(a.role).unwrap_or(pb::Role::Unknown).as_str_name().to_string(),
            term: a.term,
            leader_id: a.leader_id,
            error: String::new(),
        },
        Err(e) => MasterRow {
            address: m.address.clone(),
            node_id: 0,
            role: "UNREACHABLE".into(),
            term: 0,
            leader_id: 0,
            error: e.clone(),
        },
    }
}

/// Every master answers, and the members agree on the leader, the term and the membership.
fn check_masters(masters: &[MasterAnswer]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut members = Vec::new();
    for m in masters {
        match &m.answer {
            Err(e) => problems.push(Problem {
                kind: ProblemKind::MasterUnreachable,
                subject: m.address.clone(),
                message: e.clone(),
            }),
            Ok(a) if a.role == pb::Role::NonMember as i32 => {}
            Ok(a) => members.push((m.address.as_str(), a)),
        }
    }
    let disagree = |what: &str, views: BTreeMap<String, Vec<&str>>| Problem {
        kind: ProblemKind::MastersDisagree,
        subject: "masters".into(),
        message: format!(
            "masters disagree on the {what}: {}",
            views.iter().map(|(v, who)| format!("{v} (by {})", who.join(", "))).collect::<Vec<_>>().join("; ")
        ),
    };
    let mut leaders: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut terms: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut configs: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (address, a) in &members {
        let leader = if a.leader_id == 0 { "none".to_string() } else { a.leader_id.to_string() };
        leaders.entry(leader).or_default().push(address);
        terms.entry(a.term.to_string()).or_default().push(address);
        let ids: BTreeSet<String> =
            a.members.iter().map(|m| format!("{}{}", m.node_id, if m.voter { "" } else { " (learner)" })).collect();
        configs.entry(format!("[{}]", ids.into_iter().collect::<Vec<_>>().join(", "))).or_default().push(address);
    }
    if members.is_empty() || leaders.keys().all(|l| l == "none") {
        problems.push(Problem {
            kind: ProblemKind::NoLeaderMaster,
            subject: "masters".into(),
            message: "no master knows a leader".into(),
        });
    } else if leaders.len() > 1 {
        problems.push(disagree("leader", leaders));
    }
    if terms.len() > 1 {
        problems.push(disagree("term", terms));
    }
    if configs.len() > 1 {
        problems.push(disagree("membership", configs));
    }
    problems
}

fn check_tservers(snapshot: &Snapshot) -> Vec<Problem> {
    let mut problems = Vec::new();
    for s in &snapshot.tservers {
        let subject = format!("tablet server {} ({})", s.uuid, s.rpc_address);
        // A decommissioned server that holds nothing may be gone (a scale-down removed it).
        let retired = s.decommissioning && s.num_replicas == 0;
        if !s.live && !retired {
            problems.push(Problem {
                kind: ProblemKind::TabletServerUnresponsive,
                subject: subject.clone(),
                message: format!("no heartbeat for {:.1}s", s.millis_since_heartbeat as f64 / 1000.0),
            });
        } else if let Some(Err(e)) = snapshot.replicas.get(&s.uuid) {
            problems.push(Problem {
                kind: ProblemKind::TabletServerUnreachable,
                subject: subject.clone(),
                message: format!("it heartbeats but its replicas could not be listed: {e}"),
            });
        }
        if !s.registration_error.is_empty() {
            problems.push(Problem {
                kind: ProblemKind::RegistrationFailed,
                subject,
                message: s.registration_error.clone(),
            });
        }
    }
    problems
}

fn check_tables(snapshot: &Snapshot) -> (Vec<TableRow>, Vec<Problem>, usize) {
    let servers: BTreeMap<&str, &pb::TabletServerEntry> =
        snapshot.tservers.iter().map(|s| (s.uuid.as_str(), s)).collect();
    let locations: BTreeMap<&str, Location> =
        snapshot.tservers.iter().filter_map(|s| Some((s.uuid.as_str(), s.location.parse().ok()?))).collect();
    let policy_applies = policy::applies(locations.values());
    // Each tablet server's own view, by tablet then server.
    let mut reported: BTreeMap<&str, BTreeMap<&str, &tpb::TabletReplica>> = BTreeMap::new();
    for (ts, replicas) in &snapshot.replicas {
        for r in replicas.iter().flatten() {
            reported.entry(r.tablet_id.as_str()).or_default().insert(ts.as_str(), r);
        }
    }
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut violations = 0;
    for view in &snapshot.tables {
        let rf = view.table.replication_factor;
        let mut healthy = 0;
        for tablet in &view.tablets {
            let subject =
                format!("table {} tablet {} (partition {})", view.table.name, tablet.tablet_id, tablet.partition);
            let mut found = Vec::new();
            let mut problem = |kind, message: String| found.push(Problem { kind, subject: subject.clone(), message });
            let voters: BTreeSet<&str> = tablet.replicas.iter().map(|r| r.ts_uuid.as_str()).collect();
            let live = voters.iter().filter(|ts| servers.get(*ts).is_some_and(|s| s.live)).count();
            if live < rf as usize {
                problem(
                    ProblemKind::UnderReplicated,
                    format!("{live} of {rf} replicas on live tablet servers ({} voters)", voters.len()),
                );
            }
            let moving = tablet.pending_move.as_ref().filter(|m| !m.to_uuid.is_empty());
            match moving {
                Some(m) if m.from_uuid.is_empty() => {
                    problem(ProblemKind::ReplicaMoveInProgress, format!("adding a replica on {}", m.to_uuid))
                }
                Some(m) => problem(
                    ProblemKind::ReplicaMoveInProgress,
                    format!("replacing the replica on {} with one on {}", m.from_uuid, m.to_uuid),
                ),
                // A move holds one more voter for a while; otherwise the count must match.
                None if voters.len() > rf as usize => problem(
                    ProblemKind::WrongReplicaCount,
                    format!("{} replicas, replication factor {rf}", voters.len()),
                ),
                None => {}
            }
            if tablet.leader_ts_uuid.is_empty() {
                problem(ProblemKind::NoTabletLeader, "no leader reported".into());
            }
            let views = reported.get(tablet.tablet_id.as_str());
            for ts in &voters {
                match servers.get(ts) {
                    None => problem(ProblemKind::ReplicaUnavailable, format!("replica on unknown tablet server {ts}")),
                    Some(s) if !s.live => problem(
                        ProblemKind::ReplicaUnavailable,
                        format!("replica on unresponsive tablet server {ts} ({})", s.rpc_address),
                    ),
                    Some(_) if !matches!(snapshot.replicas.get(*ts), Some(Ok(_))) => {}
                    Some(_) => match views.and_then(|v| v.get(ts)) {
                        Some(r) if r.state == "RUNNING" => {
                            let theirs: BTreeSet<&str> = r.peer_uuids.iter().map(String::as_str).collect();
                            if theirs != voters {
                                problem(
                                    ProblemKind::ConfigMismatch,
                                    format!("{ts} reports voters {theirs:?}, the catalog has {voters:?}"),
                                );
                            }
                        }
                        Some(r) => problem(ProblemKind::ReplicaMissing, format!("the replica on {ts} is {}", r.state)),
                        None => problem(ProblemKind::ReplicaMissing, format!("{ts} does not host a replica")),
                    },
                }
            }
            // The leader the newest term's replicas report, against the catalog's.
            let newest = views.and_then(|v| v.values().filter(|r| r.state == "RUNNING").max_by_key(|r| r.term));
            if let Some(r) = newest.filter(|r| !r.leader_uuid.is_empty() && r.leader_uuid != tablet.leader_ts_uuid) {
                problem(
                    ProblemKind::ConfigMismatch,
                    format!(
                        "replicas report leader {} in term {}, the catalog has {} in term {}",
                        r.leader_uuid,
                        r.term,
                        if tablet.leader_ts_uuid.is_empty() { "none" } else { &tablet.leader_ts_uuid },
                        tablet.term
                    ),
                );
            }
            if policy_applies {
                // A move is judged by its outcome: without the replica it replaces.
                let leaving = moving.map(|m| m.from_uuid.as_str());
                let known: Vec<&Location> =
                    voters.iter().filter(|ts| Some(**ts) != leaving).filter_map(|ts| locations.get(ts)).collect();
                if let Some(location) = policy::majority_location(known, rf as usize) {
                    violations += 1;
                    problem(
                        ProblemKind::PlacementViolation,
                        format!("a majority of the replicas is in location {location}"),
                    );
                }
            }
            healthy += usize::from(found.is_empty());
            problems.extend(found);
        }
        rows.push(TableRow {
            name: view.table.name.clone(),
            replication_factor: rf,
            tablets: view.tablets.len(),
            healthy_tablets: healthy,
        });
    }
    (rows, problems, violations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(node_id: u64, voter: bool) -> pb::MasterMember {
        pb::MasterMember { node_id, voter, ..Default::default() }
    }

    fn master(address: &str, node_id: u64, leader_id: u64, term: u64, members: &[u64]) -> MasterAnswer {
        let role = if node_id == leader_id { pb::Role::Leader } else { pb::Role::Follower };
        MasterAnswer {
            address: address.into(),
            answer: Ok(pb::ConnectToMasterResponse {
                node_id,
                role: role as i32,
                term,
                leader_id,
                members: members.iter().map(|&id| member(id, true)).collect(),
                ..Default::default()
            }),
        }
    }

    fn tserver(uuid: &str, location: &str, live: bool) -> pb::TabletServerEntry {
        pb::TabletServerEntry {
            uuid: uuid.into(),
            rpc_address: format!("{uuid}:7050"),
            location: location.into(),
            live,
            ..Default::default()
        }
    }

    fn tablet(id: &str, replicas: &[&str], leader: &str) -> pb::TabletLocations {
        pb::TabletLocations {
            tablet_id: id.into(),
            replicas: replicas
                .iter()
                .map(|r| pb::ReplicaLocation { ts_uuid: r.to_string(), ..Default::default() })
                .collect(),
            leader_ts_uuid: leader.into(),
            term: 2,
            ..Default::default()
        }
    }

    fn replica(tablet: &str, peers: &[&str], leader: &str) -> tpb::TabletReplica {
        tpb::TabletReplica {
            tablet_id: tablet.into(),
            peer_uuids: peers.iter().map(|p| p.to_string()).collect(),
            state: "RUNNING".into(),
            leader_uuid: leader.into(),
            term: 2,
            ..Default::default()
        }
    }

    /// Three masters led by 1; tablet servers a, b, c in /L0, /L1, /L2 (and d in /L0); table
    /// `t` (RF 3) with tablet x on a, b, c led by a, each server reporting it.
    fn healthy() -> Snapshot {
        let servers = [("a", "/L0"), ("b", "/L1"), ("c", "/L2"), ("d", "/L0")];
        Snapshot {
            masters: vec![
                master("m1", 1, 1, 5, &[1, 2, 3]),
                master("m2", 2, 1, 5, &[1, 2, 3]),
                master("m3", 3, 1, 5, &[1, 2, 3]),
            ],
            tservers: servers.iter().map(|(u, l)| tserver(u, l, true)).collect(),
            tables: vec![TableView {
                table: pb::TableInfo { name: "t".into(), replication_factor: 3, ..Default::default() },
                tablets: vec![tablet("x", &["a", "b", "c"], "a")],
            }],
            replicas: servers
                .iter()
                .map(|(u, _)| {
                    let hosted = if *u == "d" { Vec::new() } else { vec![replica("x", &["a", "b", "c"], "a")] };
                    (u.to_string(), Ok(hosted))
                })
                .collect(),
            leader_error: None,
        }
    }

    fn kinds(report: &Report) -> Vec<ProblemKind> {
        report.problems.iter().map(|p| p.kind).collect()
    }

    #[test]
    fn kind_names_match_json() {
        let all = [
            ProblemKind::MasterUnreachable,
            ProblemKind::NoLeaderMaster,
            ProblemKind::MastersDisagree,
            ProblemKind::TabletServerUnresponsive,
            ProblemKind::TabletServerUnreachable,
            ProblemKind::RegistrationFailed,
            ProblemKind::WrongReplicaCount,
            ProblemKind::UnderReplicated,
            ProblemKind::ReplicaMoveInProgress,
            ProblemKind::NoTabletLeader,
            ProblemKind::ReplicaUnavailable,
            ProblemKind::ReplicaMissing,
            ProblemKind::ConfigMismatch,
            ProblemKind::PlacementViolation,
        ];
        for kind in all {
            assert_eq!(serde_json::to_value(kind).expect("json"), kind.as_str());
        }
    }

    #[test]
    fn a_healthy_cluster_has_no_problems() {
        let report = check(&healthy());
        assert!(report.healthy, "{:?}", report.problems);
        assert_eq!((report.masters.len(), report.tablet_servers.len(), report.placement_violations), (3, 4, 0));
        assert_eq!(report.tables[0].healthy_tablets, 1);
    }

    #[test]
    fn each_problem_is_found() {
        type Break = fn(&mut Snapshot);
        let cases: Vec<(&str, Break, Vec<ProblemKind>)> = vec![
            (
                "a master is down",
                |s| s.masters[2].answer = Err("connection refused".into()),
                vec![ProblemKind::MasterUnreachable],
            ),
            (
                "masters disagree on the leader and term",
                |s| s.masters[2] = master("m3", 3, 3, 6, &[1, 2, 3]),
                vec![ProblemKind::MastersDisagree, ProblemKind::MastersDisagree],
            ),
            (
                "masters disagree on membership",
                |s| s.masters[1] = master("m2", 2, 1, 5, &[1, 2]),
                vec![ProblemKind::MastersDisagree],
            ),
            (
                "no leader",
                |s| {
                    for m in &mut s.masters {
                        if let Ok(a) = &mut m.answer {
                            a.leader_id = 0;
                        }
                    }
                },
                vec![ProblemKind::NoLeaderMaster],
            ),
            (
                "a tablet server died",
                |s| {
                    s.tservers[1].live = false;
                    s.replicas.remove("b");
                },
                vec![
                    ProblemKind::TabletServerUnresponsive,
                    ProblemKind::UnderReplicated,
                    ProblemKind::ReplicaUnavailable,
                ],
            ),
            (
                "a live tablet server does not answer",
                |s| {
                    s.replicas.insert("d".into(), Err("deadline".into()));
                },
                vec![ProblemKind::TabletServerUnreachable],
            ),
            (
                "registration failed",
                |s| s.tservers[3].registration_error = "mapping failed".into(),
                vec![ProblemKind::RegistrationFailed],
            ),
            (
                "under-replicated",
                |s| {
                    s.tables[0].tablets[0] = tablet("x", &["a", "b"], "a");
                    s.replicas.insert("c".into(), Ok(Vec::new()));
                    for ts in ["a", "b"] {
                        s.replicas.insert(ts.into(), Ok(vec![replica("x", &["a", "b"], "a")]));
                    }
                },
                vec![ProblemKind::UnderReplicated],
            ),
            (
                "over-replicated",
                |s| {
                    s.tables[0].tablets[0] = tablet("x", &["a", "b", "c", "d"], "a");
                    for ts in ["a", "b", "c", "d"] {
                        s.replicas.insert(ts.into(), Ok(vec![replica("x", &["a", "b", "c", "d"], "a")]));
                    }
                },
                vec![ProblemKind::WrongReplicaCount, ProblemKind::PlacementViolation],
            ),
            (
                "a replica move in progress, the joining replica promoted",
                |s| {
                    s.tables[0].tablets[0] = tablet("x", &["a", "b", "c", "d"], "a");
                    s.tables[0].tablets[0].pending_move =
                        Some(pb::ReplicaMove { from_uuid: "c".into(), to_uuid: "d".into() });
                    for ts in ["a", "b", "c", "d"] {
                        s.replicas.insert(ts.into(), Ok(vec![replica("x", &["a", "b", "c", "d"], "a")]));
                    }
                },
                vec![ProblemKind::ReplicaMoveInProgress, ProblemKind::PlacementViolation],
            ),
            (
                "no leader for a tablet",
                |s| {
                    s.tables[0].tablets[0].leader_ts_uuid.clear();
                    for r in s.replicas.values_mut().flatten().flatten() {
                        r.leader_uuid.clear();
                    }
                },
                vec![ProblemKind::NoTabletLeader],
            ),
            (
                "a replica is missing",
                |s| {
                    s.replicas.insert("c".into(), Ok(Vec::new()));
                },
                vec![ProblemKind::ReplicaMissing],
            ),
            (
                "a server reports another config",
                |s| {
                    s.replicas.insert("c".into(), Ok(vec![replica("x", &["a", "b", "c", "d"], "a")]));
                },
                vec![ProblemKind::ConfigMismatch],
            ),
            (
                "a newer leader than the catalog's",
                |s| {
                    let mut newer = replica("x", &["a", "b", "c"], "b");
                    newer.term = 3;
                    s.replicas.insert("b".into(), Ok(vec![newer]));
                },
                vec![ProblemKind::ConfigMismatch],
            ),
            (
                "two replicas in /L0",
                |s| {
                    s.tables[0].tablets[0] = tablet("x", &["a", "b", "d"], "a");
                    let moved = replica("x", &["a", "b", "d"], "a");
                    for ts in ["a", "b", "d"] {
                        s.replicas.insert(ts.into(), Ok(vec![moved.clone()]));
                    }
                    s.replicas.insert("c".into(), Ok(Vec::new()));
                },
                vec![ProblemKind::PlacementViolation],
            ),
        ];
        for (name, break_it, expected) in cases {
            let mut snapshot = healthy();
            break_it(&mut snapshot);
            let report = check(&snapshot);
            assert_eq!(kinds(&report), expected, "{name}: {:#?}", report.problems);
            assert!(!report.healthy, "{name}");
        }
    }

    #[test]
    fn a_gone_decommissioned_server_without_replicas_is_no_problem() {
        let mut snapshot = healthy();
        let mut retired = tserver("z", "/L2", false);
        retired.decommissioning = true;
        snapshot.tservers.push(retired.clone());
        let report = check(&snapshot);
        assert!(report.healthy, "{:#?}", report.problems);
        // Still hosting a replica, or not decommissioned: reported.
        for (decommissioning, replicas) in [(true, 1), (false, 0)] {
            let mut snapshot = healthy();
            snapshot.tservers.push(pb::TabletServerEntry {
                decommissioning,
                num_replicas: replicas,
                ..retired.clone()
            });
            assert_eq!(kinds(&check(&snapshot)), vec![ProblemKind::TabletServerUnresponsive]);
        }
    }

    #[test]
    fn a_dead_servers_tablet_is_under_replicated_then_moving_then_healthy() {
        let mut snapshot = healthy();
        snapshot.tservers[2].live = false;
        snapshot.replicas.remove("c");
        let report = check(&snapshot);
        assert_eq!((report.under_replicated_tablets, report.moves_in_progress), (1, 0));
        assert!(report.problems.iter().any(|p| p.kind == ProblemKind::UnderReplicated
            && p.subject.contains("tablet x")
            && p.message.contains("2 of 3")));
        // Re-replication: d joins (a non-voter, so not in the catalog's voters yet).
        snapshot.tables[0].tablets[0].pending_move =
            Some(pb::ReplicaMove { from_uuid: "c".into(), to_uuid: "d".into() });
        let report = check(&snapshot);
        assert_eq!((report.under_replicated_tablets, report.moves_in_progress), (1, 1));
        let move_problem = report.problems.iter().find(|p| p.kind == ProblemKind::ReplicaMoveInProgress);
        assert!(move_problem.is_some_and(|p| p.message.contains("on c with one on d")), "{:?}", report.problems);
        // Done: d replaced c (a server in /L0 again, as a, which the policy check reports).
        snapshot.tables[0].tablets[0] = tablet("x", &["a", "b", "d"], "a");
        for ts in ["a", "b", "d"] {
            snapshot.replicas.insert(ts.into(), Ok(vec![replica("x", &["a", "b", "d"], "a")]));
        }
        let report = check(&snapshot);
        assert_eq!((report.under_replicated_tablets, report.moves_in_progress), (0, 0));
        assert_eq!(kinds(&report), vec![ProblemKind::TabletServerUnresponsive, ProblemKind::PlacementViolation]);
    }

    #[test]
    fn problems_name_the_tablets_and_violations_are_counted() {
        let mut snapshot = healthy();
        snapshot.tservers[2].live = false;
        snapshot.tables[0].tablets[0] = tablet("x", &["a", "d", "c"], "a");
        let report = check(&snapshot);
        assert_eq!(report.placement_violations, 1);
        assert!(report.problems.iter().any(|p| p.subject.contains("tablet x") && p.message.contains("/L0")));
        assert_eq!(report.tables[0].healthy_tablets, 0);
    }

    #[test]
    fn without_locations_the_policy_is_not_checked() {
        let mut snapshot = healthy();
        for s in &mut snapshot.tservers {
            s.location.clear();
        }
        snapshot.tables[0].tablets[0] = tablet("x", &["a", "b", "d"], "a");
        for ts in ["a", "b", "d"] {
            snapshot.replicas.insert(ts.into(), Ok(vec![replica("x", &["a", "b", "d"], "a")]));
        }
        snapshot.replicas.insert("c".into(), Ok(Vec::new()));
        assert!(check(&snapshot).healthy);
    }
}
