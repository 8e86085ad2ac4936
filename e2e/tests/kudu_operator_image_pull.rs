//! A master that cannot start on a healthy node is never "replaced": its image cannot be
//! pulled (`ImagePullBackOff` on a Ready node) for longer than the replacement grace period,
//! the leader reports it down, and still its claim and pod stay, because a new volume would
//! not help and the old one holds its data. Fixing the image brings it back under its old
//! node id. Same setup as `kudu_operator.rs` (CRD, Helm-installed operator, 3 + 3), with a
//! 60 s grace period. The broken image is from a registry under `.invalid`, which no cluster
//! can pull from (the local kubelet reports `ImagePullBackOff` for it, as a real one would).

mod common;
#[path = "kudu_operator/support.rs"]
mod support;

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use common::{TestCluster, eventually};
use serde_json::Value;
use support::{available_status, node_ids, raft_members, run_single_test, start_with_operator, uid_and_deleting};

/// Deadline for the cluster to become available from scratch on a loaded 2-core machine.
const AVAILABLE: Duration = Duration::from_secs(150);
/// The replacement grace period of the manifest.
const GRACE: Duration = Duration::from_secs(60);
/// How long past the grace period nothing may be deleted: a few reconciliations (the
/// operator requeues every 10 s while a master is down).
const MARGIN: Duration = Duration::from_secs(30);
/// The image no registry serves.
const BROKEN_IMAGE: &str = "registry.invalid/kudu:dev";

fn cluster_manifest() -> String {
    format!("{}  masterReplacement:\n    gracePeriodSeconds: {}\n", support::CLUSTER, GRACE.as_secs())
}

async fn set_image(tc: &TestCluster, image: &str) -> Result<()> {
    let patch = format!(r#"{{"spec":{{"image":"{image}"}}}}"#);
    tc.kubectl(&["patch", "kuduclusters", "demo", "--type", "merge", "-p", &patch]).await?;
    Ok(())
}

fn waiting_reason(pod: &Value) -> Option<&str> {
    pod["status"]["containerStatuses"].as_array()?.iter().find_map(|c| c["state"]["waiting"]["reason"].as_str())
}

/// Reasons of the operator's events on the KuduCluster.
async fn event_reasons(tc: &TestCluster) -> Result<Vec<String>> {
    let events = tc.get_json(&["events.v1.events.k8s.io"]).await?;
    Ok(events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["kind"] == "KuduCluster" && e["regarding"]["name"] == "demo")
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect())
}

#[test]
fn a_master_in_image_pull_back_off_on_a_ready_node_keeps_its_volume() -> Result<()> {
    run_single_test(image_pull)
}

async fn image_pull() -> Result<()> {
    let started = Instant::now();
    let tc = start_with_operator(&cluster_manifest()).await?;
    let status = eventually(AVAILABLE, "the KuduCluster to become Available", || available_status(&tc, 3)).await?;
    let before = node_ids(&status);
    let old_id = before.get("demo-master-2").cloned().ok_or_else(|| anyhow!("no node id for demo-master-2"))?;
    let (claim_uid, _) =
        uid_and_deleting(&tc, "pvc", "data-demo-master-2").await?.ok_or_else(|| anyhow!("no claim"))?;
    eprintln!("available after {:?}", started.elapsed());

    // A broken image: the rolling update replaces master 2 first, and its new pod cannot
    // pull the image on its Ready node.
    set_image(&tc, BROKEN_IMAGE).await?;
    let broken_pod = eventually(Duration::from_secs(120), "demo-master-2 in ImagePullBackOff", || async {
        let pod = tc.get_json(&["pod", "demo-master-2"]).await?;
        let pulling =
            pod["spec"]["containers"][0]["image"] == BROKEN_IMAGE && waiting_reason(&pod) == Some("ImagePullBackOff");
        Ok(pulling.then_some(pod))
    })
    .await?;
    let broken_since = Instant::now();
    let pod_uid = broken_pod["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
    let node = broken_pod["spec"]["nodeName"].as_str().unwrap_or_default().to_owned();
    let nodes = tc.get_json(&["node", &node]).await?;
    let node_ready = nodes["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    ensure!(node_ready, "{node} is not Ready");
    eventually(Duration::from_secs(60), "the leader to report master 2 down", || async {
        let members = raft_members(&tc).await?;
        Ok(members.iter().any(|(id, live)| *id == old_id && !live).then_some(()))
    })
    .await?;
    eprintln!("demo-master-2 in ImagePullBackOff on Ready {node}, down in Raft, after {:?}", started.elapsed());

    // Past the grace period, and then some: its claim and pod stay.
    while broken_since.elapsed() < GRACE + MARGIN {
        let claim = uid_and_deleting(&tc, "pvc", "data-demo-master-2").await?;
        ensure!(claim == Some((claim_uid.clone(), false)), "the claim of demo-master-2 went: {claim:?}");
        let pod = uid_and_deleting(&tc, "pod", "demo-master-2").await?;
        ensure!(pod == Some((pod_uid.clone(), false)), "the pod of demo-master-2 was deleted: {pod:?}");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let reasons = event_reasons(&tc).await?;
    ensure!(!reasons.iter().any(|r| r == "DeletePodAndPvc"), "a replacement was attempted: {reasons:?}");
    let members = raft_members(&tc).await?;
    ensure!(members.iter().any(|(id, _)| *id == old_id), "master 2's node id {old_id} left the group: {members:?}");
    eprintln!("nothing deleted {:?} after the image pull failed", broken_since.elapsed());

    // Fixing the image brings master 2 back with its data, under its node id. A StatefulSet's
    // rolling update never replaces a pod that is not ready, so each stuck pod is deleted by
    // hand once its StatefulSet has the fixed image (the tablet servers' only after the
    // masters'). The operator's own rollout may restart the stuck master at the same moment:
    // a pod that is gone (being recreated) or already runs the fixed image needs nothing.
    set_image(&tc, &tc.images.kudu).await?;
    for (statefulset, pod) in [("demo-master", "demo-master-2"), ("demo-tserver", "demo-tserver-2")] {
        eventually(AVAILABLE, &format!("{statefulset} to have the fixed image"), || async {
            let sts = tc.get_json(&["statefulset", statefulset]).await?;
            Ok((sts["spec"]["template"]["spec"]["containers"][0]["image"] == tc.images.kudu.as_str()).then_some(()))
        })
        .await?;
        let stuck = match tc.get_json(&["pod", pod]).await {
            Ok(current) => current["spec"]["containers"][0]["image"] == BROKEN_IMAGE,
            Err(e) if e.to_string().contains("NotFound") => false,
            Err(e) => return Err(e),
        };
        if stuck {
            tc.kubectl(&["delete", "pod", pod, "--wait=false", "--ignore-not-found"]).await?;
        }
    }
    let status = eventually(AVAILABLE, "the KuduCluster to be Available again", || available_status(&tc, 3)).await?;
    let after = node_ids(&status);
    ensure!(after == before, "node ids changed: {before:?} -> {after:?}");
    let claim = uid_and_deleting(&tc, "pvc", "data-demo-master-2").await?;
    ensure!(claim == Some((claim_uid, false)), "the claim of demo-master-2 changed: {claim:?}");
    eprintln!("done after {:?}", started.elapsed());
    tc.stop().await;
    Ok(())
}
