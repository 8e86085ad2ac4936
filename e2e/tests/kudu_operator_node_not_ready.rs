//! A tablet server's node going NotReady, end to end: a KuduCluster of 3 masters and 5
//! tablet servers on 6 nodes in 3 zones; an RF 3 table with rows complies with the placement
//! policy by zone. One node that hosts a tablet server with replicas (and shares its zone
//! with another tablet server's node) goes NotReady, which stops its pods. After the
//! masters' unresponsive timeout its replicas are re-replicated onto live servers, by policy
//! (the zone's other server keeps it compliant): ksck reports no tablet problem, only the
//! silent server, and every row stays readable and writable. When the node is Ready again
//! its server comes back, holds none of the replaced replicas and ksck is clean.
//! Same setup as `kudu_operator.rs` (CRD, Helm-installed operator).

mod common;
#[path = "kudu_operator/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use common::{TestCluster, eventually};
use serde_json::Value;
use support::{condition, create_rows_table, insert_rows, row_ids, run_single_test, start_with_operator_on_nodes};

/// Deadline for the cluster to become available from scratch on a loaded 2-core machine.
const AVAILABLE: Duration = Duration::from_secs(240);
/// The masters' unresponsive timeout (set below) plus the moves of a few tablets.
const REREPLICATED: Duration = Duration::from_secs(240);
/// A silent tablet server counts as dead after this long (the default is 60 s).
const UNRESPONSIVE_MS: u64 = 15_000;
/// Rows written before the node goes NotReady, then as many again after re-replication.
const ROWS: i64 = 200;

fn cluster_manifest() -> String {
    format!(
        r#"
apiVersion: kudu.dev/v1alpha1
kind: KuduCluster
metadata: {{name: demo, namespace: default}}
spec:
  image: kudu:dev
  masters:
    replicas: 3
    storage: {{size: 1Gi}}
    flags: ["--tserver-unresponsive-timeout-ms={UNRESPONSIVE_MS}"]
  tservers:
    replicas: 5
    storage: {{size: 1Gi}}
"#
    )
}

/// Where the cluster's pods run: pod name -> node name.
async fn pod_nodes(tc: &TestCluster) -> Result<BTreeMap<String, String>> {
    let pods = tc.get_json(&["pods"]).await?;
    Ok(pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["metadata"]["name"].as_str()?.to_owned(), p["spec"]["nodeName"].as_str()?.to_owned())))
        .collect())
}

/// Node name -> zone label.
async fn node_zones(tc: &TestCluster) -> Result<BTreeMap<String, String>> {
    let nodes = tc.get_json(&["nodes"]).await?;
    Ok(nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            let zone = n["metadata"]["labels"]["topology.kubernetes.io/zone"].as_str()?;
            Some((n["metadata"]["name"].as_str()?.to_owned(), zone.to_owned()))
        })
        .collect())
}

/// The node to take away: it hosts a tablet server with replicas, not the operator, and its
/// zone has another node with a tablet server (so a compliant replacement exists). Nodes
/// without a master come first, so the masters keep all three members when possible.
fn pick_victim(
    servers: &[Value],
    pods: &BTreeMap<String, String>,
    zones: &BTreeMap<String, String>,
    operator_node: &str,
) -> Option<String> {
    let tserver_nodes: BTreeMap<String, &str> =
        servers.iter().filter_map(|s| Some((pods.get(s["pod"].as_str()?)?.clone(), s["pod"].as_str()?))).collect();
    let mut candidates: Vec<(bool, String)> = servers
        .iter()
        .filter(|s| s["replicas"].as_u64().is_some_and(|r| r > 0))
        .filter_map(|s| pods.get(s["pod"].as_str()?).cloned())
        .filter(|node| node != operator_node)
        .filter(|node| {
            let zone = zones.get(node);
            tserver_nodes.keys().any(|other| other != node && zones.get(other) == zone)
        })
        .map(|node| {
            let hosts_master = pods.iter().any(|(p, n)| p.starts_with("demo-master-") && *n == node);
            (hosts_master, node)
        })
        .collect();
    candidates.sort();
    candidates.into_iter().next().map(|(_, node)| node)
}

/// Runs `kudu ARGS...` in `pod`.
async fn kudu_in(tc: &TestCluster, pod: &str, args: &[&str]) -> Result<String> {
    tc.kubectl(&[&["exec", pod, "--", "kudu"], args].concat()).await
}

/// `kudu cluster ksck --format json` in `pod`: (exit status success, report).
async fn ksck(tc: &TestCluster, pod: &str) -> Result<(bool, Value)> {
    let out = tc.kubectl_raw(&["exec", pod, "--", "kudu", "cluster", "ksck", "--format", "json"], None).await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).with_context(|| format!("ksck printed {stdout}"))?;
    Ok((out.status.success(), report))
}

#[test]
fn operator_cluster_rereplicates_the_replicas_of_a_not_ready_node() -> Result<()> {
    run_single_test(node_not_ready)
}

