//! Tablet replicas as Raft groups on three in-process tablet servers (real gRPC on
//! 127.0.0.1, real RocksDB), instructed as the heartbeat would be, without masters.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{WAIT, wait_for};
use kudu::ids::{TServerId, TableId, TabletId};
use kudu::pb::master as mpb;
use kudu::pb::tserver as tpb;
use kudu::pb::tserver::tablet_server_service_client::TabletServerServiceClient;
use kudu::rpc::{LEADER_ADDR_KEY, LEADER_ID_KEY, error_code};
use kudu::tserver::{ReplicaMeta, ReplicaState, TServerConfig, TServerStore, TabletRaftTimings, TabletServer};

const TABLET: &str = "tablet-1";
const CLUSTER: &str = "cluster-a";

fn config(dir: &Path) -> TServerConfig {
    config_snapshotting_every(dir, 1_000)
}

fn config_snapshotting_every(dir: &Path, snapshot_every: u64) -> TServerConfig {
    TServerConfig {
        data_dir: dir.to_path_buf(),
        rpc_bind: "127.0.0.1:0".into(),
        advertised_addr: String::new(),
        master_addresses: Vec::new(),
        heartbeat_interval: Duration::from_millis(200),
        http_bind: Some("127.0.0.1:0".into()),
        tablet_raft: TabletRaftTimings {
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(500),
            snapshot_every,
            request_timeout: Duration::from_secs(5),
            ..TabletRaftTimings::default()
        },
        security: kudu::security::Security::Insecure,
        drain_timeout: Duration::ZERO,
    }
}

struct Node {
    dir: tempfile::TempDir,
    server: Option<TabletServer>,
    uuid: String,
}

impl Node {
    async fn start() -> Node {
        Self::start_snapshotting_every(1_000).await
    }

    /// A node whose replicas snapshot (and purge their logs) every `snapshot_every` entries.
    async fn start_snapshotting_every(snapshot_every: u64) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = TabletServer::start(config_snapshotting_every(dir.path(), snapshot_every)).await.expect("start");
        let uuid = server.state.uuid.to_string();
        Node { dir, server: Some(server), uuid }
    }

    fn server(&self) -> &TabletServer {
        self.server.as_ref().expect("running")
    }

    fn addr(&self) -> String {
        self.server().rpc_addr.to_string()
    }

    async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Restarts on a new port (the address book follows it).
    async fn restart(&mut self) {
        self.stop().await;
        let server = wait_for("the data directory to be released", WAIT, || async {
            TabletServer::start(config(self.dir.path())).await.ok()
        })
        .await;
        self.server = Some(server);
    }

    async fn client(&self) -> TabletServerServiceClient<tonic::transport::Channel> {
        TabletServerServiceClient::connect(format!("http://{}", self.addr())).await.expect("connect")
    }

    async fn replica(&self, tablet_id: &str) -> Option<tpb::TabletReplica> {
        let listing = self.client().await.list_tablets(tpb::ListTabletsRequest {}).await.ok()?.into_inner();
        listing.replicas.into_iter().find(|r| r.tablet_id == tablet_id)
    }
}

fn schema() -> mpb::Schema {
    let column = |id, name: &str, data_type: mpb::DataType, nullable| mpb::ColumnSchema {
        name: name.into(),
        data_type: data_type as i32,
        nullable,
        id,
    };
    mpb::Schema {
        columns: vec![column(0, "id", mpb::DataType::Int64, false), column(1, "name", mpb::DataType::String, true)],
        primary_key: vec!["id".into()],
    }
}

fn assignment(tablet_id: &str, peers: &[String]) -> mpb::ReplicaAssignment {
    mpb::ReplicaAssignment {
        tablet_id: tablet_id.into(),
        table_id: "table-1".into(),
        table_name: "rows".into(),
        partition: 0,
        peer_uuids: peers.to_vec(),
        schema: Some(schema()),
        schema_version: 1,
        num_partitions: 1,
        joining: false,
    }
}

/// The heartbeat answer of a leader master of `cluster` knowing every node's address.
fn answer(cluster: &str, nodes: &[&Node]) -> mpb::TsHeartbeatResponse {
    mpb::TsHeartbeatResponse {
        leader_master: true,
        cluster_id: cluster.into(),
        peer_addresses: nodes
            .iter()
            .map(|n| mpb::TabletServerAddress { uuid: n.uuid.clone(), rpc_address: n.addr() })
            .collect(),
        ..Default::default()
    }
}

