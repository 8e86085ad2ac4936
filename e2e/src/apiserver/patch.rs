//! JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a simplified strategic merge patch.

use serde_json::{Map, Value};

use super::error::ApiError;

/// Applies an RFC 7386 merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn tokens(path: &str) -> Result<Vec<String>, ApiError> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let rest = path.strip_prefix('/').ok_or_else(|| ApiError::bad_request(format!("invalid JSON pointer {path:?}")))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn parent_mut<'a>(doc: &'a mut Value, toks: &[String], path: &str) -> Result<&'a mut Value, ApiError> {
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::unprocessable(format!(
                "the server rejected our request due to an error in our request: path {path:?} does not exist"
            ))
        })?;
    }
    Ok(cur)
}

fn get_path<'a>(doc: &'a Value, path: &str) -> Result<Option<&'a Value>, ApiError> {
    let mut cur = doc;
    for t in tokens(path)? {
        let next = match cur {
            Value::Object(m) => m.get(&t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    let toks = tokens(path)?;
    let Some((last, parents)) = toks.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parents, path)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let idx = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| ApiError::unprocessable(format!("invalid array index in {path:?}")))?
            };
            if idx > a.len() {
                return Err(ApiError::unprocessable(format!("array index out of bounds in {path:?}")));
            }
            a.insert(idx, value);
        }
        _ => return Err(ApiError::unprocessable(format!("cannot add at {path:?}"))),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let toks = tokens(path)?;
    let (last, parents) = toks.split_last().ok_or_else(|| ApiError::unprocessable("cannot remove the root"))?;
    let missing = || {
        ApiError::unprocessable(format!(
            "the server rejected our request due to an error in our request: unable to remove nonexistent key: {path}"
        ))
    };
    match parent_mut(doc, parents, path)? {
        Value::Object(m) => m.remove(last).ok_or_else(missing),
        Value::Array(a) => {
            let idx = last.parse::<usize>().map_err(|_| missing())?;
            if idx < a.len() { Ok(a.remove(idx)) } else { Err(missing()) }
        }
        _ => Err(missing()),
    }
}

/// Applies an RFC 6902 JSON patch. A `test` against a missing path compares as `null`,
/// as the API server's json-patch library does.
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch.as_array().ok_or_else(|| ApiError::bad_request("json patch must be an array"))?;
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request("json patch operation without path"))?;
        let value =
            || op.get("value").cloned().ok_or_else(|| ApiError::bad_request(format!("{name} operation without value")));
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request(format!("{name} operation without from")))
        };
        match name {
            "add" => add(doc, path, value()?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                remove(doc, path)?;
                add(doc, path, value()?)?;
            }
            "move" => {
                let v = remove(doc, from()?)?;
                add(doc, path, v)?;
            }
            "copy" => {
                let v = get_path(doc, from()?)?
                    .cloned()
                    .ok_or_else(|| ApiError::unprocessable(format!("copy from missing path {path:?}")))?;
                add(doc, path, v)?;
            }
            "test" => {
                let want = value()?;
                let have = get_path(doc, path)?.cloned().unwrap_or(Value::Null);
                if have != want {
                    return Err(ApiError::unprocessable(format!(
                        "the server rejected our request due to an error in our request: testing value {path} failed"
                    )));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!("unknown json patch operation {other:?}")));
            }
        }
    }
    Ok(())
}

/// Keys whose object lists merge item by item under strategic merge patch, in priority order.
const MERGE_KEYS: &[&str] = &["name", "containerPort", "mountPath", "devicePath", "ip", "type", "uid", "topologyKey"];

/// The merge key of a list of objects, if every item carries one of the known keys.
pub fn list_merge_key(items: &[&Value]) -> Option<&'static str> {
    if items.is_empty() || !items.iter().all(|i| i.is_object()) {
        return None;
    }
    MERGE_KEYS.iter().copied().find(|k| items.iter().all(|i| i.get(*k).is_some()))
}

/// Applies a strategic merge patch, simplified: maps merge like merge patch; lists of objects
/// merge by a known key (`name`, `containerPort`, ...) and honour `$patch: delete`;
/// `$patch: replace`, `$deleteFromPrimitiveList/…`, `$setElementOrder/…` and `$retainKeys`
/// are understood; other lists are replaced.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch.clone();
        strip_directives(&mut replacement);
        *target = replacement;
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (t.get_mut(field), v.as_array()) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Array(items) => {
                let merged = match t.get(k) {
                    Some(Value::Array(live)) => merge_lists(live, items),
                    _ => {
                        let mut fresh: Vec<Value> = items.iter().filter(|i| !is_delete_directive(i)).cloned().collect();
                        fresh.iter_mut().for_each(strip_directives);
                        fresh
                    }
                };
                t.insert(k.clone(), Value::Array(merged));
            }
            Value::Object(_) => strategic_merge(t.entry(k.clone()).or_insert(Value::Null), v),
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
}

fn is_delete_directive(v: &Value) -> bool {
    v.get("$patch").and_then(Value::as_str) == Some("delete")
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

fn merge_lists(live: &[Value], patch: &[Value]) -> Vec<Value> {
    let all: Vec<&Value> = live.iter().chain(patch.iter()).collect();
    let Some(key) = list_merge_key(&all) else {
        let mut out: Vec<Value> = patch.to_vec();
        out.iter_mut().for_each(strip_directives);
        return out;
    };
    let mut out: Vec<Value> = live.to_vec();
    for item in patch {
        let id = item.get(key);
        let pos = out.iter().position(|o| o.get(key) == id);
        if is_delete_directive(item) {
            if let Some(p) = pos {
                out.remove(p);
            }
            continue;
        }
        match pos {
            Some(p) => strategic_merge(&mut out[p], item),
            None => {
                let mut fresh = item.clone();
                strip_directives(&mut fresh);
                out.push(fresh);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
    }

    #[test]
    fn json_patch_ops_and_null_test_on_missing() {
        let mut doc = json!({"metadata": {"name": "x"}, "list": [1, 2]});
        json_patch(&mut doc, &json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]))
            .expect("test null on missing passes");
        json_patch(
            &mut doc,
            &json!([
                {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
                {"op": "add", "path": "/list/-", "value": 3},
                {"op": "replace", "path": "/metadata/name", "value": "y"},
                {"op": "remove", "path": "/list/0"},
            ]),
        )
        .expect("ops apply");
        assert_eq!(doc, json!({"metadata": {"name": "y", "finalizers": ["f"]}, "list": [2, 3]}));
        assert!(json_patch(&mut doc, &json!([{"op": "test", "path": "/metadata/name", "value": "x"}])).is_err());
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }

    #[test]
    fn strategic_merge_by_name_and_directives() {
        let mut live = json!({"spec": {"containers": [{"name": "a", "image": "i1"}, {"name": "b", "image": "i2"}], "args": ["x"]}});
        strategic_merge(
            &mut live,
            &json!({"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}],
                "containers": [{"name": "a", "image": "i9"}, {"name": "b", "$patch": "delete"}, {"name": "c", "image": "i3"}],
                "args": ["y"]
            }}),
        );
        assert_eq!(
            live,
            json!({"spec": {"containers": [{"name": "a", "image": "i9"}, {"name": "c", "image": "i3"}], "args": ["y"]}})
        );
    }
}
