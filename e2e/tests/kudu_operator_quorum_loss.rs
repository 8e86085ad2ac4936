//! Quorum loss end to end: two of three master volumes are lost (claims and pods deleted),
//! so no leader can be elected. The operator reports `QuorumLost` and deletes no volume.
//! After the documented recovery (README, "Recovering from quorum loss": `kudu master
//! unsafe-recover --at-next-start` in the surviving pod, then a pod restart) the survivor
//! leads alone with its catalog and the operator adds the two fresh masters back: three
//! voters, catalog intact, DDL works. Same setup as `kudu_operator.rs`.

mod common;
#[path = "kudu_operator/support.rs"]
mod support;

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use common::{TestCluster, eventually};
use serde_json::Value;
use support::{CLUSTER, available_status, node_ids, run_single_test, start_with_operator, uid_and_deleting};

/// Deadline for the cluster to become available from scratch on a loaded 2-core machine.
const AVAILABLE: Duration = Duration::from_secs(150);
/// Deadline for the operator to notice, and for the group to grow back.
const CHANGE: Duration = Duration::from_secs(180);
/// How long the operator is watched doing nothing while the quorum is lost.
const HOLD: Duration = Duration::from_secs(20);

const SURVIVOR: &str = "demo-master-0";
const LOST: [&str; 2] = ["demo-master-1", "demo-master-2"];

fn in_survivor<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["exec", SURVIVOR, "--", "kudu"], args].concat()
}

async fn create_table(tc: &TestCluster, name: &str) -> Result<()> {
    let args = ["table", "create", name, "--columns", "id:int64,v:string", "--primary-key", "id"];
    tc.kubectl(&in_survivor(&[&args[..], &["--partitions", "1", "--replicas", "1", "--wait"]].concat())).await?;
    Ok(())
}

async fn table_names(tc: &TestCluster) -> Result<Vec<String>> {
    let out = tc.kubectl(&in_survivor(&["table", "list", "--format", "json"])).await?;
    let list: Value = serde_json::from_str(&out)?;
    let mut names: Vec<String> =
        list.as_array().into_iter().flatten().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect();
    names.sort();
    Ok(names)
}

/// The `QuorumLost` condition of `demo`, if set.
async fn quorum_lost(tc: &TestCluster) -> Result<Option<Value>> {
    let cluster = tc.get_json(&["kuduclusters", "demo"]).await?;
    Ok(cluster["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "QuorumLost").cloned())
}

async fn claim_uids(tc: &TestCluster) -> Result<Vec<Option<(String, bool)>>> {
    let mut uids = Vec::new();
    for pod in [SURVIVOR, LOST[0], LOST[1]] {
        uids.push(uid_and_deleting(tc, "pvc", &format!("data-{pod}")).await?);
    }
    Ok(uids)
}

#[test]
fn quorum_loss_is_reported_and_recovered_with_unsafe_recover() -> Result<()> {
    run_single_test(quorum_loss)
}

async fn quorum_loss() -> Result<()> {
    let started = Instant::now();
    let tc = start_with_operator(CLUSTER).await?;
    let status = eventually(AVAILABLE, "the KuduCluster to become Available", || available_status(&tc, 3)).await?;
    let before = node_ids(&status);
    create_table(&tc, "before").await?;
    eprintln!("available with a table after {:?}", started.elapsed());

    // Two volumes lost for good: the StatefulSet recreates the pods with empty volumes.
    for pod in LOST {
        tc.kubectl(&["delete", "pvc", &format!("data-{pod}"), "--wait=false"]).await?;
        tc.kubectl(&["delete", "pod", pod, "--wait=false"]).await?;
    }
    let condition =
        eventually(CHANGE, "QuorumLost", || async { Ok(quorum_lost(&tc).await?.filter(|c| c["status"] == "True")) })
            .await?;
    let message = condition["message"].as_str().unwrap_or_default().to_owned();
    ensure!(message.contains("kubectl exec demo-master-0 -- kudu master unsafe-recover"), "{message}");
    eprintln!("QuorumLost after {:?}: {message}", started.elapsed());

    // Nothing destructive while it holds: every claim stays as it is.
    let claims = eventually(CHANGE, "the lost masters' new claims", || async {
        let uids = claim_uids(&tc).await?;
        Ok(uids.iter().all(|u| u.as_ref().is_some_and(|(_, deleting)| !deleting)).then_some(uids))
    })
    .await?;
    tokio::time::sleep(HOLD).await;
    ensure!(claim_uids(&tc).await? == claims, "a claim changed while the quorum was lost");
    ensure!(quorum_lost(&tc).await?.is_some_and(|c| c["status"] == "True"), "QuorumLost must hold");

    // The runbook: request the recovery in the surviving pod, then restart the pod.
    let request = [
        "master",
        "unsafe-recover",
        "--data-dir",
        "/var/lib/kudu",
        "--at-next-start",
        "--yes-i-know-this-may-lose-data",
    ];
    tc.kubectl(&in_survivor(&request)).await?;
    tc.kubectl(&["delete", "pod", SURVIVOR, "--wait=false"]).await?;

    let status = eventually(CHANGE, "three voters again, Available", || available_status(&tc, 3)).await?;
    let after = node_ids(&status);
    ensure!(after.get(SURVIVOR) == before.get(SURVIVOR), "the survivor kept its id: {before:?} -> {after:?}");
    for pod in LOST {
        ensure!(after.get(pod).is_some_and(|id| Some(id) != before.get(pod)), "{pod} joined fresh: {after:?}");
    }
    ensure!(claim_uids(&tc).await?[0] == claims[0], "the survivor's volume was kept");
    ensure!(quorum_lost(&tc).await?.is_some_and(|c| c["status"] == "False"), "QuorumLost cleared");
    ensure!(table_names(&tc).await? == ["before"], "the catalog survived");
    create_table(&tc, "after").await?;
    ensure!(table_names(&tc).await? == ["after", "before"], "DDL after the recovery");
    eprintln!("recovered to 3 voters after {:?}", started.elapsed());
    tc.stop().await;
    Ok(())
}