fn create(cluster: &str, nodes: &[&Node], tablet_id: &str) -> mpb::TsHeartbeatResponse {
    let peers: Vec<String> = nodes.iter().map(|n| n.uuid.clone()).collect();
    mpb::TsHeartbeatResponse { create_replicas: vec![assignment(tablet_id, &peers)], ..answer(cluster, nodes) }
}

/// Waits until the running nodes agree on one leader of `tablet_id` in one term, that leader
/// applied the schema, and every replica's voters are `voters`. Returns the leader's index.
async fn wait_leader(nodes: &[&Node], voters: &[String]) -> usize {
    let mut expected = voters.to_vec();
    expected.sort();
    wait_for("one leader with the assigned voters", WAIT, || async {
        let mut replicas = Vec::new();
        for node in nodes.iter().filter(|n| n.server.is_some()) {
            replicas.push(node.replica(TABLET).await?);
        }
        let leader = replicas.iter().position(|r| r.role == "LEADER")?;
        let term = replicas.get(leader)?.term;
        let agreed = replicas.iter().all(|r| {
            let mut peers = r.peer_uuids.clone();
            peers.sort();
            r.term == term && r.leader_uuid == nodes[leader].uuid && peers == expected
        });
        let leaders = replicas.iter().filter(|r| r.role == "LEADER").count();
        (agreed && leaders == 1 && replicas.get(leader)?.schema_version >= 1).then_some(leader)
    })
    .await
}