async fn node_not_ready() -> Result<()> {
    if common::skip_on_external("make a node NotReady") {
        return Ok(());
    }
    let started = Instant::now();
    let tc = start_with_operator_on_nodes(6, &cluster_manifest()).await?;

    eventually(AVAILABLE, "5 live located tablet servers in an Available KuduCluster", || async {
        let status = tc.get_json(&["kuduclusters", "demo"]).await?["status"].clone();
        let servers = status["tabletServers"].as_array().cloned().unwrap_or_default();
        let ok = servers.len() == 5
            && servers.iter().all(|s| s["live"] == true && s["location"].is_string() && s["uuid"].is_string())
            && condition(&status, "Available").is_some_and(|c| c["status"] == "True");
        Ok(ok.then_some(()))
    })
    .await?;
    eprintln!("5 tablet servers after {:?}", started.elapsed());

    // An RF 3 table with rows, compliant by zone.
    create_rows_table(&tc, "demo-master-0").await?;
    insert_rows(&tc, "demo-master-0", 0..ROWS).await?;
    eventually(AVAILABLE, "ksck to pass and the status to count every server's replicas", || async {
        let (clean, _) = ksck(&tc, "demo-master-0").await?;
        let status = tc.get_json(&["kuduclusters", "demo"]).await?["status"].clone();
        let counted: u64 =
            status["tabletServers"].as_array().into_iter().flatten().filter_map(|s| s["replicas"].as_u64()).sum();
        Ok((clean && counted == 12).then_some(()))
    })
    .await?;

    // Take away a node hosting a tablet server with replicas.
    let status = tc.get_json(&["kuduclusters", "demo"]).await?["status"].clone();
    let servers = status["tabletServers"].as_array().cloned().unwrap_or_default();
    let pods = pod_nodes(&tc).await?;
    let zones = node_zones(&tc).await?;
    let operators = tc.get_json(&["pods", "-n", support::OPERATOR_NAMESPACE]).await?;
    let operator_node = operators["items"][0]["spec"]["nodeName"].as_str().context("no operator pod")?.to_owned();
    let victim = pick_victim(&servers, &pods, &zones, &operator_node)
        .ok_or_else(|| anyhow!("no node fits (tablet servers {servers:?}, pods on nodes {pods:?}, zones {zones:?})"))?;
    let lost: BTreeSet<String> = servers
        .iter()
        .filter(|s| s["pod"].as_str().and_then(|p| pods.get(p)) == Some(&victim))
        .filter_map(|s| s["uuid"].as_str().map(str::to_owned))
        .collect();
    let lost_masters: Vec<String> =
        pods.iter().filter(|(p, n)| p.starts_with("demo-master-") && **n == victim).map(|(p, _)| p.clone()).collect();
    // Run the CLI in a master that stays up.
    let exec_pod = ["demo-master-0", "demo-master-1", "demo-master-2"]
        .into_iter()
        .find(|p| pods.get(*p) != Some(&victim))
        .context("every master on the lost node")?;
    let lost_at = Instant::now();
    let local = tc.local().context("the local control plane")?;
    local.set_node_ready(&victim, false).map_err(|e| anyhow!("marking {victim} NotReady: {e}"))?;
    eprintln!(
        "{victim} (zone {:?}, tablet servers {lost:?}, masters {lost_masters:?}) NotReady after {:?}",
        zones.get(&victim),
        started.elapsed()
    );

    // Re-replicated: no replica left on the lost servers, no tablet problem, no violation;
    // ksck reports only what is down.
    let report = eventually(REREPLICATED, "the lost node's replicas to be re-replicated", || async {
        let described = kudu_in(&tc, exec_pod, &["table", "describe", "rows", "--format", "json"]).await?;
        if lost.iter().any(|uuid| described.contains(uuid.as_str())) {
            return Ok(None);
        }
        let (_, report) = ksck(&tc, exec_pod).await?;
        let settled = report["under_replicated_tablets"] == 0
            && report["moves_in_progress"] == 0
            && report["placement_violations"] == 0;
        Ok(settled.then_some(report))
    })
    .await?;
    let rereplicated = lost_at.elapsed();
    for problem in report["problems"].as_array().into_iter().flatten() {
        let subject = problem["subject"].as_str().unwrap_or_default();
        let about_lost = match problem["kind"].as_str() {
            Some("TABLET_SERVER_UNRESPONSIVE") => lost.iter().any(|uuid| subject.contains(uuid.as_str())),
            Some("MASTER_UNREACHABLE") => lost_masters.iter().any(|m| subject.starts_with(&format!("{m}."))),
            _ => false,
        };
        ensure!(about_lost, "ksck found a problem beyond the lost node: {problem}\n{report}");
    }
    for table in report["tables"].as_array().into_iter().flatten() {
        ensure!(table["tablets"] == table["healthy_tablets"], "unhealthy tablets: {table}");
    }
    eprintln!("re-replicated {rereplicated:?} after the node went NotReady");

    // Every acknowledged row readable, and the table writable.
    let ids = row_ids(&tc, exec_pod).await?;
    ensure!(ids == (0..ROWS).collect::<Vec<_>>(), "rows lost: {} of {ROWS} read back", ids.len());
    insert_rows(&tc, exec_pod, ROWS..2 * ROWS).await?;
    let ids = row_ids(&tc, exec_pod).await?;
    ensure!(ids == (0..2 * ROWS).collect::<Vec<_>>(), "rows lost after writing more: {}", ids.len());

    // The node returns: its server is live again with none of the replaced replicas.
    local.set_node_ready(&victim, true).map_err(|e| anyhow!("marking {victim} Ready: {e}"))?;
    eventually(AVAILABLE, "ksck to be clean with the node back", || async {
        let (clean, report) = ksck(&tc, exec_pod).await?;
        let back = report["tablet_servers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["uuid"].as_str().is_some_and(|u| lost.contains(u)))
            .all(|s| s["live"] == true && s["replicas"] == 0);
        Ok((clean && back).then_some(()))
    })
    .await?;
    let ids = row_ids(&tc, exec_pod).await?;
    ensure!(ids.len() as i64 == 2 * ROWS, "rows lost after the node came back: {}", ids.len());
    eprintln!("done after {:?}", started.elapsed());
    tc.stop().await;
    Ok(())
}
