//! `/version`, legacy discovery (`/api`, `/apis`, `/api/v1`, `/apis/{g}/{v}`) and
//! aggregated discovery v2 (`APIGroupDiscoveryList`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::registry::{Registry, ResourceType};

/// Content type of aggregated discovery v2 responses.
pub const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the Accept header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let p: String = part.chars().filter(|c| !c.is_whitespace()).collect();
        p.contains("as=APIGroupDiscoveryList") && p.contains("v=v2;") && p.contains("g=apidiscovery.k8s.io")
    })
}

/// The `/version` document.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.0-kudu-e2e", "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc", "platform": "linux/amd64",
    })
}

const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const SUB_VERBS: &[&str] = &["get", "patch", "update"];

/// Types served under one version of a group.
type VersionTypes = (String, Vec<Arc<ResourceType>>);

/// Groups in a stable order (core first), each with its versions and types.
fn groups(registry: &Registry) -> Vec<(String, Vec<VersionTypes>)> {
    let mut by_group: BTreeMap<String, BTreeMap<String, Vec<Arc<ResourceType>>>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for rt in registry.all() {
        if !order.contains(&rt.group) {
            order.push(rt.group.clone());
        }
        for v in &rt.versions {
            by_group.entry(rt.group.clone()).or_default().entry(v.clone()).or_default().push(rt.clone());
        }
    }
    order
        .into_iter()
        .filter_map(|g| {
            let versions = by_group.remove(&g)?;
            let mut vs: Vec<VersionTypes> = versions.into_iter().collect();
            // Preferred (first-declared) version first.
            let preferred = vs.iter().flat_map(|(_, ts)| ts.iter()).next().map(|t| t.preferred_version().to_string());
            vs.sort_by_key(|(v, _)| Some(v.clone()) != preferred);
            Some((g, vs))
        })
        .collect()
}

fn gv(group: &str, version: &str) -> String {
    if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }
}

/// Legacy `/api` (`APIVersions`).
pub fn api_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn api_group(group: &str, versions: &[VersionTypes]) -> Value {
    let vs: Vec<Value> = versions.iter().map(|(v, _)| json!({"groupVersion": gv(group, v), "version": v})).collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// Legacy `/apis` (`APIGroupList`).
pub fn api_group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> =
        groups(registry).iter().filter(|(g, _)| !g.is_empty()).map(|(g, vs)| api_group(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// Legacy `/apis/{group}` (`APIGroup`).
pub fn api_group_doc(registry: &Registry, group: &str) -> Option<Value> {
    groups(registry).iter().find(|(g, _)| g == group).map(|(g, vs)| {
        let mut doc = api_group(g, vs);
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        doc
    })
}

/// Legacy `/api/v1` or `/apis/{g}/{v}` (`APIResourceList`); `None` if the group version is unknown.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types: Vec<Arc<ResourceType>> =
        registry.all().into_iter().filter(|t| t.group == group && t.versions.iter().any(|v| v == version)).collect();
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in &types {
        resources.push(json!({
            "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
            "verbs": VERBS, "shortNames": t.short_names, "categories": t.categories,
        }));
        if t.has_status {
            resources.push(json!({"name": format!("{}/status", t.plural), "singularName": "", "namespaced": t.namespaced, "kind": t.kind, "verbs": SUB_VERBS}));
        }
        if t.has_scale {
            resources.push(json!({"name": format!("{}/scale", t.plural), "singularName": "", "namespaced": t.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": SUB_VERBS}));
        }
        for (sub, group, kind, verbs) in extra_subresources(t) {
            resources.push(json!({"name": format!("{}/{sub}", t.plural), "singularName": "", "namespaced": t.namespaced, "group": group, "version": "v1", "kind": kind, "verbs": verbs}));
        }
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv(group, version), "resources": resources}),
    )
}

/// Subresources served by special handlers: pods' `eviction` (kubectl drain looks for it)
/// and `log`. Entries: (name, group, kind, verbs).
fn extra_subresources(t: &ResourceType) -> Vec<(&'static str, &'static str, &'static str, &'static [&'static str])> {
    if t.group.is_empty() && t.plural == "pods" {
        vec![("eviction", "policy", "Eviction", &["create"]), ("log", "", "Pod", &["get"])]
    } else {
        Vec::new()
    }
}

fn discovery_resource(t: &ResourceType, version: &str) -> Value {
    let mut subs = Vec::new();
    if t.has_status {
        subs.push(json!({"subresource": "status", "responseKind": {"group": t.group, "version": version, "kind": t.kind}, "verbs": SUB_VERBS}));
    }
    if t.has_scale {
        subs.push(json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": SUB_VERBS}));
    }
    for (sub, group, kind, verbs) in extra_subresources(t) {
        subs.push(json!({"subresource": sub, "responseKind": {"group": group, "version": "v1", "kind": kind}, "verbs": verbs}));
    }
    json!({
        "resource": t.plural,
        "responseKind": {"group": t.group, "version": version, "kind": t.kind},
        "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": t.singular,
        "verbs": VERBS,
        "shortNames": t.short_names,
        "categories": t.categories,
        "subresources": subs,
    })
}

/// Aggregated discovery for `/api` (`core = true`) or `/apis`.
pub fn aggregated(registry: &Registry, core: bool) -> Value {
    let items: Vec<Value> = groups(registry)
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|(v, ts)| json!({"version": v, "resources": ts.iter().map(|t| discovery_resource(t, v)).collect::<Vec<_>>(), "freshness": "Current"}))
                .collect();
            let meta = if g.is_empty() { json!({"creationTimestamp": null}) } else { json!({"name": g, "creationTimestamp": null}) };
            json!({"metadata": meta, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_aggregated_accept() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json, */*"));
    }

    #[test]
    fn aggregated_core_lists_configmaps() {
        let reg = Registry::with_builtins();
        let doc = aggregated(&reg, true);
        let resources = doc["items"][0]["versions"][0]["resources"].as_array().expect("resources");
        assert!(resources.iter().any(|r| r["resource"] == "configmaps" && r["scope"] == "Namespaced"));
        let apps = aggregated(&reg, false);
        assert!(apps["items"].as_array().expect("items").iter().any(|i| i["metadata"]["name"] == "apps"));
    }
}
