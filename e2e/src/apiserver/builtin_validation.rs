//! Validation of built-in kinds, the subset that catches common client mistakes the way the
//! API server would: object names, label and annotation keys, required fields of pods,
//! workloads and services, config keys, and immutable fields on update.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::error::FieldCause;
use super::selector::LabelSelector;

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).unwrap_or_else(|_| unreachable!("constant pattern")))
}

fn is_subdomain(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    s.len() <= 253 && re(&R, r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").is_match(s)
}

fn is_dns_label(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    s.len() <= 63 && re(&R, r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").is_match(s)
}

fn is_label_value(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    s.len() <= 63 && re(&R, r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").is_match(s)
}

fn is_qualified_name(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_subdomain)
        && !name.is_empty()
        && name.len() <= 63
        && re(&R, r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").is_match(name)
}

fn is_config_key(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    s.len() <= 253 && re(&R, r"^[-._a-zA-Z0-9]+$").is_match(s)
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

#[derive(Default)]
struct Errors(Vec<FieldCause>);

impl Errors {
    fn invalid(&mut self, field: &str, value: &Value, msg: &str) {
        self.0.push(FieldCause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("{field}: Invalid value: {}: {msg}", show(value)),
        });
    }
    fn required(&mut self, field: &str) {
        self.0.push(FieldCause {
            reason: "FieldValueRequired",
            field: field.into(),
            message: format!("{field}: Required value"),
        });
    }
    fn forbidden(&mut self, field: &str, msg: &str) {
        self.0.push(FieldCause {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("{field}: Forbidden: {msg}"),
        });
    }
    fn duplicate(&mut self, field: &str, value: &Value) {
        self.0.push(FieldCause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("{field}: Duplicate value: {}", show(value)),
        });
    }
}

fn metadata(e: &mut Errors, obj: &Value, name_is_label: bool) {
    if let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str) {
        let (ok, msg) =
            if name_is_label { (is_dns_label(name), LABEL_MSG) } else { (is_subdomain(name), SUBDOMAIN_MSG) };
        if !ok {
            e.invalid("metadata.name", &Value::String(name.into()), msg);
        }
    }
    labels(e, obj.pointer("/metadata/labels"), "metadata.labels");
    for k in obj.pointer("/metadata/annotations").and_then(Value::as_object).into_iter().flat_map(|m| m.keys()) {
        if !is_qualified_name(k) {
            e.invalid("metadata.annotations", &Value::String(k.clone()), QUALIFIED_MSG);
        }
    }
}

fn labels(e: &mut Errors, labels: Option<&Value>, field: &str) {
    for (k, v) in labels.and_then(Value::as_object).into_iter().flatten() {
        if !is_qualified_name(k) {
            e.invalid(field, &Value::String(k.clone()), QUALIFIED_MSG);
        }
        match v.as_str() {
            Some(s) if is_label_value(s) => {}
            _ => e.invalid(field, v, LABEL_VALUE_MSG),
        }
    }
}

fn containers(e: &mut Errors, spec: &Value, path: &str, required: bool) {
    let list = spec.get(if required { "containers" } else { "initContainers" }).and_then(Value::as_array);
    let field = format!("{path}.{}", if required { "containers" } else { "initContainers" });
    if required && list.is_none_or(Vec::is_empty) {
        e.required(&field);
    }
    let mut seen = Vec::new();
    for (i, c) in list.into_iter().flatten().enumerate() {
        let at = format!("{field}[{i}]");
        match c.get("name").and_then(Value::as_str) {
            None | Some("") => e.required(&format!("{at}.name")),
            Some(n) if !is_dns_label(n) => e.invalid(&format!("{at}.name"), &Value::String(n.into()), LABEL_MSG),
            Some(n) if seen.contains(&n) => e.duplicate(&format!("{at}.name"), &Value::String(n.into())),
            Some(n) => seen.push(n),
        }
        if c.get("image").and_then(Value::as_str).is_none_or(str::is_empty) {
            e.required(&format!("{at}.image"));
        }
        for (j, p) in c.get("ports").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let port = p.get("containerPort").and_then(Value::as_u64).unwrap_or(0);
            if !(1..=65535).contains(&port) {
                e.invalid(
                    &format!("{at}.ports[{j}].containerPort"),
                    p.get("containerPort").unwrap_or(&Value::Null),
                    "must be between 1 and 65535, inclusive",
                );
            }
        }
    }
}

