//! Replicated tablets with rows, end to end with real processes: writes and scans through
//! the client and the CLI, alter and delete reaching the tablets, RF 3 surviving a tablet
//! server down (RF 1 not), a whole-cluster restart keeping every acknowledged row, and a
//! master group re-initialized on empty disks unable to make tablet servers delete data.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Cluster, WAIT, cli, simple_row as row, simple_schema, tablet_ids, wait_for};
use kudu::client::{ClientError, ClientOptions, KuduClient, RowWrite, ScanSpec};
use kudu::tablet::{JsonRow, OpKind};
use serde_json::{Value, json};

fn kudu_client(cluster: &Cluster) -> KuduClient {
    common::kudu_client_for(&cluster.master_addrs(), Duration::from_secs(60), Duration::from_secs(10))
}

fn writes(kind: OpKind, rows: impl IntoIterator<Item = JsonRow>) -> Vec<RowWrite> {
    rows.into_iter().map(|row| RowWrite { kind, row }).collect()
}

/// id -> v of every row of `table`.
async fn contents(client: &KuduClient, table: &str) -> BTreeMap<i64, Value> {
    let rows = client.scan(table, &ScanSpec::default()).await.expect("scan");
    rows.into_iter().map(|r| (r["id"].as_i64().expect("int id"), r.get("v").cloned().unwrap_or(Value::Null))).collect()
}

