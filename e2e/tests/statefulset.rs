//! A StatefulSet of a real server process (`e2e-kv`): ordinal pods with stable DNS names,
//! PVC data surviving pod deletion, ordered scale 1 -> 3 -> 1, and a node made NotReady.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::{TestCluster, eventually};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const MANIFEST: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: kv}
spec:
  clusterIP: None
  selector: {app: kv}
  ports: [{name: kv, port: 7000}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: kv}
spec:
  serviceName: kv
  replicas: 1
  selector: {matchLabels: {app: kv}}
  template:
    metadata: {labels: {app: kv}}
    spec:
      terminationGracePeriodSeconds: 5
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: kv}}
            topologyKey: topology.kubernetes.io/zone
      containers:
      - name: kv
        image: e2e-kv:latest
        args: ["--listen", "$(POD_IP):7000", "--data-dir", "/var/lib/e2e-kv"]
        env:
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        - name: MY_NODE
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        readinessProbe:
          tcpSocket: {port: 7000}
          periodSeconds: 1
        livenessProbe:
          httpGet: {path: /healthz, port: 7000}
          periodSeconds: 2
        volumeMounts:
        - {name: data, mountPath: /var/lib/e2e-kv}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#;

async fn start_cluster() -> Result<TestCluster> {
    // Container images name binaries in the workspace target dir (e2e-kv is built with the tests).
    TestCluster::start_with_nodes(3).await
}

/// Sends one command to an `e2e-kv` server.
async fn kv(ip: &str, cmd: &str) -> Result<String> {
    let fut = async {
        let mut s = TcpStream::connect((ip, 7000)).await?;
        s.write_all(format!("{cmd}\n").as_bytes()).await?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).await?;
        anyhow::Ok(line.trim_end().to_string())
    };
    tokio::time::timeout(Duration::from_secs(10), fut).await.context("kv command timed out")?
}

async fn pod_field(tc: &TestCluster, pod: &str, path: &str) -> Result<String> {
    tc.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={{{path}}}")]).await
}

async fn rollout(tc: &TestCluster) -> Result<()> {
    rollout_of(tc, "kv").await
}

