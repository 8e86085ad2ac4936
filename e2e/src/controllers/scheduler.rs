//! Scheduler: binds pending pods to a Ready node matching their nodeSelector, preferring
//! the node with the fewest pods. Affinity, taints and resources are ignored.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{condition, condition_true, write_status};
use crate::apiserver::Api;
use crate::apiserver::ops::{Subresource, WriteOptions};
use crate::apiserver::registry::ResKey;
use crate::apiserver::util::{meta_mut, meta_str};

fn selector_matches(pod: &Value, node: &Value) -> bool {
    let Some(sel) = pod.pointer("/spec/nodeSelector").and_then(Value::as_object) else {
        return true;
    };
    let labels = node.pointer("/metadata/labels");
    sel.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// One scheduling pass.
pub fn schedule_once(api: &Api) {
    let (pods, nodes) = api.store.read(|s| {
        let pods: Vec<Value> = s.list(&ResKey::new("", "pods"), None).cloned().collect();
        let nodes: Vec<Value> = s.list(&ResKey::new("", "nodes"), None).cloned().collect();
        (pods, nodes)
    });
    let mut load: BTreeMap<String, usize> =
        nodes.iter().filter_map(|n| meta_str(n, "name")).map(|n| (n.to_string(), 0)).collect();
    for p in &pods {
        if let Some(n) = p.pointer("/spec/nodeName").and_then(Value::as_str) {
            *load.entry(n.to_string()).or_default() += 1;
        }
    }
    let Ok(rt) = api.resource("", "pods") else {
        return;
    };
    for pod in pods.iter().filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str).is_none_or(str::is_empty)) {
        if meta_str(pod, "deletionTimestamp").is_some() {
            continue;
        }
        let choice = nodes
            .iter()
            .filter(|n| condition_true(n, "Ready") && selector_matches(pod, n))
            .filter_map(|n| meta_str(n, "name"))
            .min_by_key(|n| (load.get(*n).copied().unwrap_or(0), n.to_string()));
        let prev = pod.pointer("/status/conditions");
        match choice {
            Some(node) => {
                let mut bound = pod.clone();
                meta_mut(&mut bound).remove("resourceVersion");
                bound["spec"]["nodeName"] = json!(node);
                let (ns, name) = (meta_str(pod, "namespace"), meta_str(pod, "name").unwrap_or(""));
                match api.update(&rt, "v1", ns, name, bound, Subresource::Main, &WriteOptions::default()) {
                    Ok(updated) => {
                        *load.entry(node.to_string()).or_default() += 1;
                        let mut status = updated.get("status").cloned().unwrap_or_else(|| json!({}));
                        status["conditions"] = json!([condition(prev, "PodScheduled", true, "", "")]);
                        let _ = write_status(api, "", "pods", &updated, status);
                        tracing::debug!(pod = name, node, "scheduled");
                    }
                    Err(e) => tracing::debug!(error = %e, pod = name, "binding failed"),
                }
            }
            None => {
                let mut status = pod.get("status").cloned().unwrap_or_else(|| json!({}));
                status["conditions"] = json!([condition(
                    prev,
                    "PodScheduled",
                    false,
                    "Unschedulable",
                    "0 nodes are available: no Ready node matches the pod's node selector"
                )]);
                let _ = write_status(api, "", "pods", pod, status);
            }
        }
    }
}
