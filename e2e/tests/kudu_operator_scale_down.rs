//! Safe tablet-server scale-down end to end: a KuduCluster of 3 masters and 5 tablet
//! servers on nodes in 3 zones; an RF 3 table complies with the placement policy by zone
//! (ksck); scaling the tablet servers 5 -> 3 decommissions pods 3 and 4 first, moves their
//! replicas away and only then shrinks the StatefulSet: no replica and no row lost; scaling
//! below the replication factor is refused with a condition and the StatefulSet kept.
//! Same setup as `kudu_operator.rs` (CRD, Helm-installed operator).

mod common;
#[path = "kudu_operator/support.rs"]
mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{TestCluster, eventually};
use serde_json::Value;
use support::{condition, create_rows_table, insert_rows, row_ids, run_single_test, start_with_operator};

/// Deadline for the cluster to become available from scratch on a loaded 2-core machine.
const AVAILABLE: Duration = Duration::from_secs(180);
/// Deadline for the decommissioned servers to be drained and the StatefulSet shrunk.
const DRAINED: Duration = Duration::from_secs(240);

const CLUSTER: &str = r#"
apiVersion: kudu.dev/v1alpha1
kind: KuduCluster
metadata: {name: demo, namespace: default}
spec:
  image: kudu:dev
  masters:
    replicas: 3
    storage: {size: 1Gi}
  tservers:
    replicas: 5
    storage: {size: 1Gi}
"#;

/// `kubectl exec demo-master-0 -- kudu ARGS...`.
fn in_master<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["exec", "demo-master-0", "--", "kudu"], args].concat()
}

async fn sts_replicas(tc: &TestCluster) -> Result<i64> {
    let sts = tc.get_json(&["statefulset", "demo-tserver"]).await?;
    sts["spec"]["replicas"].as_i64().context("tablet server StatefulSet replicas")
}

#[test]
fn operator_scales_tablet_servers_down_without_losing_replicas() -> Result<()> {
    run_single_test(scale_down)
}

async fn scale_down() -> Result<()> {
    let started = Instant::now();
    let tc = start_with_operator(CLUSTER).await?;

    // 5 live tablet servers with locations, listed in the status.
    eventually(AVAILABLE, "5 live located tablet servers in the KuduCluster status", || async {
        let status = tc.get_json(&["kuduclusters", "demo"]).await?["status"].clone();
        let servers = status["tabletServers"].as_array().cloned().unwrap_or_default();
        let ok = servers.len() == 5
            && servers.iter().all(|s| s["live"] == true && s["location"].is_string() && s["pod"].is_string())
            && condition(&status, "Available").is_some_and(|c| c["status"] == "True");
        Ok(ok.then_some(()))
    })
    .await?;
    eprintln!("5 tablet servers after {:?}", started.elapsed());
    // Masters: 3 zones for 3 masters, so no two share one.
    let status = tc.get_json(&["kuduclusters", "demo"]).await?["status"].clone();
    let zones = condition(&status, "MastersShareZone").context("MastersShareZone condition")?;
    ensure!(zones["status"] == "False", "masters share a zone: {zones}");
    let masters = tc.get_json(&["statefulset", "demo-master"]).await?;
    let spread = &masters["spec"]["template"]["spec"]["topologySpreadConstraints"];
    ensure!(
        spread
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["topologyKey"] == "topology.kubernetes.io/zone" && c["whenUnsatisfiable"] == "DoNotSchedule"),
        "masters are not spread hard over zones: {spread}"
    );

    // An RF 3 table complying with the policy by zone, with rows.
    create_rows_table(&tc, "demo-master-0").await?;
    insert_rows(&tc, "demo-master-0", 0..200).await?;
    eventually(AVAILABLE, "ksck to pass (placement policy by zone)", || async {
        let out = tc.kubectl_raw(&in_master(&["cluster", "ksck"]), None).await?;
        Ok(out.status.success().then_some(()))
    })
    .await?;

    // 5 -> 3: pods 3 and 4 are decommissioned and drained before the StatefulSet shrinks.
    tc.kubectl(&["patch", "kuduclusters", "demo", "--type", "merge", "-p", r#"{"spec":{"tservers":{"replicas":3}}}"#])
        .await?;
    let scaled = Instant::now();
    eventually(DRAINED, "the tablet server StatefulSet to shrink to 3 after the drain", || async {
        Ok((sts_replicas(&tc).await? == 3).then_some(()))
    })
    .await?;
    // The masters' own list right after the shrink: the servers that went hold nothing.
    let out = tc.kubectl(&in_master(&["tserver", "list", "--format", "json"])).await?;
    let listed: Value = serde_json::from_str(&out).with_context(|| format!("kudu tserver list printed {out}"))?;
    let leaving: Vec<&Value> = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["rpc_address"]
                .as_str()
                .is_some_and(|a| a.starts_with("demo-tserver-3.") || a.starts_with("demo-tserver-4."))
        })
        .collect();
    ensure!(
        leaving.len() == 2 && leaving.iter().all(|s| s["replicas"] == 0 && s["decommissioning"] == true),
        "shrunk before the leaving servers were drained: {leaving:?}"
    );
    eprintln!("drained and shrunk {:?} after the scale-down", scaled.elapsed());
    let locations = tc.kubectl(&in_master(&["table", "describe", "rows", "--format", "json"])).await?;
    let described: Value = serde_json::from_str(&locations).with_context(|| format!("describe printed {locations}"))?;
    let status = tc.get_json(&["kuduclusters", "demo"]).await?["status"].clone();
    let gone: Vec<String> = status["tabletServers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["pod"] == "demo-tserver-3" || s["pod"] == "demo-tserver-4")
        .filter_map(|s| s["uuid"].as_str().map(str::to_owned))
        .collect();
    let text = described.to_string();
    ensure!(gone.iter().all(|uuid| !text.contains(uuid.as_str())), "a replica is still on {gone:?}: {described}");
    let ids = row_ids(&tc, "demo-master-0").await?;
    ensure!(ids == (0..200).collect::<Vec<i64>>(), "rows lost: {} of 200 read back", ids.len());
    eventually(AVAILABLE, "every tablet back at 3 live voters", || async {
        let status = tc.get_json(&["kuduclusters", "demo"]).await?["status"].clone();
        Ok(condition(&status, "TabletsUnderReplicated").is_some_and(|c| c["status"] == "False").then_some(()))
    })
    .await?;

    // 3 -> 2 is below RF 3: refused, with a condition, and the StatefulSet kept at 3.
    tc.kubectl(&["patch", "kuduclusters", "demo", "--type", "merge", "-p", r#"{"spec":{"tservers":{"replicas":2}}}"#])
        .await?;
    let refused = eventually(AVAILABLE, "the scale-down below RF 3 to be refused", || async {
        let status = tc.get_json(&["kuduclusters", "demo"]).await?["status"].clone();
        Ok(condition(&status, "TabletServerScaleDown")
            .filter(|c| c["status"] == "True" && c["reason"] == "ScaleDownRefused")
            .cloned())
    })
    .await?;
    ensure!(
        refused["message"].as_str().is_some_and(|m| m.contains("largest replication factor in use (3)")),
        "unclear refusal: {refused}"
    );
    ensure!(sts_replicas(&tc).await? == 3, "the StatefulSet changed on a refused scale-down");
    let ids = row_ids(&tc, "demo-master-0").await?;
    ensure!(ids.len() == 200, "rows lost after the refusal: {}", ids.len());
    eprintln!("done after {:?}", started.elapsed());
    tc.stop().await;
    Ok(())
}
