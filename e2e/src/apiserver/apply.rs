//! Server-side apply, simplified: the applied configuration is merged into the live object
//! (strategic-merge rules), fields a manager applied before but no longer applies are removed
//! unless another applier owns them, and each applier's field set is kept in `managedFields`.
//! Conflicts between managers are not detected.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::patch::{list_merge_key, strategic_merge};
use super::util::now_rfc3339;

/// A field path as `managedFields` tokens (`f:spec`, `k:{"name":"a"}`).
type FieldPath = Vec<String>;

fn item_key(item: &Value, key: &str) -> String {
    let mut m = Map::new();
    m.insert(key.to_string(), item.get(key).cloned().unwrap_or(Value::Null));
    format!("k:{}", Value::Object(m))
}

/// Every path (including intermediate ones) set by `v`, ignoring identity metadata.
fn field_set(v: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    let mut root = v.clone();
    if let Some(m) = root.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in ["name", "namespace", "resourceVersion", "uid", "managedFields", "creationTimestamp", "generation"]
            {
                meta.remove(k);
            }
        }
    }
    collect(&root, &mut Vec::new(), &mut out);
    out
}

fn collect(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(format!("f:{k}"));
                out.insert(prefix.clone());
                collect(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            let refs: Vec<&Value> = items.iter().collect();
            if let Some(key) = list_merge_key(&refs) {
                for item in items {
                    prefix.push(item_key(item, key));
                    out.insert(prefix.clone());
                    collect(item, prefix, out);
                    prefix.pop();
                }
            }
        }
        _ => {}
    }
}

fn to_fields_v1(set: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for tok in path {
            let entry = cur.entry(tok.clone()).or_insert_with(|| Value::Object(Map::new()));
            cur = match entry {
                Value::Object(m) => m,
                _ => unreachable!("fieldsV1 nodes are objects"),
            };
        }
    }
    Value::Object(root)
}

fn from_fields_v1(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    if let Some(m) = v.as_object() {
        for (k, child) in m {
            if k == "." {
                continue;
            }
            prefix.push(k.clone());
            out.insert(prefix.clone());
            from_fields_v1(child, prefix, out);
            prefix.pop();
        }
    }
}

fn remove_path(v: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if let Some(name) = first.strip_prefix("f:") {
        if let Some(m) = v.as_object_mut() {
            if rest.is_empty() {
                m.remove(name);
            } else if let Some(child) = m.get_mut(name) {
                remove_path(child, rest);
            }
        }
    } else if let Some(key_json) = first.strip_prefix("k:") {
        let Ok(Value::Object(key)) = serde_json::from_str::<Value>(key_json) else {
            return;
        };
        if let Some(items) = v.as_array_mut() {
            let matches = |i: &Value| key.iter().all(|(k, want)| i.get(k) == Some(want));
            if rest.is_empty() {
                items.retain(|i| !matches(i));
            } else if let Some(item) = items.iter_mut().find(|i| matches(i)) {
                remove_path(item, rest);
            }
        }
    }
}

fn managers(obj: &Value) -> Vec<Value> {
    obj.get("metadata").and_then(|m| m.get("managedFields")).and_then(Value::as_array).cloned().unwrap_or_default()
}

fn entry_fields(entry: &Value) -> BTreeSet<FieldPath> {
    let mut set = BTreeSet::new();
    if let Some(f) = entry.get("fieldsV1") {
        from_fields_v1(f, &mut Vec::new(), &mut set);
    }
    set
}

/// Fields another applier owns with a different value than the one being applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Apply failed with {} conflict{}: {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.iter().map(|(m, f)| format!("conflict with \"{m}\": {f}")).collect::<Vec<_>>().join(", "))]
pub struct Conflicts(pub Vec<(String, String)>);

fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for tok in path {
        cur = if let Some(name) = tok.strip_prefix("f:") {
            cur.get(name)?
        } else {
            let key: serde_json::Map<String, Value> = serde_json::from_str(tok.strip_prefix("k:")?).ok()?;
            cur.as_array()?.iter().find(|i| key.iter().all(|(k, want)| i.get(k) == Some(want)))?
        };
    }
    Some(cur)
}

