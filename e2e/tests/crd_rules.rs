//! The KuduCluster CRD's CEL rules (`x-kubernetes-validations`) through real `kubectl`:
//! every rule in `crds/` accepts one manifest and rejects another with its message, the
//! transition rule (`oldSelf`) only on update; a CRD with a rule broken on purpose rejects
//! what the real rule accepts, and one with a rule naming a wrong field is refused; a
//! CRD of its own shows `messageExpression`, `reason`, `fieldPath`, map values and a
//! transition rule on a `map` list in kubectl's output. The last test runs the same
//! through the external-cluster path, against a `local-cluster up` started as a separate
//! process.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::TestCluster;
use kudu_e2e::target::{Images, Target};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

fn crd_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds/kudu.dev_kuduclusters.yaml")
}

/// A KuduCluster of `group` named `name`, with extra lines under `masters:` and `tservers:`
/// (indented by four spaces).
fn cluster(group: &str, name: &str, masters: &str, tservers: &str) -> String {
    format!(
        "apiVersion: {group}/v1alpha1\nkind: KuduCluster\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  image: kudu:dev\n  masters:\n    replicas: 1\n{masters}  tservers:\n    replicas: 1\n{tservers}"
    )
}

/// One rule's cases: where it is declared (schema path), a manifest it accepts and one
/// it rejects (`(masters lines, tservers lines)`), and the error kubectl must print.
struct Case {
    rule_at: &'static str,
    accepted: (&'static str, &'static str),
    rejected: (&'static str, &'static str),
    error: &'static str,
}

const FLAGS_ERROR: &str = "flags set by the operator (--data-dir, --rpc-addr, --http-addr, --master-addresses, --location-mapping-cmd) cannot be overridden";

/// Rules that hold on create (the transition rules have their own steps below).
const CASES: &[Case] = &[
    Case {
        rule_at: "spec.masters.flags",
        accepted: ("    flags: [--log-level=debug, --data-dirs-extra=x]\n", ""),
        rejected: ("    flags: [--log-level=debug, --data-dir=/tmp/x]\n", ""),
        error: "spec.masters.flags: Invalid value: \"array\": flags set by the operator",
    },
    Case {
        rule_at: "spec.tservers.flags",
        accepted: ("", "    flags: [--rpc-addressing=x]\n"),
        rejected: ("", "    flags: [--rpc-addr]\n"),
        error: "spec.tservers.flags: Invalid value: \"array\": flags set by the operator",
    },
    Case {
        rule_at: "spec.masters.storage.size",
        accepted: ("    storage: {size: 500Mi}\n", ""),
        rejected: ("    storage: {size: 0Gi}\n", ""),
        error: "spec.masters.storage.size: Invalid value: \"string\": size must be greater than zero",
    },
    Case {
        rule_at: "spec.tservers.storage.size",
        accepted: ("", "    storage: {size: '1e9'}\n"),
        rejected: ("", "    storage: {size: '0.0'}\n"),
        error: "spec.tservers.storage.size: Invalid value: \"string\": size must be greater than zero",
    },
    // `spec.tls` (set at spec level through the tablet servers' lines).
    Case {
        rule_at: "spec.tls",
        accepted: ("", "  tls: {mode: Secret, caSecretName: my-ca}\n"),
        rejected: ("", "  tls: {mode: Secret}\n"),
        error: "spec.tls: Invalid value: \"object\": mode Secret needs caSecretName",
    },
    Case {
        rule_at: "spec.tls",
        accepted: ("", "  tls: {certValiditySeconds: 7200, renewBeforeSeconds: 3600}\n"),
        rejected: ("", "  tls: {certValiditySeconds: 3600, renewBeforeSeconds: 3600}\n"),
        error: "spec.tls: Invalid value: \"object\": renewBeforeSeconds must be less than certValiditySeconds",
    },
];

/// Schema paths of the rules checked as transition rules below.
const TRANSITION_RULES: &[&str] = &["spec.masters.storage", "spec.tservers.storage", "spec.tls"];

/// Schema path of every node of `schema` that declares rules, with their count.
fn rule_paths(schema: &Value, path: &str, out: &mut Vec<(String, usize)>) {
    if let Some(rules) = schema.get("x-kubernetes-validations").and_then(Value::as_array) {
        out.push((path.to_string(), rules.len()));
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            rule_paths(s, &child, out);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(s) = schema.get(key).filter(|s| s.is_object()) {
            rule_paths(s, &format!("{path}[]"), out);
        }
    }
}

