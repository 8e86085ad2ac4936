//! Oversized input against a 3-master cluster of real processes: huge names and request
//! ids, a million-step alteration, a 100 MB request and an oversized heartbeat are each
//! refused with a clear error, and afterwards the masters keep replicating and serving.

mod common;

use common::{Cluster, WAIT, http_get, simple_schema, wait_for};
use kudu::catalog::{AlterStep, Column, ColumnType, Schema};
use kudu::convert::{alter_step_to_pb, schema_to_pb};
use kudu::pb::master as pb;
use kudu::pb::master::master_service_client::MasterServiceClient;
use kudu::rpc;
use tonic::transport::Channel;

const MIB: usize = 1 << 20;

fn create_request(name: &str, schema: &Schema, request_id: &str) -> pb::CreateTableRequest {
    pb::CreateTableRequest {
        name: name.into(),
        schema: Some(schema_to_pb(schema)),
        num_partitions: 1,
        replication_factor: 1,
        request_id: request_id.into(),
    }
}

/// Asserts a refusal with `code` whose message contains `says` and stays short (a huge
/// input is never echoed back whole).
fn assert_refused(status: &tonic::Status, code: &str, says: &str) {
    assert_eq!(rpc::error_code(status), Some(code), "{status:?}");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains(says), "{:?} does not say {says:?}", status.message());
    assert!(status.message().len() < 1000, "a {}-byte message", status.message().len());
}

/// The `/tables` page of every master: the catalog each has applied.
async fn catalogs(cluster: &Cluster) -> Vec<String> {
    let pages: Vec<String> = cluster.masters.iter().map(|m| m.http_addr.clone().expect("http")).collect();
    tokio::task::spawn_blocking(move || pages.iter().map(|addr| http_get(addr, "/tables").1).collect())
        .await
        .expect("http task")
}

async fn refuse_huge_names_and_ids(raw: &mut MasterServiceClient<Channel>) {
    let huge = "x".repeat(MIB);
    let status = raw.create_table(create_request(&huge, &simple_schema(), "")).await.expect_err("huge table name");
    assert_refused(&status, "INVALID_TABLE_NAME", "longer than 256 characters");

    let mut schema = simple_schema();
    schema.columns.push(Column::new(huge.clone(), ColumnType::String, true));
    let status = raw.create_table(create_request("t", &schema, "")).await.expect_err("huge column name");
    assert_refused(&status, "INVALID_SCHEMA", "longer than 256 characters");

    let status = raw.create_table(create_request("t", &simple_schema(), &huge)).await.expect_err("huge request id");
    assert_refused(&status, "TOO_LARGE", "request id of 1048576 bytes is longer than the limit of 128 bytes");
    let status = raw
        .delete_table(pb::DeleteTableRequest { name: "before".into(), request_id: huge.clone() })
        .await
        .expect_err("huge request id");
    assert_refused(&status, "TOO_LARGE", "request id of 1048576 bytes");
    let status = raw
        .delete_table(pb::DeleteTableRequest { name: huge.clone(), request_id: String::new() })
        .await
        .expect_err("huge name");
    assert_refused(&status, "INVALID_TABLE_NAME", "longer than 256 characters");
    let rename = alter_step_to_pb(&AlterStep::RenameTable(huge.clone()));
    let status = raw
        .alter_table(pb::AlterTableRequest {
            name: "before".into(),
            steps: vec![rename],
            request_id: String::new(),
            no_wait: false,
        })
        .await
        .expect_err("huge new name");
    assert_refused(&status, "INVALID_TABLE_NAME", "longer than 256 characters");
}

async fn refuse_huge_requests(raw: &mut MasterServiceClient<Channel>) {
    let drop = alter_step_to_pb(&AlterStep::DropColumn("v".into()));
    let request = pb::AlterTableRequest {
        name: "before".into(),
        steps: vec![drop; 1_000_000],
        request_id: String::new(),
        no_wait: false,
    };
    let status = raw.alter_table(request).await.expect_err("a million steps");
    assert_refused(&status, "TOO_LARGE", "1000000 alteration steps exceed the limit of 1000");

    // 100 MB on the wire: refused from its length before it is read.
    let status = raw
        .create_table(create_request(&"y".repeat(100 * MIB), &simple_schema(), ""))
        .await
        .expect_err("a 100 MB request");
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("the limit is: 16777216 bytes"), "{status:?}");

    let heartbeat =
        pb::TsHeartbeatRequest { ts_uuid: "u".repeat(MIB), rpc_address: "nowhere:1".into(), ..Default::default() };
    let status = raw.ts_heartbeat(heartbeat).await.expect_err("a huge tablet server uuid");
    assert_refused(&status, "TOO_LARGE", "tablet server uuid of 1048576 bytes");
}

/// A write with a huge client id, to the leader of one of the table's tablets.
async fn refuse_huge_client_id(client: &kudu::client::MasterClient) {
    use kudu::pb::tserver as ts;
    use kudu::pb::tserver::tablet_server_service_client::TabletServerServiceClient;

    let locations = client.get_table_locations("before").await.expect("locations");
    let tablet = &locations.tablets[0];
    let mut tserver = TabletServerServiceClient::connect(format!("http://{}", tablet.replicas[0].rpc_address))
        .await
        .expect("connect tablet server");
    let write = ts::WriteRequest {
        tablet_id: tablet.tablet_id.clone(),
        client_id: "c".repeat(MIB),
        seq_no: 1,
        first_incomplete_seq_no: 1,
        ops: vec![ts::RowOperation { r#type: ts::OpType::Insert as i32, row_json: r#"{"id": 1}"#.into() }],
    };
    let status = tserver.write(write).await.expect_err("a huge client id");
    assert_refused(&status, "TOO_LARGE", "client id of 1048576 bytes is longer than the limit of 128");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_inputs_are_refused_and_masters_keep_replicating() {
    let cluster = Cluster::start(3, 1);
    let leader = cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    let client = cluster.client();
    client.create_table("before", &simple_schema(), 2, 1).await.expect("create before");

    let mut raw = MasterServiceClient::connect(format!("http://{leader}")).await.expect("connect");
    refuse_huge_names_and_ids(&mut raw).await;
    refuse_huge_requests(&mut raw).await;
    // The same connection still serves. (Limits are checked before leadership, so the
    // refusals above do not depend on who leads; in a debug build, decoding the million-step
    // alter can hold the leader past the 375 ms election deadline, so the reads below ask
    // the client, which follows the leader.)
    raw.connect_to_master(pb::ConnectToMasterRequest::default()).await.expect("the same connection answers");
    refuse_huge_client_id(&client).await;

    // The masters keep serving: a normal DDL, and every master agrees.
    let tables = client.list_tables().await.expect("list");
    assert_eq!(tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["before"], "nothing else was created");
    client.create_table("after", &simple_schema(), 2, 1).await.expect("create after");
    client
        .alter_table("after", &[AlterStep::AddColumn(Column::new("w", ColumnType::Int32, true))])
        .await
        .expect("alter");
    let agreed = wait_for("the three masters' catalogs to agree", WAIT, || async {
        let pages = catalogs(&cluster).await;
        (pages.iter().all(|p| p == &pages[0]) && pages[0].contains("<td>after</td>")).then_some(pages)
    })
    .await;
    assert!(agreed[0].contains("<td>before</td>") && agreed[0].contains("w:int32"), "{}", agreed[0]);
    assert_eq!(agreed.len(), 3);
    for m in &cluster.masters {
        assert!(m.is_running(), "{} exited:\n{}", m.name, m.log());
    }
}
