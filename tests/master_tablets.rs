//! The master's side of replicated tablets against a real master process and fake tablet
//! servers (in-process gRPC services that record AlterSchema calls and answer as told):
//! cluster id, replica reports recorded by term, instructions in heartbeat answers,
//! AlterTable pushing the schema to tablet leaders, DeleteTable tombstones.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Cluster, WAIT, free_addr, simple_schema, wait_for};
use kudu::catalog::{AlterStep, Column, ColumnType};
use kudu::error_code::ErrorCode;
use kudu::pb::master as pb;
use kudu::pb::master::master_service_client::MasterServiceClient;
use kudu::pb::tserver as tpb;
use kudu::pb::tserver::tablet_server_service_server::{TabletServerService, TabletServerServiceServer};
use kudu::rpc;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// How a fake tablet server answers AlterSchema.
#[derive(Clone, Debug)]
enum Mode {
    Apply,
    /// NOT_THE_LEADER naming this address as the leader.
    Redirect(String),
    Refuse,
}

#[derive(Clone)]
struct Fake {
    uuid: String,
    addr: String,
    mode: Arc<Mutex<Mode>>,
    calls: Arc<Mutex<Vec<tpb::AlterSchemaRequest>>>,
}

impl Fake {
    async fn start(uuid: &str) -> Fake {
        let addr = free_addr();
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        let fake =
            Fake { uuid: uuid.to_string(), addr, mode: Arc::new(Mutex::new(Mode::Refuse)), calls: Arc::default() };
        let service = TabletServerServiceServer::new(fake.clone());
        tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await;
        });
        fake
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }

    fn applied(&self) -> Vec<(String, u64, usize)> {
        self.calls
            .lock()
            .expect("calls")
            .iter()
            .map(|c| (c.tablet_id.clone(), c.schema_version, c.schema.as_ref().map_or(0, |s| s.columns.len())))
            .collect()
    }
}

#[tonic::async_trait]
impl TabletServerService for Fake {
    async fn write(&self, _: Request<tpb::WriteRequest>) -> Result<Response<tpb::WriteResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn scan(&self, _: Request<tpb::ScanRequest>) -> Result<Response<tpb::ScanResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn alter_schema(
        &self,
        request: Request<tpb::AlterSchemaRequest>,
    ) -> Result<Response<tpb::AlterSchemaResponse>, Status> {
        let request = request.into_inner();
        let mode = self.mode.lock().expect("mode").clone();
        match mode {
            Mode::Apply => {
                let version = request.schema_version;
                self.calls.lock().expect("calls").push(request);
                Ok(Response::new(tpb::AlterSchemaResponse { schema_version: version }))
            }
            Mode::Redirect(leader) => {
                let mut status = rpc::status(ErrorCode::NotTheLeader, "not the leader");
                status.metadata_mut().insert(rpc::LEADER_ADDR_KEY, leader.parse().expect("ascii"));
                Err(status)
            }
            Mode::Refuse => Err(rpc::status(ErrorCode::ServiceUnavailable, "refusing")),
        }
    }

    async fn change_config(
        &self,
        _: Request<tpb::ChangeConfigRequest>,
    ) -> Result<Response<tpb::ChangeConfigResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn transfer_leadership(
        &self,
        _: Request<tpb::TransferLeadershipRequest>,
    ) -> Result<Response<tpb::TransferLeadershipResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn list_tablets(
        &self,
        _: Request<tpb::ListTabletsRequest>,
    ) -> Result<Response<tpb::ListTabletsResponse>, Status> {
        Ok(Response::new(tpb::ListTabletsResponse::default()))
    }
}

fn running(tablet: &str, term: u64, leader: &Fake, voters: &[&Fake], schema_version: u64) -> pb::ReportedReplica {
    pb::ReportedReplica {
        tablet_id: tablet.to_string(),
        state: pb::ReplicaState::ReplicaRunning as i32,
        term,
        leader_uuid: leader.uuid.clone(),
        voter_uuids: voters.iter().map(|v| v.uuid.clone()).collect(),
        schema_version,
        ..Default::default()
    }
}

