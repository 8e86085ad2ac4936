//! Deployments (-> ReplicaSets -> Pods) with rollouts, and pod logs, through kubectl.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{TestCluster, eventually};

const DEPLOYMENT: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: kv}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: kv
        image: e2e-kv
        args: ["--listen", "0.0.0.0:7000", "--data-dir", "$(HOME)/data"]
        ports: [{name: kv, containerPort: 7000}]
        env:
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: VERSION, value: "one"}
        readinessProbe:
          exec: {command: ["e2e-kv", "--help"]}
          periodSeconds: 1
"#;

async fn start_cluster() -> Result<TestCluster> {
    // Container images name binaries in the workspace target dir (e2e-kv is built with the tests).
    TestCluster::start_with_nodes(2).await
}

async fn names(tc: &TestCluster, kind: &str) -> Result<Vec<String>> {
    let out = tc.kubectl(&["get", kind, "-o", "name"]).await?;
    Ok(out.lines().map(String::from).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_rollout_logs_and_cascading_delete() -> Result<()> {
    let tc = start_cluster().await?;
    tc.kubectl_stdin(&["apply", "-f", "-"], DEPLOYMENT).await?;
    tc.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]).await?;
    let pods = names(&tc, "pods").await?;
    ensure!(pods.len() == 2 && pods.iter().all(|p| p.starts_with("pod/web-")), "unexpected pods {pods:?}");
    let first_rs = names(&tc, "replicasets").await?;
    ensure!(first_rs.len() == 1, "expected one ReplicaSet, got {first_rs:?}");

    // kubectl logs reads the container's output.
    let pod = pods[0].trim_start_matches("pod/").to_string();
    let logs = eventually(Duration::from_secs(30), "the server's start-up line in the logs", || async {
        let logs = tc.kubectl(&["logs", &pod]).await?;
        Ok(logs.contains("e2e-kv listening on").then_some(logs))
    })
    .await?;
    ensure!(logs.contains("127."), "log lacks the pod address: {logs}");

    // The Service gets a cluster IP; connections to it reach the pods, from the host and,
    // by DNS name, from inside a pod.
    let cluster_ip = eventually(Duration::from_secs(30), "a cluster IP", || async {
        let ip = tc.kubectl(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]).await?;
        Ok(ip.starts_with("127.").then_some(ip))
    })
    .await?;
    let pod_ips: Vec<String> = {
        let pods = tc.get_json(&["pods"]).await?;
        pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["status"]["podIP"].as_str().map(String::from))
            .collect()
    };
    let mut served_by = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let host = eventually(Duration::from_secs(30), "the service to forward", || async {
            Ok(kv_port(&cluster_ip, 80, "hostname").await.ok())
        })
        .await?;
        served_by.insert(host);
    }
    ensure!(served_by.len() == 2, "round-robin did not reach both pods: {served_by:?}");
    // Both replicas bound the wildcard address (the bind shim gave each its pod IP), and a
    // connection between pods comes from the client pod's IP.
    let peer = kv_port(&pod_ips[0], 7000, &format!("relay {}:7000 peer", pod_ips[1])).await?;
    ensure!(peer == pod_ips[0], "pod-to-pod connection came from {peer:?}, not {}", pod_ips[0]);
    let resolved = kv_port(&pod_ips[0], 7000, "resolve web.default.svc.cluster.local").await?;
    ensure!(resolved == cluster_ip, "service name resolves to {resolved:?}, not the cluster IP {cluster_ip}");

    // A template change rolls out a new ReplicaSet and scales the old one to zero.
    tc.kubectl(&["set", "env", "deployment/web", "VERSION=two"]).await?;
    tc.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]).await?;
    let old = first_rs[0].trim_start_matches("replicaset.apps/");
    let old_rs = tc.get_json(&["replicaset", old]).await?;
    ensure!(old_rs["spec"]["replicas"] == 0, "old ReplicaSet not scaled down: {}", old_rs["spec"]);
    let d = tc.get_json(&["deployment", "web"]).await?;
    ensure!(
        d["status"]["updatedReplicas"] == 2 && d["status"]["availableReplicas"] == 2,
        "deployment status: {}",
        d["status"]
    );
    eventually(Duration::from_secs(60), "old pods to go", || async {
        let pods = tc.get_json(&["pods"]).await?;
        let versions: Vec<String> = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["spec"]["containers"][0]["env"][1]["value"].as_str().unwrap_or("").to_string())
            .collect();
        Ok((versions.len() == 2 && versions.iter().all(|v| v == "two")).then_some(()))
    })
    .await?;

    // Deleting the Deployment cascades to ReplicaSets and pods.
    tc.kubectl(&["delete", "deployment", "web"]).await?;
    eventually(Duration::from_secs(60), "ReplicaSets and pods to be collected", || async {
        Ok((names(&tc, "replicasets").await?.is_empty() && names(&tc, "pods").await?.is_empty()).then_some(()))
    })
    .await?;
    tc.stop().await;
    Ok(())
}

