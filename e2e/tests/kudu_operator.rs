//! The operator end to end on the local control plane: the CRD from `crds/`, the operator
//! installed from its Helm chart (the real Helm library; a Deployment whose pod runs the
//! `kudu-operator` binary), and a `KuduCluster` of 3 masters and 3 tablet servers running
//! the `kudu` binary. Checks availability, Raft membership in the status, tablet server
//! registration with `/region/zone` locations from node labels (the masters run
//! `kudu location`), a master pod restart keeping its node id, and garbage collection.
//!
//! Needs the workspace binaries (`cargo build --workspace`), kubectl, and the helm-sdkpy
//! virtualenv made by `e2e/scripts/setup-venv.sh`.

mod common;
#[path = "kudu_operator/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{TestCluster, eventually};
use serde_json::Value;
use support::{CLUSTER, install_operator, workspace_dir};

/// Deadline for the cluster to become available from scratch on a loaded 2-core machine.
const AVAILABLE: Duration = Duration::from_secs(150);
/// Deadline for a master pod to come back, or for deletion to cascade.
const RECOVER: Duration = Duration::from_secs(90);

/// The KuduCluster's status once it is Available with 3 voters, a leader and 3 ready
/// tablet servers; `None` before.
async fn available_status(tc: &TestCluster) -> Result<Option<Value>> {
    let cluster = tc.get_json(&["kuduclusters", "demo"]).await?;
    let status = &cluster["status"];
    let available = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Available" && c["status"] == "True");
    let masters = status["masters"].as_array().cloned().unwrap_or_default();
    let ready = available
        && masters.len() == 3
        && masters.iter().all(|m| m["voter"] == true && m["healthy"] == true)
        && masters.iter().filter(|m| m["role"] == "Leader").count() == 1
        && status["leader"].as_str().is_some_and(|l| l.starts_with("demo-master-"))
        && status["readyTServers"] == 3
        && status["observedGeneration"] == cluster["metadata"]["generation"];
    Ok(ready.then(|| status.clone()))
}

/// Pod name -> node id, from the status.
fn node_ids(status: &Value) -> BTreeMap<String, String> {
    status["masters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| Some((m["pod"].as_str()?.to_owned(), m["nodeId"].as_str()?.to_owned())))
        .collect()
}

/// `/region/zone` of the node each tablet server pod runs on, by pod name.
async fn expected_locations(tc: &TestCluster) -> Result<BTreeMap<String, String>> {
    let pods =
        tc.get_json(&["pods", "-l", "app.kubernetes.io/instance=demo,app.kubernetes.io/component=tserver"]).await?;
    let nodes = tc.get_json(&["nodes"]).await?;
    let mut locations = BTreeMap::new();
    for pod in pods["items"].as_array().into_iter().flatten() {
        let name = pod["metadata"]["name"].as_str().context("pod name")?;
        let node_name = pod["spec"]["nodeName"].as_str().context("tablet server pod not scheduled")?;
        let node = nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["metadata"]["name"] == node_name)
            .context("the pod's node")?;
        let labels = &node["metadata"]["labels"];
        let region = labels["topology.kubernetes.io/region"].as_str().context("region label")?;
        let zone = labels["topology.kubernetes.io/zone"].as_str().context("zone label")?;
        locations.insert(name.to_owned(), format!("/{region}/{zone}"));
    }
    Ok(locations)
}

/// `kudu tserver list` inside a master pod (cluster DNS and `KUDU_MASTERS` from the pod):
/// tablet server pod name -> (live, location).
async fn registered_tservers(tc: &TestCluster) -> Result<BTreeMap<String, (bool, String)>> {
    let out = tc.kubectl(&["exec", "demo-master-0", "--", "kudu", "tserver", "list", "--format", "json"]).await?;
    let list: Value = serde_json::from_str(&out).with_context(|| format!("kudu tserver list printed {out}"))?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let pod = t["rpc_address"].as_str()?.split('.').next()?.to_owned();
            Some((pod, (t["live"] == true, t["location"].as_str()?.to_owned())))
        })
        .collect())
}

/// `kudu master list` inside a master pod: (node id, live) of each voter.
async fn raft_members(tc: &TestCluster) -> Result<Vec<(String, bool)>> {
    let out = tc.kubectl(&["exec", "demo-master-0", "--", "kudu", "master", "list", "--format", "json"]).await?;
    let list: Value = serde_json::from_str(&out).with_context(|| format!("kudu master list printed {out}"))?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["voter"] == true)
        .filter_map(|m| Some((m["node_id"].as_u64()?.to_string(), m["live"] == true)))
        .collect())
}

async fn pod_ready(tc: &TestCluster, pod: &str) -> Result<bool> {
    let ready =
        tc.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]).await?;
    Ok(ready.trim() == "True")
}

async fn pod_uid(tc: &TestCluster, pod: &str) -> Result<String> {
    tc.kubectl(&["get", "pod", pod, "-o", "jsonpath={.metadata.uid}"]).await
}

