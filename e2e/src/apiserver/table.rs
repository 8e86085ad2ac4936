//! `meta.k8s.io/v1` Table responses for `kubectl get`: kubectl's usual columns for common
//! built-in kinds and `additionalPrinterColumns` for custom resources.

use serde_json::{Value, json};

use super::registry::ResourceType;
use super::util::{human_duration, meta_str, now_secs, parse_rfc3339};

/// Whether the Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| first.replace(' ', "").contains("as=Table"))
}

fn age(obj: &Value) -> String {
    meta_str(obj, "creationTimestamp")
        .and_then(parse_rfc3339)
        .map(|t| human_duration(now_secs().saturating_sub(t)))
        .unwrap_or_else(|| "<unknown>".into())
}

fn s(obj: &Value, ptr: &str) -> String {
    match obj.pointer(ptr) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn n(obj: &Value, ptr: &str) -> u64 {
    obj.pointer(ptr).and_then(Value::as_u64).unwrap_or(0)
}

fn count(obj: &Value, key: &str) -> usize {
    obj.get(key).and_then(Value::as_object).map_or(0, |m| m.len())
}

fn pod_status(pod: &Value) -> String {
    if meta_str(pod, "deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    let inits = pod.pointer("/status/initContainerStatuses").and_then(Value::as_array).cloned().unwrap_or_default();
    let done =
        inits.iter().filter(|c| c.pointer("/state/terminated/exitCode").and_then(Value::as_i64) == Some(0)).count();
    if done < inits.len() {
        return format!("Init:{done}/{}", inits.len());
    }
    let waiting = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str).map(String::from));
    waiting.unwrap_or_else(|| s(pod, "/status/phase"))
}

type Column = (&'static str, &'static str, u8, fn(&Value) -> Value);

fn builtin_columns(rt: &ResourceType) -> Vec<Column> {
    let name: Column = ("Name", "string", 0, |o| json!(meta_str(o, "name")));
    let age_col: Column = ("Age", "string", 0, |o| json!(age(o)));
    let mut cols = vec![name];
    let extra: Vec<Column> = match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => vec![
            ("Ready", "string", 0, |o| {
                let cs = o.pointer("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default();
                let total = o.pointer("/spec/containers").and_then(Value::as_array).map_or(0, Vec::len);
                json!(format!("{}/{total}", cs.iter().filter(|c| c["ready"] == true).count()))
            }),
            ("Status", "string", 0, |o| json!(pod_status(o))),
            ("Restarts", "integer", 0, |o| {
                json!(
                    o.pointer("/status/containerStatuses")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|c| c["restartCount"].as_u64().unwrap_or(0))
                        .sum::<u64>()
                )
            }),
            age_col,
            ("IP", "string", 1, |o| json!(s(o, "/status/podIP"))),
            ("Node", "string", 1, |o| json!(s(o, "/spec/nodeName"))),
        ],
        ("apps", "statefulsets") => vec![
            ("Ready", "string", 0, |o| json!(format!("{}/{}", n(o, "/status/readyReplicas"), n(o, "/spec/replicas")))),
            age_col,
        ],
        ("apps", "deployments") => vec![
            ("Ready", "string", 0, |o| json!(format!("{}/{}", n(o, "/status/readyReplicas"), n(o, "/spec/replicas")))),
            ("Up-to-date", "integer", 0, |o| json!(n(o, "/status/updatedReplicas"))),
            ("Available", "integer", 0, |o| json!(n(o, "/status/availableReplicas"))),
            age_col,
        ],
        ("apps", "replicasets") => vec![
            ("Desired", "integer", 0, |o| json!(n(o, "/spec/replicas"))),
            ("Current", "integer", 0, |o| json!(n(o, "/status/replicas"))),
            ("Ready", "integer", 0, |o| json!(n(o, "/status/readyReplicas"))),
            age_col,
        ],
        ("", "nodes") => vec![
            ("Status", "string", 0, |o| {
                let ready = o
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                json!(if ready { "Ready" } else { "NotReady" })
            }),
            ("Roles", "string", 0, |_| json!("<none>")),
            age_col,
            ("Version", "string", 0, |o| json!(s(o, "/status/nodeInfo/kubeletVersion"))),
        ],
        ("", "services") => vec![
            ("Type", "string", 0, |o| json!(s(o, "/spec/type"))),
            ("Cluster-IP", "string", 0, |o| {
                json!(Some(s(o, "/spec/clusterIP")).filter(|c| !c.is_empty()).unwrap_or_else(|| "<none>".into()))
            }),
            ("Port(s)", "string", 0, |o| {
                let ports: Vec<String> = o
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                    .collect();
                json!(if ports.is_empty() { "<none>".to_string() } else { ports.join(",") })
            }),
            age_col,
        ],
        ("", "configmaps") => {
            vec![("Data", "integer", 0, |o| json!(count(o, "data") + count(o, "binaryData"))), age_col]
        }
        ("", "secrets") => vec![
            ("Type", "string", 0, |o| json!(s(o, "/type"))),
            ("Data", "integer", 0, |o| json!(count(o, "data"))),
            age_col,
        ],
        ("", "persistentvolumeclaims") => vec![
            ("Status", "string", 0, |o| json!(s(o, "/status/phase"))),
            ("Capacity", "string", 0, |o| json!(s(o, "/status/capacity/storage"))),
            age_col,
        ],
        ("", "namespaces") => vec![("Status", "string", 0, |o| json!(s(o, "/status/phase"))), age_col],
        ("", "events") => {
            // kubectl shows events as LAST SEEN, TYPE, REASON, OBJECT, MESSAGE (no NAME).
            cols.clear();
            vec![
                ("Last Seen", "string", 0, |o| {
                    let t = o.pointer("/lastTimestamp").and_then(Value::as_str).and_then(parse_rfc3339);
                    json!(t.map(|t| human_duration(now_secs().saturating_sub(t))).unwrap_or_else(|| age(o)))
                }),
                ("Type", "string", 0, |o| json!(s(o, "/type"))),
                ("Reason", "string", 0, |o| json!(s(o, "/reason"))),
                ("Object", "string", 0, |o| {
                    json!(format!("{}/{}", s(o, "/involvedObject/kind").to_lowercase(), s(o, "/involvedObject/name")))
                }),
                ("Message", "string", 0, |o| json!(s(o, "/message"))),
            ]
        }
        _ => vec![age_col],
    };
    cols.extend(extra);
    cols
}

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `[N]`, `[?(@.k=="v")]`.
pub fn jsonpath<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    let mut rest = path.trim().trim_start_matches('{').trim_end_matches('}').trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (k, v) = filter.split_once("==")?;
                let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
                cur = cur.as_array()?.iter().find(|i| i.get(k.trim()).and_then(Value::as_str) == Some(v))?;
            } else {
                cur = cur.as_array()?.get(inner.parse::<usize>().ok()?)?;
            }
        } else {
            return None;
        }
    }
    Some(cur)
}

