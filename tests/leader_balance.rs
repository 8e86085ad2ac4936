//! Leader balancing with real processes: tablet leaders piled on one tablet server (moved
//! there on purpose through TransferLeadership) are spread evenly by the leader master, and
//! the table keeps serving.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Cluster, WAIT, simple_row as row, simple_schema, tablet_leaders, wait_for};
use kudu::client::{RowWrite, ScanSpec};
use kudu::tablet::OpKind;

const TABLETS: usize = 12;

fn per_server(leaders: &BTreeMap<String, String>, uuids: &[String]) -> Vec<usize> {
    uuids.iter().map(|u| leaders.values().filter(|l| *l == u).count()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_piled_on_one_server_are_spread_evenly() {
    let off = ["--leader-balance-interval-ms".to_string(), "0".to_string()];
    let mut cluster = Cluster::start_with_flags(1, 3, &off);
    cluster.wait_leader().await;
    cluster.wait_tservers(3).await;
    let client = common::kudu_client_for(&cluster.master_addrs(), Duration::from_secs(60), Duration::from_secs(10));
    client.masters().create_table("spread", &simple_schema(), TABLETS as u32, 3).await.expect("create");
    client.wait_for_leaders("spread", WAIT).await.expect("leaders");
    let addrs: Vec<String> = cluster.tservers.iter().map(|t| t.addr.clone()).collect();
    let mut uuids = Vec::new();
    for addr in &addrs {
        uuids.push(client.list_tablets(addr).await.expect("list tablets").uuid);
    }

    // Every leadership moves to the first server (balancing is off).
    let pile = &uuids[0];
    wait_for("every tablet led by the first server", WAIT, || async {
        let current = tablet_leaders(&client, &addrs).await;
        for (tablet, leader) in current.iter().filter(|(_, l)| *l != pile) {
            let from = &addrs[uuids.iter().position(|u| u == leader).expect("known leader")];
            let _ = client.transfer_leadership(from, tablet, pile).await;
        }
        (current.len() == TABLETS && current.values().all(|l| l == pile)).then_some(())
    })
    .await;
    // The table serves with its leaders piled up.
    let rows = |ids: std::ops::Range<i64>| -> Vec<RowWrite> {
        ids.map(|i| RowWrite { kind: OpKind::Insert, row: row(i, Some("x")) }).collect()
    };
    client.write("spread", &rows(0..60)).await.expect("write");

    // The master restarts with balancing on (every second): leaders spread to 4 per server.
    cluster.masters[0].set_flag("--leader-balance-interval-ms", "1000");
    cluster.masters[0].kill();
    cluster.masters[0].restart();
    cluster.wait_leader().await;
    let spread = wait_for("leaders spread over the servers", WAIT, || async {
        let current = tablet_leaders(&client, &addrs).await;
        let counts = per_server(&current, &uuids);
        (current.len() == TABLETS && counts.iter().all(|n| *n == TABLETS / 3)).then_some(counts)
    })
    .await;
    assert_eq!(spread, vec![TABLETS / 3; 3]);

    // Writes and scans are served by the new leaders.
    client.write("spread", &rows(60..120)).await.expect("write after balancing");
    let scanned = client.scan("spread", &ScanSpec::default()).await.expect("scan");
    let ids: Vec<i64> = scanned.iter().filter_map(|r| r["id"].as_i64()).collect();
    assert_eq!(ids, (0..120).collect::<Vec<_>>());
}
