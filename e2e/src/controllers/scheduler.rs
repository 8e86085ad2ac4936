//! Scheduler: binds pending pods to a Ready node. Honours `nodeSelector`, required node
//! affinity, cordoned nodes (`spec.unschedulable`), required pod (anti-)affinity and `DoNotSchedule` topology spread constraints;
//! among feasible nodes it prefers fewer matching pods for preferred anti-affinity, then
//! fewer pods of the same owner, then fewer pods overall. Taints and resources are ignored.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{condition, condition_true, write_status};
use crate::apiserver::Api;
use crate::apiserver::ops::{Subresource, WriteOptions};
use crate::apiserver::registry::ResKey;
use crate::apiserver::selector::LabelSelector;
use crate::apiserver::util::{meta_mut, meta_str};

fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/labels")?.get(key)?.as_str()
}

fn node_selector_ok(pod: &Value, node: &Value) -> bool {
    let Some(sel) = pod.pointer("/spec/nodeSelector").and_then(Value::as_object) else { return true };
    sel.iter().all(|(k, v)| label(node, k) == v.as_str())
}

/// One `nodeSelectorTerm` (matchExpressions on labels, matchFields on `metadata.name`).
fn term_matches(term: &Value, node: &Value) -> bool {
    let expr_ok = |e: &Value, value: Option<&str>| {
        let values: Vec<&str> =
            e.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let num = |s: Option<&str>| s.and_then(|x| x.parse::<i64>().ok());
        match e.get("operator").and_then(Value::as_str) {
            Some("In") => value.is_some_and(|v| values.contains(&v)),
            Some("NotIn") => value.is_none_or(|v| !values.contains(&v)),
            Some("Exists") => value.is_some(),
            Some("DoesNotExist") => value.is_none(),
            Some("Gt") => num(value).zip(num(values.first().copied())).is_some_and(|(a, b)| a > b),
            Some("Lt") => num(value).zip(num(values.first().copied())).is_some_and(|(a, b)| a < b),
            _ => false,
        }
    };
    let exprs = term.get("matchExpressions").and_then(Value::as_array).into_iter().flatten();
    let fields = term.get("matchFields").and_then(Value::as_array).into_iter().flatten();
    exprs.clone().all(|e| expr_ok(e, e.get("key").and_then(Value::as_str).and_then(|k| label(node, k))))
        && fields.clone().all(|e| expr_ok(e, meta_str(node, "name")))
}

fn node_affinity_ok(pod: &Value, node: &Value) -> bool {
    let Some(terms) = pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    else {
        return true;
    };
    terms.iter().any(|t| term_matches(t, node))
}

/// A pod already bound, with its node.
struct Placed<'a> {
    pod: &'a Value,
    node: &'a Value,
}

/// Pods matched by a pod (anti-)affinity term that share `node`'s topology domain.
fn matching_in_domain(pod: &Value, term: &Value, node: &Value, placed: &[Placed<'_>]) -> usize {
    let Some(key) = term.get("topologyKey").and_then(Value::as_str) else { return 0 };
    let Some(domain) = label(node, key) else { return 0 };
    let selector = LabelSelector::from_object(term.get("labelSelector").unwrap_or(&Value::Null));
    let own_ns = meta_str(pod, "namespace").unwrap_or("");
    let namespaces: Vec<&str> = term
        .get("namespaces")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_else(|| vec![own_ns]);
    placed
        .iter()
        .filter(|p| namespaces.contains(&meta_str(p.pod, "namespace").unwrap_or("")) && selector.matches(p.pod))
        .filter(|p| label(p.node, key) == Some(domain))
        .count()
}

fn terms<'a>(pod: &'a Value, path: &str) -> impl Iterator<Item = &'a Value> {
    pod.pointer(path).and_then(Value::as_array).into_iter().flatten()
}

