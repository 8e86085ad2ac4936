//! The leader's answer to a tablet server's heartbeat, decided from the applied catalog, the
//! registry's addresses and the report: a pure function, so every rule is table-tested.
//!
//! The rules:
//! - No cluster id in the catalog yet: answer as a non-leader (no instructions at all).
//! - A report naming another cluster id is refused with WRONG_CLUSTER ([`check_cluster`]).
//! - RUNNING replicas whose report supersedes the catalog (a configuration of a higher Raft
//!   log index; a newer term, or the same term naming a leader where none is recorded)
//!   become ONE `UpdateTabletConfigs` command; nothing is proposed when nothing changed.
//!   Only replicas the catalog wants on the server (a voter, or the destination of the
//!   tablet's move) are heard: a replaced replica that comes back reports an old group.
//! - `create_replicas`: running tablets that list the server as a replica and that it did
//!   not report in any state. Once the tablet's group has reported a configuration (it
//!   exists), a missing replica joins it instead of initializing a group (`joining`).
//! - The destination of a tablet's move is told to create a joining replica (empty, never
//!   initializing the group) unless it reports one RUNNING; a tombstone of the tablet on it
//!   is reused.
//! - `delete_replicas`: reported tablets the catalog tombstoned (unless already reported
//!   tombstoned), and RUNNING replicas of running tablets the catalog no longer wants on the
//!   server (it was replaced: the catalog's configuration, newer than the replica's, left
//!   it out, and it is not the destination of the move in progress). A tablet the catalog
//!   does not know is never deleted, only reported back in [`Decision::unknown_tablets`].
//! - `schema_updates`: RUNNING replicas reporting a schema version below the table's.
//! - `peer_addresses`: the registry's address of every other server that is a peer of a
//!   tablet the server hosts or is assigned, including the destinations of moves.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::catalog::{Catalog, CatalogCommand, Tablet, TabletConfigUpdate};
use crate::convert::schema_to_pb;
use crate::ids::{TServerId, TabletId};
use crate::pb::master as pb;

/// Why a heartbeat is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    #[error(
        "tablet server {ts} belongs to cluster {theirs} but this master's cluster is {ours}; \
         the heartbeat is refused and nothing is recorded for it"
    )]
    WrongCluster { ts: String, ours: String, theirs: String },
}

/// What the leader answers and proposes for one heartbeat.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// The answer, without the soft-state fields the service adds (master addresses and
    /// location).
    pub response: pb::TsHeartbeatResponse,
    /// The tablets' configurations to record, if any changed.
    pub command: Option<CatalogCommand>,
    /// Reported tablets the catalog does not know: kept on the server, never deleted.
    pub unknown_tablets: Vec<TabletId>,
}

/// Refuses a heartbeat from a server of another cluster. A server without an id (not yet
/// joined) and a catalog without one (not yet initialized) always pass.
pub fn check_cluster(catalog: &Catalog, request: &pb::TsHeartbeatRequest) -> Result<(), HeartbeatError> {
    match catalog.cluster_id() {
        Some(ours) if !request.cluster_id.is_empty() && request.cluster_id != ours => {
            Err(HeartbeatError::WrongCluster {
                ts: request.ts_uuid.clone(),
                ours: ours.to_string(),
                theirs: request.cluster_id.clone(),
            })
        }
        _ => Ok(()),
    }
}

/// Decides the leader's answer to `request`. `addresses` maps tablet server uuids to their
/// registered RPC addresses.
pub fn decide(
    catalog: &Catalog,
    addresses: &HashMap<TServerId, String>,
    request: &pb::TsHeartbeatRequest,
) -> Result<Decision, HeartbeatError> {
    decide_among(catalog, addresses, request, catalog.tablets())
}

