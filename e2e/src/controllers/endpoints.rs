//! Endpoints controller: one Endpoints object per Service with a selector, listing the
//! IPs of matching pods (ready ones under `addresses`, others under `notReadyAddresses`).

use serde_json::{Value, json};

use super::pod_ready;
use crate::apiserver::Api;
use crate::apiserver::ops::{Subresource, WriteOptions};
use crate::apiserver::registry::ResKey;
use crate::apiserver::selector::LabelSelector;
use crate::apiserver::util::{meta_mut, meta_str};

fn address(pod: &Value) -> Value {
    let mut a = json!({
        "ip": pod.pointer("/status/podIP"),
        "nodeName": pod.pointer("/spec/nodeName"),
        "targetRef": {"kind": "Pod", "namespace": meta_str(pod, "namespace"), "name": meta_str(pod, "name"), "uid": meta_str(pod, "uid")},
    });
    if let Some(h) = pod.pointer("/spec/hostname") {
        a["hostname"] = h.clone();
    }
    a
}

/// The container port called `name` in any of `pods`.
fn named_port(pods: &[&Value], name: &str) -> Option<u64> {
    pods.iter().find_map(|p| {
        p.pointer("/spec/containers")?
            .as_array()?
            .iter()
            .flat_map(|c| c.get("ports").and_then(Value::as_array).into_iter().flatten())
            .find(|cp| cp.get("name").and_then(Value::as_str) == Some(name))?
            .get("containerPort")?
            .as_u64()
    })
}

/// The Endpoints subsets for `svc` given all pods.
pub fn subsets(svc: &Value, pods: &[Value]) -> Value {
    let Some(sel) = svc.pointer("/spec/selector").filter(|s| s.as_object().is_some_and(|m| !m.is_empty())) else {
        return json!([]);
    };
    let selector = LabelSelector::from_object(&json!({"matchLabels": sel}));
    let ns = meta_str(svc, "namespace");
    let publish_not_ready = svc.pointer("/spec/publishNotReadyAddresses").and_then(Value::as_bool) == Some(true);
    let (mut ready, mut not_ready) = (Vec::new(), Vec::new());
    let matching: Vec<&Value> = pods.iter().filter(|p| meta_str(p, "namespace") == ns && selector.matches(p)).collect();
    for pod in matching.iter().copied() {
        if pod.pointer("/status/podIP").and_then(Value::as_str).is_none_or(str::is_empty) {
            continue;
        }
        if publish_not_ready || pod_ready(pod) { ready.push(address(pod)) } else { not_ready.push(address(pod)) }
    }
    if ready.is_empty() && not_ready.is_empty() {
        return json!([]);
    }
    let ports: Vec<Value> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let target = match p.get("targetPort") {
                Some(Value::String(named)) => named_port(&matching, named).map(|n| json!(n)),
                Some(t) if t.is_number() => Some(t.clone()),
                _ => p.get("port").cloned(),
            };
            json!({"name": p.get("name"), "port": target, "protocol": p.get("protocol").cloned().unwrap_or_else(|| json!("TCP"))})
        })
        .collect();
    let mut subset = json!({"ports": ports});
    if !ready.is_empty() {
        subset["addresses"] = json!(ready);
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = json!(not_ready);
    }
    json!([subset])
}

/// One pass over all services.
pub fn sync_once(api: &Api) {
    let (services, pods, existing) = api.store.read(|s| {
        (
            s.list(&ResKey::new("", "services"), None).cloned().collect::<Vec<_>>(),
            s.list(&ResKey::new("", "pods"), None).cloned().collect::<Vec<_>>(),
            s.list(&ResKey::new("", "endpoints"), None).cloned().collect::<Vec<_>>(),
        )
    });
    let Ok(rt) = api.resource("", "endpoints") else {
        return;
    };
    let opts = WriteOptions::default();
    for svc in services.iter().filter(|s| s.pointer("/spec/selector").is_some()) {
        let (ns, name) = (meta_str(svc, "namespace").unwrap_or(""), meta_str(svc, "name").unwrap_or(""));
        let desired = subsets(svc, &pods);
        let current =
            existing.iter().find(|e| meta_str(e, "namespace") == Some(ns) && meta_str(e, "name") == Some(name));
        let result = match current {
            Some(ep) if ep.get("subsets").unwrap_or(&json!([])) == &desired => continue,
            Some(ep) => {
                let mut body = ep.clone();
                meta_mut(&mut body).remove("resourceVersion");
                body["subsets"] = desired;
                api.update(&rt, "v1", Some(ns), name, body, Subresource::Main, &opts)
            }
            None => {
                let body = json!({"metadata": {"name": name, "labels": svc.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}))}, "subsets": desired});
                api.create(&rt, "v1", Some(ns), body, &opts)
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, service = name, "endpoints update failed");
        }
    }
}
