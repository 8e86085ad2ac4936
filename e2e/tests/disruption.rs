//! PodDisruptionBudgets, evictions and `kubectl drain` (cordon + evict).

mod common;

use std::time::Duration;

use anyhow::{Result, ensure};
use common::{TestCluster, eventually};

const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: kv}
spec:
  serviceName: kv
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: kv}}
  template:
    metadata: {labels: {app: kv}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: kv
        image: e2e-kv
        args: ["--listen", "0.0.0.0:7000", "--data-dir", "$(HOME)/data"]
        readinessProbe:
          tcpSocket: {port: 7000}
          periodSeconds: 1
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: kv}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: kv}}
"#;

async fn node_of(tc: &TestCluster, pod: &str) -> Result<String> {
    tc.kubectl(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_respects_disruption_budgets() -> Result<()> {
    let tc = TestCluster::start_with_nodes(3).await?;
    tc.kubectl_stdin(&["apply", "-f", "-"], MANIFEST).await?;
    tc.kubectl(&["rollout", "status", "statefulset/kv", "--timeout=120s"]).await?;
    eventually(Duration::from_secs(30), "the budget to allow one disruption", || async {
        let pdb = tc.get_json(&["pdb", "kv"]).await?;
        Ok((pdb["status"]["disruptionsAllowed"] == 1 && pdb["status"]["currentHealthy"] == 3).then_some(()))
    })
    .await?;

    // Draining kv-0's node cordons it and evicts kv-0, which comes back elsewhere.
    let drained = node_of(&tc, "kv-0").await?;
    tc.kubectl(&["drain", &drained, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s"]).await?;
    let node = tc.get_json(&["node", &drained]).await?;
    ensure!(node["spec"]["unschedulable"] == true, "node not cordoned: {}", node["spec"]);
    tc.kubectl(&["rollout", "status", "statefulset/kv", "--timeout=120s"]).await?;
    let moved = node_of(&tc, "kv-0").await?;
    ensure!(!moved.is_empty() && moved != drained, "kv-0 was rescheduled onto the cordoned node {drained}");

    // With no disruption allowed, eviction is refused and drain gives up.
    tc.kubectl(&["patch", "pdb", "kv", "--type=merge", "-p", r#"{"spec":{"maxUnavailable":null,"minAvailable":3}}"#])
        .await?;
    eventually(Duration::from_secs(30), "the budget to allow nothing", || async {
        let pdb = tc.get_json(&["pdb", "kv"]).await?;
        Ok((pdb["status"]["disruptionsAllowed"] == 0).then_some(()))
    })
    .await?;
    let target = node_of(&tc, "kv-1").await?;
    let err = tc
        .kubectl_fails(&["drain", &target, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=3s"], None)
        .await?;
    ensure!(err.contains("disruption budget"), "drain not blocked by the budget: {err}");
    ensure!(node_of(&tc, "kv-1").await? == target, "kv-1 was evicted despite the budget");
    tc.kubectl(&["uncordon", &target]).await?;
    tc.stop().await;
    Ok(())
}
