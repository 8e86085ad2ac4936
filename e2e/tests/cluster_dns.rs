//! Cluster DNS at scale: 300 pods with distinct names, each resolvable from inside a pod by
//! its short and its fully qualified name; the nodes report that lookups work. And the
//! failure the local control plane used to hide: with nss_wrapper's default host table
//! (100 keys), the kubelet notices that pods cannot resolve names and says so on every node.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{TestCluster, eventually, init_tracing};
use kudu_e2e::cluster::{ClusterConfig, LocalCluster};
use serde_json::Value;

/// Pods in the scale test.
const PODS: usize = 300;

fn manifest(replicas: usize) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: many}}
spec:
  clusterIP: None
  selector: {{app: many}}
  ports: [{{name: none, port: 1}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: many}}
spec:
  serviceName: many
  replicas: {replicas}
  podManagementPolicy: Parallel
  selector: {{matchLabels: {{app: many}}}}
  template:
    metadata: {{labels: {{app: many}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: sleep
        image: debian/sleep:stable
        args: ["infinity"]
"#
    )
}

/// Pod name -> IP of every running pod of the StatefulSet.
async fn pod_ips(tc: &TestCluster) -> Result<Vec<(String, String)>> {
    let pods = tc.get_json(&["pods", "-l", "app=many"]).await?;
    Ok(pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["status"]["phase"] == "Running")
        .filter_map(|p| Some((p["metadata"]["name"].as_str()?.to_owned(), p["status"]["podIP"].as_str()?.to_owned())))
        .collect())
}

/// `getent hosts NAME...` inside `pod`: the first address printed for each name, in order.
async fn resolve_in_pod(tc: &TestCluster, pod: &str, names: &[String]) -> Result<Vec<String>> {
    let mut addresses = Vec::new();
    for name in names {
        let out = tc.kubectl(&["exec", pod, "--", "getent", "hosts", name]).await?;
        let ip = out.split_whitespace().next().with_context(|| format!("{name} did not resolve in {pod}"))?;
        addresses.push(ip.to_owned());
    }
    Ok(addresses)
}

/// The `NetworkUnavailable` condition of every node: (status, reason, message).
async fn dns_conditions(tc: &TestCluster) -> Result<Vec<(String, String, String)>> {
    let nodes = tc.get_json(&["nodes"]).await?;
    Ok(nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let c = n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "NetworkUnavailable")
                .cloned()
                .unwrap_or(Value::Null);
            let s = |k: &str| c[k].as_str().unwrap_or("").to_owned();
            (s("status"), s("reason"), s("message"))
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_of_300_pods_resolve_inside_pods() -> Result<()> {
    if common::skip_on_external("read the nodes' cluster DNS conditions (nss_wrapper)") {
        return Ok(());
    }
    let tc = TestCluster::start_with_nodes(6).await?;
    tc.kubectl_stdin(&["apply", "-f", "-"], &manifest(PODS)).await?;
    let pods = eventually(Duration::from_secs(180), "300 running pods", || async {
        let pods = pod_ips(&tc).await?;
        Ok((pods.len() == PODS).then_some(pods))
    })
    .await?;
    let distinct: std::collections::BTreeSet<&String> = pods.iter().map(|(_, ip)| ip).collect();
    ensure!(distinct.len() == PODS, "pods share addresses: {} distinct of {PODS}", distinct.len());

    // A sample across the set, from a pod at the other end, by both name forms.
    let from = "many-0";
    for (name, ip) in pods.iter().filter(|(n, _)| ["many-1", "many-150", "many-299"].contains(&n.as_str())) {
        let names = vec![format!("{name}.many.default.svc.cluster.local"), format!("{name}.many")];
        let resolved = eventually(Duration::from_secs(30), &format!("{name} to resolve in {from}"), || async {
            let got = resolve_in_pod(&tc, from, &names).await?;
            Ok((got.iter().all(|g| g == ip)).then_some(got))
        })
        .await?;
        eprintln!("{name}: {names:?} -> {resolved:?}");
    }
    // Every node says cluster DNS works.
    let conditions = eventually(Duration::from_secs(30), "nodes to report working cluster DNS", || async {
        let c = dns_conditions(&tc).await?;
        Ok(c.iter().all(|(status, reason, _)| status == "False" && reason == "ClusterDNSResolving").then_some(c))
    })
    .await?;
    ensure!(conditions.len() == 6, "{conditions:?}");
    tc.stop().await;
    Ok(())
}

/// With the table nss_wrapper had by default, 30 pods overflow it: the kubelet's check
/// after the rewrite fails, logs an error and marks every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_resolver_is_reported_on_the_nodes() -> Result<()> {
    if common::skip_on_external("size the pods' host table") {
        return Ok(());
    }
    init_tracing();
    let dir = tempfile::tempdir()?;
    let mut config = ClusterConfig::new(dir.path().join("state"));
    config.nodes = 3;
    config.nss_max_hostents = 100;
    let cluster = LocalCluster::start(config).await?;
    let tc = TestCluster::from_local(cluster, dir);
    tc.kubectl_stdin(&["apply", "-f", "-"], &manifest(30)).await?;
    let conditions = eventually(Duration::from_secs(120), "nodes to report broken cluster DNS", || async {
        let c = dns_conditions(&tc).await?;
        Ok(c.iter().all(|(status, reason, _)| status == "True" && reason == "ClusterDNSBroken").then_some(c))
    })
    .await?;
    let message = &conditions[0].2;
    ensure!(message.contains("lookups failed") && message.contains("Hash table is full"), "message: {message}");
    // Inside a pod, the names do not resolve (the failure users met).
    let err = tc.kubectl_fails(&["exec", "many-0", "--", "getent", "hosts", "many-1.many"], None).await?;
    ensure!(err.contains("exit code 2"), "getent should find nothing: {err}");
    // Back under the limit, lookups work again and the nodes say so.
    tc.kubectl(&["scale", "statefulset", "many", "--replicas=2"]).await?;
    eventually(Duration::from_secs(120), "nodes to report working cluster DNS again", || async {
        let c = dns_conditions(&tc).await?;
        Ok(c.iter().all(|(status, reason, _)| status == "False" && reason == "ClusterDNSResolving").then_some(()))
    })
    .await?;
    tc.stop().await;
    Ok(())
}
