//! Structural-schema handling for custom resources: defaulting, pruning and validation
//! against `openAPIV3Schema` (types, required, enum, pattern, min/max, lengths, items).

use serde_json::{Map, Value};

use super::error::FieldCause;

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn props(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

fn preserves_unknown(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true)
}

/// Fills in `default` values for absent properties, recursively.
pub fn apply_defaults(v: &mut Value, schema: &Value) {
    match v {
        Value::Object(m) => {
            if let Some(p) = props(schema) {
                for (k, s) in p {
                    if !m.contains_key(k)
                        && let Some(d) = s.get("default")
                    {
                        m.insert(k.clone(), d.clone());
                    }
                    if let Some(child) = m.get_mut(k) {
                        apply_defaults(child, s);
                    }
                }
            }
            if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                let known = props(schema);
                for (k, child) in m.iter_mut() {
                    if known.is_none_or(|p| !p.contains_key(k)) {
                        apply_defaults(child, ap);
                    }
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                a.iter_mut().for_each(|i| apply_defaults(i, items));
            }
        }
        _ => {}
    }
}

/// Removes fields the schema does not know (unless preserved); returns their paths.
pub fn prune(v: &mut Value, schema: &Value, path: &str, root: bool) -> Vec<String> {
    let mut unknown = Vec::new();
    prune_into(v, schema, path, root, &mut unknown);
    unknown
}

