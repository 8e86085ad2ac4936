//! Replicated masters with 1, 3 and 5 members: a leader is elected, DDL works through the
//! client, followers refuse with NOT_THE_LEADER and a leader hint.

mod common;

use common::{Cluster, WAIT, http_get, simple_schema, wait_for};
use kudu::pb::master as pb;
use kudu::pb::master::master_service_client::MasterServiceClient;
use kudu::rpc;

async fn elects_and_serves(n: usize) {
    let cluster = Cluster::start(n, 1);
    let leader = cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    let client = cluster.client();

    let created = client.create_table("t1", &simple_schema(), 2, 1).await.expect("create table");
    assert_eq!(created.name, "t1");
    let tables = client.list_tables().await.expect("list");
    assert_eq!(tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), vec!["t1"]);

    let masters = client.list_masters().await.expect("list masters");
    assert_eq!(masters.members.len(), n);
    assert_eq!(masters.members.iter().filter(|m| m.role == pb::Role::Leader as i32).count(), 1);
    assert!(masters.members.iter().all(|m| m.voter));

    // Every follower refuses a client request with NOT_THE_LEADER and, once it has heard
    // from the leader, names it.
    for follower in cluster.masters.iter().filter(|m| m.addr != leader) {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", follower.addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect follower");
        let service = MasterServiceClient::new(channel);
        wait_for("a follower's leader hint", WAIT, || {
            let mut service = service.clone();
            let leader = leader.clone();
            async move {
                let err = service.list_tables(pb::ListTablesRequest {}).await.expect_err("a follower must refuse");
                assert_eq!(rpc::known_error_code(&err), Some(kudu::error_code::ErrorCode::NotTheLeader), "{err:?}");
                let hint = err.metadata().get(rpc::LEADER_ADDR_KEY).and_then(|v| v.to_str().ok());
                (hint == Some(leader.as_str())).then_some(())
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_endpoints_report_health_metrics_and_pages() {
    let cluster = Cluster::start(3, 1);
    let leader = cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    cluster.client().create_table("web", &simple_schema(), 3, 1).await.expect("create");
    let http = cluster.masters.iter().find(|m| m.addr == leader).and_then(|m| m.http_addr.clone()).expect("http");
    let get = |path: &'static str| {
        let http = http.clone();
        async move { tokio::task::spawn_blocking(move || http_get(&http, path)).await.expect("http task") }
    };
    let (status, body) = get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("role: LEADER"), "{body}");
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    for line in ["kudu_master_is_leader 1", "kudu_master_catalog_tables 1", "kudu_master_catalog_tablets 3"] {
        assert!(metrics.lines().any(|l| l == line), "missing {line:?} in\n{metrics}");
    }
    assert!(metrics.contains("kudu_master_rpc_requests_total{method=\"CreateTable\",code=\"OK\"} 1"), "{metrics}");
    assert!(metrics.contains("kudu_master_rpc_duration_seconds_bucket"), "{metrics}");
    let (_, masters) = get("/masters").await;
    assert!(masters.contains("<table>") && masters.contains(&leader) && masters.contains("LEADER"), "{masters}");
    // The cluster id the first leader chose: reported by ConnectToMaster and shown.
    let cluster_id = cluster.client().connect_to(&leader).await.expect("connect").cluster_id;
    assert!(cluster_id.len() == 32 && cluster_id.chars().all(|c| c.is_ascii_hexdigit()), "{cluster_id:?}");
    assert!(masters.contains(&format!("Cluster id: {cluster_id}")), "{masters}");
    let (_, tables) = get("/tables").await;
    assert!(tables.contains("<td>web</td>"), "{tables}");
    let locations = cluster.client().get_table_locations("web").await.expect("locations");
    assert!(tables.contains("Tablets of web"), "{tables}");
    for tablet in &locations.tablets {
        assert!(tables.contains(&format!("<td>{}</td>", tablet.tablet_id)), "{tables}");
    }
    let (_, tservers) = get("/tablet-servers").await;
    assert!(tservers.contains("live"), "{tservers}");
    // A master that has not joined any cluster is not healthy.
    let lonely_addr = common::free_addr();
    let mut cluster = cluster;
    let lonely = cluster.new_master(lonely_addr.clone(), &[leader.clone(), lonely_addr]);
    let lonely_http = lonely.http_addr.clone().expect("http");
    let (status, body) = wait_for("the lone master's web server", WAIT, || {
        let lonely_http = lonely_http.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::net::TcpStream::connect(&lonely_http).ok().map(|_| http_get(&lonely_http, "/healthz"))
            })
            .await
            .ok()
            .flatten()
        }
    })
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("NON_MEMBER"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_master() {
    elects_and_serves(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_masters() {
    elects_and_serves(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_masters() {
    elects_and_serves(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_create_table_returns_the_first_outcome() {
    let cluster = Cluster::start(3, 1);
    let leader = cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    let mut raw = MasterServiceClient::connect(format!("http://{leader}")).await.expect("connect");
    let request = |request_id: &str| pb::CreateTableRequest {
        name: "once".into(),
        schema: Some(kudu::convert::schema_to_pb(&simple_schema())),
        num_partitions: 2,
        replication_factor: 1,
        request_id: request_id.into(),
    };
    let first = raw.create_table(request("req-1")).await.expect("first").into_inner().table.expect("table");
    // The same request again (a client retrying after a lost answer) gets the same table.
    let again = raw.create_table(request("req-1")).await.expect("retry").into_inner().table.expect("table");
    assert_eq!(first.id, again.id);
    // A different request for the same name is refused.
    let err = raw.create_table(request("req-2")).await.expect_err("second create");
    assert_eq!(rpc::error_code(&err), Some("TABLE_ALREADY_EXISTS"));
    let tables = cluster.client().list_tables().await.expect("list");
    assert_eq!(tables.len(), 1);
    let locations = cluster.client().get_table_locations("once").await.expect("locations");
    assert_eq!(locations.tablets.len(), 2, "the retry placed no second set of tablets");
}