fn pod_spec(e: &mut Errors, spec: Option<&Value>, path: &str) {
    let Some(spec) = spec else {
        e.required(path);
        return;
    };
    containers(e, spec, path, true);
    containers(e, spec, path, false);
}

fn workload(e: &mut Errors, obj: &Value, kind: &str) {
    let Some(selector) = obj.pointer("/spec/selector").filter(|s| s.is_object()) else {
        e.required("spec.selector");
        return;
    };
    let template_labels = obj.pointer("/spec/template/metadata/labels").cloned().unwrap_or(Value::Null);
    let pod = serde_json::json!({"metadata": {"labels": template_labels}});
    let empty = selector.get("matchLabels").and_then(Value::as_object).is_none_or(|m| m.is_empty())
        && selector.get("matchExpressions").and_then(Value::as_array).is_none_or(|m| m.is_empty());
    if empty {
        e.invalid("spec.selector", selector, "empty selector is invalid for deployment");
    } else if !LabelSelector::from_object(selector).matches(&pod) {
        e.invalid("spec.template.metadata.labels", &template_labels, "`selector` does not match template `labels`");
    }
    labels(e, obj.pointer("/spec/template/metadata/labels"), "spec.template.metadata.labels");
    pod_spec(e, obj.pointer("/spec/template/spec"), "spec.template.spec");
    if kind == "StatefulSet"
        && let Some(p) =
            obj.pointer("/spec/template/spec/restartPolicy").and_then(Value::as_str).filter(|p| *p != "Always")
    {
        e.0.push(FieldCause {
            reason: "FieldValueNotSupported",
            field: "spec.template.spec.restartPolicy".into(),
            message: format!(
                "spec.template.spec.restartPolicy: Unsupported value: {p:?}: supported values: \"Always\""
            ),
        });
    }
}

fn service(e: &mut Errors, obj: &Value) {
    let headless = obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
    let external = obj.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
    let ports = obj.pointer("/spec/ports").and_then(Value::as_array);
    if ports.is_none_or(Vec::is_empty) && !headless && !external {
        e.required("spec.ports");
    }
    for (i, p) in ports.into_iter().flatten().enumerate() {
        let port = p.get("port").and_then(Value::as_u64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            e.invalid(
                &format!("spec.ports[{i}].port"),
                p.get("port").unwrap_or(&Value::Null),
                "must be between 1 and 65535, inclusive",
            );
        }
        if ports.is_some_and(|a| a.len() > 1) && p.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
            e.required(&format!("spec.ports[{i}].name"));
        }
    }
}

fn config_keys(e: &mut Errors, obj: &Value) {
    for field in ["data", "binaryData", "stringData"] {
        for k in obj.get(field).and_then(Value::as_object).into_iter().flat_map(|m| m.keys()) {
            if !is_config_key(k) {
                e.invalid(&format!("{field}[{k}]"), &Value::String(k.clone()), CONFIG_KEY_MSG);
            }
        }
    }
}

fn without(spec: Option<&Value>, keys: &[&str]) -> Value {
    let mut v = spec.cloned().unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
    v
}

