//! Automatic master replacement end to end: the node of a master goes NotReady; once the
//! grace period (`masterReplacement.gracePeriodSeconds`, 60 s, the minimum) has passed, the
//! operator deletes the master's claim and pod, gracefully: a NotReady node may still run
//! the pod, so it stays Terminating there. Once the node object is removed (as a cloud's
//! node controller does for a vanished machine), the operator deletes the pod by force, the
//! StatefulSet recreates it on a Ready node with a new volume, and the new master replaces
//! the lost member under a new node id. Same setup as `kudu_operator.rs` (CRD,
//! Helm-installed operator, 3 + 3).

mod common;
#[path = "kudu_operator/support.rs"]
mod support;

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use common::{TestCluster, eventually};
use serde_json::{Value, json};
use support::{available_status, node_ids, raft_members, run_single_test, start_with_operator, uid_and_deleting};

/// The 3+3 cluster of the other operator tests, with a 60 s replacement grace period.
fn cluster_manifest() -> String {
    format!("{}  masterReplacement:\n    gracePeriodSeconds: 60\n", support::CLUSTER)
}

/// Deadline for the cluster to become available from scratch on a loaded 2-core machine.
const AVAILABLE: Duration = Duration::from_secs(150);
/// The grace period plus time for the operator to act on it.
const DELETED: Duration = Duration::from_secs(120);
/// Time for a replacement to join once its pod can be recreated.
const REPLACED: Duration = Duration::from_secs(120);

async fn node_of(tc: &TestCluster, pod: &str) -> Result<String> {
    Ok(tc.kubectl(&["get", "pod", pod, "-n", "default", "-o", "jsonpath={.spec.nodeName}"]).await?.trim().to_owned())
}

async fn operator_node(tc: &TestCluster) -> Result<String> {
    let pods = tc.get_json(&["pods", "-n", support::OPERATOR_NAMESPACE]).await?;
    pods["items"][0]["spec"]["nodeName"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no operator pod: {pods}"))
}

#[test]
fn operator_replaces_a_master_on_a_lost_node_after_the_grace_period() -> Result<()> {
    run_single_test(node_loss)
}

async fn node_loss() -> Result<()> {
    if common::skip_on_external("make a node NotReady") {
        return Ok(());
    }
    let started = Instant::now();
    let tc = start_with_operator(&cluster_manifest()).await?;
    let status = eventually(AVAILABLE, "the KuduCluster to become Available", || available_status(&tc, 3)).await?;
    let before = node_ids(&status);

    // Lose the node of a master that does not share it with the operator (the emulator
    // never evicts pods from a NotReady node, so an operator there would stop too).
    let operator_node = operator_node(&tc).await?;
    let mut victim = None;
    for pod in ["demo-master-2", "demo-master-1", "demo-master-0"] {
        let node = node_of(&tc, pod).await?;
        if node != operator_node {
            victim = Some((pod, node));
            break;
        }
    }
    let (pod, node) = victim.ok_or_else(|| anyhow!("every master shares the operator's node"))?;
    let old_id = before.get(pod).cloned().unwrap_or_default();
    let claim = format!("data-{pod}");
    let (claim_uid, _) = uid_and_deleting(&tc, "pvc", &claim).await?.ok_or_else(|| anyhow!("no claim {claim}"))?;
    let lost_at = Instant::now();
    let Some(local) = tc.local_only("make a node NotReady") else { return Ok(()) };
    local.set_node_ready(&node, false).map_err(|e| anyhow!("marking {node} NotReady: {e}"))?;
    let since = tc.kubectl(&["get", "node", &node, "-o", READY_SINCE]).await?;
    eprintln!("{node} (with {pod}) NotReady after {:?}, at {} (recorded as {since})", started.elapsed(), wall_clock());

    // Past the grace period the claim and the pod are deleted, the pod gracefully: it stays
    // Terminating on its NotReady node.
    eventually(DELETED, &format!("the claim and pod of {pod} to be deleted"), || async {
        let claim = uid_and_deleting(&tc, "pvc", &claim).await?;
        let pod = uid_and_deleting(&tc, "pod", pod).await?;
        Ok((claim == Some((claim_uid.clone(), true)) && pod.is_some_and(|(_, deleting)| deleting)).then_some(()))
    })
    .await?;
    let deleted_after = lost_at.elapsed();
    ensure!(
        deleted_after >= Duration::from_secs(60),
        "deleted after {deleted_after:?}, within the grace period (at {}; the node NotReady since {since}, the claim \
         deleted at {})",
        wall_clock(),
        tc.kubectl(&["get", "pvc", &claim, "-o", "jsonpath={.metadata.deletionTimestamp}"]).await?
    );
    ensure!(node_of(&tc, pod).await? == node, "{pod} left {node} without its node confirming");
    eprintln!("{pod} deleted gracefully, seen {deleted_after:?} after the node went NotReady");

    // The machine is gone for good: its node object goes, and the pod is deleted by force.
    let node_object = tc.get_json(&["node", &node]).await?;
    tc.kubectl(&["delete", "node", &node]).await?;

    // Replaced on another node, under a new id; the lost id is gone from the group.
    let after = eventually(REPLACED, &format!("{pod} to be replaced under a new node id"), || async {
        let status = tc.get_json(&["kuduclusters", "demo"]).await?["status"].clone();
        let ids = node_ids(&status);
        let healthy = status["masters"]
            .as_array()
            .is_some_and(|ms| ms.len() == 3 && ms.iter().all(|m| m["voter"] == true && m["healthy"] == true));
        let replaced = ids.get(pod).is_some_and(|id| *id != old_id);
        Ok((healthy && replaced).then_some(ids))
    })
    .await?;
    ensure!(node_of(&tc, pod).await? != node, "{pod} is still on the lost node {node}");
    for other in ["demo-master-0", "demo-master-1", "demo-master-2"].into_iter().filter(|p| *p != pod) {
        ensure!(after.get(other) == before.get(other), "{other} changed its node id: {before:?} -> {after:?}");
    }
    let members = raft_members(&tc).await?;
    ensure!(
        members.len() == 3 && !members.iter().any(|(id, _)| *id == old_id),
        "the lost node id {old_id} is still a member: {members:?}"
    );
    eprintln!("{pod} replaced after {:?} ({:?} after the node loss)", started.elapsed(), lost_at.elapsed());

    // The node comes back: its tablet server returns and the cluster is Available again.
    tc.kubectl_stdin(&["create", "-f", "-"], &registration(&node_object).to_string()).await?;
    local.set_node_ready(&node, true).map_err(|e| anyhow!("marking {node} Ready: {e}"))?;
    eventually(AVAILABLE, "the KuduCluster to be Available again", || available_status(&tc, 3)).await?;
    eprintln!("done after {:?}", started.elapsed());
    tc.stop().await;
    Ok(())
}

/// `kubectl get node` output: when its Ready condition last changed, as recorded.
const READY_SINCE: &str = "jsonpath={.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}";

/// The time now, as the logs print it.
fn wall_clock() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// A node object to create again as `node` was: its name and labels.
fn registration(node: &Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": node["metadata"]["name"], "labels": node["metadata"]["labels"]}})
}