fn pod_affinity_ok(pod: &Value, node: &Value, placed: &[Placed<'_>]) -> bool {
    let anti_ok = terms(pod, "/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution")
        .all(|t| matching_in_domain(pod, t, node, placed) == 0);
    let affinity_ok =
        terms(pod, "/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution").all(|t| {
            // The first pod of a group may land anywhere if it matches its own term.
            let selector = LabelSelector::from_object(t.get("labelSelector").unwrap_or(&Value::Null));
            let anywhere = placed.iter().any(|p| selector.matches(p.pod));
            matching_in_domain(pod, t, node, placed) > 0 || (!anywhere && selector.matches(pod))
        });
    anti_ok && affinity_ok
}

fn spread_ok(pod: &Value, node: &Value, candidates: &[&Value], placed: &[Placed<'_>]) -> bool {
    terms(pod, "/spec/topologySpreadConstraints")
        .filter(|c| c.get("whenUnsatisfiable").and_then(Value::as_str) != Some("ScheduleAnyway"))
        .all(|c| {
            let Some(key) = c.get("topologyKey").and_then(Value::as_str) else { return true };
            let Some(domain) = label(node, key) else { return false };
            let max_skew = c.get("maxSkew").and_then(Value::as_u64).unwrap_or(1) as usize;
            let selector = LabelSelector::from_object(c.get("labelSelector").unwrap_or(&Value::Null));
            let ns = meta_str(pod, "namespace");
            let mut counts: BTreeMap<&str, usize> =
                candidates.iter().filter_map(|n| label(n, key)).map(|d| (d, 0)).collect();
            for p in placed.iter().filter(|p| meta_str(p.pod, "namespace") == ns && selector.matches(p.pod)) {
                if let Some(d) = label(p.node, key)
                    && let Some(c) = counts.get_mut(d)
                {
                    *c += 1;
                }
            }
            let min = counts.values().copied().min().unwrap_or(0);
            counts.get(domain).copied().unwrap_or(0) < min + max_skew
        })
}

fn node_of(p: &Value) -> Option<&str> {
    p.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty())
}

fn controller_uid(pod: &Value) -> Option<&str> {
    pod.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))?
        .get("uid")?
        .as_str()
}

