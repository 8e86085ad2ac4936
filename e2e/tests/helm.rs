//! Helm 4 (the real library, through PyPI `helm-sdkpy`) against the local control plane:
//! install with `crds/` and `--wait`, upgrade, status, list and uninstall, client-side and
//! server-side apply; the project's charts: the operator's, then `charts/kudu-cluster`
//! giving a running KuduCluster, whose values schema refuses bad values. Needs the
//! virtualenv made by `e2e/scripts/setup-venv.sh`, and for the charts the workspace
//! binaries (`cargo build --bin kudu --bin kudu-operator`).

mod common;
#[path = "kudu_operator/support.rs"]
mod support;

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

/// The project's charts.
fn project_chart(name: &str) -> Result<String> {
    let path = manifest_dir().join("../charts").join(name);
    Ok(path.to_str().context("chart path")?.to_string())
}

/// Values setting the cluster chart's image to the target's (by default `kudu:dev`, the
/// workspace's `kudu` binary); nothing else is set, so the chart's defaults are what runs.
fn cluster_values(images: &kudu_e2e::target::Images) -> Value {
    let (repository, tag) = images.kudu_repository_tag();
    json!({"image": {"repository": repository, "tag": tag}})
}

/// `helm install kudu-operator charts/kudu-operator -n kudu-system --create-namespace
/// --wait`, then `helm install demo charts/kudu-cluster` with only the image set: the
/// KuduCluster the chart renders (3 masters, 3 tablet servers) becomes Available; `helm
/// upgrade` scales it, `helm uninstall` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_chart_installs_an_available_kudu_cluster() -> Result<()> {
    let python = venv_python()?;
    let tc = start_cluster().await?;
    let operator = json!({
        "namespace": support::OPERATOR_NAMESPACE,
        "action": "install",
        "release": "kudu-operator",
        "chart": project_chart("kudu-operator")?,
        "values": support::chart_values(&tc.images),
        "options": {"create_namespace": true, "wait": true, "timeout": 120},
    });
    helm(&tc, &python, operator).await?;
    let started = std::time::Instant::now();
    let cluster = json!({
        "action": "install",
        "release": "demo",
        "chart": project_chart("kudu-cluster")?,
        "values": cluster_values(&tc.images),
        "options": {"wait": false},
    });
    helm(&tc, &python, cluster).await?;

    // The rendered KuduCluster: the release's name and namespace, the chart's defaults.
    let kc = tc.get_json(&["kuduclusters", "demo"]).await?;
    let spec = &kc["spec"];
    ensure!(spec["image"] == tc.images.kudu.as_str() && spec["imagePullPolicy"] == "IfNotPresent", "image: {spec}");
    ensure!(spec["masters"]["replicas"] == 3 && spec["tservers"]["replicas"] == 3, "replicas: {spec}");
    ensure!(spec["masters"]["storage"]["size"] == "10Gi" && spec["tservers"]["storage"]["size"] == "10Gi", "{spec}");
    ensure!(
        spec["topology"]["locationLabels"] == json!(["topology.kubernetes.io/region", "topology.kubernetes.io/zone"]),
        "location labels: {spec}"
    );
    ensure!(spec["masterReplacement"] == json!({"enabled": true, "gracePeriodSeconds": 300}), "{spec}");
    ensure!(kc["metadata"]["namespace"] == "default", "namespace: {}", kc["metadata"]);
    ensure!(kc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm", "labels: {}", kc["metadata"]);

    let status = eventually(Duration::from_secs(180), "the chart's KuduCluster to become Available", || {
        support::available_status(&tc, 3)
    })
    .await?;
    eprintln!("KuduCluster from the chart available after {:?}: {status}", started.elapsed());
    let status = helm(&tc, &python, json!({"action": "status", "release": "demo"})).await?;
    ensure!(status.to_string().contains("deployed"), "status does not report deployed: {status}");

    // `helm upgrade` with one more tablet server: the operator scales the cluster.
    let mut values = cluster_values(&tc.images);
    values["tservers"] = json!({"replicas": 4, "storage": {"size": "10Gi"}});
    let upgrade = json!({"action": "upgrade", "release": "demo", "chart": project_chart("kudu-cluster")?, "values": values, "options": {"wait": false}});
    helm(&tc, &python, upgrade).await?;
    eventually(Duration::from_secs(180), "the upgraded KuduCluster to run 4 tablet servers", || async {
        let kc = tc.get_json(&["kuduclusters", "demo"]).await?;
        let status = &kc["status"];
        let available = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Available" && c["status"] == "True");
        let done =
            available && status["readyTServers"] == 4 && status["observedGeneration"] == kc["metadata"]["generation"];
        Ok(done.then_some(()))
    })
    .await?;

    // `helm uninstall` deletes the KuduCluster, and the operator's objects go with it.
    helm(&tc, &python, json!({"action": "uninstall", "release": "demo", "options": {"wait": true, "timeout": 120}}))
        .await?;
    eventually(Duration::from_secs(90), "the cluster's objects to be deleted", || async {
        let left = tc
            .kubectl(&["get", "kuduclusters,statefulsets", "-l", "app.kubernetes.io/instance=demo", "-o", "name"])
            .await?;
        let clusters = tc.kubectl(&["get", "kuduclusters", "-o", "name"]).await?;
        Ok((left.trim().is_empty() && clusters.trim().is_empty()).then_some(()))
    })
    .await?;
    eprintln!("upgraded and uninstalled after {:?}", started.elapsed());
    tc.stop().await;
    Ok(())
}

