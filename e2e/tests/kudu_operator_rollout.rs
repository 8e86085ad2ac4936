//! Rolling restart and upgrade of a whole KuduCluster, driven by the operator, on the local
//! control plane (3 masters, 3 tablet servers, the operator from its Helm chart), under a
//! client pod issuing DDL and row writes to a 3-replica table without pause
//! (`kudu perf ddl`):
//! - a restart by `kubectl.kubernetes.io/restartedAt` on the KuduCluster, then an image
//!   change (a second image name for the same binary): every pod is replaced, masters
//!   before tablet servers, with no failed request, at most one master leadership change
//!   and no request slower than 3 s (the figures are printed);
//! - the operator killed in the middle of a rollout: the new one resumes and finishes it;
//! - a master flag that makes it exit: the first restarted master never becomes healthy,
//!   the rollout stops with `RolloutStalled` naming it, the other members keep running;
//!   removing the flag lets the rollout finish;
//! - `kubectl drain` of the node of the leader master: leadership moves, no request fails.

mod common;
#[path = "kudu_operator/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{TestCluster, eventually};
use serde_json::Value;
use support::{OPERATOR_NAMESPACE, available_status, run_single_test, start_with_operator};

/// Deadline for the cluster to become available from scratch on a loaded 2-core machine.
const AVAILABLE: Duration = Duration::from_secs(180);
/// Deadline for a whole rollout of six pods.
const ROLLOUT: Duration = Duration::from_secs(480);
/// The slowest request allowed during a rollout.
const SLOWEST_MS: f64 = 3000.0;

/// The cluster, with a short member timeout so that a stall shows within the test.
const CLUSTER: &str = r#"
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
  rollout:
    memberTimeoutSeconds: 60
"#;

const MASTERS: &str = "demo-master-0.demo-masters.default.svc.cluster.local:7051,\
demo-master-1.demo-masters.default.svc.cluster.local:7051,\
demo-master-2.demo-masters.default.svc.cluster.local:7051";

/// The load: one client pod issuing DDL and row writes for up to an hour, over TLS with the
/// cluster's admin certificate (the Secret the operator issues).
fn load_pod() -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: ddl-load, namespace: default, labels: {{app: ddl-load}}}}
spec:
  restartPolicy: Never
  containers:
  - name: load
    image: kudu:dev
    command: [kudu]
    args: [perf, ddl, --rows-table, rolling_rows, --seconds, "3600", --report-every, "1"]
    env:
    - {{name: KUDU_MASTERS, value: "{MASTERS}"}}
    - {{name: KUDU_CERTS_DIR, value: /etc/kudu/admin}}
    volumeMounts:
    - {{name: admin-certs, mountPath: /etc/kudu/admin, readOnly: true}}
  volumes:
  - name: admin-certs
    secret: {{secretName: demo-admin-tls}}
"#
    )
}

/// The load client's running totals (its last line of output).
#[derive(Clone, Debug, Default)]
struct Figures {
    requests: u64,
    failed: u64,
    slowest_ms: f64,
    leader_changes: u64,
    last_term: u64,
    last_error: Option<String>,
}

async fn figures(tc: &TestCluster) -> Result<Option<Figures>> {
    let out = tc.kubectl(&["logs", "ddl-load", "--tail=5"]).await?;
    let Some(line) = out.lines().rev().find(|l| l.starts_with('{')) else {
        return Ok(None);
    };
    let v: Value = serde_json::from_str(line).with_context(|| format!("load output: {line}"))?;
    Ok(Some(Figures {
        requests: v["requests"].as_u64().unwrap_or(0),
        failed: v["failed"].as_u64().unwrap_or(0),
        slowest_ms: v["slowest_ms"].as_f64().unwrap_or(0.0),
        leader_changes: v["leader_changes"].as_u64().unwrap_or(0),
        last_term: v["last_term"].as_u64().unwrap_or(0),
        last_error: v["last_error"].as_str().map(str::to_owned),
    }))
}