fn immutable(e: &mut Errors, group: &str, kind: &str, obj: &Value, old: &Value) {
    let (new_spec, old_spec) = (obj.get("spec"), old.get("spec"));
    match (group, kind) {
        ("apps", "StatefulSet") => {
            let mutable = [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ];
            if without(new_spec, &mutable) != without(old_spec, &mutable) {
                e.forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden");
            }
        }
        ("apps", "Deployment" | "ReplicaSet") if obj.pointer("/spec/selector") != old.pointer("/spec/selector") => {
            e.invalid("spec.selector", obj.pointer("/spec/selector").unwrap_or(&Value::Null), "field is immutable");
        }
        ("", "PersistentVolumeClaim") => {
            let strip = |s: Option<&Value>| {
                let mut v = without(s, &["volumeName"]);
                if let Some(r) = v.pointer_mut("/resources").and_then(Value::as_object_mut) {
                    r.remove("requests");
                }
                v
            };
            if strip(new_spec) != strip(old_spec) {
                e.forbidden("spec", "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims");
            }
        }
        ("", "Pod") => {
            let strip = |s: Option<&Value>| {
                let mut v =
                    without(s, &["activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "nodeName"]);
                for list in ["containers", "initContainers"] {
                    for c in v.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
                        if let Some(m) = c.as_object_mut() {
                            m.remove("image");
                        }
                    }
                }
                v
            };
            let old_node = old.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
            let rebinding =
                !old_node.is_empty() && obj.pointer("/spec/nodeName").and_then(Value::as_str) != Some(old_node);
            if strip(new_spec) != strip(old_spec) || rebinding {
                e.forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)");
            }
        }
        ("", "ConfigMap" | "Secret") if old.get("immutable").and_then(Value::as_bool) == Some(true) => {
            if obj.get("data") != old.get("data") || obj.get("binaryData") != old.get("binaryData") {
                e.forbidden("data", "field is immutable when `immutable` is set");
            }
            if obj.get("immutable") != old.get("immutable") {
                e.forbidden("immutable", "field is immutable when `immutable` is set");
            }
        }
        _ => {}
    }
}

/// Validates a built-in object (after defaulting); `old` is the stored object on updates.
pub fn validate(group: &str, kind: &str, obj: &Value, old: Option<&Value>) -> Vec<FieldCause> {
    let mut e = Errors::default();
    metadata(&mut e, obj, matches!((group, kind), ("", "Namespace" | "Service")));
    match (group, kind) {
        ("", "Pod") => pod_spec(&mut e, obj.get("spec"), "spec"),
        ("apps", "StatefulSet" | "Deployment" | "ReplicaSet") => workload(&mut e, obj, kind),
        ("", "Service") => service(&mut e, obj),
        ("", "ConfigMap" | "Secret") => config_keys(&mut e, obj),
        _ => {}
    }
    if let Some(old) = old {
        immutable(&mut e, group, kind, obj, old);
    }
    e.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(group: &str, kind: &str, obj: Value, old: Option<Value>) -> Vec<String> {
        validate(group, kind, &obj, old.as_ref()).into_iter().map(|c| c.message).collect()
    }

    #[test]
    fn names_and_labels() {
        assert!(
            messages(
                "",
                "ConfigMap",
                json!({"metadata": {"name": "ok-name.x", "labels": {"app.kubernetes.io/name": "Kudu_1"}}}),
                None
            )
            .is_empty()
        );
        let m = messages("", "ConfigMap", json!({"metadata": {"name": "Bad"}}), None);
        assert!(m[0].starts_with("metadata.name: Invalid value: \"Bad\": a lowercase RFC 1123 subdomain"), "{m:?}");
        assert_eq!(
            messages("", "Service", json!({"metadata": {"name": "a.b"}, "spec": {"clusterIP": "None"}}), None).len(),
            1
        );
        let m = messages("", "ConfigMap", json!({"metadata": {"name": "c", "labels": {"k": "has space"}}}), None);
        assert!(m[0].starts_with("metadata.labels: Invalid value: \"has space\""), "{m:?}");
        assert_eq!(
            messages("", "ConfigMap", json!({"metadata": {"name": "c"}, "data": {"bad key": "v"}}), None).len(),
            1
        );
    }

    #[test]
    fn workloads_need_matching_selector_and_containers() {
        let sts = json!({"metadata": {"name": "s"}, "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let m = messages("apps", "StatefulSet", sts, None);
        assert_eq!(
            m,
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"b\"}: `selector` does not match template `labels`"
            ]
        );
        let pod =
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}, {"name": "c", "image": "i"}]}});
        assert_eq!(
            messages("", "Pod", pod, None),
            vec!["spec.containers[0].image: Required value", "spec.containers[1].name: Duplicate value: \"c\""]
        );
    }

    #[test]
    fn statefulset_spec_is_mostly_immutable() {
        let old = json!({"metadata": {"name": "s"}, "spec": {"replicas": 1, "serviceName": "x", "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(3);
        assert!(messages("apps", "StatefulSet", scaled, Some(old.clone())).is_empty());
        let mut renamed = old.clone();
        renamed["spec"]["serviceName"] = json!("y");
        assert_eq!(messages("apps", "StatefulSet", renamed, Some(old)).len(), 1);
    }
}
