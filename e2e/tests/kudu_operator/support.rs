//! Installing the operator the way a user would: its Helm chart through the real Helm
//! library (`tests/helm/driver.py`, helm-sdkpy), with the image mapped to the workspace's
//! `kudu-operator` binary.

// Each test binary uses a different part of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::common::{COMMAND_TIMEOUT, TestCluster};

/// Run `test`, the only test of its binary, on a fresh runtime, with the workspace target
/// dir first on the PATH that pods inherit.
///
/// In a real image `kudu` is on the PATH, and the masters run `kudu location`
/// (`--location-mapping-cmd`) and `sh -c 'exec kudu ...'` (preStop) by name; here the binary
/// is only in the workspace target dir, which the kubelet resolves for container commands
/// but does not put on the pods' PATH (they get the host's). TODO(e2e): drop this once the
/// kubelet prepends its bin_dirs to the pods' PATH.
pub fn run_single_test<F: Future<Output = Result<()>>>(test: impl FnOnce() -> F) -> Result<()> {
    let bin_dir = kudu_e2e::cluster::workspace_bin_dir().context("the workspace target dir")?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(&path)))?;
    // SAFETY: the only test of its binary, before any runtime thread exists; nothing else
    // reads the environment concurrently.
    unsafe { std::env::set_var("PATH", path) };
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(test())
}

/// Start a 3-node cluster, apply the CRD from `crds/`, install the operator and apply
/// `cluster` (a KuduCluster manifest).
pub async fn start_with_operator(cluster: &str) -> Result<TestCluster> {
    start_with_operator_on_nodes(3, cluster).await
}

/// [`start_with_operator`] on `nodes` nodes (their zones cycle through the cluster's three).
pub async fn start_with_operator_on_nodes(nodes: usize, cluster: &str) -> Result<TestCluster> {
    let tc = TestCluster::start_with_nodes(nodes).await?;
    let crd = workspace_dir().join("crds/kudu.dev_kuduclusters.yaml");
    tc.kubectl(&["apply", "-f", crd.to_str().context("CRD path")?]).await?;
    install_operator(&tc).await?;
    tc.kubectl_stdin(&["apply", "-f", "-"], cluster).await?;
    Ok(tc)
}

/// Namespace the operator is installed in.
pub const OPERATOR_NAMESPACE: &str = "kudu-system";

/// A KuduCluster of 3 masters and 3 tablet servers running the workspace's `kudu` binary.
pub const CLUSTER: &str = r#"
apiVersion: kudu.dev/v1alpha1
kind: KuduCluster
metadata: {name: demo, namespace: default}
spec:
  image: kudu:dev
  masters:
    replicas: 3
    storage: {size: 1Gi}
  tservers:
    replicas: 3
    storage: {size: 1Gi}
"#;

/// The workspace root.
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn venv_python() -> Result<PathBuf> {
    let venv = std::env::var_os("E2E_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        bail!("the helm-sdkpy virtualenv is missing at {}: run `e2e/scripts/setup-venv.sh`", venv.display());
    }
    Ok(python)
}

/// Values for the chart: the operator image of the target (by default `kudu-operator:dev`,
/// the workspace binary) and text logs.
pub fn chart_values(images: &kudu_e2e::target::Images) -> Value {
    let (repository, tag) = images.operator_repository_tag();
    json!({
        "image": {"repository": repository, "tag": tag},
        "logFormat": "text",
        "logLevel": "info,kudu_operator=debug",
    })
}