fn op(kind: tpb::OpType, json: &str) -> tpb::RowOperation {
    tpb::RowOperation { r#type: kind as i32, row_json: json.into() }
}

fn write(seq_no: u64, ops: Vec<tpb::RowOperation>) -> tpb::WriteRequest {
    tpb::WriteRequest {
        tablet_id: TABLET.into(),
        client_id: "client-1".into(),
        seq_no,
        first_incomplete_seq_no: seq_no,
        ops,
    }
}

async fn scan(node: &Node) -> Result<Vec<serde_json::Value>, tonic::Status> {
    let request = tpb::ScanRequest { tablet_id: TABLET.into(), ..Default::default() };
    let rows = node.client().await.scan(request).await?.into_inner().rows_json;
    Ok(rows.iter().map(|r| serde_json::from_str(r).expect("JSON row")).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_group_forms_serves_leaders_only_and_survives_one_of_three_down() {
    let mut nodes = vec![Node::start().await, Node::start().await, Node::start().await];
    let voters: Vec<String> = nodes.iter().map(|n| n.uuid.clone()).collect();

    // Node 2 recorded the replica, then stopped before opening and initializing its group.
    nodes[2].stop().await;
    {
        let store = TServerStore::open(nodes[2].dir.path()).expect("store");
        store
            .put_replica(&ReplicaMeta {
                tablet_id: TabletId::from(TABLET),
                table_id: TableId::from("table-1"),
                table_name: "rows".into(),
                partition: 0,
                peers: voters.iter().map(|v| TServerId(v.clone())).collect(),
                num_partitions: 1,
                desired_schema: None,
                desired_schema_version: 0,
                state: ReplicaState::Running,
                failure: None,
                joining: false,
            })
            .expect("record");
    }
    nodes[2].restart().await;

    // Every node gets the instruction, some twice (the heartbeat repeats until reported).
    let refs: Vec<&Node> = nodes.iter().collect();
    for i in [0, 1, 2, 0, 2] {
        assert!(refs[i].server().apply_master_answer(create(CLUSTER, &refs, TABLET)).await);
    }
    let leader = wait_leader(&refs, &voters).await;
    let follower = (leader + 1) % 3;

    // A write to the leader is visible in a scan; bad rows are refused, nothing applied.
    let mut client = refs[leader].client().await;
    let ok = client
        .write(write(
            1,
            vec![op(tpb::OpType::Insert, r#"{"id": 1, "name": "a"}"#), op(tpb::OpType::Insert, r#"{"id": 2}"#)],
        ))
        .await
        .expect("write");
    assert!(ok.get_ref().row_errors.is_empty(), "{ok:?}");
    assert_eq!(ok.get_ref().schema_version, 1);
    let rows = scan(refs[leader]).await.expect("scan");
    assert_eq!(rows, vec![serde_json::json!({"id": 1, "name": "a"}), serde_json::json!({"id": 2, "name": null})]);
    for (bad, code) in
        [(r#"{"id": 3, "nope": 1}"#, "INVALID_ROW"), (r#"{"id": "x"}"#, "INVALID_ROW"), ("not json", "INVALID_ROW")]
    {
        let err = client.write(write(2, vec![op(tpb::OpType::Insert, bad)])).await.expect_err(bad);
        assert_eq!(error_code(&err), Some(code), "{bad}: {err:?}");
        assert!(!err.message().contains('\n'), "{err:?}");
    }
    let mut unknown = write(2, vec![op(tpb::OpType::Insert, r#"{"id": 3}"#)]);
    unknown.tablet_id = "no-such-tablet".into();
    let err = client.write(unknown).await.expect_err("unknown tablet");
    assert_eq!(error_code(&err), Some("TABLET_NOT_FOUND"));

    // A follower refuses writes and scans with a hint naming the leader.
    let err = refs[follower].client().await.write(write(2, vec![op(tpb::OpType::Insert, r#"{"id": 3}"#)])).await;
    let err = err.expect_err("follower accepted a write");
    assert_eq!(error_code(&err), Some("NOT_THE_LEADER"), "{err:?}");
    let meta = |key| err.metadata().get(key).and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(meta(LEADER_ID_KEY), Some(refs[leader].uuid.clone()));
    assert_eq!(meta(LEADER_ADDR_KEY), Some(refs[leader].addr()));
    let err = scan(refs[follower]).await.expect_err("follower served a scan");
    assert_eq!(error_code(&err), Some("NOT_THE_LEADER"));

    // With one follower down, writes still succeed; a retry is answered, not applied twice.
    drop(refs);
    nodes[follower].stop().await;
    let again = write(2, vec![op(tpb::OpType::Insert, r#"{"id": 3, "name": "c"}"#)]);
    let first = client.write(again.clone()).await.expect("write with one of three down").into_inner();
    assert!(first.row_errors.is_empty(), "{first:?}");
    let retry = client.write(again).await.expect("retry").into_inner();
    assert_eq!(retry, first, "the retried batch gets the first answer (no ALREADY_PRESENT)");
    assert_eq!(scan(&nodes[leader]).await.expect("scan").len(), 3);

    // A stale seq_no is refused.
    let mut stale = write(1, vec![op(tpb::OpType::Insert, r#"{"id": 9}"#)]);
    stale.first_incomplete_seq_no = 1;
    let mut newer = write(5, vec![op(tpb::OpType::Upsert, r#"{"id": 4}"#)]);
    newer.first_incomplete_seq_no = 5;
    client.write(newer).await.expect("newer write");
    let err = client.write(stale).await.expect_err("stale write applied");
    assert_eq!(error_code(&err), Some("STALE_WRITE"), "{err:?}");

    for node in &mut nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstoning_deletes_data_for_good_and_foreign_clusters_are_ignored() {
    let mut nodes = vec![Node::start().await, Node::start().await, Node::start().await];
    let voters: Vec<String> = nodes.iter().map(|n| n.uuid.clone()).collect();
    let refs: Vec<&Node> = nodes.iter().collect();
    for node in &refs {
        assert!(node.server().apply_master_answer(create(CLUSTER, &refs, TABLET)).await);
    }
    let leader = wait_leader(&refs, &voters).await;
    let mut client = refs[leader].client().await;
    client.write(write(1, vec![op(tpb::OpType::Insert, r#"{"id": 1}"#)])).await.expect("write");
    let listing = refs[0].client().await.list_tablets(tpb::ListTabletsRequest {}).await.expect("list").into_inner();
    assert_eq!(listing.cluster_id, CLUSTER);

    // A master of another cluster deletes nothing and creates nothing.
    let foreign =
        mpb::TsHeartbeatResponse { delete_replicas: vec![TABLET.into()], ..create("cluster-b", &refs, "tablet-2") };
    assert!(!refs[0].server().apply_master_answer(foreign).await, "a foreign answer was obeyed");
    assert_eq!(refs[0].replica(TABLET).await.map(|r| r.state).as_deref(), Some("RUNNING"));
    assert!(refs[0].replica("tablet-2").await.is_none(), "a foreign master created a replica");
    let health = reqwest_free_get(refs[0].server().http_addr.expect("http"), "/healthz").await;
    assert!(health.starts_with("ok") && health.contains(CLUSTER), "{health}");

    // The master of this cluster tombstones node 0's replica.
    let delete = mpb::TsHeartbeatResponse { delete_replicas: vec![TABLET.into()], ..answer(CLUSTER, &refs) };
    assert!(refs[0].server().apply_master_answer(delete).await);
    assert_eq!(refs[0].replica(TABLET).await.map(|r| r.state).as_deref(), Some("TOMBSTONED"));
    let err = refs[0].client().await.write(write(2, vec![op(tpb::OpType::Insert, r#"{"id": 2}"#)])).await;
    assert_eq!(error_code(&err.expect_err("tombstoned replica wrote")), Some("TABLET_NOT_FOUND"));
    let page = reqwest_free_get(refs[0].server().http_addr.expect("http"), "/tablets?format=json").await;
    let page: serde_json::Value = serde_json::from_str(&page).expect("JSON");
    assert_eq!(page[0]["tombstoned"], serde_json::json!(true), "{page}");
    let metrics = reqwest_free_get(refs[1].server().http_addr.expect("http"), "/metrics").await;
    assert!(
        metrics.contains("kudu_tserver_replicas{role=") && metrics.contains("kudu_tserver_raft_max_term"),
        "{metrics}"
    );

    // A repeated create does not bring it back, not even after a restart.
    assert!(refs[0].server().apply_master_answer(create(CLUSTER, &refs, TABLET)).await);
    assert_eq!(refs[0].replica(TABLET).await.map(|r| r.state).as_deref(), Some("TOMBSTONED"));
    drop(refs);
    nodes[0].restart().await;
    let refs: Vec<&Node> = nodes.iter().collect();
    assert!(refs[0].server().apply_master_answer(create(CLUSTER, &refs, TABLET)).await);
    assert_eq!(refs[0].replica(TABLET).await.map(|r| r.state).as_deref(), Some("TOMBSTONED"));
    drop(refs);

    // Its rows and Raft state are gone from the database.
    nodes[0].stop().await;
    let store =
        wait_for("the data directory to be released", WAIT, || async { TServerStore::open(nodes[0].dir.path()).ok() })
            .await;
    let sm = kudu::tserver::TabletStateMachine::open(store.db(), nodes[0].dir.path(), TabletId::from(TABLET))
        .expect("open state");
    assert_eq!(sm.rows(&Default::default()).expect("rows").count(), 0, "rows left behind");
    assert!(sm.state().await.schema().is_none(), "schema record left behind");
    let mut log = kudu::raft::LogStore::<kudu::tserver::raft_types::TabletTypeConfig>::new(
        store.db(),
        kudu::raft::GroupPrefix::new(TABLET).expect("prefix"),
    );
    use openraft::storage::{RaftLogReader, RaftLogStorage};
    assert_eq!(log.get_log_state().await.expect("log").last_log_id, None, "log left behind");
    // The vote stays: a replica that joins the group again never votes twice in a term.
    assert!(log.read_vote().await.expect("vote").is_some(), "the vote is kept");
    drop((sm, log, store));

    for node in &mut nodes {
        node.stop().await;
    }
}

/// Calls ChangeConfig on `node` until it answers COMPLETE; returns the steps it answered
/// (repeated CATCHING_UP answers once) and the last answer.
async fn drive_move(
    node: &Node,
    request: tpb::ChangeConfigRequest,
) -> (Vec<tpb::ConfigChangeStep>, tpb::ChangeConfigResponse) {
    let mut steps = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        assert!(std::time::Instant::now() < deadline, "the move never completed: {steps:?}");
        let response = match node.client().await.change_config(request.clone()).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                assert_eq!(error_code(&status), Some("SERVICE_UNAVAILABLE"), "{status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let step = tpb::ConfigChangeStep::try_from(response.step).expect("a known step");
        if steps.last() != Some(&step) {
            steps.push(step);
        }
        if step == tpb::ConfigChangeStep::Complete {
            return (steps, response);
        }
        if step == tpb::ConfigChangeStep::CatchingUp {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Re-replication from the tablet servers' side: a joining replica (empty, never
/// initializing) is added as a non-voter, catches up (from a snapshot: the replicas
/// snapshot every 5 entries and keep no more log than that), is promoted and replaces a
/// voter, one ChangeConfig step at a time, and serves as a voter with every row. A
/// tombstoned replica joins again the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_replica_catches_up_is_promoted_and_replaces_a_voter() {
    use openraft::rt::watch::WatchReceiver;
    use tpb::ConfigChangeStep::{CatchingUp, Complete, LearnerAdded, Promoted, Removed};
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(Node::start_snapshotting_every(5).await);
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    let voters: Vec<String> = refs[..3].iter().map(|n| n.uuid.clone()).collect();
    for node in &refs {
        assert!(node.server().apply_master_answer(answer(CLUSTER, &refs)).await);
    }
    for node in &refs[..3] {
        assert!(node.server().apply_master_answer(create(CLUSTER, &refs[..3], TABLET)).await);
    }
    let leader = wait_leader(&refs[..3], &voters).await;
    let mut client = refs[leader].client().await;
    for id in 1..=20u64 {
        client.write(write(id, vec![op(tpb::OpType::Insert, &format!(r#"{{"id": {id}}}"#))])).await.expect("write");
    }

    // The leader purged its log: a new replica can only start from a snapshot.
    let group = refs[leader].server().state.tablets.replica(TABLET).expect("the leader's replica").raft().clone();
    wait_for("the leader to purge its log", WAIT, || async {
        let purged = group.metrics().borrow_watched().purged.as_ref().map(|l| l.index);
        purged.filter(|i| *i >= 10)
    })
    .await;
    drop(group);

    // The joining replica exists, empty, and never started a group of its own.
    let joining = mpb::ReplicaAssignment { joining: true, ..assignment(TABLET, &voters) };
    let instruction = mpb::TsHeartbeatResponse { create_replicas: vec![joining.clone()], ..answer(CLUSTER, &refs) };
    assert!(refs[3].server().apply_master_answer(instruction).await);
    let r = refs[3].replica(TABLET).await.expect("created");
    assert_eq!((r.state.as_str(), r.role.as_str(), r.term), ("RUNNING", "LEARNER", 0), "{r:?}");

    // Replace a voter that does not lead.
    let leaving = (0..3).find(|i| *i != leader).expect("a follower");
    let request = tpb::ChangeConfigRequest {
        tablet_id: TABLET.into(),
        add_uuid: refs[3].uuid.clone(),
        add_address: refs[3].addr(),
        remove_uuid: refs[leaving].uuid.clone(),
    };
    let (steps, last) = drive_move(refs[leader], request.clone()).await;
    let without_catch_up: Vec<_> = steps.iter().copied().filter(|s| *s != CatchingUp).collect();
    assert_eq!(without_catch_up, vec![LearnerAdded, Promoted, Removed, Complete], "{steps:?}");
    let mut expected: Vec<String> = [leader, 3]
        .iter()
        .chain((0..3).filter(|i| *i != leader && *i != leaving).collect::<Vec<_>>().iter())
        .map(|i| refs[*i].uuid.clone())
        .collect();
    expected.sort();
    let mut reported = last.config.clone().expect("config").voter_uuids;
    reported.sort();
    assert_eq!(reported, expected);
    assert!(last.config.and_then(|c| c.config_index).is_some(), "the configuration's index is reported");
    // Repeating any step is harmless; a follower refuses with the leader's name.
    let (steps, _) = drive_move(refs[leader], request.clone()).await;
    assert_eq!(steps, vec![Complete]);
    let other = (0..3).find(|i| *i != leader && *i != leaving).expect("the other voter");
    let err = refs[other].client().await.change_config(request.clone()).await.expect_err("a follower");
    assert_eq!(error_code(&err), Some("NOT_THE_LEADER"));

    // The new voter has everything: with the old leader gone, it and the other voter form
    // the majority, elect a leader, and every row is there.
    let old_leader = leader;
    drop(refs);
    nodes[old_leader].stop().await;
    let refs: Vec<&Node> = nodes.iter().collect();
    let survivors: Vec<&Node> = vec![refs[other], refs[3]];
    let running: Vec<&Node> = nodes.iter().filter(|n| n.server.is_some()).collect();
    let new_leader = wait_leader(&survivors, &expected).await;
    let rows = wait_for("a scan on the new leader", WAIT, || async { scan(survivors[new_leader]).await.ok() }).await;
    assert_eq!(rows.len(), 20, "{rows:?}");

    // The replaced replica is tombstoned, then joins again (a tombstone is reused, its vote
    // kept) as a fourth voter.
    let delete = mpb::TsHeartbeatResponse { delete_replicas: vec![TABLET.into()], ..answer(CLUSTER, &running) };
    assert!(refs[leaving].server().apply_master_answer(delete).await);
    assert_eq!(refs[leaving].replica(TABLET).await.map(|r| r.state).as_deref(), Some("TOMBSTONED"));
    let plain =
        mpb::TsHeartbeatResponse { create_replicas: vec![assignment(TABLET, &voters)], ..answer(CLUSTER, &running) };
    assert!(refs[leaving].server().apply_master_answer(plain).await);
    assert_eq!(
        refs[leaving].replica(TABLET).await.map(|r| r.state).as_deref(),
        Some("TOMBSTONED"),
        "only a joining create reuses it"
    );
    let rejoin = mpb::TsHeartbeatResponse { create_replicas: vec![joining], ..answer(CLUSTER, &running) };
    assert!(refs[leaving].server().apply_master_answer(rejoin).await);
    assert_eq!(refs[leaving].replica(TABLET).await.map(|r| r.state).as_deref(), Some("RUNNING"));
    let add_back = tpb::ChangeConfigRequest {
        tablet_id: TABLET.into(),
        add_uuid: refs[leaving].uuid.clone(),
        add_address: refs[leaving].addr(),
        remove_uuid: String::new(),
    };
    let (steps, last) = drive_move(survivors[new_leader], add_back).await;
    assert_eq!(steps.first(), Some(&LearnerAdded), "{steps:?}");
    assert_eq!(last.config.map(|c| c.voter_uuids.len()), Some(4), "a fourth voter (the stopped old leader is one)");
    let back = wait_for("the returning replica to catch up", WAIT, || async {
        let r = refs[leaving].replica(TABLET).await?;
        (r.role == "FOLLOWER" && r.schema_version >= 1).then_some(r)
    })
    .await;
    assert_eq!(back.peer_uuids.len(), 4, "{back:?}");
    drop((survivors, refs, running));
    for node in &mut nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_means_registered_and_every_voter_replica_caught_up() {
    let mut nodes = vec![Node::start().await, Node::start().await, Node::start().await];
    let voters: Vec<String> = nodes.iter().map(|n| n.uuid.clone()).collect();
    let refs: Vec<&Node> = nodes.iter().collect();
    let ready = |node: &Node| reqwest_free_get(node.server().http_addr.expect("http"), "/ready");

    // Serving, but no leader master answered yet.
    let body = ready(refs[0]).await;
    assert!(body.starts_with("not ready") && body.contains("registered: false"), "{body}");
    let health = reqwest_free_get(refs[0].server().http_addr.expect("http"), "/healthz").await;
    assert!(health.starts_with("ok"), "{health}");

    // Registered, hosting a voter of a three-voter group whose peers do not exist yet: it
    // can elect no leader, so it is not caught up.
    assert!(refs[0].server().apply_master_answer(create(CLUSTER, &refs, TABLET)).await);
    wait_for("the replica to run", WAIT, || async {
        refs[0].replica(TABLET).await.filter(|r| r.state == "RUNNING").map(|_| ())
    })
    .await;
    let body = ready(refs[0]).await;
    assert!(body.starts_with("not ready") && body.contains("registered: true"), "{body}");
    assert!(body.contains("lagging replicas: 1") && body.contains(TABLET), "{body}");

    // The peers join: a leader is elected and every replica catches up.
    for node in &refs[1..] {
        assert!(node.server().apply_master_answer(create(CLUSTER, &refs, TABLET)).await);
    }
    wait_leader(&refs, &voters).await;
    for node in &refs {
        wait_for("the tablet server to be ready", WAIT, || async { ready(node).await.starts_with("ok").then_some(()) })
            .await;
    }
    drop(refs);
    for node in &mut nodes {
        node.stop().await;
    }
}

/// GET of `path` on the web server at `addr` (plain HTTP/1.0 over TCP; the body).
async fn reqwest_free_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}