/// [`decide`], given `candidates`: running tablets of `catalog`, in id order, among which
/// are all those that want a replica on the server (others are skipped). The leader passes
/// the server's entry of a [`TabletsByServer`] index instead of scanning every tablet.
pub fn decide_among<'a>(
    catalog: &'a Catalog,
    addresses: &HashMap<TServerId, String>,
    request: &pb::TsHeartbeatRequest,
    candidates: impl Iterator<Item = &'a Tablet>,
) -> Result<Decision, HeartbeatError> {
    check_cluster(catalog, request)?;
    let Some(cluster_id) = catalog.cluster_id() else {
        return Ok(Decision::default());
    };
    let ts = TServerId(request.ts_uuid.clone());
    let reported: BTreeMap<TabletId, &pb::ReportedReplica> =
        request.replicas.iter().map(|r| (TabletId(r.tablet_id.clone()), r)).collect();

    let mut decision = Decision::default();
    let mut updates = Vec::new();
    let mut peers: BTreeSet<&str> = BTreeSet::new();
    for (id, report) in &reported {
        let Some(tablet) = catalog.tablet(id) else {
            decision.unknown_tablets.push(id.clone());
            continue;
        };
        if tablet.is_deleted() {
            if report.state != pb::ReplicaState::ReplicaTombstoned as i32 {
                decision.response.delete_replicas.push(id.to_string());
            }
            continue;
        }
        if report.state != pb::ReplicaState::ReplicaRunning as i32 {
            continue;
        }
        if !tablet.wants_replica_on(&ts) {
            if replaced(tablet, report) {
                decision.response.delete_replicas.push(id.to_string());
            }
            continue;
        }
        peers.extend(report.voter_uuids.iter().chain(&report.learner_uuids).map(String::as_str));
        peers.extend(tablet_peers(tablet));
        if let Some(update) = reported_config(tablet, report) {
            updates.push(update);
        }
        if let Some(table) = catalog.table(&tablet.table_id)
            && report.schema_version < table.version
        {
            decision.response.schema_updates.push(pb::SchemaUpdate {
                tablet_id: id.to_string(),
                table_name: table.name.clone(),
                schema: Some(schema_to_pb(&table.schema)),
                schema_version: table.version,
            });
        }
    }
    for tablet in candidates.filter(|t| t.wants_replica_on(&ts)) {
        peers.extend(tablet_peers(tablet));
        let voter = tablet.replicas.contains(&ts);
        let create = match reported.get(&tablet.id) {
            None => true,
            // A tombstone is reused by the destination of a move, never by a voter.
            Some(r) => !voter && r.state == pb::ReplicaState::ReplicaTombstoned as i32,
        };
        if !create {
            continue;
        }
        let Some(table) = catalog.table(&tablet.table_id) else { continue };
        decision.response.create_replicas.push(pb::ReplicaAssignment {
            tablet_id: tablet.id.to_string(),
            table_id: tablet.table_id.to_string(),
            table_name: table.name.clone(),
            partition: tablet.partition,
            peer_uuids: tablet.replicas.iter().map(ToString::to_string).collect(),
            schema: Some(schema_to_pb(&table.schema)),
            schema_version: table.version,
            num_partitions: table.num_partitions,
            // Only a tablet whose group never reported a configuration is initialized.
            joining: !voter || tablet.config_index.is_some(),
        });
    }
    peers.remove(ts.as_str());
    decision.response.peer_addresses = peers
        .into_iter()
        .filter_map(|uuid| {
            let address = addresses.get(&TServerId::from(uuid))?;
            Some(pb::TabletServerAddress { uuid: uuid.to_string(), rpc_address: address.clone() })
        })
        .collect();
    decision.response.leader_master = true;
    decision.response.cluster_id = cluster_id.to_string();
    decision.command = (!updates.is_empty()).then_some(CatalogCommand::UpdateTabletConfigs(updates));
    Ok(decision)
}

/// The running tablets that want a replica on each server (a voter, or the destination of
/// a move), in id order: what a heartbeat looks up instead of scanning every tablet.
pub type TabletsByServer = HashMap<TServerId, Vec<TabletId>>;

/// Builds the [`TabletsByServer`] index of `catalog`.
pub fn tablets_by_server(catalog: &Catalog) -> TabletsByServer {
    let mut index = TabletsByServer::new();
    for tablet in catalog.tablets() {
        for ts in tablet_peers(tablet) {
            let tablets = index.entry(TServerId::from(ts)).or_default();
            // A move's destination is never also a voter, but stay exact if it were.
            if tablets.last() != Some(&tablet.id) {
                tablets.push(tablet.id.clone());
            }
        }
    }
    index
}

/// The servers of a tablet's group as the catalog has it: its voters and the destination
/// of its move.
fn tablet_peers(tablet: &Tablet) -> impl Iterator<Item = &str> {
    tablet.replicas.iter().chain(tablet.pending_move.as_ref().map(|m| &m.to)).map(TServerId::as_str)
}