/// The CRD file as JSON (kubectl converts it client-side).
async fn crd_json(tc: &TestCluster) -> Result<Value> {
    let file = crd_file();
    let out =
        tc.kubectl(&["create", "--dry-run=client", "-o", "json", "-f", file.to_str().context("CRD path")?]).await?;
    serde_json::from_str(&out).context("parsing the CRD")
}

async fn apply_crd(tc: &TestCluster, crd: &Value) -> Result<()> {
    tc.kubectl_stdin(&["apply", "-f", "-"], &crd.to_string()).await?;
    let name = crd["metadata"]["name"].as_str().context("CRD name")?;
    tc.kubectl(&["wait", "--for=condition=Established", &format!("crd/{name}"), "--timeout=60s"]).await?;
    Ok(())
}

/// `crd` under another group, so that it can sit beside the real one.
fn regrouped(crd: &Value, group: &str) -> Value {
    let mut crd = crd.clone();
    crd["spec"]["group"] = Value::from(group);
    crd["metadata"]["name"] = Value::from(format!("kuduclusters.{group}"));
    if let Some(meta) = crd["metadata"].as_object_mut() {
        meta.retain(|k, _| k == "name");
    }
    crd
}

/// Replaces `from` by `to` in the one rule `rule_at` (a schema path) declares first.
fn break_rule(crd: &mut Value, rule_at: &[&str], from: &str, to: &str) -> Result<()> {
    let mut node = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    for key in rule_at {
        node = &mut node["properties"][*key];
    }
    let rule = node["x-kubernetes-validations"][0]["rule"].as_str().context("no rule there")?.to_string();
    ensure!(rule.contains(from), "rule {rule:?} does not contain {from:?}");
    node["x-kubernetes-validations"][0]["rule"] = Value::from(rule.replace(from, to));
    Ok(())
}

async fn rejected(tc: &TestCluster, manifest: &str, error: &str) -> Result<()> {
    let stderr = tc.kubectl_fails(&["apply", "-f", "-"], Some(&tc.images.apply(manifest))).await?;
    ensure!(stderr.contains(error), "expected {error:?} in: {stderr}");
    ensure!(stderr.contains("is invalid"), "not an Invalid error: {stderr}");
    eprintln!("refused: {}", stderr.trim());
    Ok(())
}

/// Every rule of the real CRD accepts and rejects what it should.
async fn every_rule_has_a_passing_and_a_failing_case(tc: &TestCluster) -> Result<()> {
    let crd = crd_json(tc).await?;
    apply_crd(tc, &crd).await?;

    // The cases cover exactly the rules the CRD declares.
    let mut declared = Vec::new();
    rule_paths(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], "", &mut declared);
    let mut covered: BTreeMap<String, usize> = BTreeMap::new();
    for path in CASES.iter().map(|c| c.rule_at).chain(TRANSITION_RULES.iter().copied()) {
        *covered.entry(path.to_string()).or_default() += 1;
    }
    let declared_counts: BTreeMap<String, usize> = declared.iter().cloned().collect();
    ensure!(
        declared_counts == covered,
        "the CRD's rules {declared:?} are not the ones this test covers {covered:?}: add cases for new rules"
    );

    for (i, case) in CASES.iter().enumerate() {
        let ok = cluster("kudu.dev", &format!("ok-{i}"), case.accepted.0, case.accepted.1);
        tc.kubectl_stdin(&["apply", "-f", "-"], &ok)
            .await
            .with_context(|| format!("{}: accepted case", case.rule_at))?;
        let bad = cluster("kudu.dev", &format!("bad-{i}"), case.rejected.0, case.rejected.1);
        rejected(tc, &bad, case.error).await.with_context(|| format!("{}: rejected case", case.rule_at))?;
        eprintln!("{}: accepted and rejected as expected", case.rule_at);
    }
    let flags = cluster("kudu.dev", "flags", "    flags: [--master-addresses=a:1]\n", "");
    rejected(tc, &flags, FLAGS_ERROR).await?;

    // Transition rules: storage can be set on create, and not changed afterwards, while
    // other fields still change.
    let storage = |size: &str, replicas: u32| {
        cluster(
            "kudu.dev",
            "storage",
            &format!("    storage: {{size: {size}}}\n"),
            &format!("    storage: {{size: {size}}}\n  masterReplacement: {{gracePeriodSeconds: {replicas}00}}\n"),
        )
    };
    tc.kubectl_stdin(&["apply", "-f", "-"], &storage("2Gi", 1)).await?;
    tc.kubectl_stdin(&["apply", "-f", "-"], &storage("2Gi", 2)).await.context("a change of another field")?;
    let stderr = tc.kubectl_fails(&["apply", "-f", "-"], Some(&tc.images.apply(&storage("3Gi", 2)))).await?;
    for role in ["masters", "tservers"] {
        let error = format!(
            "spec.{role}.storage: Invalid value: \"object\": storage is immutable: StatefulSet volume claim templates cannot change"
        );
        ensure!(stderr.contains(&error), "expected {error:?} in: {stderr}");
    }
    let kc = tc.get_json(&["kuduclusters", "storage"]).await?;
    ensure!(kc["spec"]["masters"]["storage"]["size"] == "2Gi", "a refused change was stored: {kc}");
    eprintln!("storage transition rules: unchanged accepted, changes rejected");

    // The TLS mode is fixed at creation; its other fields may change.
    let tls = |mode: &str, validity: u32| {
        cluster("kudu.dev", "tls", "", &format!("  tls: {{mode: {mode}, certValiditySeconds: {validity}}}\n"))
    };
    tc.kubectl_stdin(&["apply", "-f", "-"], &tls("Disabled", 7_776_000)).await?;
    tc.kubectl_stdin(&["apply", "-f", "-"], &tls("Disabled", 8_000_000)).await.context("a change of the validity")?;
    rejected(
        tc,
        &tls("Operator", 8_000_000),
        "spec.tls: Invalid value: \"object\": tls.mode cannot change on an existing cluster",
    )
    .await?;
    let kc = tc.get_json(&["kuduclusters", "tls"]).await?;
    ensure!(kc["spec"]["tls"]["mode"] == "Disabled", "a refused mode change was stored: {kc}");
    eprintln!("tls transition rule: mode change rejected, other changes accepted");
    Ok(())
}