/// `.spec.containers[name="c"].image` for a field path.
fn display_path(path: &[String]) -> String {
    path.iter()
        .map(|t| match t.strip_prefix("f:") {
            Some(name) => format!(".{name}"),
            None => {
                let key: serde_json::Map<String, Value> =
                    serde_json::from_str(t.trim_start_matches("k:")).unwrap_or_default();
                format!("[{}]", key.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
            }
        })
        .collect()
}

/// Applies `applied` for `manager` onto `live` (or creates from it when `live` is `None`),
/// returning the new object with updated `managedFields`. `subresource` is `Some("status")`
/// for applies to `/status`. Without `force`, a field another applier owns with a different
/// value is a conflict; with `force` the field changes owner.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    force: bool,
) -> Result<Value, Conflicts> {
    let new_fields = field_set(applied);
    let mut entries = live.map(managers).unwrap_or_default();
    let is_mine = |e: &Value| {
        e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Apply")
            && e.get("subresource").and_then(Value::as_str) == subresource
    };
    let previous = entries.iter().find(|e| is_mine(e)).map(entry_fields).unwrap_or_default();

    // Leaves being applied that another applier owns with a different value.
    let leaves: Vec<&FieldPath> = new_fields
        .iter()
        .filter(|p| !new_fields.iter().any(|q| q.len() > p.len() && q.starts_with(p)))
        .filter(|p| get_path(applied, p).is_some_and(|v| !v.is_object()))
        .collect();
    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| !is_mine(e) && e.get("operation").and_then(Value::as_str) == Some("Apply")) {
        let owned = entry_fields(e);
        for leaf in leaves.iter().filter(|l| owned.contains(**l)) {
            let live_value = live.and_then(|l| get_path(l, leaf));
            if live_value.is_some() && live_value != get_path(applied, leaf) {
                conflicts
                    .push((e.get("manager").and_then(Value::as_str).unwrap_or("").to_string(), display_path(leaf)));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(Conflicts(conflicts));
    }
    if force {
        // Forced fields change owner.
        for e in entries.iter_mut().filter(|e| !is_mine(e)) {
            let mut owned = entry_fields(e);
            let before = owned.len();
            owned.retain(|p| !leaves.contains(&p));
            if owned.len() != before {
                e["fieldsV1"] = to_fields_v1(&owned);
            }
        }
    }
    let others: BTreeSet<FieldPath> = entries.iter().filter(|e| !is_mine(e)).flat_map(entry_fields).collect();

    let mut obj = live.cloned().unwrap_or_else(|| json!({}));
    strategic_merge(&mut obj, applied);
    let mut removed: Vec<&FieldPath> = previous.difference(&new_fields).collect();
    removed.sort_by_key(|p| p.len());
    let mut done: Vec<&FieldPath> = Vec::new();
    for path in removed {
        if done.iter().any(|d| path.starts_with(d)) || others.iter().any(|o| o.starts_with(path)) {
            continue;
        }
        remove_path(&mut obj, path);
        done.push(path);
    }

    entries.retain(|e| !is_mine(e));
    let mut entry = json!({
        "manager": manager, "operation": "Apply", "apiVersion": api_version, "time": now_rfc3339(),
        "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&new_fields),
    });
    if let Some(sub) = subresource {
        entry["subresource"] = json!(sub);
    }
    entries.push(entry);
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("managedFields".into(), Value::Array(entries));
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reapply_removes_fields_no_longer_applied() {
        let first = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let live = server_side_apply(None, &first, "m1", "v1", None, false).expect("no conflict");
        assert_eq!(live["data"], json!({"a": "1", "b": "2"}));
        let second = json!({"metadata": {"name": "c"}, "data": {"a": "3"}});
        let live = server_side_apply(Some(&live), &second, "m1", "v1", None, false).expect("no conflict");
        assert_eq!(live["data"], json!({"a": "3"}));
        assert_eq!(live["metadata"]["managedFields"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn fields_owned_by_another_applier_survive() {
        let live =
            server_side_apply(None, &json!({"metadata": {"name": "c"}, "data": {"a": "1"}}), "m1", "v1", None, false)
                .expect("no conflict");
        let live = server_side_apply(
            Some(&live),
            &json!({"metadata": {"name": "c"}, "data": {"b": "2"}}),
            "m2",
            "v1",
            None,
            false,
        )
        .expect("no conflict");
        let live = server_side_apply(Some(&live), &json!({"metadata": {"name": "c"}}), "m1", "v1", None, false)
            .expect("no conflict");
        assert_eq!(live["data"], json!({"b": "2"}));
    }

    #[test]
    fn conflicting_appliers_need_force() {
        let live =
            server_side_apply(None, &json!({"metadata": {"name": "c"}, "data": {"a": "1"}}), "m1", "v1", None, false)
                .expect("create");
        let same = server_side_apply(Some(&live), &json!({"data": {"a": "1"}}), "m2", "v1", None, false);
        assert!(same.is_ok(), "applying the same value is shared ownership, not a conflict");
        let err = server_side_apply(Some(&live), &json!({"data": {"a": "2"}}), "m2", "v1", None, false)
            .expect_err("conflict");
        assert_eq!(err.to_string(), "Apply failed with 1 conflict: conflict with \"m1\": .data.a");
        let forced =
            server_side_apply(Some(&live), &json!({"data": {"a": "2"}}), "m2", "v1", None, true).expect("forced");
        assert_eq!(forced["data"]["a"], "2");
        // m1 no longer owns .data.a, so re-applying without it does not remove it.
        let again =
            server_side_apply(Some(&forced), &json!({"metadata": {"name": "c"}}), "m1", "v1", None, false).expect("ok");
        assert_eq!(again["data"]["a"], "2");
    }

    #[test]
    fn list_items_merge_by_name() {
        let live = json!({"metadata": {"name": "s"}, "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let out = server_side_apply(
            Some(&live),
            &json!({"spec": {"containers": [{"name": "a", "image": "z"}]}}),
            "m",
            "v1",
            None,
            false,
        )
        .expect("no conflict");
        assert_eq!(out["spec"]["containers"], json!([{"name": "a", "image": "z"}, {"name": "b", "image": "y"}]));
    }
}