#[test]
fn operator_runs_a_kudu_cluster_end_to_end() -> Result<()> {
    // Pods run with the host's PATH. In a real image `kudu` is on the PATH, and the
    // masters run `kudu location` (--location-mapping-cmd) and `sh -c 'exec kudu ...'`
    // (preStop) by name; here the binary is only in the workspace target dir, which the
    // kubelet resolves for container commands but does not put on the pods' PATH. Put it
    // there for the pods (before any thread of this test binary reads the environment).
    // TODO(e2e): drop this once the kubelet prepends its bin_dirs to the pods' PATH.
    let bin_dir = kudu_e2e::cluster::workspace_bin_dir().context("the workspace target dir")?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(&path)))?;
    // SAFETY: the only test of this binary; no other thread reads the environment yet.
    unsafe { std::env::set_var("PATH", path) };
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(end_to_end())
}

async fn end_to_end() -> Result<()> {
    let started = Instant::now();
    let tc = TestCluster::start_with_nodes(3).await?;
    let crd = workspace_dir().join("crds/kudu.dev_kuduclusters.yaml");
    tc.kubectl(&["apply", "-f", crd.to_str().context("CRD path")?]).await?;
    install_operator(&tc).await?;
    tc.kubectl_stdin(&["apply", "-f", "-"], CLUSTER).await?;

    // Available: 3 voters with one leader, 3 ready tablet servers.
    let status =
        eventually(AVAILABLE, "the KuduCluster to become Available with 3 voters and 3 tablet servers", || {
            available_status(&tc)
        })
        .await?;
    let ids = node_ids(&status);
    ensure!(ids.len() == 3, "three masters with node ids: {status}");
    eprintln!("available after {:?}: {ids:?}", started.elapsed());

    // Every tablet server registered, live, at the location of its node's labels.
    let expected = expected_locations(&tc).await?;
    ensure!(expected.len() == 3, "three tablet server pods: {expected:?}");
    let registered = eventually(RECOVER, "3 live tablet servers at their nodes' locations", || async {
        let registered = registered_tservers(&tc).await?;
        let located = registered.len() == 3
            && registered.iter().all(|(pod, (live, location))| *live && expected.get(pod) == Some(location));
        Ok(located.then_some(registered))
    })
    .await?;
    eprintln!("tablet servers: {registered:?}");

    // A master pod restart (same volume) keeps its node id: no membership change. The new
    // pod turns Ready only as a caught-up member, and the leader lists the same three ids.
    let old_uid = pod_uid(&tc, "demo-master-1").await?;
    tc.kubectl(&["delete", "pod", "demo-master-1", "--wait=false"]).await?;
    let original: BTreeSet<&String> = ids.values().collect();
    let after = eventually(RECOVER, "demo-master-1 to come back as the same member", || async {
        let uid = pod_uid(&tc, "demo-master-1").await.unwrap_or_default();
        if uid.is_empty() || uid == old_uid || !pod_ready(&tc, "demo-master-1").await? {
            return Ok(None);
        }
        let members = raft_members(&tc).await?;
        let live_voters: BTreeSet<&String> = members.iter().filter(|(_, live)| *live).map(|(id, _)| id).collect();
        if live_voters != original || members.len() != 3 {
            return Ok(None);
        }
        available_status(&tc).await
    })
    .await?;
    ensure!(node_ids(&after) == ids, "node ids changed across a pod restart: {ids:?} -> {:?}", node_ids(&after));
    let change = &after["lastMembershipChange"];
    ensure!(
        change.is_null() || change["action"] == "ResizeStatefulSet",
        "a pod restart caused a membership change: {change}"
    );
    eprintln!("master pod restarted after {:?}", started.elapsed());

    // Deleting the KuduCluster garbage-collects what it owns (and the finalizer removes
    // the cluster-scoped RBAC objects).
    tc.kubectl(&["delete", "kuduclusters", "demo", "--wait=false"]).await?;
    eventually(RECOVER, "the KuduCluster's objects to be deleted", || async {
        let owned = tc
            .kubectl(&[
                "get",
                "statefulsets,services,configmaps,poddisruptionbudgets,serviceaccounts,pods,kuduclusters",
                "-l",
                "app.kubernetes.io/instance=demo",
                "-o",
                "name",
            ])
            .await?;
        let rbac = tc.kubectl(&["get", "clusterroles,clusterrolebindings", "-o", "name"]).await?;
        let clusters = tc.kubectl(&["get", "kuduclusters", "-o", "name"]).await?;
        let gone =
            owned.trim().is_empty() && clusters.trim().is_empty() && !rbac.contains("kudu-location-default-demo");
        Ok(gone.then_some(()))
    })
    .await?;
    eprintln!("done after {:?}", started.elapsed());
    tc.stop().await;
    Ok(())
}