/// Figures after the load issued at least `more` requests beyond `after`.
async fn figures_after(tc: &TestCluster, after: u64, more: u64) -> Result<Figures> {
    eventually(Duration::from_secs(120), "the load to issue requests", || async {
        Ok(figures(tc).await?.filter(|f| f.requests >= after + more))
    })
    .await
}

/// Pod name -> uid of the cluster's pods.
async fn pod_uids(tc: &TestCluster) -> Result<BTreeMap<String, String>> {
    let pods = tc.get_json(&["pods", "-l", "app.kubernetes.io/instance=demo"]).await?;
    Ok(pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["metadata"]["name"].as_str()?.to_owned(), p["metadata"]["uid"].as_str()?.to_owned())))
        .collect())
}

/// Pod name -> creation time of the cluster's pods.
async fn pod_created(tc: &TestCluster) -> Result<BTreeMap<String, String>> {
    let pods = tc.get_json(&["pods", "-l", "app.kubernetes.io/instance=demo"]).await?;
    Ok(pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((p["metadata"]["name"].as_str()?.to_owned(), p["metadata"]["creationTimestamp"].as_str()?.to_owned()))
        })
        .collect())
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

/// Waits until every pod of `before` was replaced, each member reports the rollout's
/// revision, and the cluster is Available with `Progressing` False.
async fn wait_rolled(tc: &TestCluster, before: &BTreeMap<String, String>) -> Result<Value> {
    eventually(ROLLOUT, "every pod to be replaced and the rollout to complete", || async {
        let now = pod_uids(tc).await?;
        let replaced = before.iter().all(|(pod, uid)| now.get(pod).is_some_and(|u| u != uid));
        if !replaced {
            return Ok(None);
        }
        let Some(status) = available_status(tc, 3).await? else {
            return Ok(None);
        };
        // Done rolling: `RolloutComplete`, or the membership loop's own settled reason.
        let complete = condition(&status, "Progressing").is_some_and(|c| {
            c["status"] == "False" && (c["reason"] == "RolloutComplete" || c["reason"] == "Reconciled")
        });
        let master_rev = &status["rollout"]["masterRevision"];
        let tserver_rev = &status["rollout"]["tserverRevision"];
        let revisions = status["masters"].as_array().into_iter().flatten().all(|m| &m["revision"] == master_rev)
            && status["tabletServers"].as_array().into_iter().flatten().all(|t| &t["revision"] == tserver_rev);
        Ok((complete && revisions).then_some(status))
    })
    .await
}

/// Masters were all replaced before the first tablet server was.
async fn ensure_masters_first(tc: &TestCluster) -> Result<()> {
    let created = pod_created(tc).await?;
    let last_master = created.iter().filter(|(p, _)| p.contains("-master-")).map(|(_, t)| t).max();
    let first_tserver = created.iter().filter(|(p, _)| p.contains("-tserver-")).map(|(_, t)| t).min();
    ensure!(last_master <= first_tserver, "a tablet server was replaced before the last master: {created:?}");
    Ok(())
}

/// Checks and prints what the load saw between `before` and `after`; with `bounded`, no
/// request may have been slower than [`SLOWEST_MS`] (the load reports the slowest of its
/// whole run, so this holds for every phase before).
fn check_figures(what: &str, before: &Figures, after: &Figures, bounded: bool) -> Result<()> {
    let requests = after.requests - before.requests;
    let failed = after.failed - before.failed;
    let changes = after.leader_changes - before.leader_changes;
    let elections = after.last_term.saturating_sub(before.last_term);
    eprintln!(
        "FIGURES {what}: requests issued {requests}, failed {failed}, master leadership changes {changes} \
         (elections {elections}), slowest request {:.0} ms (whole run so far)",
        after.slowest_ms
    );
    ensure!(failed == 0, "{what}: {failed} requests failed, the last: {:?}", after.last_error);
    ensure!(changes <= 1 && elections <= 1, "{what}: {changes} leadership changes, {elections} elections");
    ensure!(!bounded || after.slowest_ms <= SLOWEST_MS, "{what}: a request took {} ms", after.slowest_ms);
    ensure!(requests > 0, "{what}: the load issued nothing");
    Ok(())
}