/// Picks a node for `pod`, or `None` when no Ready node is feasible.
fn choose<'a>(pod: &Value, nodes: &'a [Value], placed: &[Placed<'_>]) -> Option<&'a Value> {
    let ready: Vec<&Value> = nodes
        .iter()
        .filter(|n| {
            condition_true(n, "Ready") && n.pointer("/spec/unschedulable").and_then(Value::as_bool) != Some(true)
        })
        .collect();
    let eligible: Vec<&Value> =
        ready.iter().copied().filter(|n| node_selector_ok(pod, n) && node_affinity_ok(pod, n)).collect();
    let owner = controller_uid(pod);
    eligible
        .iter()
        .copied()
        .filter(|n| pod_affinity_ok(pod, n, placed) && spread_ok(pod, n, &eligible, placed))
        .min_by_key(|n| {
            let preferred: usize =
                terms(pod, "/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution")
                    .map(|w| {
                        w.get("weight").and_then(Value::as_u64).unwrap_or(1) as usize
                            * matching_in_domain(pod, w.get("podAffinityTerm").unwrap_or(&Value::Null), n, placed)
                    })
                    .sum();
            let on_node: Vec<&Placed<'_>> =
                placed.iter().filter(|p| meta_str(p.node, "name") == meta_str(n, "name")).collect();
            let siblings = on_node.iter().filter(|p| owner.is_some() && controller_uid(p.pod) == owner).count();
            (preferred, siblings, on_node.len(), meta_str(n, "name").unwrap_or("").to_string())
        })
}

/// One scheduling pass.
pub fn schedule_once(api: &Api) {
    let (pods, nodes) = api.store.read(|s| {
        (
            s.list(&ResKey::new("", "pods"), None).cloned().collect::<Vec<_>>(),
            s.list(&ResKey::new("", "nodes"), None).cloned().collect::<Vec<_>>(),
        )
    });
    let Ok(rt) = api.resource("", "pods") else { return };
    let mut bound: Vec<(Value, String)> = Vec::new();
    for pod in pods.iter().filter(|p| node_of(p).is_none() && meta_str(p, "deletionTimestamp").is_none()) {
        let placed: Vec<Placed<'_>> = pods
            .iter()
            .filter(|p| meta_str(p, "deletionTimestamp").is_none())
            .filter_map(|p| Some((p, node_of(p)?)))
            .chain(bound.iter().map(|(p, n)| (p, n.as_str())))
            .filter_map(|(p, n)| Some(Placed { pod: p, node: nodes.iter().find(|x| meta_str(x, "name") == Some(n))? }))
            .collect();
        let prev = pod.pointer("/status/conditions");
        let Some(node) = choose(pod, &nodes, &placed).and_then(|n| meta_str(n, "name")).map(String::from) else {
            let mut status = pod.get("status").cloned().unwrap_or_else(|| json!({}));
            let msg = format!(
                "0/{} nodes are available: no Ready node satisfies the pod's node selector, affinity and spread constraints",
                nodes.len()
            );
            let was_unschedulable = prev
                .and_then(Value::as_array)
                .is_some_and(|c| c.iter().any(|c| c["type"] == "PodScheduled" && c["status"] == "False"));
            if !was_unschedulable {
                super::events::record(
                    api,
                    pod,
                    super::events::Kind::Warning,
                    "FailedScheduling",
                    &msg,
                    "default-scheduler",
                );
            }
            status["conditions"] = json!([condition(prev, "PodScheduled", false, "Unschedulable", &msg)]);
            let _ = write_status(api, "", "pods", pod, status);
            continue;
        };
        let mut body = pod.clone();
        meta_mut(&mut body).remove("resourceVersion");
        body["spec"]["nodeName"] = json!(node);
        let (ns, name) = (meta_str(pod, "namespace"), meta_str(pod, "name").unwrap_or(""));
        match api.update(&rt, "v1", ns, name, body, Subresource::Main, &WriteOptions::default()) {
            Ok(updated) => {
                let mut status = updated.get("status").cloned().unwrap_or_else(|| json!({}));
                status["conditions"] = json!([condition(prev, "PodScheduled", true, "", "")]);
                let _ = write_status(api, "", "pods", &updated, status);
                tracing::debug!(pod = name, node, "scheduled");
                let msg = format!("Successfully assigned {}/{name} to {node}", ns.unwrap_or("default"));
                super::events::record(
                    api,
                    &updated,
                    super::events::Kind::Normal,
                    "Scheduled",
                    &msg,
                    "default-scheduler",
                );
                bound.push((updated, node));
            }
            Err(e) => tracing::debug!(error = %e, pod = name, "binding failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, zone: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone, "kubernetes.io/hostname": name}},
               "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    }

    fn pod(name: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "labels": {"app": "db"}}, "spec": spec})
    }

    #[test]
    fn zone_anti_affinity_and_node_affinity() {
        let nodes = vec![node("a1", "a"), node("a2", "a"), node("b1", "b")];
        let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}});
        let existing = pod("db-0", json!({}));
        let placed = vec![Placed { pod: &existing, node: &nodes[0] }];
        let chosen = choose(&pod("db-1", anti.clone()), &nodes, &placed).and_then(|n| meta_str(n, "name"));
        assert_eq!(chosen, Some("b1"), "zone a already holds a db pod");
        let placed_b = vec![Placed { pod: &existing, node: &nodes[0] }, Placed { pod: &existing, node: &nodes[2] }];
        assert!(choose(&pod("db-2", anti), &nodes, &placed_b).is_none(), "both zones taken");

        let pinned = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["a2"]}]}]}}}});
        assert_eq!(choose(&pod("p", pinned), &nodes, &[]).and_then(|n| meta_str(n, "name")), Some("a2"));
    }

    #[test]
    fn spread_constraint_limits_skew() {
        let nodes = vec![node("a1", "a"), node("b1", "b")];
        let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "db"}}}],
                            "nodeSelector": {}});
        let existing = pod("db-0", json!({}));
        let placed = vec![Placed { pod: &existing, node: &nodes[0] }];
        assert_eq!(choose(&pod("db-1", spread), &nodes, &placed).and_then(|n| meta_str(n, "name")), Some("b1"));
    }
}
