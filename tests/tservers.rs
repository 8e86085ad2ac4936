//! Tablet servers: registration, liveness, and durable replicas assigned by the leader.

mod common;

use std::collections::BTreeSet;

use common::{Cluster, WAIT, simple_schema, wait_for};
use kudu::pb::tserver as tpb;
use kudu::pb::tserver::tablet_server_service_client::TabletServerServiceClient;

async fn hosted(addr: &str) -> Option<BTreeSet<String>> {
    let mut client = TabletServerServiceClient::connect(format!("http://{addr}")).await.ok()?;
    let replicas = client.list_tablets(tpb::ListTabletsRequest {}).await.ok()?.into_inner().replicas;
    // Tombstoned replicas stay listed (so they are never recreated); only running ones count.
    Some(replicas.into_iter().filter(|r| r.state == "RUNNING").map(|r| r.tablet_id).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tablet_servers_host_assigned_replicas_durably_and_go_dead_when_silent() {
    let mut cluster = Cluster::start(3, 3);
    cluster.wait_leader().await;
    cluster.wait_tservers(3).await;
    let client = cluster.client();
    client.create_table("spread", &simple_schema(), 4, 3).await.expect("create");
    let locations = client.get_table_locations("spread").await.expect("locations");
    let tablets: BTreeSet<String> = locations.tablets.iter().map(|t| t.tablet_id.clone()).collect();
    assert_eq!(tablets.len(), 4);
    for t in &locations.tablets {
        let servers: BTreeSet<&str> = t.replicas.iter().map(|r| r.ts_uuid.as_str()).collect();
        assert_eq!(servers.len(), 3, "replicas of a tablet on distinct servers: {t:?}");
    }

    // Every tablet server creates the replicas the leader assigned to it.
    for ts in &cluster.tservers {
        let addr = ts.addr.clone();
        let expected = tablets.clone();
        wait_for("replicas on every tablet server", WAIT, || async {
            (hosted(&addr).await? == expected).then_some(())
        })
        .await;
    }

    // They are durable: a restarted tablet server reports them without re-creating.
    cluster.tservers[0].restart();
    let addr = cluster.tservers[0].addr.clone();
    let after_restart = wait_for("the restarted tablet server", WAIT, || async { hosted(&addr).await }).await;
    assert_eq!(after_restart, tablets);

    // A silent tablet server is reported dead after the unresponsive timeout.
    cluster.tservers[1].kill();
    let dead_addr = cluster.tservers[1].addr.clone();
    wait_for("the killed tablet server to be reported dead", WAIT, || async {
        let servers = client.list_tablet_servers().await.ok()?;
        servers.iter().any(|s| s.rpc_address == dead_addr && !s.live).then_some(())
    })
    .await;
    // Placement uses live servers only: replication factor 3 no longer fits.
    let err = client.create_table("too-wide", &simple_schema(), 1, 3).await.expect_err("only 2 live");
    assert_eq!(err.code(), Some("NOT_ENOUGH_TABLET_SERVERS"), "{err}");

    // Deleting the table deletes the replicas on the live servers.
    client.delete_table("spread").await.expect("delete");
    for ts in [&cluster.tservers[0], &cluster.tservers[2]] {
        let addr = ts.addr.clone();
        wait_for("replicas to be deleted", WAIT, || async { hosted(&addr).await?.is_empty().then_some(()) }).await;
    }
}