async fn create(cluster: &Cluster, client: &KuduClient, name: &str, partitions: u32, rf: u32) {
    client.masters().create_table(name, &simple_schema(), partitions, rf).await.expect("create table");
    client.wait_for_leaders(name, WAIT).await.unwrap_or_else(|e| {
        cluster.dump_logs();
        panic!("tablets of {name} never got leaders: {e}")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_written_once_and_scanned_back_in_key_order() {
    let cluster = Cluster::start(3, 3);
    cluster.wait_leader().await;
    cluster.wait_tservers(3).await;
    let client = kudu_client(&cluster);
    create(&cluster, &client, "rows", 4, 3).await;

    // 200 inserts spread over the 4 tablets; inserting an existing key fails that row only.
    let outcome =
        client.write("rows", &writes(OpKind::Insert, (0..200).map(|i| row(i, Some("a"))))).await.expect("insert");
    assert_eq!((outcome.applied, outcome.failures.len()), (200, 0), "{outcome:?}");
    let again = writes(OpKind::Insert, [row(5, Some("dup")), row(1000, Some("new"))]);
    let outcome = client.write("rows", &again).await.expect("insert again");
    assert_eq!(outcome.applied, 1);
    assert_eq!(outcome.failures.len(), 1);
    assert_eq!((outcome.failures[0].index, outcome.failures[0].code.as_str()), (0, "ALREADY_PRESENT"));

    // Upsert, update (missing key fails), delete.
    let mixed = vec![
        RowWrite { kind: OpKind::Upsert, row: row(5, Some("upserted")) },
        RowWrite { kind: OpKind::Update, row: row(6, Some("updated")) },
        RowWrite { kind: OpKind::Update, row: row(5000, Some("nope")) },
        RowWrite { kind: OpKind::Delete, row: row(7, None) },
    ];
    let outcome = client.write("rows", &mixed).await.expect("mixed");
    assert_eq!(outcome.applied, 3, "{outcome:?}");
    assert_eq!((outcome.failures[0].index, outcome.failures[0].code.as_str()), (2, "NOT_FOUND"));

    let all = contents(&client, "rows").await;
    assert_eq!(all.len(), 200, "199 of the first rows plus 1000");
    assert_eq!(all[&5], json!("upserted"));
    assert_eq!(all[&6], json!("updated"));
    assert!(!all.contains_key(&7) && all.contains_key(&1000));
    assert_eq!(all.keys().copied().collect::<Vec<_>>(), {
        let mut k: Vec<i64> = all.keys().copied().collect();
        k.sort();
        k
    });

    // Key range, projection and limit, across tablets, in key order.
    let spec = ScanSpec { columns: vec!["v".into()], lower: vec![json!(10)], upper: vec![json!(20)], limit: Some(5) };
    let rows = client.scan("rows", &spec).await.expect("range scan");
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.keys().collect::<Vec<_>>() == vec!["v"]), "projection: {rows:?}");
    let spec = ScanSpec { columns: vec!["id".into()], lower: vec![json!(10)], upper: vec![json!(20)], limit: None };
    let ids: Vec<i64> =
        client.scan("rows", &spec).await.expect("range").iter().filter_map(|r| r["id"].as_i64()).collect();
    assert_eq!(ids, (10..20).collect::<Vec<_>>());

    // Bad input is refused with a clear error and loses nothing.
    let bad = writes(OpKind::Insert, [[("id".to_string(), json!("x"))].into_iter().collect::<JsonRow>()]);
    let err = client.write("rows", &bad).await.expect_err("string key");
    assert_eq!(err.code(), Some("INVALID_ROW"), "{err}");
    let unknown = writes(
        OpKind::Insert,
        [[("id".to_string(), json!(1)), ("nope".to_string(), json!(1))].into_iter().collect::<JsonRow>()],
    );
    let err = client.write("rows", &unknown).await.expect_err("unknown column");
    assert!(err.to_string().contains("unknown column 'nope'"), "{err}");
    let err = client.write("missing", &writes(OpKind::Insert, [row(1, None)])).await.expect_err("no table");
    assert_eq!(err.code(), Some("TABLE_NOT_FOUND"), "{err}");
    assert_eq!(contents(&client, "rows").await.len(), 200);

    // The CLI: JSON lines in, JSON lines out.
    let masters = cluster.master_addrs().join(",");
    let (ok, out, err) = cli(&["row", "insert", "rows", "-m", &masters, "--json", r#"{"id": 2000, "v": "cli"}"#]);
    assert!(ok, "cli insert: {out} {err}");
    let (ok, out, err) = cli(&["row", "scan", "rows", "-m", &masters, "--from", "1000", "--columns", "id,v"]);
    assert!(ok, "cli scan: {err}");
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines, vec![json!({"id": 1000, "v": "new"}), json!({"id": 2000, "v": "cli"})]);
    let (ok, _, err) = cli(&["row", "insert", "rows", "-m", &masters, "--json", r#"{"id": 2000}"#]);
    assert!(!ok && err.contains("ALREADY_PRESENT"), "duplicate via cli: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_reaches_the_tablets_and_delete_tombstones_them() {
    let cluster = Cluster::start(1, 3);
    cluster.wait_leader().await;
    cluster.wait_tservers(3).await;
    let client = kudu_client(&cluster);
    create(&cluster, &client, "alt", 2, 3).await;
    client.write("alt", &writes(OpKind::Insert, (0..10).map(|i| row(i, Some("old"))))).await.expect("insert");

    // Add a column, rename another: once the alter returns, writes and scans use them.
    let steps = [
        kudu::catalog::AlterStep::AddColumn(kudu::catalog::Column::new("n", kudu::catalog::ColumnType::Int32, true)),
        kudu::catalog::AlterStep::RenameColumn { old_name: "v".into(), new_name: "label".into() },
    ];
    client.masters().alter_table("alt", &steps).await.expect("alter");
    let new_row: JsonRow =
        [("id".to_string(), json!(100)), ("label".to_string(), json!("new")), ("n".to_string(), json!(7))]
            .into_iter()
            .collect();
    client.write("alt", &writes(OpKind::Insert, [new_row])).await.expect("write with the new schema");
    let rows = client.scan("alt", &ScanSpec::default()).await.expect("scan");
    assert_eq!(rows.len(), 11);
    assert_eq!(
        rows[0],
        serde_json::from_value::<serde_json::Map<String, Value>>(json!({"id": 0, "label": "old", "n": null}))
            .expect("map")
    );
    assert_eq!(rows[10]["n"], json!(7));
    // The old name is gone for writes.
    let err = client.write("alt", &writes(OpKind::Insert, [row(200, Some("x"))])).await.expect_err("old name");
    assert!(err.to_string().contains("unknown column 'v'"), "{err}");

    // Drop the column and add it again: old values do not come back.
    let drop = [kudu::catalog::AlterStep::DropColumn("n".into())];
    client.masters().alter_table("alt", &drop).await.expect("drop");
    let add =
        [kudu::catalog::AlterStep::AddColumn(kudu::catalog::Column::new("n", kudu::catalog::ColumnType::Int32, true))];
    client.masters().alter_table("alt", &add).await.expect("re-add");
    let rows = client
        .scan("alt", &ScanSpec { columns: vec!["id".into(), "n".into()], ..Default::default() })
        .await
        .expect("scan");
    assert!(rows.iter().all(|r| r["n"].is_null()), "a dropped column's values came back: {rows:?}");

    // Delete: every tablet server tombstones its replicas.
    let tablets = tablet_ids(&client, "alt").await;
    client.masters().delete_table("alt").await.expect("delete");
    for ts in &cluster.tservers {
        let addr = ts.addr.clone();
        let tablets = tablets.clone();
        wait_for("replicas to be tombstoned", WAIT, || async {
            let replicas = list_tablets(&addr).await?;
            let running = replicas.iter().filter(|r| tablets.contains(&r.tablet_id) && r.state == "RUNNING").count();
            (running == 0).then_some(())
        })
        .await;
    }
    let err = client.scan("alt", &ScanSpec::default()).await.expect_err("deleted");
    assert_eq!(err.code(), Some("TABLE_NOT_FOUND"), "{err}");
}

async fn list_tablets(addr: &str) -> Option<Vec<kudu::pb::tserver::TabletReplica>> {
    use kudu::pb::tserver::tablet_server_service_client::TabletServerServiceClient;
    let mut client = TabletServerServiceClient::connect(format!("http://{addr}")).await.ok()?;
    Some(client.list_tablets(kudu::pb::tserver::ListTabletsRequest {}).await.ok()?.into_inner().replicas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rf3_keeps_writing_with_a_tablet_server_down_and_rf1_says_why_it_cannot() {
    let mut cluster = Cluster::start(1, 3);
    cluster.wait_leader().await;
    cluster.wait_tservers(3).await;
    let client = kudu_client(&cluster);
    create(&cluster, &client, "rf3", 2, 3).await;
    create(&cluster, &client, "rf1", 3, 1).await;
    client.write("rf3", &writes(OpKind::Insert, (0..20).map(|i| row(i, Some("before"))))).await.expect("insert");
    client.write("rf1", &writes(OpKind::Insert, (0..30).map(|i| row(i, Some("before"))))).await.expect("insert rf1");

    // Placement spreads replicas by load with random choices, so any one server may host
    // no RF 1 tablet: take down one that hosts some.
    let rf1 = client.masters().get_table_locations("rf1").await.expect("rf1 locations");
    let host =
        rf1.tablets.first().and_then(|t| t.replicas.first()).map(|r| r.rpc_address.clone()).expect("rf1 replica");
    let down = cluster.tservers.iter().position(|t| t.addr == host).expect("rf1 host is one of ours");
    cluster.tservers[down].kill();
    let outcome = client
        .write("rf3", &writes(OpKind::Insert, (20..40).map(|i| row(i, Some("after")))))
        .await
        .expect("rf3 write with one down");
    assert_eq!(outcome.applied, 20);
    assert_eq!(contents(&client, "rf3").await.len(), 40);

    // RF 1: the tablets on the dead server cannot take writes; the client says which.
    let short = KuduClient::new(
        cluster.master_addrs(),
        ClientOptions { timeout: Duration::from_secs(5), rpc_timeout: Duration::from_secs(2), ..Default::default() },
    )
    .expect("client");
    let err = short
        .write("rf1", &writes(OpKind::Upsert, (0..30).map(|i| row(i, Some("after")))))
        .await
        .expect_err("rf1 down");
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("tablet"), "names the tablet: {err}");
    // Back up: every row is there.
    cluster.tservers[down].restart();
    wait_for("rf1 writable again", WAIT, || async {
        client.write("rf1", &writes(OpKind::Upsert, [row(0, Some("back"))])).await.ok()
    })
    .await;
    assert_eq!(contents(&client, "rf1").await.len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_keeps_every_acknowledged_row() {
    let mut cluster = Cluster::start(3, 3);
    cluster.wait_leader().await;
    cluster.wait_tservers(3).await;
    let client = kudu_client(&cluster);
    create(&cluster, &client, "durable", 3, 3).await;
    for batch in 0..5 {
        let rows = (batch * 50..(batch + 1) * 50).map(|i| row(i, Some("x")));
        client.write("durable", &writes(OpKind::Insert, rows)).await.expect("insert");
    }
    for p in cluster.masters.iter_mut().chain(cluster.tservers.iter_mut()) {
        p.kill();
    }
    for p in cluster.masters.iter_mut().chain(cluster.tservers.iter_mut()) {
        p.restart();
    }
    cluster.wait_leader().await;
    let client = kudu_client(&cluster);
    let rows = wait_for("every row after the restart", WAIT, || async {
        let rows = client.scan("durable", &ScanSpec::default()).await.ok()?;
        Some(rows)
    })
    .await;
    let ids: Vec<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
    assert_eq!(ids, (0..250).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_reinitialized_on_empty_disks_cannot_make_tablet_servers_delete_data() {
    let mut cluster = Cluster::start(1, 3);
    cluster.wait_leader().await;
    cluster.wait_tservers(3).await;
    let client = kudu_client(&cluster);
    create(&cluster, &client, "precious", 2, 3).await;
    client.write("precious", &writes(OpKind::Insert, (0..50).map(|i| row(i, Some("keep"))))).await.expect("insert");

    // The master loses its disk and starts a new cluster under a new id.
    cluster.masters[0].kill();
    cluster.masters[0].wipe();
    cluster.masters[0].restart();
    cluster.wait_leader().await;
    let tserver = cluster.tservers[0].addr.clone();
    // Tablet servers refuse it (and say why) and keep every replica.
    let deadline = std::time::Instant::now() + WAIT;
    while !cluster.tservers[0].log().contains("belongs to another cluster") {
        if std::time::Instant::now() > deadline {
            cluster.dump_logs();
            panic!("the tablet server never said why it refuses the new cluster");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Over ten heartbeat rounds (300 ms each) after the refusal, every replica stays.
    let watch_until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < watch_until {
        let replicas = list_tablets(&tserver).await.expect("tablets");
        assert_eq!(replicas.iter().filter(|r| r.state == "RUNNING").count(), 2, "{replicas:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let servers = kudu_client(&cluster).masters().list_tablet_servers().await.expect("list");
    assert!(servers.iter().all(|s| !s.live), "the new cluster must not register the old tablet servers: {servers:?}");
}
