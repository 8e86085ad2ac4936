//! Core `v1` Events written by the controllers and the kubelet (what `kubectl describe`
//! shows). Each call writes one Event; callers emit them on transitions only.

use serde_json::{Value, json};

use crate::apiserver::Api;
use crate::apiserver::ops::WriteOptions;
use crate::apiserver::util::{meta_str, now_rfc3339, random_suffix};

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Routine.
    Normal,
    /// Something went wrong.
    Warning,
}

/// Records an Event about `object` from `component`; failures are only logged.
pub fn record(api: &Api, object: &Value, kind: Kind, reason: &str, message: &str, component: &str) {
    let Ok(rt) = api.resource("", "events") else { return };
    let name = meta_str(object, "name").unwrap_or("unknown");
    let ns = meta_str(object, "namespace").filter(|n| !n.is_empty()).unwrap_or("default");
    let now = now_rfc3339();
    let event = json!({
        "metadata": {"name": format!("{name}.{}", random_suffix(10)), "namespace": ns},
        "involvedObject": {
            "apiVersion": object.get("apiVersion"), "kind": object.get("kind"), "name": name,
            "namespace": meta_str(object, "namespace"), "uid": meta_str(object, "uid"),
            "resourceVersion": meta_str(object, "resourceVersion"),
        },
        "reason": reason, "message": message, "type": if kind == Kind::Normal { "Normal" } else { "Warning" },
        "source": {"component": component}, "reportingComponent": component, "reportingInstance": component,
        "firstTimestamp": now, "lastTimestamp": now, "eventTime": null, "count": 1,
    });
    if let Err(e) = api.create(&rt, "v1", Some(ns), event, &WriteOptions::default()) {
        tracing::debug!(error = %e, reason, "recording event failed");
    }
}
