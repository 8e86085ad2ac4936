//! ReplicaSet controller: keeps `spec.replicas` pods (named `{rs}-xxxxx`) from the template,
//! replaces finished pods, removes surplus ones (not-ready first) and reports status.

use serde_json::{Value, json};

use super::{controlled_by, owner_ref, pod_ready, write_status};
use crate::apiserver::Api;
use crate::apiserver::ops::{DeleteOptions, WriteOptions};
use crate::apiserver::registry::ResKey;
use crate::apiserver::util::meta_str;

fn terminating(p: &Value) -> bool {
    meta_str(p, "deletionTimestamp").is_some()
}

/// One pass over all ReplicaSets.
pub fn sync_once(api: &Api) {
    let (sets, pods) = api.store.read(|s| {
        (
            s.list(&ResKey::new("apps", "replicasets"), None).cloned().collect::<Vec<_>>(),
            s.list(&ResKey::new("", "pods"), None).cloned().collect::<Vec<_>>(),
        )
    });
    let Ok(pods_rt) = api.resource("", "pods") else {
        return;
    };
    for rs in sets.iter().filter(|r| !terminating(r)) {
        let (ns, name, uid) =
            (meta_str(rs, "namespace"), meta_str(rs, "name").unwrap_or(""), meta_str(rs, "uid").unwrap_or(""));
        let want = rs.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1) as usize;
        let mut owned: Vec<&Value> = pods
            .iter()
            .filter(|p| meta_str(p, "namespace") == ns && controlled_by(p, uid) && !terminating(p))
            .collect();
        for p in owned
            .iter()
            .filter(|p| matches!(p.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed")))
        {
            let _ = api.delete(&pods_rt, "v1", ns, meta_str(p, "name").unwrap_or(""), &DeleteOptions::default());
        }
        owned.retain(|p| !matches!(p.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed")));
        if owned.len() < want {
            let template = rs.pointer("/spec/template").cloned().unwrap_or_else(|| json!({}));
            for _ in owned.len()..want {
                let pod = json!({
                    "metadata": {
                        "generateName": format!("{name}-"),
                        "labels": template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({})),
                        "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or_else(|| json!({})),
                        "ownerReferences": [owner_ref(rs)],
                    },
                    "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
                });
                match api.create(&pods_rt, "v1", ns, pod, &WriteOptions::default()) {
                    Ok(created) => {
                        let msg = format!("Created pod: {}", meta_str(&created, "name").unwrap_or(""));
                        super::events::record(
                            api,
                            rs,
                            super::events::Kind::Normal,
                            "SuccessfulCreate",
                            &msg,
                            "replicaset-controller",
                        );
                    }
                    Err(e) => tracing::debug!(error = %e, replicaset = name, "creating pod failed"),
                }
            }
        } else if owned.len() > want {
            owned.sort_by_key(|p| {
                (pod_ready(p), std::cmp::Reverse(meta_str(p, "creationTimestamp").unwrap_or("").to_string()))
            });
            for p in &owned[..owned.len() - want] {
                let _ = api.delete(&pods_rt, "v1", ns, meta_str(p, "name").unwrap_or(""), &DeleteOptions::default());
            }
        }
        let ready = owned.iter().filter(|p| pod_ready(p)).count();
        let status = json!({
            "replicas": owned.len(),
            "fullyLabeledReplicas": owned.len(),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        });
        if let Err(e) = write_status(api, "apps", "replicasets", rs, status) {
            tracing::debug!(error = %e, replicaset = name, "status update failed");
        }
    }
}