/// Whether a RUNNING replica the catalog does not want was replaced: the catalog records an
/// indexed configuration newer than the one the replica last committed (or it committed
/// none: it never joined).
fn replaced(tablet: &Tablet, report: &pb::ReportedReplica) -> bool {
    match (tablet.config_index, report.config_index) {
        (Some(recorded), Some(reported)) => reported < recorded,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The update a RUNNING replica's report asks for, if it supersedes the catalog's record.
pub fn reported_config(tablet: &Tablet, report: &pb::ReportedReplica) -> Option<TabletConfigUpdate> {
    let update = TabletConfigUpdate {
        tablet_id: tablet.id.clone(),
        term: report.term,
        replicas: report.voter_uuids.iter().map(|v| TServerId(v.clone())).collect(),
        leader: Some(&report.leader_uuid).filter(|l| !l.is_empty()).map(|l| TServerId(l.clone())),
        config_index: report.config_index,
    };
    update.supersedes(tablet).then_some(update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, ColumnType, Schema, Table, TableState};
    use crate::ids::TableId;

    const CLUSTER: &str = "cluster-a";

    /// A catalog with the cluster id, table `t` (version 2 after two alters) with tablets
    /// t0 on [ts1, ts2, ts3] and t1 on [ts2, ts3, ts4], and a deleted table whose tablet
    /// `gone` was on ts1.
    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        c.apply(&CatalogCommand::SetClusterId { cluster_id: CLUSTER.into() }, 1);
        let mut index = 1;
        let mut create = |c: &mut Catalog, name: &str, tablets: &[(&str, &[&str])]| {
            index += 1;
            let table_id = TableId(format!("{name}-id"));
            let table = Table {
                id: table_id.clone(),
                name: name.into(),
                schema: Schema {
                    columns: vec![
                        Column::new("id", ColumnType::Int64, false),
                        Column::new("v", ColumnType::String, true),
                    ],
                    primary_key: vec!["id".into()],
                }
                .with_fresh_ids(),
                num_partitions: tablets.len() as u32,
                replication_factor: 3,
                state: TableState::Running,
                version: 0,
                next_column_id: 2,
            };
            let tablets = (0u32..)
                .zip(tablets)
                .map(|(partition, (id, replicas))| {
                    Tablet::new(
                        TabletId::from(*id),
                        table_id.clone(),
                        partition,
                        replicas.iter().map(|r| TServerId::from(*r)).collect(),
                    )
                })
                .collect();
            c.apply(&CatalogCommand::CreateTable { request_id: format!("create-{name}"), table, tablets }, index);
        };
        create(&mut c, "t", &[("t0", &["ts1", "ts2", "ts3"]), ("t1", &["ts2", "ts3", "ts4"])]);
        create(&mut c, "old", &[("gone", &["ts1", "ts2", "ts3"])]);
        c.apply(&CatalogCommand::DeleteTable { request_id: "del".into(), name: "old".into() }, 10);
        for (i, column) in ["w", "x"].into_iter().enumerate() {
            let steps = vec![crate::catalog::AlterStep::AddColumn(Column::new(column, ColumnType::Int32, true))];
            c.apply(
                &CatalogCommand::AlterTable { request_id: format!("a{i}"), name: "t".into(), steps },
                11 + i as u64,
            );
        }
        // t0's group has reported: term 3, leader ts1.
        let update = TabletConfigUpdate {
            tablet_id: "t0".into(),
            term: 3,
            replicas: ["ts1", "ts2", "ts3"].map(TServerId::from).to_vec(),
            leader: Some("ts1".into()),
            config_index: None,
        };
        c.apply(&CatalogCommand::UpdateTabletConfigs(vec![update]), 20);
        c
    }

    fn addresses() -> HashMap<TServerId, String> {
        ["ts1", "ts2", "ts3", "ts4", "ts9"].into_iter().map(|ts| (TServerId::from(ts), format!("{ts}:7050"))).collect()
    }

    fn running(tablet: &str, term: u64, leader: &str, voters: &[&str], schema_version: u64) -> pb::ReportedReplica {
        pb::ReportedReplica {
            tablet_id: tablet.into(),
            table_id: "t-id".into(),
            state: pb::ReplicaState::ReplicaRunning as i32,
            term,
            leader_uuid: leader.into(),
            voter_uuids: voters.iter().map(|v| v.to_string()).collect(),
            learner_uuids: Vec::new(),
            schema_version,
            config_index: None,
        }
    }

    fn with_state(mut r: pb::ReportedReplica, state: pb::ReplicaState) -> pb::ReportedReplica {
        r.state = state as i32;
        r
    }

    fn request(ts: &str, cluster_id: &str, replicas: Vec<pb::ReportedReplica>) -> pb::TsHeartbeatRequest {
        pb::TsHeartbeatRequest {
            ts_uuid: ts.into(),
            rpc_address: format!("{ts}:7050"),
            replicas,
            cluster_id: cluster_id.into(),
            instance_id: format!("{ts}-instance"),
            ..Default::default()
        }
    }

    fn ok(c: &Catalog, r: &pb::TsHeartbeatRequest) -> Decision {
        decide(c, &addresses(), r).expect("decided")
    }

    fn created(d: &Decision) -> Vec<&str> {
        d.response.create_replicas.iter().map(|a| a.tablet_id.as_str()).collect()
    }

    fn updates(d: &Decision) -> Vec<TabletConfigUpdate> {
        match &d.command {
            Some(CatalogCommand::UpdateTabletConfigs(updates)) => updates.clone(),
            Some(other) => panic!("unexpected command {other:?}"),
            None => Vec::new(),
        }
    }

    #[test]
    fn another_clusters_server_is_refused_naming_both_ids() {
        let c = catalog();
        let err = decide(&c, &addresses(), &request("ts1", "cluster-b", Vec::new())).expect_err("refused");
        assert_eq!(
            err,
            HeartbeatError::WrongCluster { ts: "ts1".into(), ours: CLUSTER.into(), theirs: "cluster-b".into() }
        );
        let message = err.to_string();
        assert!(message.contains(CLUSTER) && message.contains("cluster-b"), "{message}");
        // The same id, or none yet (a new server), is accepted and told the id.
        for id in [CLUSTER, ""] {
            let d = ok(&c, &request("ts1", id, Vec::new()));
            assert!(d.response.leader_master);
            assert_eq!(d.response.cluster_id, CLUSTER);
        }
    }

    #[test]
    fn no_instructions_before_the_cluster_id_exists() {
        let mut c = Catalog::default();
        let d = ok(&c, &request("ts1", "", vec![running("x", 5, "ts1", &["ts1"], 0)]));
        assert_eq!(d, Decision::default());
        assert!(!d.response.leader_master);
        // Nor is any server refused: there is no id to compare with.
        assert!(check_cluster(&c, &request("ts1", "whatever", Vec::new())).is_ok());
        c.apply(&CatalogCommand::SetClusterId { cluster_id: CLUSTER.into() }, 1);
        assert!(check_cluster(&c, &request("ts1", "whatever", Vec::new())).is_err());
    }

    #[test]
    fn creates_deletes_and_keeps_unknown_replicas() {
        let c = catalog();
        let tombstoned = |r| with_state(r, pb::ReplicaState::ReplicaTombstoned);
        let failed = |r| with_state(r, pb::ReplicaState::ReplicaFailed);
        struct Case {
            name: &'static str,
            ts: &'static str,
            replicas: Vec<pb::ReportedReplica>,
            create: Vec<&'static str>,
            delete: Vec<&'static str>,
            unknown: Vec<&'static str>,
        }
        let cases = vec![
            Case {
                name: "nothing reported",
                ts: "ts2",
                replicas: vec![],
                create: vec!["t0", "t1"],
                delete: vec![],
                unknown: vec![],
            },
            Case {
                name: "hosted ones are not created again",
                ts: "ts2",
                replicas: vec![running("t0", 3, "ts1", &["ts1", "ts2", "ts3"], 2)],
                create: vec!["t1"],
                delete: vec![],
                unknown: vec![],
            },
            Case {
                name: "a replica reported in any state is not created",
                ts: "ts2",
                replicas: vec![tombstoned(running("t0", 0, "", &[], 0)), failed(running("t1", 0, "", &[], 0))],
                create: vec![],
                delete: vec![],
                unknown: vec![],
            },
            Case {
                name: "tombstoned in the catalog: deleted",
                ts: "ts1",
                replicas: vec![running("gone", 1, "ts1", &["ts1", "ts2", "ts3"], 0)],
                create: vec!["t0"],
                delete: vec!["gone"],
                unknown: vec![],
            },
            Case {
                name: "a failed replica of a deleted tablet is deleted too",
                ts: "ts1",
                replicas: vec![failed(running("gone", 0, "", &[], 0))],
                create: vec!["t0"],
                delete: vec!["gone"],
                unknown: vec![],
            },
            Case {
                name: "already tombstoned on the server: not asked again",
                ts: "ts1",
                replicas: vec![tombstoned(running("gone", 0, "", &[], 0))],
                create: vec!["t0"],
                delete: vec![],
                unknown: vec![],
            },
            Case {
                name: "unknown to the catalog: never deleted",
                ts: "ts9",
                replicas: vec![running("mystery", 4, "ts9", &["ts9"], 0), failed(running("lost", 0, "", &[], 0))],
                create: vec![],
                delete: vec![],
                unknown: vec!["lost", "mystery"],
            },
            Case {
                name: "a server without assignments gets nothing",
                ts: "ts9",
                replicas: vec![],
                create: vec![],
                delete: vec![],
                unknown: vec![],
            },
        ];
        for case in cases {
            let d = ok(&c, &request(case.ts, CLUSTER, case.replicas));
            assert_eq!(created(&d), case.create, "{}: create", case.name);
            assert_eq!(d.response.delete_replicas, case.delete, "{}: delete", case.name);
            let unknown: Vec<&str> = d.unknown_tablets.iter().map(TabletId::as_str).collect();
            assert_eq!(unknown, case.unknown, "{}: unknown", case.name);
        }
    }

    #[test]
    fn assignments_carry_schema_with_ids_version_and_peers() {
        let c = catalog();
        let d = ok(&c, &request("ts4", CLUSTER, Vec::new()));
        let [a] = d.response.create_replicas.as_slice() else { panic!("one assignment: {d:?}") };
        assert_eq!((a.tablet_id.as_str(), a.table_name.as_str(), a.partition), ("t1", "t", 1));
        assert_eq!(a.peer_uuids, vec!["ts2", "ts3", "ts4"]);
        assert_eq!((a.schema_version, a.num_partitions, a.table_id.as_str()), (2, 2, "t-id"));
        let columns: Vec<(&str, u32)> =
            a.schema.iter().flat_map(|s| &s.columns).map(|c| (c.name.as_str(), c.id)).collect();
        assert_eq!(columns, vec![("id", 0), ("v", 1), ("w", 2), ("x", 3)]);
    }

    #[test]
    fn config_reports_are_proposed_only_when_they_change_something() {
        let c = catalog();
        struct Case {
            name: &'static str,
            report: pb::ReportedReplica,
            expect: Option<(u64, Vec<&'static str>, Option<&'static str>)>,
        }
        let cases = vec![
            Case { name: "steady state", report: running("t0", 3, "ts1", &["ts1", "ts2", "ts3"], 2), expect: None },
            Case {
                name: "same term, other config (leader known)",
                report: running("t0", 3, "ts2", &["ts1", "ts2"], 2),
                expect: None,
            },
            Case { name: "older term", report: running("t0", 2, "ts3", &["ts1", "ts2", "ts3"], 2), expect: None },
            Case {
                name: "newer term",
                report: running("t0", 4, "ts2", &["ts1", "ts2", "ts3"], 2),
                expect: Some((4, vec!["ts1", "ts2", "ts3"], Some("ts2"))),
            },
            Case {
                name: "newer term, election under way",
                report: running("t0", 5, "", &["ts1", "ts2", "ts3"], 2),
                expect: Some((5, vec!["ts1", "ts2", "ts3"], None)),
            },
            Case {
                name: "first report of a new tablet (term 1 > 0)",
                report: running("t1", 1, "ts3", &["ts2", "ts3", "ts4"], 2),
                expect: Some((1, vec!["ts2", "ts3", "ts4"], Some("ts3"))),
            },
            Case {
                name: "equal term with a leader where none is recorded",
                report: running("t1", 0, "ts3", &["ts2", "ts3", "ts4"], 2),
                expect: Some((0, vec!["ts2", "ts3", "ts4"], Some("ts3"))),
            },
            Case {
                name: "equal term, still no leader",
                report: running("t1", 0, "", &["ts2", "ts3", "ts4"], 2),
                expect: None,
            },
            Case { name: "no voters reported", report: running("t1", 7, "ts3", &[], 2), expect: None },
            Case {
                name: "only RUNNING replicas count",
                report: with_state(running("t1", 7, "ts3", &["ts2", "ts3", "ts4"], 2), pb::ReplicaState::ReplicaFailed),
                expect: None,
            },
        ];
        for case in cases {
            let tablet = case.report.tablet_id.clone();
            let d = ok(&c, &request("ts2", CLUSTER, vec![case.report]));
            let expected: Vec<TabletConfigUpdate> = case
                .expect
                .into_iter()
                .map(|(term, voters, leader)| TabletConfigUpdate {
                    tablet_id: TabletId(tablet.clone()),
                    term,
                    replicas: voters.into_iter().map(TServerId::from).collect(),
                    leader: leader.map(TServerId::from),
                    config_index: None,
                })
                .collect();
            assert_eq!(updates(&d), expected, "{}", case.name);
            assert_eq!(d.command.is_none(), expected.is_empty(), "{}: no empty command", case.name);
        }
    }

    #[test]
    fn one_heartbeat_gives_one_command_and_applying_it_settles() {
        let mut c = catalog();
        let replicas = vec![
            running("t0", 4, "ts2", &["ts1", "ts2", "ts3"], 2),
            running("t1", 2, "ts2", &["ts2", "ts3", "ts4"], 2),
        ];
        let d = ok(&c, &request("ts2", CLUSTER, replicas.clone()));
        assert_eq!(updates(&d).len(), 2, "both tablets in one command");
        let command = d.command.expect("command");
        c.apply(&command, 30);
        // The same report again: steady state, nothing to propose.
        assert_eq!(ok(&c, &request("ts2", CLUSTER, replicas)).command, None);
    }

    #[test]
    fn schema_updates_for_running_replicas_behind_the_table() {
        let c = catalog();
        let d = ok(
            &c,
            &request(
                "ts2",
                CLUSTER,
                vec![
                    running("t0", 3, "ts1", &["ts1", "ts2", "ts3"], 1),
                    running("t1", 0, "", &["ts2", "ts3", "ts4"], 2),
                ],
            ),
        );
        let [u] = d.response.schema_updates.as_slice() else { panic!("one update: {d:?}") };
        assert_eq!((u.tablet_id.as_str(), u.table_name.as_str(), u.schema_version), ("t0", "t", 2));
        assert_eq!(u.schema.as_ref().map(|s| s.columns.len()), Some(4));
        // Not for replicas that are not running, nor for deleted tablets.
        let d = ok(
            &c,
            &request(
                "ts2",
                CLUSTER,
                vec![
                    with_state(running("t0", 3, "ts1", &["ts1"], 0), pb::ReplicaState::ReplicaFailed),
                    running("gone", 1, "ts1", &["ts1"], 0),
                ],
            ),
        );
        assert!(d.response.schema_updates.is_empty(), "{d:?}");
    }

    fn indexed(mut r: pb::ReportedReplica, index: u64) -> pb::ReportedReplica {
        r.config_index = Some(index);
        r
    }

    /// The test catalog after t0's group reported configuration index 5 (voters ts1, ts2,
    /// ts3) and a move of t0 from ts3 to ts4 started.
    fn moving() -> Catalog {
        let mut c = catalog();
        let update = TabletConfigUpdate {
            tablet_id: "t0".into(),
            term: 3,
            replicas: ["ts1", "ts2", "ts3"].map(TServerId::from).to_vec(),
            leader: Some("ts1".into()),
            config_index: Some(5),
        };
        c.apply(&CatalogCommand::UpdateTabletConfigs(vec![update]), 21);
        let start = crate::catalog::TabletMove {
            tablet_id: "t0".into(),
            replica_move: crate::catalog::ReplicaMove { from: Some("ts3".into()), to: "ts4".into() },
        };
        c.apply(&CatalogCommand::StartReplicaMoves(vec![start]), 22);
        c
    }

    #[test]
    fn the_per_server_index_decides_exactly_as_a_full_scan() {
        for c in [catalog(), moving()] {
            let index = tablets_by_server(&c);
            assert!(!index.values().flatten().any(|t| t.as_str() == "gone"), "{index:?}");
            for ts in ["ts1", "ts2", "ts3", "ts4", "ts9", "unknown"] {
                for replicas in [Vec::new(), vec![running("t0", 4, "ts1", &["ts1", "ts2", "ts3"], 0)]] {
                    let r = request(ts, CLUSTER, replicas);
                    let wanted = index.get(&TServerId::from(ts)).into_iter().flatten().filter_map(|id| c.tablet(id));
                    assert_eq!(decide_among(&c, &addresses(), &r, wanted), decide(&c, &addresses(), &r), "{ts}");
                }
            }
        }
        let index = tablets_by_server(&moving());
        let ids = |ts: &str| index.get(&TServerId::from(ts)).map(|v| v.iter().map(|t| t.as_str()).collect::<Vec<_>>());
        assert_eq!(ids("ts1"), Some(vec!["t0"]));
        assert_eq!(ids("ts2"), Some(vec!["t0", "t1"]));
        // The destination of t0's move wants it as well as its own t1.
        assert_eq!(ids("ts4"), Some(vec!["t0", "t1"]));
        assert_eq!(ids("ts9"), None);
    }

    #[test]
    fn the_destination_of_a_move_creates_a_joining_replica_and_peers_learn_it() {
        let c = moving();
        // ts4 hosts t1 already; it is told to create t0 as a joining replica (peers: the
        // current voters, without itself).
        let d = ok(&c, &request("ts4", CLUSTER, vec![running("t1", 1, "ts2", &["ts2", "ts3", "ts4"], 2)]));
        let [a] = d.response.create_replicas.as_slice() else { panic!("one assignment: {d:?}") };
        assert_eq!((a.tablet_id.as_str(), a.joining), ("t0", true));
        assert_eq!(a.peer_uuids, vec!["ts1", "ts2", "ts3"]);
        let peers: Vec<&str> = d.response.peer_addresses.iter().map(|p| p.uuid.as_str()).collect();
        assert_eq!(peers, vec!["ts1", "ts2", "ts3"]);
        // Its tombstone of t0 (moved away earlier) is reused; a running replica is not
        // created again.
        let tombstone = with_state(running("t0", 0, "", &[], 0), pb::ReplicaState::ReplicaTombstoned);
        let d = ok(&c, &request("ts4", CLUSTER, vec![tombstone]));
        assert_eq!(created(&d), vec!["t0", "t1"]);
        let joining: Vec<bool> = d.response.create_replicas.iter().map(|a| a.joining).collect();
        assert_eq!(joining, vec![true, false], "t1 is a voter of a group that never reported: it initializes");
        let d = ok(&c, &request("ts4", CLUSTER, vec![indexed(running("t0", 3, "ts1", &[], 0), 0)]));
        assert_eq!(created(&d), vec!["t1"]);
        assert!(d.response.delete_replicas.is_empty(), "the joining replica is wanted: {d:?}");
        // The leader's server learns the destination's address.
        let d = ok(&c, &request("ts1", CLUSTER, vec![indexed(running("t0", 3, "ts1", &["ts1", "ts2", "ts3"], 2), 5)]));
        let peers: Vec<&str> = d.response.peer_addresses.iter().map(|p| p.uuid.as_str()).collect();
        assert_eq!(peers, vec!["ts2", "ts3", "ts4"]);
        // A voter of the initial placement still initializes (never reported: t1).
        let d = ok(&c, &request("ts2", CLUSTER, vec![indexed(running("t0", 3, "ts1", &["ts1", "ts2", "ts3"], 2), 5)]));
        let [a] = d.response.create_replicas.as_slice() else { panic!("one assignment: {d:?}") };
        assert_eq!((a.tablet_id.as_str(), a.joining), ("t1", false));
    }

    #[test]
    fn a_replaced_replica_that_comes_back_is_tombstoned_and_not_heard() {
        let mut c = moving();
        // The move completed: ts3 left at configuration index 9.
        let done = TabletConfigUpdate {
            tablet_id: "t0".into(),
            term: 3,
            replicas: ["ts1", "ts2", "ts4"].map(TServerId::from).to_vec(),
            leader: Some("ts1".into()),
            config_index: Some(9),
        };
        c.apply(&CatalogCommand::UpdateTabletConfigs(vec![done]), 23);
        assert_eq!(c.tablet(&"t0".into()).and_then(|t| t.pending_move.clone()), None);
        // ts3 comes back, still believing in the old configuration, in a newer term.
        let stale = indexed(running("t0", 7, "", &["ts1", "ts2", "ts3"], 2), 5);
        let d = ok(&c, &request("ts3", CLUSTER, vec![stale.clone()]));
        assert_eq!(d.response.delete_replicas, vec!["t0"]);
        assert_eq!(d.command, None, "its report is not recorded");
        assert!(created(&d).contains(&"t1"), "its other replicas are untouched");
        // Not tombstoned: a replica the catalog still wants, or one whose configuration is
        // not older than the catalog's (the catalog would be behind), or any replica of a
        // tablet whose configuration was never reported with an index.
        let d = ok(&c, &request("ts4", CLUSTER, vec![indexed(running("t0", 3, "ts1", &["ts1", "ts2", "ts4"], 2), 9)]));
        assert!(d.response.delete_replicas.is_empty());
        let d = ok(&c, &request("ts3", CLUSTER, vec![indexed(running("t0", 7, "", &["ts1", "ts3"], 2), 9)]));
        assert!(d.response.delete_replicas.is_empty());
        let d = ok(&catalog(), &request("ts4", CLUSTER, vec![running("t0", 3, "ts1", &["ts1", "ts2", "ts3"], 2)]));
        assert!(d.response.delete_replicas.is_empty());
        // A joining replica whose move was given up (never joined: no configuration).
        let d = ok(&c, &request("ts9", CLUSTER, vec![running("t0", 3, "ts1", &[], 0)]));
        assert_eq!(d.response.delete_replicas, vec!["t0"]);
    }

    #[test]
    fn configurations_are_recorded_by_log_index() {
        let c = moving();
        // The leader reports the promotion (index 7): recorded, the move goes on.
        let d = ok(
            &c,
            &request("ts1", CLUSTER, vec![indexed(running("t0", 3, "ts1", &["ts1", "ts2", "ts3", "ts4"], 2), 7)]),
        );
        let [u] = updates(&d).try_into().expect("one update");
        assert_eq!((u.config_index, u.replicas.len()), (Some(7), 4));
        // A lagging follower in a newer term with an older configuration: only the term.
        let d = ok(&c, &request("ts2", CLUSTER, vec![indexed(running("t0", 4, "ts2", &["ts1", "ts2"], 2), 3)]));
        let mut applied = c.clone();
        applied.apply(&d.command.expect("newer term"), 30);
        let t0 = applied.tablet(&"t0".into()).expect("t0");
        assert_eq!(
            (t0.term, t0.leader.clone(), t0.replicas.len(), t0.config_index),
            (4, Some("ts2".into()), 3, Some(5))
        );
    }

    #[test]
    fn peer_addresses_cover_hosted_and_assigned_tablets() {
        let c = catalog();
        let peers = |d: &Decision| -> Vec<(String, String)> {
            d.response.peer_addresses.iter().map(|p| (p.uuid.clone(), p.rpc_address.clone())).collect()
        };
        let pair = |ts: &str| (ts.to_string(), format!("{ts}:7050"));
        // ts1 is assigned t0 only: its peers ts2 and ts3 (never itself).
        assert_eq!(peers(&ok(&c, &request("ts1", CLUSTER, Vec::new()))), vec![pair("ts2"), pair("ts3")]);
        // ts2 is assigned t0 and t1.
        assert_eq!(peers(&ok(&c, &request("ts2", CLUSTER, Vec::new()))), vec![pair("ts1"), pair("ts3"), pair("ts4")]);
        // A hosted replica's reported voters and learners count; unregistered servers are
        // left out; deleted and unknown tablets give no peers.
        let mut hosted = running("t0", 3, "ts1", &["ts1", "ts9", "ts7"], 2);
        hosted.learner_uuids = vec!["ts4".into()];
        let d = ok(
            &c,
            &request(
                "ts1",
                CLUSTER,
                vec![hosted, running("gone", 1, "ts1", &["ts1", "ts5"], 0), running("??", 1, "ts6", &["ts6"], 0)],
            ),
        );
        assert_eq!(peers(&d), vec![pair("ts2"), pair("ts3"), pair("ts4"), pair("ts9")]);
    }
}