/// `helm install kudu-operator charts/kudu-operator -n kudu-system --wait`.
pub async fn install_operator(tc: &TestCluster) -> Result<()> {
    tc.kubectl(&["create", "namespace", OPERATOR_NAMESPACE]).await?;
    let python = venv_python()?;
    let chart = workspace_dir().join("charts/kudu-operator");
    let request = json!({
        "kubeconfig": tc.kubeconfig(),
        "namespace": OPERATOR_NAMESPACE,
        "action": "install",
        "release": "kudu-operator",
        "chart": chart,
        "values": chart_values(&tc.images),
        "options": {"wait": true, "timeout": 120},
    });
    let home = tc.dir.path().join("helm-home");
    std::fs::create_dir_all(&home)?;
    let mut command = tokio::process::Command::new(python);
    command
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/helm/driver.py"))
        .arg(request.to_string())
        .env("HOME", &home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .kill_on_drop(true);
    let out = tokio::time::timeout(COMMAND_TIMEOUT, command.output()).await.context("helm install timed out")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reply: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .with_context(|| format!("helm driver output: {stdout} {}", String::from_utf8_lossy(&out.stderr)))?;
    if reply["ok"] != true {
        bail!("helm install failed: {}", reply["error"]);
    }
    Ok(())
}

/// The KuduCluster `demo`'s status once it is Available for its current spec with
/// `masters` healthy voters, one leader and 3 ready tablet servers; `None` before.
pub async fn available_status(tc: &TestCluster, masters: usize) -> Result<Option<Value>> {
    let cluster = tc.get_json(&["kuduclusters", "demo"]).await?;
    let status = &cluster["status"];
    let available = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Available" && c["status"] == "True");
    let members = status["masters"].as_array().cloned().unwrap_or_default();
    let ready = available
        && members.len() == masters
        && members.iter().all(|m| m["voter"] == true && m["healthy"] == true)
        && members.iter().filter(|m| m["role"] == "Leader").count() == 1
        && status["leader"].as_str().is_some_and(|l| l.starts_with("demo-master-"))
        && status["readyTServers"] == 3
        && status["masterVoters"] == format!("{masters}/{masters}")
        && status["observedGeneration"] == cluster["metadata"]["generation"];
    Ok(ready.then(|| status.clone()))
}

/// Pod name -> node id, from the status.
pub fn node_ids(status: &Value) -> BTreeMap<String, String> {
    status["masters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| Some((m["pod"].as_str()?.to_owned(), m["nodeId"].as_str()?.to_owned())))
        .collect()
}

/// `/region/zone` of the node each tablet server pod runs on, by pod name.
pub async fn expected_locations(tc: &TestCluster) -> Result<BTreeMap<String, String>> {
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
pub async fn registered_tservers(tc: &TestCluster) -> Result<BTreeMap<String, (bool, String)>> {
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
pub async fn raft_members(tc: &TestCluster) -> Result<Vec<(String, bool)>> {
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

pub async fn pod_ready(tc: &TestCluster, pod: &str) -> Result<bool> {
    let ready =
        tc.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]).await?;
    Ok(ready.trim() == "True")
}

pub async fn pod_uid(tc: &TestCluster, pod: &str) -> Result<String> {
    tc.kubectl(&["get", "pod", pod, "-o", "jsonpath={.metadata.uid}"]).await
}

/// `(uid, being deleted)` of object `kind/name`, `None` when it does not exist.
pub async fn uid_and_deleting(tc: &TestCluster, kind: &str, name: &str) -> Result<Option<(String, bool)>> {
    let out = tc.kubectl(&["get", kind, name, "--ignore-not-found", "-o", "json"]).await?;
    if out.trim().is_empty() {
        return Ok(None);
    }
    let object: Value = serde_json::from_str(&out).with_context(|| format!("kubectl get {kind} {name}: {out}"))?;
    let uid = object["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
    Ok(Some((uid, object["metadata"]["deletionTimestamp"].is_string())))
}

/// The condition `type_` of a KuduCluster status.
pub fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

/// Creates the RF 3 table `rows` (`id:int64` key, `v:string`, 4 partitions) with `kudu` in
/// `pod`, waiting for its leaders.
pub async fn create_rows_table(tc: &TestCluster, pod: &str) -> Result<()> {
    let args = ["table", "create", "rows", "--columns", "id:int64,v:string", "--primary-key", "id"];
    let more = ["--partitions", "4", "--replicas", "3", "--wait"];
    tc.kubectl(&[&["exec", pod, "--", "kudu"][..], &args, &more].concat()).await?;
    Ok(())
}

/// Inserts the rows `ids` into `rows` with `kudu` in `pod`.
pub async fn insert_rows(tc: &TestCluster, pod: &str, ids: std::ops::Range<i64>) -> Result<()> {
    let lines: String = ids.map(|i| format!("{{\"id\": {i}, \"v\": \"row {i}\"}}\n")).collect();
    tc.kubectl_stdin(&["exec", "-i", pod, "--", "kudu", "row", "insert", "rows"], &lines).await?;
    Ok(())
}

/// The ids of every row of `rows`, sorted, scanned with `kudu` in `pod`.
pub async fn row_ids(tc: &TestCluster, pod: &str) -> Result<Vec<i64>> {
    let scanned = tc.kubectl(&["exec", pod, "--", "kudu", "row", "scan", "rows"]).await?;
    let mut ids: Vec<i64> = scanned
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).map(|v| v["id"].as_i64().unwrap_or(-1)))
        .collect::<Result<_, _>>()?;
    ids.sort_unstable();
    Ok(ids)
}