/// Values the cluster chart refuses, with what Helm's message must say: the schema names
/// the offending value; the template explains what its schema cannot say clearly.
fn bad_cluster_values() -> Vec<(&'static str, Value, &'static [&'static str])> {
    const SCHEMA: &str = "values don't meet the specifications of the schema";
    let with = |path: &[&str], value: Value| {
        let mut values = cluster_values(&kudu_e2e::target::Images::default());
        let mut node = &mut values;
        for key in &path[..path.len() - 1] {
            node = &mut node[*key];
        }
        node[path[path.len() - 1]] = value;
        values
    };
    vec![
        (
            "an even master count",
            with(&["masters", "replicas"], json!(2)),
            &[SCHEMA, "/masters/replicas", "1, 3, 5, 7"],
        ),
        (
            "a string master count",
            with(&["masters", "replicas"], json!("three")),
            &[SCHEMA, "/masters/replicas", "string"],
        ),
        ("no tablet servers", with(&["tservers", "replicas"], json!(0)), &[SCHEMA, "/tservers/replicas", "minimum"]),
        (
            "a size that is no quantity",
            with(&["tservers", "storage"], json!({"size": "lots"})),
            &[SCHEMA, "/tservers/storage/size"],
        ),
        (
            "a label key with spaces",
            with(&["topology", "locationLabels"], json!(["my zone"])),
            &[SCHEMA, "/topology/locationLabels/0"],
        ),
        ("a misspelt key", with(&["master"], json!({"replicas": 3})), &[SCHEMA, "'master' not allowed"]),
        ("an invalid name", with(&["name"], json!("Demo_Cluster")), &[SCHEMA, "/name"]),
        (
            "a flag the operator sets",
            with(&["masters", "flags"], json!(["--data-dir=/tmp"])),
            &["masters.flags contains", "--data-dir=/tmp", "cannot be overridden"],
        ),
        (
            "a zero size",
            with(&["masters", "storage"], json!({"size": "0Gi"})),
            &["masters.storage.size is", "0Gi", "must be greater than zero"],
        ),
    ]
}

/// Bad values are refused by Helm before anything is created, with a message naming the
/// offending value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_chart_refuses_bad_values() -> Result<()> {
    let python = venv_python()?;
    let tc = TestCluster::start_with_nodes(1).await?;
    let chart = project_chart("kudu-cluster")?;
    for (what, values, named) in bad_cluster_values() {
        let request = json!({"action": "install", "release": "bad", "chart": chart, "values": values, "options": {"wait": false}});
        let error = match helm(&tc, &python, request).await {
            Ok(result) => bail!("helm installed {what}: {result}"),
            Err(e) => e.to_string(),
        };
        for needle in named {
            ensure!(error.contains(needle), "{what}: the message does not name {needle:?}: {error}");
        }
        eprintln!("{what}: {error}");
    }
    ensure!(release_secrets(&tc, "bad").await?.is_empty(), "a refused install left a release behind");
    // The same values with the defaults restored pass the schema (and get as far as the
    // API server, where this cluster has no KuduCluster CRD).
    let request = json!({"action": "install", "release": "good", "chart": chart, "values": cluster_values(&tc.images), "options": {"wait": false}});
    let error = helm(&tc, &python, request).await.err().map(|e| e.to_string()).unwrap_or_default();
    ensure!(!error.contains("schema"), "the default values fail the schema: {error}");
    tc.stop().await;
    Ok(())
}