fn prune_into(v: &mut Value, schema: &Value, path: &str, root: bool, unknown: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let known = props(schema);
            let additional = schema.get("additionalProperties");
            let keep_all =
                preserves_unknown(schema) || additional.is_some_and(|a| a.is_object() || a == &Value::Bool(true));
            let mut drop = Vec::new();
            for (k, child) in m.iter_mut() {
                if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                match known.and_then(|p| p.get(k)) {
                    Some(s) => prune_into(child, s, &child_path(path, k), false, unknown),
                    None if keep_all => {
                        if let Some(a) = additional.filter(|a| a.is_object()) {
                            prune_into(child, a, &child_path(path, k), false, unknown);
                        }
                    }
                    None => drop.push(k.clone()),
                }
            }
            for k in drop {
                m.remove(&k);
                unknown.push(child_path(path, &k));
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for (i, item) in a.iter_mut().enumerate() {
                    prune_into(item, items, &format!("{path}[{i}]"), false, unknown);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn type_ok(v: &Value, ty: &str, schema: &Value) -> bool {
    if schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return v.is_i64() || v.is_u64() || v.is_string();
    }
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => true,
    }
}

/// Validates `v` against `schema`, appending causes. `root` skips `metadata`, `apiVersion`, `kind`.
pub fn validate(v: &Value, schema: &Value, path: &str, root: bool, causes: &mut Vec<FieldCause>) {
    let invalid = |causes: &mut Vec<FieldCause>, msg: String| {
        causes.push(FieldCause {
            reason: "FieldValueInvalid",
            field: path.to_string(),
            message: format!("{path}: Invalid value: {}: {msg}", show(v)),
        });
    };
    if v.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) && schema.get("type").is_some() {
            let ty = schema.get("type").and_then(Value::as_str).unwrap_or("");
            causes.push(FieldCause {
                reason: "FieldValueInvalid",
                field: path.into(),
                message: format!("{path}: Invalid value: \"null\": {path} in body must be of type {ty}: \"null\""),
            });
        }
        return;
    }
    if let Some(ty) = schema.get("type").and_then(Value::as_str)
        && !type_ok(v, ty, schema)
    {
        causes.push(FieldCause {
            reason: "FieldValueInvalid",
            field: path.into(),
            message: format!(
                "{path}: Invalid value: \"{}\": {path} in body must be of type {ty}: {}",
                type_name(v),
                show(v)
            ),
        });
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list = allowed.iter().map(show).collect::<Vec<_>>().join(", ");
        causes.push(FieldCause {
            reason: "FieldValueNotSupported",
            field: path.into(),
            message: format!("{path}: Unsupported value: {}: supported values: {list}", show(v)),
        });
    }
    match v {
        Value::String(s) => {
            if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                match regex::Regex::new(p) {
                    Ok(re) if !re.is_match(s) => invalid(causes, format!("{path} in body should match '{p}'")),
                    Ok(_) => {}
                    Err(e) => invalid(causes, format!("invalid pattern {p:?} in schema: {e}")),
                }
            }
            let len = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64).filter(|m| len > *m) {
                causes.push(FieldCause {
                    reason: "FieldValueTooLong",
                    field: path.into(),
                    message: format!("{path}: Too long: may not be more than {max} bytes"),
                });
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64).filter(|m| len < *m) {
                invalid(causes, format!("{path} in body should be at least {min} chars long"));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let excl_min = schema.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
            let excl_max = schema.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && (x < min || (excl_min && x == min))
            {
                let op = if excl_min { "greater than" } else { "greater than or equal to" };
                invalid(causes, format!("{path} in body should be {op} {}", schema["minimum"]));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && (x > max || (excl_max && x == max))
            {
                let op = if excl_max { "less than" } else { "less than or equal to" };
                invalid(causes, format!("{path} in body should be {op} {}", schema["maximum"]));
            }
        }
        Value::Array(a) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64).filter(|m| a.len() as u64 > *m) {
                causes.push(FieldCause {
                    reason: "FieldValueTooMany",
                    field: path.into(),
                    message: format!("{path}: Too many: {}: must have at most {max} items", a.len()),
                });
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64).filter(|m| (a.len() as u64) < *m) {
                invalid(causes, format!("{path} in body should have at least {min} items"));
            }
            if let Some(items) = schema.get("items") {
                for (i, item) in a.iter().enumerate() {
                    validate(item, items, &format!("{path}[{i}]"), false, causes);
                }
            }
        }
        Value::Object(m) => {
            for req in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
            {
                if !m.contains_key(req) {
                    let p = child_path(path, req);
                    causes.push(FieldCause {
                        reason: "FieldValueRequired",
                        field: p.clone(),
                        message: format!("{p}: Required value"),
                    });
                }
            }
            let known = props(schema);
            for (k, child) in m {
                if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                match known.and_then(|p| p.get(k)) {
                    Some(s) => validate(child, s, &child_path(path, k), false, causes),
                    None => {
                        if let Some(a) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                            validate(child, a, &child_path(path, k), false, causes);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "integer", "minimum": 1, "maximum": 5},
            "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
            "name": {"type": "string", "pattern": "^[a-z]+$"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }}}})
    }

    fn messages(obj: &Value) -> Vec<String> {
        let mut causes = Vec::new();
        validate(obj, &schema(), "", true, &mut causes);
        causes.into_iter().map(|c| c.message).collect()
    }

    #[test]
    fn reports_each_rule() {
        assert!(messages(&json!({"metadata": {"name": "x"}, "spec": {"size": 3}})).is_empty());
        assert_eq!(messages(&json!({"spec": {}})), vec!["spec.size: Required value"]);
        assert_eq!(
            messages(&json!({"spec": {"size": "3"}})),
            vec![r#"spec.size: Invalid value: "string": spec.size in body must be of type integer: "3""#]
        );
        assert_eq!(
            messages(&json!({"spec": {"size": 9}})),
            vec!["spec.size: Invalid value: 9: spec.size in body should be less than or equal to 5"]
        );
        assert_eq!(
            messages(&json!({"spec": {"size": 0}})),
            vec!["spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"]
        );
        assert_eq!(
            messages(&json!({"spec": {"size": 1, "mode": "slow"}})),
            vec![r#"spec.mode: Unsupported value: "slow": supported values: "fast", "safe""#]
        );
        assert_eq!(
            messages(&json!({"spec": {"size": 1, "name": "A1"}})),
            vec![r#"spec.name: Invalid value: "A1": spec.name in body should match '^[a-z]+$'"#]
        );
        assert_eq!(messages(&json!({"spec": {"size": 1, "tags": [1]}})).len(), 1);
    }

    #[test]
    fn defaults_and_prunes() {
        let mut obj = json!({"metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {"size": 1, "bogus": 1, "extra": {"kept": true}}, "junk": 1});
        apply_defaults(&mut obj, &schema());
        let unknown = prune(&mut obj, &schema(), "", true);
        assert_eq!(unknown, vec!["spec.bogus".to_string(), "junk".to_string()]);
        assert_eq!(
            obj,
            json!({"metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {"size": 1, "mode": "safe", "extra": {"kept": true}}})
        );
    }
}