/// One rollout under load: `trigger` starts it; returns once it completed and was checked.
async fn rollout_under_load(tc: &TestCluster, what: &str, trigger: &[&str]) -> Result<()> {
    let started = Instant::now();
    let before_pods = pod_uids(tc).await?;
    let before = figures_after(tc, 0, 1).await?;
    tc.kubectl(trigger).await?;
    wait_rolled(tc, &before_pods).await?;
    ensure_masters_first(tc).await?;
    let after = figures_after(tc, before.requests, 1).await?;
    eprintln!("{what} took {:?}", started.elapsed());
    check_figures(what, &before, &after, true)
}

async fn operator_pod(tc: &TestCluster) -> Result<Option<String>> {
    let pods = tc.get_json(&["pods", "-n", OPERATOR_NAMESPACE]).await?;
    Ok(pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["metadata"]["deletionTimestamp"].is_null())
        .and_then(|p| Some(p["metadata"]["name"].as_str()?.to_owned())))
}

async fn status(tc: &TestCluster) -> Result<Value> {
    Ok(tc.get_json(&["kuduclusters", "demo"]).await?["status"].clone())
}

#[test]
fn operator_rolls_a_whole_cluster_under_load() -> Result<()> {
    run_single_test(rollouts)
}

async fn rollouts() -> Result<()> {
    let started = Instant::now();
    let tc = start_with_operator(CLUSTER).await?;
    eventually(AVAILABLE, "the KuduCluster to become Available", || available_status(&tc, 3)).await?;
    tc.kubectl_stdin(&["apply", "-f", "-"], &load_pod()).await?;
    figures_after(&tc, 0, 10).await?;
    eprintln!("available with the load running after {:?}", started.elapsed());

    // (a) Restart by annotation, as `kubectl rollout restart` does for workloads.
    rollout_under_load(
        &tc,
        "restart by annotation",
        &["annotate", "kuduclusters", "demo", "--overwrite", "kubectl.kubernetes.io/restartedAt=2026-01-01T00:00:00Z"],
    )
    .await?;

    // (b) An image change: another name for the same binary.
    rollout_under_load(
        &tc,
        "image change",
        &["patch", "kuduclusters", "demo", "--type", "merge", "-p", r#"{"spec":{"image":"registry.local/kudu:v2"}}"#],
    )
    .await?;
    let images =
        tc.kubectl(&["get", "pods", "-l", "app.kubernetes.io/instance=demo", "-o", "jsonpath={..image}"]).await?;
    ensure!(images.split_whitespace().all(|i| i == "registry.local/kudu:v2"), "pod images after the upgrade: {images}");

    // The operator killed in the middle of a rollout: the next one resumes it.
    let before_pods = pod_uids(&tc).await?;
    let before = figures_after(&tc, 0, 1).await?;
    tc.kubectl(&[
        "annotate",
        "kuduclusters",
        "demo",
        "--overwrite",
        "kubectl.kubernetes.io/restartedAt=2026-01-02T00:00:00Z",
    ])
    .await?;
    eventually(ROLLOUT, "the rollout to restart a first pod", || async {
        let now = pod_uids(&tc).await?;
        Ok(before_pods.iter().any(|(pod, uid)| now.get(pod).is_some_and(|u| u != uid)).then_some(()))
    })
    .await?;
    let old = operator_pod(&tc).await?.context("the operator pod")?;
    tc.kubectl(&["delete", "pod", "-n", OPERATOR_NAMESPACE, &old, "--grace-period=0", "--force"]).await?;
    eprintln!("operator pod {old} killed mid-rollout after {:?}", started.elapsed());
    wait_rolled(&tc, &before_pods).await?;
    ensure_masters_first(&tc).await?;
    let after = figures_after(&tc, before.requests, 1).await?;
    check_figures("restart with the operator killed midway", &before, &after, true)?;

    // A flag that makes a master exit: the first restarted master never becomes healthy.
    let before_pods = pod_uids(&tc).await?;
    tc.kubectl(&[
        "patch",
        "kuduclusters",
        "demo",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"masters":{"flags":["--no-such-flag-exits"]}}}"#,
    ])
    .await?;
    let stalled = eventually(ROLLOUT, "the rollout to stop with RolloutStalled", || async {
        let status = status(&tc).await?;
        Ok(condition(&status, "RolloutStalled").filter(|c| c["status"] == "True").cloned())
    })
    .await?;
    let message = stalled["message"].as_str().unwrap_or_default().to_owned();
    let now = pod_uids(&tc).await?;
    let replaced: Vec<&String> = before_pods.keys().filter(|p| now.get(*p) != before_pods.get(*p)).collect();
    ensure!(replaced.len() == 1, "exactly one pod restarted before the stall: {replaced:?}");
    ensure!(message.contains(replaced[0].as_str()), "the stall names {}: {message}", replaced[0]);
    eprintln!("stalled on {}: {message}", replaced[0]);
    // Nothing further is restarted, and the others keep serving.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let later = pod_uids(&tc).await?;
    ensure!(
        later.iter().filter(|(p, u)| before_pods.get(*p) != Some(*u)).count() == 1,
        "more pods restarted: {later:?}"
    );
    let healthy_masters =
        status(&tc).await?["masters"].as_array().into_iter().flatten().filter(|m| m["healthy"] == true).count();
    ensure!(healthy_masters == 2, "the two other masters keep running: {healthy_masters} healthy");
    let progressing = condition(&status(&tc).await?, "Progressing").cloned().unwrap_or_default();
    ensure!(progressing["reason"] == "RolloutStalled", "Progressing: {progressing}");
    // Fixing the spec lets the rollout finish.
    tc.kubectl(&[
        "patch",
        "kuduclusters",
        "demo",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/spec/masters/flags"}]"#,
    ])
    .await?;
    wait_rolled(&tc, &BTreeMap::new()).await?;
    eventually(ROLLOUT, "RolloutStalled to clear", || async {
        let status = status(&tc).await?;
        Ok(condition(&status, "RolloutStalled").filter(|c| c["status"] == "False").map(|_| ()))
    })
    .await?;
    eprintln!("stall recovered after {:?}", started.elapsed());

    // Drain the node of the leader master: leadership moves first, no request fails.
    let leader = status(&tc).await?["leader"].as_str().context("a leader")?.to_owned();
    let node = tc.kubectl(&["get", "pod", &leader, "-o", "jsonpath={.spec.nodeName}"]).await?;
    let before = figures_after(&tc, 0, 1).await?;
    tc.kubectl(&[
        "drain",
        node.trim(),
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--pod-selector=app.kubernetes.io/instance=demo",
        "--timeout=300s",
    ])
    .await?;
    // The evicted pods come back on the other nodes or, uncordoned, on this one.
    tc.kubectl(&["uncordon", node.trim()]).await?;
    let new_leader = eventually(ROLLOUT, "a leader on another pod and the cluster Available", || async {
        let Some(status) = available_status(&tc, 3).await? else {
            return Ok(None);
        };
        Ok(status["leader"].as_str().filter(|l| *l != leader).map(str::to_owned))
    })
    .await?;
    let after = figures_after(&tc, before.requests, 1).await?;
    eprintln!("drained {} (leader {leader} -> {new_leader})", node.trim());
    // Tablet servers on the node are evicted too, without their tablet leaderships moved
    // first (only the operator's rollout does that): writes may wait for an election.
    check_figures("drain of the leader master's node", &before, &after, false)?;
    eprintln!("done after {:?}", started.elapsed());
    tc.stop().await;
    Ok(())
}
