//! Installing the operator the way a user would: its Helm chart through the real Helm
//! library (`tests/helm/driver.py`, helm-sdkpy), with the image mapped to the workspace's
//! `kudu-operator` binary.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::common::{COMMAND_TIMEOUT, TestCluster};

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

/// Values for the chart: the image `kudu-operator:dev` (the workspace binary) and text logs.
pub fn chart_values() -> Value {
    json!({
        "image": {"repository": "kudu-operator", "tag": "dev"},
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
        "values": chart_values(),
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
