//! Helm 4 (the real library, through PyPI `helm-sdkpy`) against the local control plane:
//! install with `crds/` and `--wait`, upgrade, status, list and uninstall, client-side and
//! server-side apply. Needs the virtualenv made by `e2e/scripts/setup-venv.sh`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::{COMMAND_TIMEOUT, TestCluster, eventually};
use serde_json::{Value, json};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The virtualenv's python, or a failure telling how to create it.
fn venv_python() -> Result<PathBuf> {
    let venv = std::env::var_os("E2E_VENV").map(PathBuf::from).unwrap_or_else(|| manifest_dir().join(".venv"));
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        bail!(
            "the helm-sdkpy virtualenv is missing at {}: run `e2e/scripts/setup-venv.sh` (or point E2E_VENV at one) before running the Helm e2e tests",
            venv.display()
        );
    }
    Ok(python)
}

async fn start_cluster() -> Result<TestCluster> {
    // Container images name binaries in the workspace target dir (e2e-kv is built with the tests).
    TestCluster::start_with_nodes(3).await
}

/// Runs one Helm action through `tests/helm/driver.py`; returns its result.
async fn helm(tc: &TestCluster, python: &PathBuf, mut request: Value) -> Result<Value> {
    request["kubeconfig"] = json!(tc.kubeconfig());
    let home = tc.dir.path().join("helm-home");
    std::fs::create_dir_all(&home)?;
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(manifest_dir().join("tests/helm/driver.py"))
        .arg(request.to_string())
        .env("HOME", &home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .env_remove("HELM_DRIVER")
        .kill_on_drop(true);
    let out = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output()).await.context("helm driver timed out")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .last()
        .with_context(|| format!("helm driver printed nothing; stderr: {}", String::from_utf8_lossy(&out.stderr)))?;
    let reply: Value = serde_json::from_str(line).with_context(|| format!("helm driver output: {stdout}"))?;
    if reply["ok"] != true {
        bail!("helm {} failed: {}", request["action"], reply["error"]);
    }
    Ok(reply["result"].clone())
}

async fn release_secrets(tc: &TestCluster, release: &str) -> Result<Vec<(String, String)>> {
    let list = tc.get_json(&["secrets", "-l", &format!("owner=helm,name={release}")]).await?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["metadata"]["name"].as_str().unwrap_or("").to_string(),
                s["metadata"]["labels"]["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_uninstall_with_wait() -> Result<()> {
    let python = venv_python()?;
    let tc = start_cluster().await?;
    let chart = manifest_dir().join("tests/helm/demo");
    let chart = chart.to_str().context("chart path")?;

    // Install with crds/ and wait (streaming-list watches on every kind).
    helm(&tc, &python, json!({"action": "install", "release": "r1", "chart": chart, "values": {"message": "hello"}, "options": {"wait": true, "timeout": 120}})).await?;
    let sts = tc.get_json(&["statefulset", "r1-kv"]).await?;
    ensure!(
        sts["status"]["readyReplicas"] == 1,
        "install --wait returned before the StatefulSet was ready: {}",
        sts["status"]
    );
    let cm = tc.get_json(&["configmap", "r1-cfg"]).await?;
    ensure!(cm["data"]["message"] == "hello", "config map not rendered: {cm}");
    ensure!(
        cm["metadata"]["annotations"]["meta.helm.sh/release-name"] == "r1",
        "helm ownership annotations missing: {cm}"
    );
    let gadget = tc.get_json(&["gadget", "r1-gadget"]).await?;
    ensure!(gadget["spec"]["message"] == "hello", "custom resource from the chart's CRD not created: {gadget}");
    ensure!(
        release_secrets(&tc, "r1").await? == [("sh.helm.release.v1.r1.v1".to_string(), "deployed".to_string())],
        "release secret wrong"
    );

    // Upgrade: strategic merge patches, a second release secret, wait for two replicas.
    helm(&tc, &python, json!({"action": "upgrade", "release": "r1", "chart": chart, "values": {"message": "bye", "replicas": 2}, "options": {"wait": true, "timeout": 120}})).await?;
    let cm = tc.get_json(&["configmap", "r1-cfg"]).await?;
    ensure!(cm["data"]["message"] == "bye", "upgrade did not patch the config map: {cm}");
    let sts = tc.get_json(&["statefulset", "r1-kv"]).await?;
    ensure!(
        sts["status"]["readyReplicas"] == 2 && sts["status"]["currentRevision"] == sts["status"]["updateRevision"],
        "upgrade --wait returned early: {}",
        sts["status"]
    );
    let mut secrets = release_secrets(&tc, "r1").await?;
    secrets.sort();
    ensure!(
        secrets
            == [
                ("sh.helm.release.v1.r1.v1".to_string(), "superseded".to_string()),
                ("sh.helm.release.v1.r1.v2".to_string(), "deployed".to_string())
            ],
        "release history wrong: {secrets:?}"
    );
    let status = helm(&tc, &python, json!({"action": "status", "release": "r1"})).await?;
    ensure!(status.to_string().contains("deployed"), "status does not report deployed: {status}");
    let list = helm(&tc, &python, json!({"action": "list"})).await?;
    ensure!(list.to_string().contains("r1"), "list lacks r1: {list}");

    // Server-side apply install of a second release (no wait).
    helm(&tc, &python, json!({"action": "install", "release": "r2", "chart": chart, "options": {"wait": false, "server_side_apply": true}})).await?;
    let cm = tc.get_json(&["configmap", "r2-cfg", "--show-managed-fields"]).await?;
    ensure!(cm["metadata"]["managedFields"].to_string().contains("Apply"), "server-side apply not used: {cm}");

    // Uninstall removes the objects and the release history (protobuf DeleteOptions).
    for release in ["r1", "r2"] {
        helm(
            &tc,
            &python,
            json!({"action": "uninstall", "release": release, "options": {"wait": true, "timeout": 120}}),
        )
        .await?;
        ensure!(release_secrets(&tc, release).await?.is_empty(), "release secrets of {release} left behind");
    }
    eventually(Duration::from_secs(60), "chart objects to be gone", || async {
        let left =
            tc.kubectl(&["get", "statefulsets,configmaps,serviceaccounts,services,gadgets,pods", "-o", "name"]).await?;
        let ours: Vec<&str> = left.lines().filter(|l| l.contains("/r1-") || l.contains("/r2-")).collect();
        Ok(ours.is_empty().then_some(()))
    })
    .await?;
    tc.stop().await;
    Ok(())
}
