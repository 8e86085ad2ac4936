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

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use common::eventually;
use support::{
    CLUSTER, available_status, expected_locations, node_ids, pod_ready, pod_uid, raft_members, registered_tservers,
    run_single_test, start_with_operator,
};

/// Deadline for the cluster to become available from scratch on a loaded 2-core machine.
const AVAILABLE: Duration = Duration::from_secs(150);
/// Deadline for a master pod to come back, or for deletion to cascade.
const RECOVER: Duration = Duration::from_secs(90);

/// `kubectl exec demo-master-0 -- kudu ARGS...`.
fn in_master<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["exec", "demo-master-0", "--", "kudu"], args].concat()
}

#[test]
fn operator_runs_a_kudu_cluster_end_to_end() -> Result<()> {
    run_single_test(end_to_end)
}

async fn end_to_end() -> Result<()> {
    let started = Instant::now();
    let tc = start_with_operator(CLUSTER).await?;

    // Available: 3 voters with one leader, 3 ready tablet servers.
    let status =
        eventually(AVAILABLE, "the KuduCluster to become Available with 3 voters and 3 tablet servers", || {
            available_status(&tc, 3)
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

    // Rows: a table replicated over the three tablet servers, written and scanned back with
    // the CLI inside a master pod (cluster DNS and the masters from the pod's environment).
    tc.kubectl(&in_master(&[
        "table",
        "create",
        "rows",
        "--columns",
        "id:int64,v:string",
        "--primary-key",
        "id",
        "--partitions",
        "3",
        "--replicas",
        "3",
        "--wait",
    ]))
    .await?;
    let lines: String = (0..20).map(|i| format!("{{\"id\": {i}, \"v\": \"row {i}\"}}\n")).collect();
    tc.kubectl_stdin(&["exec", "-i", "demo-master-0", "--", "kudu", "row", "insert", "rows"], &lines).await?;
    let scanned = tc.kubectl(&in_master(&["row", "scan", "rows", "--from", "5", "--limit", "3"])).await?;
    let row_ids: Vec<i64> = scanned
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).map(|v| v["id"].as_i64().unwrap_or(-1)))
        .collect::<Result<_, _>>()?;
    ensure!(row_ids == vec![5, 6, 7], "rows scanned back in key order: {scanned}");

    // Mutual TLS by default: the operator made a cluster CA and the certificates; a client
    // without a certificate, or with one of another CA (which trusts the cluster's CA, so it
    // is the masters that refuse it), is refused and changes nothing.
    let secrets = tc.kubectl(&["get", "secrets", "-o", "name"]).await?;
    for secret in ["secret/demo-ca", "secret/demo-master-tls", "secret/demo-tserver-tls", "secret/demo-admin-tls"] {
        ensure!(secrets.lines().any(|l| l == secret), "{secret} missing: {secrets}");
    }
    let plaintext = tc
        .kubectl_fails(
            &["exec", "demo-master-0", "--", "sh", "-c", "unset KUDU_CERTS_DIR; exec kudu table create plain --columns id:int64 --primary-key id --insecure --timeout-ms 5000"],
            None,
        )
        .await?;
    eprintln!("plaintext client refused: {}", plaintext.trim());
    let foreign = tc
        .kubectl_fails(
            &[
                "exec",
                "demo-master-0",
                "--",
                "sh",
                "-c",
                "d=$(mktemp -d) && kudu cert create-ca --out $d/ca >/dev/null && \
                 kudu cert create --ca $d/ca --role admin --out $d/c mallory >/dev/null && \
                 cat $d/ca/ca.crt /etc/kudu/admin/ca.crt > $d/c/ca.crt && \
                 KUDU_CERTS_DIR=$d/c exec kudu table create foreign --columns id:int64 --primary-key id --timeout-ms 5000",
            ],
            None,
        )
        .await?;
    eprintln!("certificate of another CA refused: {}", foreign.trim());
    ensure!(!foreign.contains("UnknownIssuer"), "the client, not the masters, refused: {foreign}");
    let tables = tc.kubectl(&in_master(&["table", "list"])).await?;
    ensure!(!tables.contains("plain") && !tables.contains("foreign"), "a refused client created a table: {tables}");

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
        available_status(&tc, 3).await
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
                "statefulsets,services,configmaps,secrets,poddisruptionbudgets,serviceaccounts,pods,kuduclusters",
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
