//! The `/scale` subresource (`autoscaling/v1` Scale) for built-in and custom kinds.

use serde_json::{Value, json};

use super::error::ApiError;
use super::ops::{Api, Subresource, WriteOptions, ns_of};
use super::patch::json_patch;
use super::registry::ResourceType;
use super::store::Txn;

fn json_pointer(path: &str) -> String {
    path.replace('.', "/")
}

impl Api {
    /// GET `/scale`.
    pub fn get_scale(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let obj = self
            .store
            .read(|s| s.get(&rt.key(), ns_of(rt, ns), name).cloned())
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        Ok(scale_of(rt, &obj))
    }

    pub(super) fn write_scale(
        &self,
        t: &mut Txn<'_>,
        rt: &ResourceType,
        version: &str,
        current: Value,
        replicas: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if !rt.has_scale {
            return Err(ApiError::no_route(&format!("{}/scale", rt.plural)));
        }
        let path = rt
            .custom
            .as_ref()
            .and_then(|c| c.scale.as_ref())
            .map(|s| json_pointer(&s.spec_replicas))
            .unwrap_or_else(|| "/spec/replicas".into());
        let mut new = current.clone();
        json_patch(&mut new, &json!([{"op": "add", "path": path, "value": replicas}]))?;
        let stored = self.finish(t, rt, version, current, new, Subresource::Main, opts)?;
        Ok(scale_of(rt, &stored))
    }
}

/// The `autoscaling/v1` Scale view of an object.
pub(super) fn scale_of(rt: &ResourceType, obj: &Value) -> Value {
    let paths = rt.custom.as_ref().and_then(|c| c.scale.clone());
    let at = |p: &str| obj.pointer(&json_pointer(p)).cloned();
    let (spec_r, status_r, selector) = match &paths {
        Some(p) => (at(&p.spec_replicas), at(&p.status_replicas), p.label_selector.as_deref().and_then(at)),
        None => (
            obj.pointer("/spec/replicas").cloned(),
            obj.pointer("/status/replicas").cloned(),
            obj.pointer("/spec/selector/matchLabels").and_then(Value::as_object).map(|m| {
                json!(m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(","))
            }),
        ),
    };
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion"), "creationTimestamp": meta.get("creationTimestamp")},
        "spec": {"replicas": spec_r.unwrap_or(json!(0))},
        "status": {"replicas": status_r.unwrap_or(json!(0)), "selector": selector.unwrap_or(json!(""))},
    })
}
