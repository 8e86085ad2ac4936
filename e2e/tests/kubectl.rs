//! Real `kubectl` against the local control plane.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{TestCluster, eventually};
use serde_json::Value;

const CONFIGMAP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: demo
  labels: {app: demo}
data:
  a: "1"
  b: "keep"
"#;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: .status.ready}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 5}
              mode: {type: string, enum: [fast, safe], default: safe}
              name: {type: string, pattern: '^[a-z]+$'}
          status:
            type: object
            properties:
              ready: {type: boolean}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_get_patch_delete() -> Result<()> {
    let tc = TestCluster::start().await?;
    let out = tc.kubectl_stdin(&["apply", "-f", "-"], CONFIGMAP).await?;
    ensure!(out.contains("configmap/demo created"), "unexpected apply output: {out}");

    // Re-apply a changed manifest: kubectl sends a strategic merge patch.
    let changed = CONFIGMAP.replace("a: \"1\"", "a: \"2\"").replace("  b: \"keep\"\n", "");
    let out = tc.kubectl_stdin(&["apply", "-f", "-"], &changed).await?;
    ensure!(out.contains("configured"), "unexpected re-apply output: {out}");
    let cm = tc.get_json(&["configmap", "demo"]).await?;
    ensure!(cm["data"] == serde_json::json!({"a": "2"}), "client-side apply did not update/prune data: {cm}");
    let rv1: u64 = cm["metadata"]["resourceVersion"].as_str().context("rv")?.parse()?;

    tc.kubectl(&["patch", "configmap", "demo", "--type=merge", "-p", r#"{"data":{"m":"merge"}}"#]).await?;
    tc.kubectl(&[
        "patch",
        "configmap",
        "demo",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/data/j","value":"json"}]"#,
    ])
    .await?;
    tc.kubectl(&["patch", "configmap", "demo", "-p", r#"{"data":{"s":"strategic"}}"#]).await?;
    let cm = tc.get_json(&["configmap", "demo"]).await?;
    ensure!(
        cm["data"] == serde_json::json!({"a": "2", "m": "merge", "j": "json", "s": "strategic"}),
        "patches not applied: {cm}"
    );
    let rv2: u64 = cm["metadata"]["resourceVersion"].as_str().context("rv")?.parse()?;
    ensure!(rv2 > rv1, "resourceVersion did not increase ({rv1} -> {rv2})");

    // Label selectors.
    let names = tc.kubectl(&["get", "configmaps", "-l", "app in (demo,other)", "-o", "name"]).await?;
    ensure!(names.trim() == "configmap/demo", "selector get returned {names:?}");
    let none = tc.kubectl(&["get", "configmaps", "-l", "app!=demo", "-o", "name"]).await?;
    ensure!(!none.contains("configmap/demo"), "negative selector matched: {none:?}");

    tc.kubectl(&["delete", "configmap", "demo"]).await?;
    let err = tc.kubectl_fails(&["get", "configmap", "demo"], None).await?;
    ensure!(err.contains("NotFound") || err.contains("not found"), "unexpected error: {err}");
    tc.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_creates_updates_and_prunes() -> Result<()> {
    let tc = TestCluster::start().await?;
    let out = tc.kubectl_stdin(&["apply", "--server-side", "-f", "-"], CONFIGMAP).await?;
    ensure!(out.contains("serverside-applied"), "unexpected output: {out}");
    let without_b = CONFIGMAP.replace("  b: \"keep\"\n", "").replace("a: \"1\"", "a: \"3\"");
    tc.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &without_b).await?;
    let cm = tc.get_json(&["configmap", "demo", "--show-managed-fields"]).await?;
    ensure!(cm["data"] == serde_json::json!({"a": "3"}), "server-side apply did not drop the removed field: {cm}");
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .context("managedFields")?
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    ensure!(managers.contains(&"kubectl"), "field manager not recorded: {managers:?}");

    // Another applier setting a field to a different value conflicts unless forced.
    let other = without_b.replace("a: \"3\"", "a: \"4\"");
    let err = tc.kubectl_fails(&["apply", "--server-side", "--field-manager=other", "-f", "-"], Some(&other)).await?;
    ensure!(err.contains("conflict with \"kubectl\"") && err.contains(".data.a"), "no apply conflict reported: {err}");
    tc.kubectl_stdin(&["apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-"], &other)
        .await?;
    let cm = tc.get_json(&["configmap", "demo"]).await?;
    ensure!(cm["data"]["a"] == "4", "forced apply did not take the field: {cm}");
    tc.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_serves_resources_and_rejects_invalid_objects() -> Result<()> {
    let tc = TestCluster::start().await?;
    tc.kubectl_stdin(&["apply", "-f", "-"], CRD).await?;
    tc.kubectl(&["wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=30s"]).await?;

    let good = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n";
    tc.kubectl_stdin(&["apply", "-f", "-"], good).await?;
    let w = tc.get_json(&["wd", "w1"]).await?;
    ensure!(w["spec"]["mode"] == "safe", "schema default not applied: {w}");
    ensure!(w["metadata"]["generation"] == 1, "generation not 1: {w}");
    let table = tc.kubectl(&["get", "widgets"]).await?;
    let header: Vec<&str> = table.lines().next().unwrap_or("").split_whitespace().collect();
    ensure!(header == ["NAME", "SIZE", "READY", "AGE"], "printer columns not used: {table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap_or("").split_whitespace().collect();
    ensure!(row.first() == Some(&"w1") && row.get(1) == Some(&"3"), "unexpected row: {table}");

    let bad =
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 9, mode: slow, name: Upper}\n";
    for extra in [&[][..], &["--server-side"][..]] {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        let err = tc.kubectl_fails(&args, Some(bad)).await?;
        for needle in [
            "is invalid",
            "spec.size",
            "less than or equal to 5",
            "Unsupported value: \"slow\"",
            "should match '^[a-z]+$'",
        ] {
            ensure!(err.contains(needle), "{args:?}: error lacks {needle:?}: {err}");
        }
    }
    let missing = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w3}\nspec: {mode: fast}\n";
    let err = tc.kubectl_fails(&["apply", "-f", "-"], Some(missing)).await?;
    ensure!(err.contains("spec.size: Required value"), "required field error missing: {err}");
    let unknown = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w4}\nspec: {size: 1, bogus: 1}\n";
    let err = tc.kubectl_fails(&["apply", "-f", "-"], Some(unknown)).await?;
    ensure!(err.contains("unknown field \"spec.bogus\""), "strict validation did not reject unknown field: {err}");
    let list = tc.kubectl(&["get", "widgets", "-o", "name"]).await?;
    ensure!(list.trim() == "widget.example.com/w1", "rejected objects were stored: {list:?}");

    // Status subresource: status writes do not bump generation; spec changes do.
    tc.kubectl(&["patch", "wd", "w1", "--subresource=status", "--type=merge", "-p", r#"{"status":{"ready":true}}"#])
        .await?;
    tc.kubectl(&["wait", "--for=jsonpath={.status.ready}=true", "wd/w1", "--timeout=30s"]).await?;
    tc.kubectl(&["patch", "wd", "w1", "--type=merge", "-p", r#"{"spec":{"size":4},"status":{"ready":false}}"#]).await?;
    let w = tc.get_json(&["wd", "w1"]).await?;
    ensure!(
        w["metadata"]["generation"] == 2 && w["spec"]["size"] == 4,
        "spec patch not applied or generation not bumped: {w}"
    );
    ensure!(w["status"]["ready"] == true, "main-resource patch changed status: {w}");
    let err =
        tc.kubectl_fails(&["patch", "wd", "w1", "--type=strategic", "-p", r#"{"spec":{"size":2}}"#], None).await?;
    ensure!(
        err.contains("UnsupportedMediaType") || err.contains("415") || err.contains("strategic"),
        "strategic patch on a CR not refused: {err}"
    );

    // Deleting the CRD first deletes its objects, honouring their finalizers; meanwhile the
    // CRD is terminating and refuses new objects.
    tc.kubectl(&["patch", "wd", "w1", "--type=merge", "-p", r#"{"metadata":{"finalizers":["example.com/hold"]}}"#])
        .await?;
    tc.kubectl(&["delete", "crd", "widgets.example.com", "--wait=false"]).await?;
    let w = eventually(Duration::from_secs(30), "w1 to be marked for deletion", || async {
        let w = tc.get_json(&["wd", "w1"]).await?;
        Ok(w["metadata"]["deletionTimestamp"].is_string().then_some(w))
    })
    .await?;
    ensure!(w["metadata"]["finalizers"][0] == "example.com/hold", "finalizer lost: {w}");
    let crd = tc.get_json(&["crd", "widgets.example.com"]).await?;
    ensure!(crd["metadata"]["deletionTimestamp"].is_string(), "CRD removed before its objects: {crd}");
    let err = tc.kubectl_fails(&["apply", "-f", "-"], Some(good.replace("w1", "w9").as_str())).await?;
    ensure!(err.contains("terminating"), "create allowed on a terminating CRD: {err}");
    tc.kubectl(&["patch", "wd", "w1", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]).await?;
    tc.kubectl(&["wait", "--for=delete", "crd/widgets.example.com", "--timeout=30s"]).await?;
    let err = tc.kubectl_fails(&["get", "widgets"], None).await?;
    ensure!(
        err.contains("the server doesn't have a resource type")
            || err.contains("could not find the requested resource"),
        "widgets still served: {err}"
    );
    tc.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_and_owner_reference_garbage_collection() -> Result<()> {
    let tc = TestCluster::start().await?;
    // A finalizer keeps a deleted object (with deletionTimestamp) until removed.
    tc.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [example.com/hold]}\n",
    )
    .await?;
    tc.kubectl(&["delete", "configmap", "held", "--wait=false"]).await?;
    let held = tc.get_json(&["configmap", "held"]).await?;
    ensure!(held["metadata"]["deletionTimestamp"].is_string(), "no deletionTimestamp: {held}");
    tc.kubectl(&["patch", "configmap", "held", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]).await?;
    tc.kubectl(&["wait", "--for=delete", "configmap/held", "--timeout=30s"]).await?;

    // Background cascading deletion.
    tc.kubectl_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: parent}\n").await?;
    let parent = tc.get_json(&["configmap", "parent"]).await?;
    let uid = parent["metadata"]["uid"].as_str().context("uid")?;
    let child = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: parent, uid: {uid}}}\n"
        )
    };
    tc.kubectl_stdin(&["apply", "-f", "-"], &child("child-bg")).await?;
    tc.kubectl(&["delete", "configmap", "parent"]).await?;
    eventually(Duration::from_secs(30), "child-bg to be collected", || async {
        let out = tc.kubectl(&["get", "secrets", "-o", "name"]).await?;
        Ok((!out.contains("child-bg")).then_some(()))
    })
    .await?;

    // Foreground: the owner waits for its dependents (kubectl waits for the owner).
    tc.kubectl_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: parent}\n").await?;
    let parent = tc.get_json(&["configmap", "parent"]).await?;
    let uid = parent["metadata"]["uid"].as_str().context("uid")?.to_string();
    let child_fg = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: child-fg\n  finalizers: [example.com/slow]\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: parent, uid: {uid}}}\n"
    );
    tc.kubectl_stdin(&["apply", "-f", "-"], &child_fg).await?;
    tc.kubectl(&["delete", "configmap", "parent", "--cascade=foreground", "--wait=false"]).await?;
    let p: Value = tc.get_json(&["configmap", "parent"]).await?;
    ensure!(
        p["metadata"]["finalizers"].as_array().is_some_and(|f| f.iter().any(|x| x == "foregroundDeletion")),
        "no foregroundDeletion finalizer: {p}"
    );
    let c = tc.get_json(&["secret", "child-fg"]).await?;
    ensure!(c["metadata"]["deletionTimestamp"].is_string(), "dependent not being deleted: {c}");
    tc.kubectl(&["patch", "secret", "child-fg", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]).await?;
    tc.kubectl(&["wait", "--for=delete", "configmap/parent", "--timeout=30s"]).await?;
    tc.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_replace_conflicts_and_namespaces_cascade() -> Result<()> {
    let tc = TestCluster::start().await?;
    tc.kubectl(&["create", "namespace", "team"]).await?;
    tc.kubectl_stdin(&["apply", "-n", "team", "-f", "-"], CONFIGMAP).await?;
    let mut cm = tc.get_json(&["-n", "team", "configmap", "demo"]).await?;
    tc.kubectl(&["-n", "team", "patch", "configmap", "demo", "-p", r#"{"data":{"a":"changed"}}"#]).await?;
    cm["data"]["a"] = "stale".into();
    let err = tc.kubectl_fails(&["replace", "-f", "-"], Some(&cm.to_string())).await?;
    ensure!(
        err.contains("Conflict") || err.contains("the object has been modified"),
        "stale replace not refused: {err}"
    );

    let err = tc.kubectl_fails(&["-n", "missing", "create", "configmap", "x"], None).await?;
    ensure!(err.contains("namespaces \"missing\" not found"), "create in a missing namespace: {err}");

    tc.kubectl(&["delete", "namespace", "team", "--timeout=60s"]).await?;
    let err = tc.kubectl_fails(&["get", "namespace", "team"], None).await?;
    ensure!(err.contains("not found"), "namespace still present: {err}");
    tc.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_kinds_are_validated_like_the_api_server() -> Result<()> {
    let tc = TestCluster::start().await?;
    let err = tc.kubectl_fails(&["create", "configmap", "Upper"], None).await?;
    ensure!(err.contains("metadata.name: Invalid value: \"Upper\""), "uppercase name accepted: {err}");

    let sts = |service: &str, label: &str| {
        format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: s}}\nspec:\n  serviceName: {service}\n  replicas: 0\n  selector: {{matchLabels: {{app: s}}}}\n  template:\n    metadata: {{labels: {{app: {label}}}}}\n    spec:\n      containers: [{{name: c, image: e2e-kv}}]\n"
        )
    };
    let err = tc.kubectl_fails(&["apply", "-f", "-"], Some(&sts("s", "other"))).await?;
    ensure!(err.contains("`selector` does not match template `labels`"), "selector mismatch accepted: {err}");
    tc.kubectl_stdin(&["apply", "-f", "-"], &sts("s", "s")).await?;
    let err = tc.kubectl_fails(&["apply", "-f", "-"], Some(&sts("renamed", "s"))).await?;
    ensure!(
        err.contains("updates to statefulset spec for fields other than"),
        "immutable field change accepted: {err}"
    );
    tc.stop().await;
    Ok(())
}
