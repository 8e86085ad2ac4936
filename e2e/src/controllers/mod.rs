//! In-process controllers that play the role of kube-controller-manager and the scheduler.
//! Each is a level-triggered pass over the store, re-run after every change.

pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod pvc;
pub mod replicaset;
pub mod scheduler;
pub mod statefulset;

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::apiserver::Api;
use crate::apiserver::ApiError;
use crate::apiserver::ops::{Subresource, WriteOptions};
use crate::apiserver::util::{meta_mut, meta_str, now_rfc3339};

/// The least time between the starts of two passes of one controller. A pass reads every
/// object of its kinds and runs on the API server's own workers; run once per store change,
/// a burst of writes (an operator reconciling 100 clusters) kept the controllers passing
/// back to back and the API server answered a Lease renewal only after 5-11 s. Changes made
/// meanwhile are all handled by the next pass.
pub const MIN_PASS_INTERVAL: Duration = Duration::from_millis(100);

/// Runs `pass` after every store change (and every `resync`) until shutdown, at most once
/// per [`MIN_PASS_INTERVAL`].
pub async fn run_loop(
    api: Api,
    mut shutdown: watch::Receiver<bool>,
    resync: Duration,
    mut pass: impl FnMut(&Api) + Send,
) {
    let mut changed = api.store.subscribe();
    loop {
        let started = tokio::time::Instant::now();
        changed.borrow_and_update();
        pass(&api);
        tokio::select! {
            res = changed.changed() => if res.is_err() { return },
            _ = tokio::time::sleep(resync) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep_until(started + MIN_PASS_INTERVAL) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Replaces `.status` of an object (unconditionally; no-op writes are dropped by the API).
pub fn write_status(api: &Api, group: &str, plural: &str, obj: &Value, status: Value) -> Result<(), ApiError> {
    let rt = api.resource(group, plural)?;
    let mut body = obj.clone();
    meta_mut(&mut body).remove("resourceVersion");
    body["status"] = status;
    let ns = meta_str(obj, "namespace").filter(|n| !n.is_empty());
    let name = meta_str(obj, "name").unwrap_or("");
    api.update(&rt, rt.preferred_version(), ns, name, body, Subresource::Status, &WriteOptions::default())?;
    Ok(())
}

/// A condition entry, keeping the previous transition time when the status did not change.
pub fn condition(previous: Option<&Value>, kind: &str, status: bool, reason: &str, message: &str) -> Value {
    let status = if status { "True" } else { "False" };
    let old = previous
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(kind)));
    let since = match old {
        Some(c) if c.get("status").and_then(Value::as_str) == Some(status) => {
            c.get("lastTransitionTime").cloned().unwrap_or_else(|| json!(now_rfc3339()))
        }
        _ => json!(now_rfc3339()),
    };
    let mut c = json!({"type": kind, "status": status, "lastTransitionTime": since});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    c
}

/// Sets the condition `kind` of node `name`, keeping its other conditions (and the
/// transition time when the status stays); retries when another writer got in between.
pub fn set_node_condition(
    api: &Api,
    name: &str,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
) -> Result<(), ApiError> {
    let rt = api.resource("", "nodes")?;
    let mut attempt = 0;
    loop {
        let node = api.get(&rt, "v1", None, name)?;
        let previous = node.pointer("/status/conditions").cloned();
        let updated = condition(previous.as_ref(), kind, status, reason, message);
        let mut conditions: Vec<Value> = previous.and_then(|p| p.as_array().cloned()).unwrap_or_default();
        match conditions.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some(kind)) {
            Some(c) if *c == updated => return Ok(()),
            Some(c) => *c = updated,
            None => conditions.push(updated),
        }
        let mut body = node.clone();
        body["status"]["conditions"] = json!(conditions);
        match api.update(&rt, "v1", None, name, body, Subresource::Status, &WriteOptions::default()) {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 && attempt < 10 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Whether an object's condition `kind` is `True`.
pub fn condition_true(obj: &Value, kind: &str) -> bool {
    obj.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|a| {
        a.iter().any(|c| {
            c.get("type").and_then(Value::as_str) == Some(kind)
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
    })
}

/// A ready pod: Ready condition true and not being deleted.
pub fn pod_ready(pod: &Value) -> bool {
    condition_true(pod, "Ready") && meta_str(pod, "deletionTimestamp").is_none()
}

/// Whether `obj` has a controller owner reference to `uid`.
pub fn controlled_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|refs| {
        refs.iter().any(|r| {
            r.get("uid").and_then(Value::as_str) == Some(uid)
                && r.get("controller").and_then(Value::as_bool) == Some(true)
        })
    })
}

/// A controller owner reference to `owner`.
pub fn owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": owner.get("kind").cloned().unwrap_or(Value::Null),
        "name": meta_str(owner, "name"),
        "uid": meta_str(owner, "uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}
