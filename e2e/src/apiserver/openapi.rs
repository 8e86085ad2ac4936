//! A minimal OpenAPI v3: just enough for kubectl to trust server-side field validation
//! (each kind has a PATCH operation with `x-kubernetes-group-version-kind` and a
//! `fieldValidation` parameter). `/openapi/v2` stays 404 on purpose.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::registry::Registry;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// A hash of the served kinds, so clients refetch after CRD changes.
fn hash(registry: &Registry) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for t in registry.all() {
        (&t.group, &t.versions, &t.kind, &t.plural, t.namespaced).hash(&mut h);
    }
    format!("{:016X}", h.finish())
}

/// `/openapi/v3`: the index of group-version documents.
pub fn root(registry: &Registry) -> Value {
    let h = hash(registry);
    let mut paths = BTreeMap::new();
    for t in registry.all() {
        for v in &t.versions {
            let p = gv_path(&t.group, v);
            paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={h}")}));
        }
    }
    json!({"paths": paths})
}

/// `/openapi/v3/{api/v1 | apis/g/v}`; `None` for an unknown group version.
pub fn group_version(registry: &Registry, path: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for t in registry.all() {
        for v in t.versions.iter().filter(|v| gv_path(&t.group, v) == path) {
            let prefix = if t.group.is_empty() { format!("/api/{v}") } else { format!("/apis/{}/{v}", t.group) };
            let item = if t.namespaced {
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
            } else {
                format!("{prefix}/{}/{{name}}", t.plural)
            };
            let gvk = json!({"group": t.group, "version": v, "kind": t.kind});
            let params = json!([
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            ]);
            let op = |action: &str| json!({"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {"200": {"description": "OK"}}});
            paths.insert(
                item,
                json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
            );
            // Only CRD schemas are published: built-in kinds have no schema here, so kubectl
            // falls back to its compiled-in patch metadata for them.
            if let Some(schema) = t.schema(v) {
                let mut schema = schema.clone();
                schema["x-kubernetes-group-version-kind"] = json!([gvk]);
                schemas.insert(format!("{}.{v}.{}", t.group, t.kind), schema);
            }
        }
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