const POD: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hi-from-configmap}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {token: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: solo}
spec:
  initContainers:
  - name: prep
    image: busybox
    command: ["sh", "-c", "printf from-init > /var/lib/e2e-solo/value"]
    volumeMounts: [{name: scratch, mountPath: /var/lib/e2e-solo}]
  containers:
  - name: kv
    image: e2e-kv
    args: ["--listen", "$(POD_IP):7000", "--data-dir", "/var/lib/e2e-solo"]
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: TOKEN, valueFrom: {secretKeyRef: {name: creds, key: token}}}
    - {name: GREETING_FILE, value: /etc/e2e-solo/greeting}
    volumeMounts:
    - {name: scratch, mountPath: /var/lib/e2e-solo}
    - {name: settings, mountPath: /etc/e2e-solo, readOnly: true}
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: settings, configMap: {name: settings}}
"#;

async fn kv(ip: &str, cmd: &str) -> Result<String> {
    kv_port(ip, 7000, cmd).await
}

async fn kv_port(ip: &str, port: u16, cmd: &str) -> Result<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = tokio::net::TcpStream::connect((ip, port)).await?;
        s.write_all(format!("{cmd}\n").as_bytes()).await?;
        let mut line = String::new();
        if tokio::io::BufReader::new(s).read_line(&mut line).await? == 0 {
            anyhow::bail!("connection closed without a reply");
        }
        anyhow::Ok(line.trim_end().to_string())
    };
    tokio::time::timeout(Duration::from_secs(10), fut).await.context("kv command timed out")?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_init_containers_volumes_and_env() -> Result<()> {
    let tc = start_cluster().await?;
    tc.kubectl_stdin(&["apply", "-f", "-"], POD).await?;
    tc.kubectl(&["wait", "--for=condition=Ready", "pod/solo", "--timeout=60s"]).await?;
    let pod = tc.get_json(&["pod", "solo"]).await?;
    ensure!(
        pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0,
        "init container status: {}",
        pod["status"]
    );
    let ip = pod["status"]["podIP"].as_str().context("podIP")?;
    ensure!(kv(ip, "get").await? == "from-init", "init container output not visible to the main container");
    ensure!(kv(ip, "env TOKEN").await? == "s3cret", "secretKeyRef env not resolved");
    // `kubectl logs -f` streams output written after it started.
    let mut follow = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(tc.kubeconfig())
        .args(["logs", "-f", "solo"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(follow.stdout.take().context("stdout")?));
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await??.context("no log output")?;
    ensure!(first.contains("e2e-kv listening on"), "unexpected first log line {first:?}");
    ensure!(kv(ip, "set streamed").await? == "ok", "set failed");
    let next = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await??.context("log stream ended")?;
    ensure!(next == "set streamed", "followed log line {next:?}");
    follow.kill().await?;

    // The ConfigMap volume is mounted (read-only) at its mountPath inside the pod.
    let greeting = kv(ip, "cat /etc/e2e-solo/greeting").await?;
    ensure!(greeting == "hi-from-configmap", "config map volume content: {greeting:?}");
    tc.stop().await;
    Ok(())
}

const FLAKY: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: flaky}
spec:
  containers:
  - name: kv
    image: e2e-kv
    args: ["--listen", "0.0.0.0:7000", "--data-dir", "$(HOME)/data"]
    livenessProbe:
      exec: {command: ["sh", "-c", "test -e $(HOME)/healthy"]}
      periodSeconds: 1
      failureThreshold: 2
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_liveness_probe_restarts_the_container() -> Result<()> {
    let tc = start_cluster().await?;
    tc.kubectl_stdin(&["apply", "-f", "-"], FLAKY).await?;
    let restarts = eventually(Duration::from_secs(60), "a liveness restart", || async {
        let pod = tc.get_json(&["pod", "flaky"]).await?;
        let n = pod["status"]["containerStatuses"][0]["restartCount"].as_u64().unwrap_or(0);
        Ok((n >= 1).then_some(pod))
    })
    .await?;
    let last = &restarts["status"]["containerStatuses"][0]["lastState"]["terminated"];
    ensure!(last.is_object(), "no lastState.terminated after a restart: {}", restarts["status"]);
    tc.stop().await;
    Ok(())
}
