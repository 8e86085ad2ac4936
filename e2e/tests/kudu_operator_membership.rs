//! The operator's master membership changes end to end on the local control plane: a
//! master whose volume is lost (claim and pod deleted) rejoins under a new node id (the
//! old id removed first, then the new one added), and masters scale 3 -> 5 -> 3 through
//! the KuduCluster spec. Same setup as `kudu_operator.rs` (CRD, Helm-installed operator,
//! 3 masters and 3 tablet servers).

mod common;
#[path = "kudu_operator/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use common::{TestCluster, eventually};
use support::{CLUSTER, available_status, node_ids, raft_members, run_single_test, start_with_operator};

/// Deadline for the cluster to become available from scratch on a loaded 2-core machine.
const AVAILABLE: Duration = Duration::from_secs(150);
/// Deadline for one membership change (replacement, scaling) to complete.
const CHANGE: Duration = Duration::from_secs(120);

/// Reasons of the operator's events on the KuduCluster, oldest first.
async fn event_reasons(tc: &TestCluster) -> Result<Vec<String>> {
    let events = tc.get_json(&["events.v1.events.k8s.io"]).await?;
    let mut reasons: Vec<(String, String)> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["kind"] == "KuduCluster" && e["regarding"]["name"] == "demo")
        .filter_map(|e| {
            let time = e["eventTime"].as_str().or(e["metadata"]["creationTimestamp"].as_str())?;
            Some((time.to_owned(), e["reason"].as_str()?.to_owned()))
        })
        .collect();
    reasons.sort();
    Ok(reasons.into_iter().map(|(_, reason)| reason).collect())
}

async fn set_masters(tc: &TestCluster, replicas: usize) -> Result<()> {
    let patch = format!(r#"{{"spec":{{"masters":{{"replicas":{replicas}}}}}}}"#);
    tc.kubectl(&["patch", "kuduclusters", "demo", "--type", "merge", "-p", &patch]).await?;
    Ok(())
}

/// Wait until the cluster is Available with `masters` voters and the leader lists exactly
/// that many live voters.
async fn wait_for_masters(tc: &TestCluster, masters: usize) -> Result<serde_json::Value> {
    eventually(CHANGE, &format!("{masters} live voters, Available"), || async {
        let Some(status) = available_status(tc, masters).await? else {
            return Ok(None);
        };
        let members = raft_members(tc).await?;
        Ok((members.len() == masters && members.iter().all(|(_, live)| *live)).then_some(status))
    })
    .await
}

#[test]
fn operator_replaces_a_lost_master_volume_and_scales_masters() -> Result<()> {
    run_single_test(membership)
}

async fn membership() -> Result<()> {
    let started = Instant::now();
    let tc = start_with_operator(CLUSTER).await?;
    let status = eventually(AVAILABLE, "the KuduCluster to become Available", || available_status(&tc, 3)).await?;
    let before = node_ids(&status);
    eprintln!("available after {:?}", started.elapsed());

    // Lost volume: the claim goes, then the pod; the StatefulSet recreates both and the
    // master starts empty, with a new node id.
    tc.kubectl(&["delete", "pvc", "data-demo-master-2", "--wait=false"]).await?;
    tc.kubectl(&["delete", "pod", "demo-master-2", "--wait=false"]).await?;
    let old_id = before.get("demo-master-2").cloned().unwrap_or_default();
    let after = eventually(CHANGE, "demo-master-2 to rejoin under a new node id", || async {
        let Some(status) = available_status(&tc, 3).await? else {
            return Ok(None);
        };
        let rejoined = node_ids(&status).get("demo-master-2").is_some_and(|id| *id != old_id);
        Ok(rejoined.then_some(status))
    })
    .await?;
    let ids = node_ids(&after);
    for pod in ["demo-master-0", "demo-master-1"] {
        ensure!(ids.get(pod) == before.get(pod), "{pod} changed its node id: {before:?} -> {ids:?}");
    }
    let members: BTreeSet<String> = raft_members(&tc).await?.into_iter().map(|(id, _)| id).collect();
    ensure!(!members.contains(&old_id), "the lost node id {old_id} is still a member: {members:?}");
    let reasons = event_reasons(&tc).await?;
    let removed = reasons.iter().position(|r| r == "RemoveMember");
    let added = reasons.iter().rposition(|r| r == "AddMember");
    ensure!(
        matches!((removed, added), (Some(r), Some(a)) if r < a),
        "expected RemoveMember before AddMember in the events: {reasons:?}"
    );
    eprintln!("lost volume replaced after {:?}", started.elapsed());

    // 3 -> 5 -> 3 masters through the spec.
    set_masters(&tc, 5).await?;
    wait_for_masters(&tc, 5).await?;
    eprintln!("5 masters after {:?}", started.elapsed());
    set_masters(&tc, 3).await?;
    let status = wait_for_masters(&tc, 3).await?;
    let pods = eventually(CHANGE, "the surplus master pods to go", || async {
        let pods = tc.kubectl(&["get", "pods", "-l", "app.kubernetes.io/component=master", "-o", "name"]).await?;
        Ok((pods.lines().count() == 3).then_some(pods))
    })
    .await?;
    ensure!(!pods.contains("demo-master-3") && !pods.contains("demo-master-4"), "surplus pods remain: {pods}");
    let pods_in_status: BTreeSet<String> = node_ids(&status).into_keys().collect();
    ensure!(
        pods_in_status == ["demo-master-0", "demo-master-1", "demo-master-2"].map(String::from).into(),
        "members after scaling down: {pods_in_status:?}"
    );
    eprintln!("back to 3 masters after {:?}", started.elapsed());
    tc.stop().await;
    Ok(())
}
