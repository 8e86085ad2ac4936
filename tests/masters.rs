//! Replicated masters with 1, 3 and 5 members: a leader is elected, DDL works through the
//! client, followers refuse with NOT_THE_LEADER and a leader hint.

mod common;

use common::{Cluster, WAIT, simple_schema, wait_for};
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
                assert_eq!(rpc::error_code(&err), Some(rpc::NOT_THE_LEADER), "{err:?}");
                let hint = err.metadata().get(rpc::LEADER_ADDR_KEY).and_then(|v| v.to_str().ok());
                (hint == Some(leader.as_str())).then_some(())
            }
        })
        .await;
    }
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
