//! A small validator for the OpenAPI v3 subset structural CRD schemas use, enough to
//! check sample specs against the generated schema the way the API server would (minus
//! CEL rules, which are only checked for presence).

use std::collections::BTreeSet;

use regex::Regex;
use serde_json::Value;

/// Validate `value` against `schema`; returns every violation as `path: message`.
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "", &mut errors);
    errors
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let mut fail = |msg: String| errors.push(format!("{}: {msg}", if path.is_empty() { "<root>" } else { path }));
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            fail("null is not allowed".into());
        }
        return;
    }
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            fail(format!("{value} is neither an integer nor a string"));
        }
        return;
    }
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            other => panic!("schema type {other} not supported by the test validator"),
        };
        if !ok {
            fail(format!("{value} is not of type {ty}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        let matches = allowed.iter().any(|a| a == value || (a.as_f64().is_some() && a.as_f64() == value.as_f64()));
        if !matches {
            fail(format!("{value} is not one of {}", Value::Array(allowed.clone())));
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            fail(format!("{n} is less than the minimum {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            fail(format!("{n} is greater than the maximum {max}"));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            fail(format!("{s:?} is shorter than {min}"));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            fail(format!("{s:?} is longer than {max}"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            let re = Regex::new(pattern).expect("schema pattern compiles");
            if !re.is_match(s) {
                fail(format!("{s:?} does not match {pattern}"));
            }
        }
    }
    if let Some(items) = value.as_array() {
        let len = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && len < min
        {
            fail(format!("{len} items, fewer than {min}"));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && len > max
        {
            fail(format!("{len} items, more than {max}"));
        }
        if schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
            let unique: BTreeSet<String> = items.iter().map(Value::to_string).collect();
            if unique.len() != items.len() {
                fail("duplicate items in a set".into());
            }
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(item_schema, item, &format!("{path}[{i}]"), errors);
            }
        }
    }
    if let Some(object) = value.as_object() {
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for key in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(key) {
                    errors.push(format!("{path}.{key}: required"));
                }
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        if additional == Some(&Value::Bool(false)) && properties.is_none() {
            for key in object.keys() {
                errors.push(format!("{path}.{key}: unknown field"));
            }
        }
        let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        for (key, field) in object {
            let field_path = format!("{path}.{key}");
            match (properties.and_then(|p| p.get(key)), additional) {
                (Some(field_schema), _) => check(field_schema, field, &field_path, errors),
                (None, Some(extra)) if extra.is_object() => check(extra, field, &field_path, errors),
                _ if preserve || properties.is_none() => {}
                _ => errors.push(format!("{field_path}: unknown field")),
            }
        }
    }
}

/// Every `x-kubernetes-validations` rule in `schema`, as (path, rule).
pub fn cel_rules(schema: &Value) -> Vec<(String, String)> {
    let mut rules = Vec::new();
    collect_rules(schema, "", &mut rules);
    rules
}

fn collect_rules(schema: &Value, path: &str, rules: &mut Vec<(String, String)>) {
    if let Some(list) = schema.get("x-kubernetes-validations").and_then(Value::as_array) {
        for rule in list {
            let text = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
            rules.push((path.to_owned(), text.to_owned()));
        }
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (key, sub) in properties {
            collect_rules(sub, &format!("{path}.{key}"), rules);
        }
    }
    if let Some(items) = schema.get("items") {
        collect_rules(items, &format!("{path}[]"), rules);
    }
}
