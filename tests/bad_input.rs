//! Bad input gets a clear error, and the masters keep serving.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Cluster, cli, simple_schema};
use kudu::catalog::{AlterStep, Column, ColumnType, Schema};
use kudu::pb::master as pb;
use kudu::pb::master::master_service_client::MasterServiceClient;
use kudu::rpc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_masters_keep_serving() {
    let cluster = Cluster::start(1, 1);
    let leader = cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    let client = cluster.client();
    client.create_table("good", &simple_schema(), 1, 1).await.expect("create");

    for bad_name in ["", "has space", "semi;colon", "-dash-first", &"x".repeat(300)] {
        let err = client.create_table(bad_name, &simple_schema(), 1, 1).await.expect_err("bad name accepted");
        assert_eq!(err.code(), Some("INVALID_TABLE_NAME"), "{bad_name:?}: {err}");
    }
    let dup_columns = Schema {
        columns: vec![Column::new("id", ColumnType::Int64, false), Column::new("id", ColumnType::String, true)],
        primary_key: vec!["id".into()],
    };
    let err = client.create_table("dups", &dup_columns, 1, 1).await.expect_err("duplicate columns");
    assert_eq!(err.code(), Some("INVALID_SCHEMA"));
    assert!(err.to_string().contains("duplicate column 'id'"), "{err}");

    let no_key = Schema { primary_key: vec![], ..simple_schema() };
    let err = client.create_table("nokey", &no_key, 1, 1).await.expect_err("empty primary key");
    assert_eq!(err.code(), Some("INVALID_SCHEMA"));

    let err = client.create_table("good", &simple_schema(), 1, 1).await.expect_err("duplicate table");
    assert_eq!(err.code(), Some("TABLE_ALREADY_EXISTS"));
    let err = client.create_table("rf3", &simple_schema(), 1, 3).await.expect_err("rf 3 on one tserver");
    assert_eq!(err.code(), Some("NOT_ENOUGH_TABLET_SERVERS"), "{err}");
    let err = client.create_table("rf2", &simple_schema(), 1, 2).await.expect_err("even rf");
    assert_eq!(err.code(), Some("INVALID_ARGUMENT"));
    let err = client.create_table("zero", &simple_schema(), 0, 1).await.expect_err("zero partitions");
    assert_eq!(err.code(), Some("INVALID_ARGUMENT"));

    let err = client.alter_table("missing", &[AlterStep::DropColumn("v".into())]).await.expect_err("missing table");
    assert_eq!(err.code(), Some("TABLE_NOT_FOUND"));
    let err = client.alter_table("good", &[AlterStep::DropColumn("id".into())]).await.expect_err("drop key");
    assert_eq!(err.code(), Some("INVALID_ALTER"));
    let err = client.delete_table("missing").await.expect_err("delete missing");
    assert_eq!(err.code(), Some("TABLE_NOT_FOUND"));

    // An unknown column type on the wire.
    let mut raw = MasterServiceClient::connect(format!("http://{leader}")).await.expect("connect");
    let err = raw
        .create_table(pb::CreateTableRequest {
            name: "wire".into(),
            schema: Some(pb::Schema {
                columns: vec![pb::ColumnSchema { name: "id".into(), data_type: 99, nullable: false, id: 0 }],
                primary_key: vec!["id".into()],
            }),
            num_partitions: 1,
            replication_factor: 1,
            request_id: String::new(),
        })
        .await
        .expect_err("unknown data type");
    assert_eq!(rpc::error_code(&err), Some("INVALID_SCHEMA"));

    // Unknown column type on the command line: non-zero exit, one line, nothing created.
    let (ok, _, stderr) =
        cli(&["table", "create", "cli-bad", "--columns", "id:int64,v:varchar", "--primary-key", "id", "-m", &leader]);
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("unknown column type 'varchar'"), "{stderr}");

    // Garbage bytes on the RPC port: the connection is dropped, the master keeps serving.
    let garbage = leader.clone();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&garbage).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        stream.write_all(b"\x16\x03\x01 this is not HTTP/2 at all \xff\xfe\x00\x00garbage").expect("write");
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf);
    })
    .await
    .expect("garbage task");

    let names: Vec<String> = client.list_tables().await.expect("list").into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["good"], "nothing but the good table was created");
    let (ok, out, err) = cli(&["table", "list", "-m", &leader, "--format", "json"]);
    assert!(ok, "{err}");
    assert!(out.contains("\"good\""), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reports_unreachable_masters_in_one_line() {
    let addr = common::free_addr();
    let (ok, _, stderr) = cli(&["table", "list", "-m", &addr, "--timeout-ms", "1500"]);
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no leader master reachable"), "{stderr}");
}

/// Bad rows and garbage on a tablet server's port: clear errors, nothing applied, and the
/// tablet keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_and_garbage_leave_tablets_intact() {
    use kudu::client::{ClientOptions, KuduClient, RowWrite, ScanSpec};
    use kudu::tablet::{JsonRow, MAX_BATCH_OPS, OpKind};
    use serde_json::json;

    let cluster = Cluster::start(1, 1);
    let leader = cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    let client = KuduClient::new(vec![leader.clone()], ClientOptions::default()).expect("client");
    client.masters().create_table("t", &simple_schema(), 2, 1).await.expect("create");
    client.wait_for_leaders("t", common::WAIT).await.expect("leaders");
    let row = |id: serde_json::Value, v: serde_json::Value| -> JsonRow {
        [("id".to_string(), id), ("v".to_string(), v)].into_iter().collect()
    };
    client.write("t", &[RowWrite { kind: OpKind::Insert, row: row(json!(1), json!("one")) }]).await.expect("insert");

    // Wrong types, a missing or null key, an unknown column: INVALID_ROW, nothing applied.
    for (bad, why) in [
        (row(json!("x"), json!("a")), "expected int64"),
        (row(json!(2), json!(5)), "expected string"),
        (row(json!(null), json!("a")), "key column 'id'"),
        ([("v".to_string(), json!("a"))].into_iter().collect(), "key column 'id'"),
        ([("id".to_string(), json!(3)), ("zzz".to_string(), json!(1))].into_iter().collect(), "unknown column 'zzz'"),
        (row(json!(i64::MAX as f64 * 4.0), json!("a")), "int64"),
    ] {
        let writes = [
            RowWrite { kind: OpKind::Insert, row: row(json!(10), json!("ok")) },
            RowWrite { kind: OpKind::Insert, row: bad },
        ];
        let err = client.write("t", &writes).await.expect_err("bad row accepted");
        assert_eq!(err.code(), Some("INVALID_ROW"), "{err}");
        assert!(err.to_string().contains(why) && err.to_string().contains("row 1"), "{why}: {err}");
    }
    // Over the documented limits: a row over 64 KiB, a batch over 10 000 rows.
    let big = [RowWrite { kind: OpKind::Insert, row: row(json!(4), json!("x".repeat(70 * 1024))) }];
    let err = client.write("t", &big).await.expect_err("oversized row");
    assert!(err.to_string().contains("over the limit"), "{err}");
    let many: Vec<RowWrite> = (0..(MAX_BATCH_OPS as i64 * 3))
        .map(|i| RowWrite { kind: OpKind::Insert, row: row(json!(100 + i), json!("m")) })
        .collect();
    let err = client.write("t", &many).await.expect_err("oversized batch");
    assert!(err.to_string().contains("limit"), "{err}");

    // Garbage bytes on the tablet server's port: the connection is dropped, it keeps serving.
    let tserver = cluster.tservers[0].addr.clone();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&tserver).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\xff\x09garbage frames \xde\xad\xbe\xef")
            .expect("write");
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf);
    })
    .await
    .expect("garbage task");
    let rows = client.scan("t", &ScanSpec::default()).await.expect("scan after garbage");
    assert_eq!(rows.len(), 1, "only the one good row exists: {rows:?}");
    assert_eq!(rows[0]["v"], json!("one"));
}