async fn beat(
    master: &mut MasterServiceClient<Channel>,
    fake: &Fake,
    cluster_id: &str,
    replicas: Vec<pb::ReportedReplica>,
) -> Result<pb::TsHeartbeatResponse, Status> {
    let request = pb::TsHeartbeatRequest {
        ts_uuid: fake.uuid.clone(),
        rpc_address: fake.addr.clone(),
        replicas,
        cluster_id: cluster_id.to_string(),
        instance_id: format!("{}-instance", fake.uuid),
        ..Default::default()
    };
    master.ts_heartbeat(request).await.map(Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_records_reports_instructs_tablet_servers_and_pushes_schemas() {
    let mut cluster = Cluster::start(1, 0);
    let leader = cluster.wait_leader().await;
    let mut master = MasterServiceClient::connect(format!("http://{leader}")).await.expect("connect");
    let (a, b, c) = (Fake::start("ts-a").await, Fake::start("ts-b").await, Fake::start("ts-c").await);

    // The first leader commits a cluster id; until then heartbeats get no instructions.
    let cluster_id = wait_for("the cluster id", WAIT, || {
        let mut master = master.clone();
        let a = a.clone();
        async move {
            let r = beat(&mut master, &a, "", Vec::new()).await.ok()?;
            (r.leader_master && !r.cluster_id.is_empty()).then_some(r.cluster_id)
        }
    })
    .await;
    // Keep the three servers live in the background.
    let keepalive = {
        let (mut master, fakes, id) = (master.clone(), [a.clone(), b.clone(), c.clone()], cluster_id.clone());
        tokio::spawn(async move {
            loop {
                for fake in &fakes {
                    let _ = beat(&mut master, fake, &id, Vec::new()).await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    cluster.wait_tservers(3).await;
    let client = cluster.client();
    client.create_table("t", &simple_schema(), 2, 3).await.expect("create");
    let locations = client.get_table_locations("t").await.expect("locations");
    let tablets: Vec<String> = locations.tablets.iter().map(|t| t.tablet_id.clone()).collect();
    let (t0, t1) = (tablets[0].as_str(), tablets[1].as_str());

    // A server that reports nothing is told to create both replicas, with the schema.
    let r = beat(&mut master, &a, &cluster_id, Vec::new()).await.expect("heartbeat");
    assert_eq!(r.cluster_id, cluster_id);
    let created: BTreeSet<&str> = r.create_replicas.iter().map(|x| x.tablet_id.as_str()).collect();
    assert_eq!(created, BTreeSet::from([t0, t1]));
    for assignment in &r.create_replicas {
        let peers: BTreeSet<&str> = assignment.peer_uuids.iter().map(String::as_str).collect();
        assert_eq!(peers, BTreeSet::from(["ts-a", "ts-b", "ts-c"]));
        let ids: Vec<u32> = assignment.schema.iter().flat_map(|s| &s.columns).map(|c| c.id).collect();
        assert_eq!((ids, assignment.schema_version, assignment.num_partitions), (vec![0, 1], 0, 2));
    }
    let peers: Vec<(&str, &str)> = r.peer_addresses.iter().map(|p| (p.uuid.as_str(), p.rpc_address.as_str())).collect();
    assert_eq!(peers, vec![("ts-b", b.addr.as_str()), ("ts-c", c.addr.as_str())]);

    // Reports of term 2 with leader b are recorded and served by GetTableLocations.
    let reports = vec![running(t0, 2, &b, &[&a, &b, &c], 0), running(t1, 2, &b, &[&a, &b, &c], 0)];
    let r = beat(&mut master, &a, &cluster_id, reports).await.expect("report");
    assert!(r.create_replicas.is_empty(), "{r:?}");
    wait_for("the reported leaders", WAIT, || async {
        let l = client.get_table_locations("t").await.ok()?;
        l.tablets.iter().all(|t| t.leader_ts_uuid == "ts-b" && t.term == 2).then_some(())
    })
    .await;
    // In one heartbeat: a stale report for t0 (ignored) and a newer one for t1.
    let reports = vec![running(t0, 1, &c, &[&c], 0), running(t1, 3, &a, &[&a, &b, &c], 0)];
    beat(&mut master, &c, &cluster_id, reports).await.expect("report");
    let l = wait_for("t1's newer term", WAIT, || async {
        let l = client.get_table_locations("t").await.ok()?;
        l.tablets.iter().any(|t| t.tablet_id == t1 && t.term == 3).then_some(l)
    })
    .await;
    let t0_now = l.tablets.iter().find(|t| t.tablet_id == t0).expect("t0");
    assert_eq!((t0_now.leader_ts_uuid.as_str(), t0_now.term, t0_now.replicas.len()), ("ts-b", 2, 3));
    assert!(t0_now.replicas.iter().all(|r| !r.rpc_address.is_empty()), "{t0_now:?}");

    // A server of another cluster is refused, naming both ids.
    let err = beat(&mut master, &a, "another-cluster", Vec::new()).await.expect_err("wrong cluster");
    assert_eq!(rpc::error_code(&err), Some("WRONG_CLUSTER"), "{err:?}");
    assert!(err.message().contains(&cluster_id) && err.message().contains("another-cluster"), "{err:?}");

    // AlterTable reaches every tablet's leader: t0's recorded leader b redirects to c, t1's
    // recorded leader a refuses, so the replicas are tried (b redirects, c applies).
    b.set(Mode::Redirect(c.addr.clone()));
    c.set(Mode::Apply);
    let table = client
        .alter_table("t", &[AlterStep::AddColumn(Column::new("w", ColumnType::Int32, true))])
        .await
        .expect("alter");
    assert_eq!(table.version, 1);
    let applied: BTreeSet<(String, u64, usize)> = c.applied().into_iter().collect();
    assert_eq!(applied, BTreeSet::from([(t0.to_string(), 1, 3), (t1.to_string(), 1, 3)]));
    // A replica still at version 0 is sent the new schema in heartbeats.
    let r = beat(&mut master, &a, &cluster_id, vec![running(t0, 2, &b, &[&a, &b, &c], 0)]).await.expect("report");
    let updates: Vec<(&str, u64)> = r.schema_updates.iter().map(|u| (u.tablet_id.as_str(), u.schema_version)).collect();
    assert_eq!(updates, vec![(t0, 1)]);

    // Nobody applies: the alter is committed, but the answer says which tablets lag.
    c.set(Mode::Refuse);
    let request = pb::AlterTableRequest {
        name: "t".into(),
        steps: vec![pb::AlterStep { step: Some(pb::alter_step::Step::RenameTable("t2".into())) }],
        request_id: "rename-1".into(),
        no_wait: false,
    };
    let err = master.alter_table(request).await.expect_err("no tablet applies");
    assert_eq!(rpc::error_code(&err), Some("TIMED_OUT"), "{err:?}");
    assert!(err.message().contains("committed") && err.message().contains(t0) && err.message().contains(t1), "{err:?}");
    assert_eq!(client.get_table_schema("t2").await.expect("renamed").version, 2);

    // no_wait: answered once committed although no tablet applies; the background push goes
    // on and, once the tablets apply, brings them the newest schema (a round that read the
    // catalog between the two alters may deliver version 3 first, never anything newer).
    for (column, version) in [("x1", 3), ("x2", 4)] {
        let step = AlterStep::AddColumn(Column::new(column, ColumnType::Int32, true));
        let altered = client.alter_table_no_wait("t2", &[step]).await.expect("committed without waiting");
        assert_eq!(altered.version, version);
    }
    c.set(Mode::Apply);
    let newest = wait_for("the newest schema pushed to both tablets", WAIT, || async {
        let mut newest = std::collections::BTreeMap::<String, (u64, usize)>::new();
        for (tablet, version, columns) in c.applied().into_iter().filter(|(_, v, _)| *v > 2) {
            let entry = newest.entry(tablet).or_default();
            *entry = (*entry).max((version, columns));
        }
        newest.values().filter(|(version, _)| *version == 4).count().eq(&2).then_some(newest)
    })
    .await;
    let expected = [(t0.to_string(), (4, 5)), (t1.to_string(), (4, 5))].into_iter().collect();
    assert_eq!(newest, expected);
    c.set(Mode::Refuse);

    // DeleteTable tombstones the tablets: reported replicas are deleted, unknown ones kept.
    client.delete_table("t2").await.expect("delete");
    let mut stray = running("stray", 1, &a, &[&a], 0);
    stray.table_id = "unknown".into();
    let mut already = running(t1, 3, &a, &[&a, &b, &c], 2);
    already.state = pb::ReplicaState::ReplicaTombstoned as i32;
    let r = beat(&mut master, &a, &cluster_id, vec![running(t0, 2, &b, &[&a, &b, &c], 2), already, stray])
        .await
        .expect("report");
    assert_eq!(r.delete_replicas, vec![t0.to_string()]);
    let r = beat(&mut master, &b, &cluster_id, vec![running(t1, 3, &a, &[&a, &b, &c], 2)]).await.expect("report");
    assert_eq!(r.delete_replicas, vec![t1.to_string()]);
    assert!(r.create_replicas.is_empty());
    let err = client.get_table_locations("t2").await.expect_err("deleted");
    assert_eq!(err.code(), Some("TABLE_NOT_FOUND"), "{err}");

    // The cluster id is durable.
    keepalive.abort();
    cluster.masters[0].restart();
    let leader = cluster.wait_leader().await;
    let again = cluster.client().connect_to(&leader).await.expect("connect").cluster_id;
    assert_eq!(again, cluster_id);
}