/// The cluster the namespace-scoped operator manages: one master, three tablet servers,
/// clients labelled `role=ingest` admitted to the RPC ports and Prometheus to the HTTP ones.
const TEAM_CLUSTER: &str = r#"
apiVersion: kudu.dev/v1alpha1
kind: KuduCluster
metadata: {name: demo, namespace: team-a}
spec:
  image: kudu:dev
  masters: {replicas: 1, storage: {size: 1Gi}}
  tservers: {replicas: 3, storage: {size: 1Gi}}
  network:
    allowedClients: [{podSelector: {matchLabels: {role: ingest}}}]
    metricsClients: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]
"#;

/// A cluster in another namespace, which the namespace-scoped operator must not touch.
const OTHER_CLUSTER: &str = r#"
apiVersion: kudu.dev/v1alpha1
kind: KuduCluster
metadata: {name: other, namespace: default}
spec:
  image: kudu:dev
  masters: {replicas: 1}
  tservers: {replicas: 1}
"#;

fn available(kc: &Value) -> bool {
    let status = &kc["status"];
    let available = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Available" && c["status"] == "True");
    available && status["readyTServers"] == 3 && status["observedGeneration"] == kc["metadata"]["generation"]
}

/// `helm install` with `rbac.scope: namespace`: the operator holds a Role in its own
/// namespace and no ClusterRole, manages the KuduCluster there (which becomes Available
/// with hardened pods and its NetworkPolicy), creates nothing cluster-scoped, and leaves a
/// KuduCluster in another namespace alone. The local control plane stores the
/// NetworkPolicy but does not enforce it, and its kubelet runs processes without applying
/// the security contexts (it must accept them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_scoped_operator_runs_a_hardened_cluster() -> Result<()> {
    let python = venv_python()?;
    let tc = start_cluster().await?;
    let crd = manifest_dir().join("../crds/kudu.dev_kuduclusters.yaml");
    tc.kubectl(&["apply", "-f", crd.to_str().context("CRD path")?]).await?;
    let mut values = support::chart_values(&tc.images);
    values["rbac"] = json!({"scope": "namespace"});
    let operator = json!({
        "namespace": "team-a",
        "action": "install",
        "release": "kudu-operator",
        "chart": project_chart("kudu-operator")?,
        "values": values,
        "options": {"create_namespace": true, "wait": true, "timeout": 120},
    });
    helm(&tc, &python, operator).await?;
    let started = std::time::Instant::now();
    // Roles only: none of the chart's objects is cluster-scoped.
    let cluster_roles = tc.kubectl(&["get", "clusterroles,clusterrolebindings", "-o", "name"]).await?;
    ensure!(!cluster_roles.contains("kudu"), "cluster-scoped RBAC in namespace scope: {cluster_roles}");
    let role = tc.get_json(&["-n", "team-a", "role", "kudu-operator"]).await?;
    ensure!(role["rules"].to_string().contains("networkpolicies"), "the Role cannot manage NetworkPolicies: {role}");

    tc.kubectl_stdin(&["apply", "-f", "-"], OTHER_CLUSTER).await?;
    tc.kubectl_stdin(&["apply", "-f", "-"], TEAM_CLUSTER).await?;
    let kc = eventually(Duration::from_secs(240), "the team-a KuduCluster to become Available", || async {
        let kc = tc.get_json(&["-n", "team-a", "kuduclusters", "demo"]).await?;
        Ok(available(&kc).then_some(kc))
    })
    .await?;
    eprintln!("namespace-scoped KuduCluster available after {:?}: {}", started.elapsed(), kc["status"]);

    // Every pod of the cluster runs (Ready) with the hardened security context.
    let pods = tc.get_json(&["-n", "team-a", "pods", "-l", "app.kubernetes.io/instance=demo"]).await?;
    let pods = pods["items"].as_array().cloned().unwrap_or_default();
    ensure!(pods.len() == 4, "expected 1 master and 3 tablet servers: {}", pods.len());
    for pod in &pods {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let ready = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        ensure!(ready, "{name} is not Ready: {}", pod["status"]);
        let sc = &pod["spec"]["containers"][0]["securityContext"];
        ensure!(
            sc["allowPrivilegeEscalation"] == false
                && sc["readOnlyRootFilesystem"] == true
                && sc["capabilities"]["drop"] == json!(["ALL"])
                && sc["seccompProfile"]["type"] == "RuntimeDefault"
                && sc["runAsNonRoot"] == true,
            "{name}: {sc}"
        );
        let pod_sc = &pod["spec"]["securityContext"];
        ensure!(pod_sc["fsGroup"] == 10001 && pod_sc["runAsUser"] == 10001, "{name}: {pod_sc}");
        let args = pod["spec"]["containers"][0]["args"].to_string();
        ensure!(!args.contains("--location-mapping-cmd"), "{name} runs a location command it cannot use: {args}");
    }

    // The NetworkPolicy, owned by the cluster.
    let policy = tc.get_json(&["-n", "team-a", "networkpolicies", "demo"]).await?;
    ensure!(policy["metadata"]["ownerReferences"][0]["kind"] == "KuduCluster", "{policy}");
    let ingress = policy["spec"]["ingress"].as_array().cloned().unwrap_or_default();
    ensure!(ingress.len() == 3, "own pods and operator, clients, scrapers: {policy}");
    ensure!(ingress[0]["from"][1]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "team-a");
    ensure!(ingress[1]["from"][0]["podSelector"]["matchLabels"]["role"] == "ingest", "{policy}");
    ensure!(ingress[1]["ports"][0]["port"] == "rpc" && ingress[2]["ports"][0]["port"] == "http", "{policy}");
    // Nothing cluster-scoped was created for the cluster either.
    let cluster_roles = tc.kubectl(&["get", "clusterroles", "-o", "name"]).await?;
    ensure!(!cluster_roles.contains("kudu-location"), "{cluster_roles}");

    // The cluster outside the watched namespace got nothing: no finalizer, no objects.
    let other = tc.get_json(&["kuduclusters", "other"]).await?;
    ensure!(other["metadata"]["finalizers"].is_null() && other["status"].is_null(), "{other}");
    let objects =
        tc.kubectl(&["get", "statefulsets,configmaps", "-l", "app.kubernetes.io/instance=other", "-o", "name"]).await?;
    ensure!(objects.trim().is_empty(), "the operator reached outside its namespace: {objects}");
    tc.stop().await;
    Ok(())
}
