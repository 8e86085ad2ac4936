//! Many KuduClusters side by side: ten single-master clusters applied at once beside the
//! 3+3 one (28 pods, about 140 cluster DNS names) all become Available and stay Available
//! for a minute; after the operator pod is deleted, the new operator reconciles every one
//! of them and finds them Available again. This is the scale at which cluster DNS used to
//! fail in every pod (nss_wrapper's host table overflowed), taking every cluster down.

mod common;
#[path = "kudu_operator/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::{TestCluster, eventually};
use support::{CLUSTER, OPERATOR_NAMESPACE, run_single_test, start_with_operator};

/// Single-master clusters beside `demo`.
const SMALL_CLUSTERS: usize = 10;
/// Deadline for every cluster to become Available on a loaded 2-core machine.
const AVAILABLE: Duration = Duration::from_secs(300);
/// How long every cluster must stay Available.
const STAY: Duration = Duration::from_secs(60);

fn small_cluster(i: usize) -> String {
    format!(
        r#"
apiVersion: kudu.dev/v1alpha1
kind: KuduCluster
metadata: {{name: c{i}, namespace: default}}
spec:
  image: kudu:dev
  masters:
    replicas: 1
    storage: {{size: 1Gi}}
  tservers:
    replicas: 1
    storage: {{size: 1Gi}}
"#
    )
}

/// Cluster name -> why it is not (yet) Available for its current spec; empty when all are.
async fn unavailable(tc: &TestCluster) -> Result<BTreeMap<String, String>> {
    let list = tc.get_json(&["kuduclusters"]).await?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    ensure!(items.len() == SMALL_CLUSTERS + 1, "expected {} KuduClusters, found {}", SMALL_CLUSTERS + 1, items.len());
    let mut out = BTreeMap::new();
    for c in &items {
        let name = c["metadata"]["name"].as_str().context("KuduCluster name")?.to_owned();
        let (masters, tservers) = if name == "demo" { (3, 3) } else { (1, 1) };
        let status = &c["status"];
        let available = status["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Available");
        let why = match available {
            None => "no Available condition".to_owned(),
            Some(a) if a["status"] != "True" => {
                format!("Available={} {}: {}", a["status"], a["reason"], a["message"])
            }
            Some(_) if status["observedGeneration"] != c["metadata"]["generation"] => "spec not observed".to_owned(),
            Some(_) if status["masterVoters"] != format!("{masters}/{masters}") => {
                format!("voters {}", status["masterVoters"])
            }
            Some(_) if status["readyTServers"] != tservers => {
                format!("ready tablet servers {}", status["readyTServers"])
            }
            Some(_) if status["leader"].as_str().is_none() => "no leader".to_owned(),
            Some(_) => continue,
        };
        out.insert(name, why);
    }
    Ok(out)
}

async fn operator_pod(tc: &TestCluster) -> Result<Option<(String, bool)>> {
    let pods = tc.get_json(&["pods", "-n", OPERATOR_NAMESPACE]).await?;
    Ok(pods["items"].as_array().into_iter().flatten().find(|p| p["metadata"]["deletionTimestamp"].is_null()).and_then(
        |p| {
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            Some((p["metadata"]["name"].as_str()?.to_owned(), ready))
        },
    ))
}

#[test]
fn ten_small_clusters_beside_a_large_one_stay_available_across_an_operator_restart() -> Result<()> {
    run_single_test(many_clusters)
}

async fn many_clusters() -> Result<()> {
    let started = Instant::now();
    let tc = start_with_operator(CLUSTER).await?;
    let all: String = (0..SMALL_CLUSTERS).map(|i| format!("---{}", small_cluster(i))).collect();
    tc.kubectl_stdin(&["apply", "-f", "-"], &all).await?;
    eventually(AVAILABLE, "every KuduCluster to become Available", || async {
        Ok(unavailable(&tc).await?.is_empty().then_some(()))
    })
    .await?;
    eprintln!("all {} clusters available after {:?}", SMALL_CLUSTERS + 1, started.elapsed());

    // Available, continuously, for a minute (checked every few seconds).
    let until = Instant::now() + STAY;
    while Instant::now() < until {
        let down = unavailable(&tc).await?;
        if !down.is_empty() {
            bail!("clusters went unavailable {:?} after all were Available: {down:?}", started.elapsed());
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }

    // A new operator pod reconciles every cluster (its log says so) and finds them Available.
    let (old, _) = operator_pod(&tc).await?.context("the operator pod")?;
    tc.kubectl(&["delete", "pod", "-n", OPERATOR_NAMESPACE, &old, "--wait=false"]).await?;
    let new = eventually(Duration::from_secs(120), "a new operator pod to become Ready", || async {
        Ok(operator_pod(&tc).await?.filter(|(name, ready)| *name != old && *ready).map(|(name, _)| name))
    })
    .await?;
    let names: Vec<String> =
        std::iter::once("demo".to_owned()).chain((0..SMALL_CLUSTERS).map(|i| format!("c{i}"))).collect();
    eventually(AVAILABLE, "the new operator to reconcile every cluster", || async {
        let logs = tc.kubectl(&["logs", "-n", OPERATOR_NAMESPACE, &new]).await?;
        let reconciled =
            |n: &str| logs.lines().any(|l| l.contains("reconciled") && l.contains(&format!("cluster={n}")));
        Ok(names.iter().all(|n| reconciled(n)).then_some(()))
    })
    .await?;
    eventually(AVAILABLE, "every KuduCluster to be Available after the operator restart", || async {
        Ok(unavailable(&tc).await?.is_empty().then_some(()))
    })
    .await?;
    eprintln!("all clusters available again after the operator restart, {:?} in all", started.elapsed());
    tc.stop().await;
    Ok(())
}