fn custom_cell(obj: &Value, col: &Value) -> Value {
    let Some(v) = col.get("jsonPath").and_then(Value::as_str).and_then(|p| jsonpath(obj, p)) else {
        return Value::Null;
    };
    if col.get("type").and_then(Value::as_str) == Some("date")
        && let Some(t) = v.as_str().and_then(parse_rfc3339)
    {
        return json!(human_duration(now_secs().saturating_sub(t)));
    }
    v.clone()
}

fn partial(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({}))})
}

/// Renders `items` as a Table with `list_meta` as its metadata.
pub fn render(rt: &ResourceType, version: &str, items: &[Value], list_meta: Value) -> Value {
    let custom = rt.custom.as_ref().and_then(|c| c.printer_columns.get(version)).filter(|c| !c.is_empty());
    let (defs, rows): (Vec<Value>, Vec<Value>) = match custom {
        Some(cols) => {
            let mut defs = vec![
                json!({"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0}),
            ];
            defs.extend(cols.iter().map(|c| {
                json!({"name": c.get("name"), "type": if c.get("type").and_then(Value::as_str) == Some("date") { json!("string") } else { c.get("type").cloned().unwrap_or(json!("string")) },
                       "format": c.get("format").cloned().unwrap_or(json!("")), "description": c.get("description").cloned().unwrap_or(json!("")), "priority": c.get("priority").cloned().unwrap_or(json!(0))})
            }));
            let rows = items
                .iter()
                .map(|o| {
                    let mut cells = vec![json!(meta_str(o, "name"))];
                    cells.extend(cols.iter().map(|c| custom_cell(o, c)));
                    json!({"cells": cells, "object": partial(o)})
                })
                .collect();
            (defs, rows)
        }
        None => {
            let cols = builtin_columns(rt);
            let defs = cols.iter().map(|(name, ty, prio, _)| json!({"name": name, "type": ty, "format": if *name == "Name" { "name" } else { "" }, "description": "", "priority": prio})).collect();
            let rows = items.iter().map(|o| json!({"cells": cols.iter().map(|(_, _, _, f)| f(o)).collect::<Vec<_>>(), "object": partial(o)})).collect();
            (defs, rows)
        }
    };
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let o = json!({"spec": {"size": 3}, "status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(jsonpath(&o, ".spec.size"), Some(&json!(3)));
        assert_eq!(jsonpath(&o, r#".status.conditions[?(@.type=="Ready")].status"#), Some(&json!("True")));
        assert_eq!(jsonpath(&o, ".status.conditions[0].type"), Some(&json!("A")));
        assert_eq!(jsonpath(&o, ".spec.missing"), None);
    }

    #[test]
    fn accept_detection() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
