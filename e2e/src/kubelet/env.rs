//! Container environment: `env` (values, downward API, ConfigMap/Secret keys), `envFrom`,
//! and `$(VAR)` expansion in values, command and args.

use serde_json::Value;

use crate::apiserver::Api;
use crate::apiserver::util::{base64_decode, lookup_path, meta_str};

/// Expands `$(VAR)` references from `vars`; `$$(VAR)` escapes; unknown references stay.
pub fn expand(s: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("$(") {
            out.push_str("$(");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(end) => {
                    let name = &tail[..end];
                    match vars.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Resolves a downward-API `fieldPath` against the pod.
pub fn field_ref(pod: &Value, path: &str) -> String {
    let bracket = |prefix: &str, map: &str| {
        path.strip_prefix(prefix).and_then(|r| r.strip_prefix("['")).and_then(|r| r.strip_suffix("']")).map(|k| {
            pod.pointer(&format!("/metadata/{map}"))
                .and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
    };
    if let Some(v) = bracket("metadata.labels", "labels").or_else(|| bracket("metadata.annotations", "annotations")) {
        return v;
    }
    match lookup_path(pod, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn object_data(api: &Api, plural: &str, ns: &str, name: &str) -> Option<serde_json::Map<String, Value>> {
    let rt = api.resource("", plural).ok()?;
    let obj = api.get(&rt, "v1", Some(ns), name).ok()?;
    obj.get("data").and_then(Value::as_object).cloned()
}

fn data_value(v: &Value, secret: bool) -> String {
    let s = v.as_str().unwrap_or("");
    if secret {
        base64_decode(s).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    } else {
        s.to_string()
    }
}

/// The container's variables (after `base`), in definition order.
pub fn resolve(api: &Api, pod: &Value, container: &Value, base: &[(String, String)]) -> Vec<(String, String)> {
    let ns = meta_str(pod, "namespace").unwrap_or("default");
    let mut vars: Vec<(String, String)> = base.to_vec();
    for from in container.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
        let prefix = from.get("prefix").and_then(Value::as_str).unwrap_or("");
        let (plural, name, secret) = match (from.pointer("/configMapRef/name"), from.pointer("/secretRef/name")) {
            (Some(n), _) => ("configmaps", n.as_str().unwrap_or(""), false),
            (_, Some(n)) => ("secrets", n.as_str().unwrap_or(""), true),
            _ => continue,
        };
        for (k, v) in object_data(api, plural, ns, name).unwrap_or_default() {
            vars.push((format!("{prefix}{k}"), data_value(&v, secret)));
        }
    }
    for e in container.get("env").and_then(Value::as_array).into_iter().flatten() {
        let Some(name) = e.get("name").and_then(Value::as_str) else {
            continue;
        };
        let value = if let Some(v) = e.get("value").and_then(Value::as_str) {
            expand(v, &vars)
        } else if let Some(path) = e.pointer("/valueFrom/fieldRef/fieldPath").and_then(Value::as_str) {
            field_ref(pod, path)
        } else if let Some(r) = e.pointer("/valueFrom/configMapKeyRef") {
            let (n, k) = (
                r.get("name").and_then(Value::as_str).unwrap_or(""),
                r.get("key").and_then(Value::as_str).unwrap_or(""),
            );
            object_data(api, "configmaps", ns, n)
                .and_then(|d| d.get(k).map(|v| data_value(v, false)))
                .unwrap_or_default()
        } else if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
            let (n, k) = (
                r.get("name").and_then(Value::as_str).unwrap_or(""),
                r.get("key").and_then(Value::as_str).unwrap_or(""),
            );
            object_data(api, "secrets", ns, n).and_then(|d| d.get(k).map(|v| data_value(v, true))).unwrap_or_default()
        } else {
            String::new()
        };
        vars.push((name.to_string(), value));
    }
    // Later definitions win, as with a real container runtime.
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in vars {
        out.retain(|(ok, _)| *ok != k);
        out.push((k, v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expands_references() {
        let vars = vec![("A".to_string(), "1".to_string())];
        assert_eq!(expand("x$(A)y$(B)$$(A)$", &vars), "x1y$(B)$(A)$");
    }

    #[test]
    fn downward_api_paths() {
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "web"}}, "status": {"podIP": "127.1.1.2"}});
        assert_eq!(field_ref(&pod, "metadata.name"), "p");
        assert_eq!(field_ref(&pod, "metadata.labels['app']"), "web");
        assert_eq!(field_ref(&pod, "status.podIP"), "127.1.1.2");
    }
}