/// A rule broken on purpose is caught: an inverted comparison rejects what the real rule
/// accepts; a rule naming a field that does not exist makes the CRD itself invalid.
async fn broken_rules_are_caught(tc: &TestCluster) -> Result<()> {
    let crd = crd_json(tc).await?;
    apply_crd(tc, &crd).await?;
    let manifest = |group: &str| cluster(group, "sized", "    storage: {size: 1Gi}\n", "");
    tc.kubectl_stdin(&["apply", "-f", "-"], &manifest("kudu.dev")).await.context("the real rule accepts 1Gi")?;

    let mut inverted = regrouped(&crd, "inverted.kudu.dev");
    break_rule(&mut inverted, &["spec", "masters", "storage", "size"], "isGreaterThan", "isLessThan")?;
    apply_crd(tc, &inverted).await?;
    rejected(
        tc,
        &manifest("inverted.kudu.dev"),
        "spec.masters.storage.size: Invalid value: \"string\": size must be greater than zero",
    )
    .await
    .context("the inverted rule must reject 1Gi")?;

    let mut misspelt = regrouped(&crd, "misspelt.kudu.dev");
    break_rule(&mut misspelt, &["spec", "masters", "storage"], "self == oldSelf", "self.sizes == oldSelf.sizes")?;
    let stderr = tc.kubectl_fails(&["apply", "-f", "-"], Some(&misspelt.to_string())).await?;
    for needle in ["CustomResourceDefinition", "is invalid", "compilation failed", "undefined field 'sizes'"] {
        ensure!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    }
    eprintln!("refused: {}", stderr.trim());
    let crds = tc.kubectl(&["get", "crds", "-o", "name"]).await?;
    ensure!(!crds.contains("misspelt"), "a CRD whose rule does not compile was created: {crds}");

    // Clean up the extra CRDs (an external cluster keeps them otherwise).
    tc.kubectl(&["delete", "kuduclusters.inverted.kudu.dev", "--all", "--ignore-not-found"]).await?;
    tc.kubectl(&["delete", "crd", "kuduclusters.inverted.kudu.dev", "--ignore-not-found"]).await?;
    eprintln!("inverted rule rejected a valid size; misspelt field refused at CRD creation");
    Ok(())
}

/// A CRD using the rest of what rules can say: `messageExpression`, `reason`, `fieldPath`,
/// a rule on map values, and a transition rule on the items of a `map` list.
const WIDGETS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.rules.example.com}
spec:
  group: rules.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.minReplicas <= self.maxReplicas"
              messageExpression: "'minReplicas (' + string(self.minReplicas) + ') exceeds maxReplicas (' + string(self.maxReplicas) + ')'"
              fieldPath: .minReplicas
            - rule: "!has(self.legacy)"
              message: legacy is no longer supported
              reason: FieldValueForbidden
              fieldPath: .legacy
            properties:
              minReplicas: {type: integer}
              maxReplicas: {type: integer}
              legacy: {type: string}
              limits:
                type: object
                additionalProperties:
                  type: string
                  x-kubernetes-validations:
                  - rule: "isQuantity(self) && quantity(self).isLessThan(quantity('64Gi'))"
                    message: must be a quantity below 64Gi
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name, port]
                  properties:
                    name: {type: string}
                    port: {type: integer}
                  x-kubernetes-validations:
                  - rule: "self.port == oldSelf.port"
                    message: a named port keeps its number
