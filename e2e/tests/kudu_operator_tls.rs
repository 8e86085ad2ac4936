//! Certificate renewal on the local control plane: a KuduCluster whose certificates live
//! two minutes and are renewed every 30 seconds (`spec.tls`), with DDL running through
//! more than a whole certificate lifetime. Every DDL request succeeds (no request lost),
//! the operator renews the certificate Secrets several times, the kubelet updates the
//! mounted files and the servers reload them: no pod restarts, and the masters log the
//! reload. The operator keeps managing the cluster with its own renewed certificate.

mod common;
#[path = "kudu_operator/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{TestCluster, eventually};
use support::{available_status, run_single_test, start_with_operator};

/// Deadline for the cluster to become available from scratch on a loaded 2-core machine.
const AVAILABLE: Duration = Duration::from_secs(150);
/// Certificates live this long...
const VALIDITY_SECONDS: u64 = 120;
/// ...and are renewed this long before they expire (every 30 s).
const RENEW_BEFORE_SECONDS: u64 = 90;
/// DDL runs longer than a certificate lives: the first certificates expire meanwhile.
const DDL_FOR: Duration = Duration::from_secs(VALIDITY_SECONDS + 20);

fn cluster() -> String {
    format!(
        r#"
apiVersion: kudu.dev/v1alpha1
kind: KuduCluster
metadata: {{name: demo, namespace: default}}
spec:
  image: kudu:dev
  masters:
    replicas: 3
    storage: {{size: 1Gi}}
  tservers:
    replicas: 3
    storage: {{size: 1Gi}}
  tls:
    certValiditySeconds: {VALIDITY_SECONDS}
    renewBeforeSeconds: {RENEW_BEFORE_SECONDS}
"#
    )
}

/// `tls.crt` of a Secret (base64, as stored).
async fn certificate(tc: &TestCluster, secret: &str) -> Result<String> {
    let json = tc.get_json(&["secret", secret]).await?;
    json["data"]["tls.crt"].as_str().map(str::to_owned).context("tls.crt")
}

/// Pod name -> (uid, restart count) of the cluster's pods.
async fn pods(tc: &TestCluster) -> Result<Vec<(String, String, u64)>> {
    let pods = tc.get_json(&["pods", "-l", "app.kubernetes.io/instance=demo"]).await?;
    let mut out: Vec<(String, String, u64)> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
                p["metadata"]["uid"].as_str().unwrap_or_default().to_owned(),
                p["status"]["containerStatuses"][0]["restartCount"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

#[test]
fn certificates_renew_under_ddl_without_restarts_or_lost_requests() -> Result<()> {
    run_single_test(renewal)
}

async fn renewal() -> Result<()> {
    let started = Instant::now();
    let tc = start_with_operator(&cluster()).await?;
    eventually(AVAILABLE, "the KuduCluster to become Available", || available_status(&tc, 3)).await?;
    eprintln!("available after {:?}", started.elapsed());
    let before = pods(&tc).await?;
    ensure!(before.len() == 6, "six pods: {before:?}");

    // DDL through the CLI in a master pod (its mounted admin certificate is renewed too),
    // one request after the other; each must succeed.
    let mut seen = BTreeSet::from([certificate(&tc, "demo-master-tls").await?]);
    let ddl_start = Instant::now();
    let mut created = 0;
    while ddl_start.elapsed() < DDL_FOR {
        let name = format!("t{created}");
        tc.kubectl(&[
            "exec",
            "demo-master-0",
            "--",
            "kudu",
            "table",
            "create",
            &name,
            "--columns",
            "id:int64",
            "--primary-key",
            "id",
            "--partitions",
            "1",
            "--replicas",
            "3",
        ])
        .await
        .with_context(|| format!("DDL request {created} after {:?}", ddl_start.elapsed()))?;
        created += 1;
        seen.insert(certificate(&tc, "demo-master-tls").await?);
    }
    eprintln!("{created} tables created over {:?}; {} master certificates seen", ddl_start.elapsed(), seen.len());
    ensure!(seen.len() >= 3, "the master certificate was renewed at least twice: {} seen", seen.len());
    let tables = tc.kubectl(&["exec", "demo-master-0", "--", "kudu", "table", "list"]).await?;
    let listed: BTreeSet<&str> = tables.split_whitespace().collect();
    for i in 0..created {
        let name = format!("t{i}");
        ensure!(listed.contains(name.as_str()), "{name} missing from {tables}");
    }

    // Same pods, never restarted; the masters reloaded the renewed files.
    ensure!(pods(&tc).await? == before, "pods restarted: {before:?} -> {:?}", pods(&tc).await?);
    let log = tc.kubectl(&["logs", "demo-master-1"]).await?;
    ensure!(log.contains("renewed certificates loaded"), "demo-master-1 never reloaded its certificates");

    // The operator still manages the cluster over TLS with its renewed certificate: a
    // change of spec is observed and the cluster is Available for it.
    tc.kubectl(&["annotate", "kuduclusters", "demo", "renewal-test=done"]).await?;
    tc.kubectl(&[
        "patch",
        "kuduclusters",
        "demo",
        "--type=merge",
        "-p",
        r#"{"spec":{"masterReplacement":{"gracePeriodSeconds":120}}}"#,
    ])
    .await?;
    eventually(AVAILABLE, "the KuduCluster Available for the new generation", || available_status(&tc, 3)).await?;
    eprintln!("done after {:?}", started.elapsed());
    tc.stop().await;
    Ok(())
}