async fn rollout_of(tc: &TestCluster, name: &str) -> Result<()> {
    tc.kubectl(&["rollout", "status", &format!("statefulset/{name}"), "--timeout=120s"]).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_identity_storage_and_scaling() -> Result<()> {
    let tc = start_cluster().await?;
    tc.kubectl_stdin(&["apply", "-f", "-"], MANIFEST).await?;
    rollout(&tc).await?;
    let ip0 = pod_field(&tc, "kv-0", ".status.podIP").await?;
    ensure!(ip0.starts_with("127.") && ip0 != "127.0.0.1", "pod has no own loopback address: {ip0:?}");
    ensure!(kv(&ip0, "hostname").await? == "kv-0", "pod hostname is not the pod name");
    ensure!(kv(&ip0, "env POD_IP").await? == ip0, "downward API POD_IP wrong");
    ensure!(!kv(&ip0, "env MY_NODE").await?.is_empty(), "downward API nodeName empty");
    ensure!(kv(&ip0, "set first").await? == "ok", "set failed");
    // kubectl exec runs in the pod's view: its volume mount and host name; exit codes and
    // stdin pass through.
    let out = tc.kubectl(&["exec", "kv-0", "--", "sh", "-c", "cat /var/lib/e2e-kv/value; hostname"]).await?;
    ensure!(out == "firstkv-0\n", "exec output {out:?}");
    let err = tc.kubectl_fails(&["exec", "kv-0", "--", "sh", "-c", "exit 3"], None).await?;
    ensure!(err.contains("command terminated with exit code 3"), "exit code not reported: {err}");
    // The image's binaries are on the pod's PATH (processes can run them as subcommands).
    let found = tc.kubectl(&["exec", "kv-0", "--", "sh", "-c", "command -v e2e-kv"]).await?;
    ensure!(found.trim().ends_with("/e2e-kv"), "e2e-kv not on the pod's PATH: {found:?}");
    let echoed = tc.kubectl_stdin(&["exec", "-i", "kv-0", "--", "cat"], "via stdin").await?;
    ensure!(echoed == "via stdin", "stdin not passed through: {echoed:?}");

    // Scale 1 -> 3: ordinal pods, each reachable under its stable DNS name from inside a pod.
    tc.kubectl(&["scale", "statefulset", "kv", "--replicas=3"]).await?;
    rollout(&tc).await?;
    let ip2 = pod_field(&tc, "kv-2", ".status.podIP").await?;
    let ip1 = pod_field(&tc, "kv-1", ".status.podIP").await?;
    let resolved = eventually(Duration::from_secs(30), "kv-0.kv to resolve inside kv-2", || async {
        let r = kv(&ip2, "resolve kv-0.kv.default.svc.cluster.local").await?;
        Ok((r == ip0).then_some(r))
    })
    .await?;
    ensure!(resolved == ip0);
    let wide = tc.kubectl(&["get", "pods", "-o", "wide"]).await?;
    ensure!(
        wide.lines().next().unwrap_or("").split_whitespace().collect::<Vec<_>>()
            == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"],
        "pod table: {wide}"
    );
    ensure!(wide.contains(&ip2) && wide.contains("1/1") && wide.contains("Running"), "pod table lacks kv-2: {wide}");
    let all = eventually(Duration::from_secs(30), "the headless service to list all pods", || async {
        let r = kv(&ip0, "resolve kv.default.svc.cluster.local").await?;
        Ok((r.split(',').count() == 3).then_some(r))
    })
    .await?;
    for ip in [&ip0, &ip1, &ip2] {
        ensure!(all.contains(ip.as_str()), "service name lacks {ip}: {all}");
    }
    // Zone anti-affinity put each replica in its own zone.
    let nodes = tc.get_json(&["nodes"]).await?;
    let zone_of = |node: &str| {
        nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["metadata"]["name"] == node)
            .and_then(|n| n["metadata"]["labels"]["topology.kubernetes.io/zone"].as_str().map(String::from))
    };
    let mut zones = Vec::new();
    for i in 0..3 {
        let node = pod_field(&tc, &format!("kv-{i}"), ".spec.nodeName").await?;
        zones.push(zone_of(&node).context("node zone")?);
    }
    zones.sort();
    zones.dedup();
    ensure!(zones.len() == 3, "replicas share a zone: {zones:?}");
    let claims = tc.kubectl(&["get", "pvc", "-o", "name"]).await?;
    for i in 0..3 {
        ensure!(claims.contains(&format!("persistentvolumeclaim/data-kv-{i}")), "claim {i} missing: {claims}");
    }

    // A deleted pod comes back with the same name and its data. (`--wait=false`: kubectl's
    // own wait can miss a deletion when the replacement appears between its GET and LIST.)
    let uid = pod_field(&tc, "kv-0", ".metadata.uid").await?;
    tc.kubectl(&["delete", "pod", "kv-0", "--wait=false"]).await?;
    eventually(Duration::from_secs(60), "kv-0 to be recreated", || async {
        let new_uid = pod_field(&tc, "kv-0", ".metadata.uid").await.unwrap_or_default();
        Ok((!new_uid.is_empty() && new_uid != uid).then_some(()))
    })
    .await?;
    tc.kubectl(&["wait", "--for=condition=Ready", "pod/kv-0", "--timeout=60s"]).await?;
    let ip0 = pod_field(&tc, "kv-0", ".status.podIP").await?;
    ensure!(kv(&ip0, "get").await? == "first", "data did not survive pod deletion");
    let described = tc.kubectl(&["describe", "pod", "kv-0"]).await?;
    for needle in ["Scheduled", "Successfully assigned default/kv-0", "Started"] {
        ensure!(described.contains(needle), "describe lacks event {needle:?}: {described}");
    }
    let sts_events = tc
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=StatefulSet",
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .await?;
    ensure!(sts_events.contains("SuccessfulCreate"), "no StatefulSet events: {sts_events}");

    // Scale 3 -> 1: highest ordinals go, claims stay.
    tc.kubectl(&["scale", "statefulset", "kv", "--replicas=1"]).await?;
    eventually(Duration::from_secs(60), "kv-1 and kv-2 to go", || async {
        let pods = tc.kubectl(&["get", "pods", "-o", "name"]).await?;
        Ok((pods.trim() == "pod/kv-0").then_some(()))
    })
    .await?;
    if TcpStream::connect((ip2.as_str(), 7000)).await.is_ok() {
        bail!("kv-2's process still serves after scale-down");
    }
    let claims = tc.kubectl(&["get", "pvc", "-o", "name"]).await?;
    ensure!(claims.contains("data-kv-2"), "claim deleted with its pod: {claims}");
    let sts = tc.get_json(&["statefulset", "kv"]).await?;
    ensure!(
        sts["status"]["replicas"] == 1 && sts["status"]["readyReplicas"] == 1,
        "status counts wrong: {}",
        sts["status"]
    );
    tc.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_not_ready_stops_its_pods() -> Result<()> {
    if common::skip_on_external("make a node NotReady") {
        return Ok(());
    }
    let tc = start_cluster().await?;
    tc.kubectl_stdin(&["apply", "-f", "-"], MANIFEST).await?;
    rollout(&tc).await?;
    let ip = pod_field(&tc, "kv-0", ".status.podIP").await?;
    kv(&ip, "set survive").await?;
    let node = pod_field(&tc, "kv-0", ".spec.nodeName").await?;

    let Some(local) = tc.local_only("make a node NotReady") else { return Ok(()) };
    local.set_node_ready(&node, false)?;
    tc.kubectl(&["wait", "--for=condition=Ready=false", "pod/kv-0", "--timeout=60s"]).await?;
    eventually(Duration::from_secs(30), "the pod process to stop", || async {
        Ok(TcpStream::connect((ip.as_str(), 7000)).await.is_err().then_some(()))
    })
    .await?;

    // A graceful delete cannot complete while the node's kubelet is unreachable.
    let uid = pod_field(&tc, "kv-0", ".metadata.uid").await?;
    tc.kubectl(&["delete", "pod", "kv-0", "--wait=false"]).await?;
    let pod = tc.get_json(&["pod", "kv-0"]).await?;
    ensure!(
        pod["metadata"]["uid"] == uid.as_str() && pod["metadata"]["deletionTimestamp"].is_string(),
        "pod on a NotReady node vanished: {pod}"
    );

    // Back to Ready: the deletion completes and the StatefulSet brings kv-0 back with its data.
    local.set_node_ready(&node, true)?;
    eventually(Duration::from_secs(60), "kv-0 to be replaced", || async {
        let new_uid = pod_field(&tc, "kv-0", ".metadata.uid").await.unwrap_or_default();
        Ok((!new_uid.is_empty() && new_uid != uid).then_some(()))
    })
    .await?;
    tc.kubectl(&["wait", "--for=condition=Ready", "pod/kv-0", "--timeout=60s"]).await?;
    let ip = pod_field(&tc, "kv-0", ".status.podIP").await?;
    ensure!(kv(&ip, "get").await? == "survive", "data lost across node outage");
    tc.stop().await;
    Ok(())
}

const RETAIN_NOTHING: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: tmp}
spec:
  serviceName: tmp
  replicas: 2
  podManagementPolicy: Parallel
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Delete}
  selector: {matchLabels: {app: tmp}}
  template:
    metadata: {labels: {app: tmp}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: kv
        image: e2e-kv
        args: ["--listen", "0.0.0.0:7000", "--data-dir", "$(HOME)/data"]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_retention_policy_delete() -> Result<()> {
    if common::skip_on_external("read claim directories on disk") {
        return Ok(());
    }
    let tc = start_cluster().await?;
    tc.kubectl_stdin(&["apply", "-f", "-"], RETAIN_NOTHING).await?;
    rollout_of(&tc, "tmp").await?;
    let claims = || async {
        Ok::<_, anyhow::Error>(
            tc.kubectl(&["get", "pvc", "-o", "name"]).await?.lines().map(String::from).collect::<Vec<_>>(),
        )
    };
    ensure!(claims().await?.len() == 2, "two claims expected");
    // Each claim is a directory that outlives pods and goes with the claim.
    if tc.local_only("read claim directories on disk").is_none() {
        return Ok(());
    }
    let claim_dir = |i: usize| tc.dir.path().join(format!("state/volumes/default/data-tmp-{i}"));
    eventually(Duration::from_secs(30), "claim directories", || async {
        Ok((claim_dir(0).is_dir() && claim_dir(1).is_dir()).then_some(()))
    })
    .await?;

    // A claim in use is protected: deleting it leaves it Terminating until its pod is gone;
    // then the StatefulSet recreates the pod with a fresh claim, which is a new, empty
    // volume (the directory is per claim uid): nothing of the old claim's data is in it.
    let old_claim = tc.kubectl(&["get", "pvc", "data-tmp-0", "-o", "jsonpath={.metadata.uid}"]).await?;
    let old_dir = claim_dir(0).join(&old_claim);
    ensure!(old_dir.is_dir(), "no directory for the claim's uid: {}", old_dir.display());
    std::fs::write(old_dir.join("old-data"), b"written to the claim that gets deleted")?;
    tc.kubectl(&["delete", "pvc", "data-tmp-0", "--wait=false"]).await?;
    let pvc = tc.get_json(&["pvc", "data-tmp-0"]).await?;
    ensure!(pvc["metadata"]["deletionTimestamp"].is_string(), "claim in use was removed at once: {pvc}");
    tc.kubectl(&["delete", "pod", "tmp-0", "--wait=false"]).await?;
    let new_claim = eventually(Duration::from_secs(60), "tmp-0 back with a fresh claim", || async {
        let uid = tc.kubectl(&["get", "pvc", "data-tmp-0", "-o", "jsonpath={.metadata.uid}"]).await.unwrap_or_default();
        let pod = tc.get_json(&["pod", "tmp-0"]).await.ok();
        let running = pod.is_some_and(|p| p["status"]["phase"] == "Running");
        Ok((!uid.is_empty() && uid != old_claim && running).then_some(uid))
    })
    .await?;
    let new_dir = claim_dir(0).join(&new_claim);
    ensure!(new_dir.is_dir(), "the fresh claim has no directory of its own");
    ensure!(!new_dir.join("old-data").exists(), "the fresh claim sees the deleted claim's data");
    eventually(Duration::from_secs(30), "the deleted claim's directory to go", || async {
        Ok((!old_dir.exists()).then_some(()))
    })
    .await?;

    tc.kubectl(&["scale", "statefulset", "tmp", "--replicas=1"]).await?;
    eventually(Duration::from_secs(60), "the scaled-down claim to go", || async {
        Ok((claims().await? == ["persistentvolumeclaim/data-tmp-0"]).then_some(()))
    })
    .await?;
    eventually(Duration::from_secs(30), "the deleted claim's directory to go", || async {
        Ok((!claim_dir(1).exists()).then_some(()))
    })
    .await?;
    ensure!(claim_dir(0).is_dir(), "the remaining claim lost its directory");
    tc.kubectl(&["delete", "statefulset", "tmp"]).await?;
    eventually(Duration::from_secs(60), "the remaining claim to be collected with the set", || async {
        Ok(claims().await?.is_empty().then_some(()))
    })
    .await?;
    tc.stop().await;
    Ok(())
}