"#;

fn widget(spec: &str) -> String {
    format!("apiVersion: rules.example.com/v1\nkind: Widget\nmetadata: {{name: w, namespace: default}}\nspec: {spec}\n")
}

/// Field errors as kubectl shows them for the rest of the rule features.
async fn rule_features_show_in_kubectl(tc: &TestCluster) -> Result<()> {
    tc.kubectl_stdin(&["apply", "-f", "-"], WIDGETS).await?;
    tc.kubectl(&["wait", "--for=condition=Established", "crd/widgets.rules.example.com", "--timeout=60s"]).await?;
    let spec = "{minReplicas: 1, maxReplicas: 3, limits: {memory: 1Gi}, ports: [{name: rpc, port: 7051}]}";
    tc.kubectl_stdin(&["apply", "-f", "-"], &widget(spec)).await?;
    for (spec, error) in [
        (
            "{minReplicas: 5, maxReplicas: 3}",
            "spec.minReplicas: Invalid value: \"object\": minReplicas (5) exceeds maxReplicas (3)",
        ),
        ("{minReplicas: 1, maxReplicas: 3, legacy: x}", "spec.legacy: Forbidden: legacy is no longer supported"),
        (
            "{minReplicas: 1, maxReplicas: 3, limits: {memory: 128Gi}}",
            "spec.limits[memory]: Invalid value: \"string\": must be a quantity below 64Gi",
        ),
        (
            "{minReplicas: 1, maxReplicas: 3, ports: [{name: rpc, port: 7052}]}",
            "spec.ports[0]: Invalid value: \"object\": a named port keeps its number",
        ),
    ] {
        rejected(tc, &widget(spec), error).await?;
    }
    // A new port name has no old value: the transition rule does not apply to it.
    let more = "{minReplicas: 1, maxReplicas: 3, ports: [{name: web, port: 80}, {name: rpc, port: 7051}]}";
    tc.kubectl_stdin(&["apply", "-f", "-"], &widget(more)).await?;
    tc.kubectl(&["delete", "widgets.rules.example.com", "--all"]).await?;
    tc.kubectl(&["delete", "crd", "widgets.rules.example.com"]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_messages_reasons_and_field_paths() -> Result<()> {
    let tc = TestCluster::start_with_nodes(1).await?;
    rule_features_show_in_kubectl(&tc).await?;
    tc.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crd_rule_accepts_and_rejects() -> Result<()> {
    let tc = TestCluster::start_with_nodes(1).await?;
    every_rule_has_a_passing_and_a_failing_case(&tc).await?;
    tc.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_rule_broken_on_purpose_is_caught() -> Result<()> {
    let tc = TestCluster::start_with_nodes(1).await?;
    broken_rules_are_caught(&tc).await?;
    tc.stop().await;
    Ok(())
}

/// The external-cluster path end to end: a control plane started on its own (`local-cluster
/// up`, as a user would start any cluster), its kubeconfig handed to the harness as an
/// external target; the rules tests run through it, a local-only step is skipped, and
/// stopping deletes what the test created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_runs_against_an_external_cluster() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_local-cluster"))
        .args(["up", "--nodes", "1", "--state-dir"])
        .arg(dir.path().join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await??.context("no output")?;
    let Some(kubeconfig) = line.strip_prefix("KUBECONFIG=") else { bail!("unexpected first line {line:?}") };

    let target = Target::External { kubeconfig: PathBuf::from(kubeconfig), images: Images::default() };
    let tc = TestCluster::start_target(target, 1).await?;
    ensure!(tc.is_external() && tc.local_only("make a node NotReady").is_none(), "not on the external path");
    every_rule_has_a_passing_and_a_failing_case(&tc).await?;
    broken_rules_are_caught(&tc).await?;
    rule_features_show_in_kubectl(&tc).await?;
    let kubeconfig = tc.kubeconfig();
    tc.stop().await;

    // Stopping an external target deleted the test's KuduClusters (not the cluster).
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "kuduclusters", "-A", "-o", "name"])
        .output()
        .await?;
    ensure!(out.status.success(), "kubectl get: {}", String::from_utf8_lossy(&out.stderr));
    let left = String::from_utf8_lossy(&out.stdout);
    ensure!(left.trim().is_empty(), "KuduClusters left behind: {left}");

    let pid = i32::try_from(child.id().context("pid")?)?;
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await??;
    ensure!(status.success(), "local-cluster exited with {status}");
    Ok(())
}
