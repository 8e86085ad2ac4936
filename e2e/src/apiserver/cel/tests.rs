use serde_json::{Value, json};

use super::*;

const PATH: &str = "spec.validation.openAPIV3Schema";

fn schema() -> Value {
    json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "size": {"type": "string", "x-kubernetes-validations": [
            {"rule": "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))", "message": "size must be greater than zero"}]},
        "storage": {"type": "object", "properties": {"class": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "storage is immutable"}]},
        "flags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-validations": [
            {"rule": "self.all(f, !f.startsWith('--data-dir'))"}]},
        "min": {"type": "integer"},
        "max": {"type": "integer"},
        "labels": {"type": "object", "additionalProperties": {"type": "string",
            "x-kubernetes-validations": [{"rule": "size(self) <= 3", "messageExpression": "'label value ' + self + ' is too long'"}]}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.port >= oldSelf.port", "message": "ports only grow", "reason": "FieldValueForbidden"}]}},
    }, "x-kubernetes-validations": [
        {"rule": "!has(self.min) || !has(self.max) || self.min <= self.max", "message": "min must not exceed max", "fieldPath": ".min"}]}}})
}

fn rules() -> Rules {
    compile(&schema(), PATH).unwrap_or_else(|e| panic!("{e:?}"))
}

fn errors(new: Value, old: Option<Value>) -> Vec<String> {
    rules().validate(&new, old.as_ref()).into_iter().map(|c| c.message).collect()
}

#[test]
fn every_rule_passes_and_fails() {
    assert!(
        errors(json!({"spec": {"size": "1Gi", "flags": ["--x"], "min": 1, "max": 2, "labels": {"a": "b"}}}), None)
            .is_empty()
    );
    // A null field is absent to rules (`has()` is false), as on the API server.
    assert!(errors(json!({"spec": {"min": 3, "max": null}}), None).is_empty());
    assert_eq!(
        errors(json!({"spec": {"size": "0"}}), None),
        vec![r#"spec.size: Invalid value: "string": size must be greater than zero"#]
    );
    assert_eq!(
        errors(json!({"spec": {"flags": ["--data-dir=/x"]}}), None),
        vec![r#"spec.flags: Invalid value: "array": failed rule: self.all(f, !f.startsWith('--data-dir'))"#]
    );
    assert_eq!(
        errors(json!({"spec": {"min": 3, "max": 2}}), None),
        vec![r#"spec.min: Invalid value: "object": min must not exceed max"#]
    );
    assert_eq!(
        errors(json!({"spec": {"labels": {"k": "long"}}}), None),
        vec![r#"spec.labels[k]: Invalid value: "string": label value long is too long"#]
    );
}

#[test]
fn transition_rules_run_on_update_only() {
    let old = json!({"spec": {"storage": {"class": "a"}, "ports": [{"name": "rpc", "port": 2}]}});
    assert!(errors(old.clone(), None).is_empty());
    assert!(errors(old.clone(), Some(old.clone())).is_empty());
    assert_eq!(
        errors(json!({"spec": {"storage": {"class": "b"}, "ports": [{"name": "rpc", "port": 2}]}}), Some(old.clone())),
        vec![r#"spec.storage: Invalid value: "object": storage is immutable"#]
    );
    assert_eq!(
        errors(json!({"spec": {"storage": {"class": "a"}, "ports": [{"name": "rpc", "port": 1}]}}), Some(old.clone())),
        vec!["spec.ports[0]: Forbidden: ports only grow"]
    );
    // A new list item has no old value to compare with.
    assert!(
        errors(
            json!({"spec": {"storage": {"class": "a"}, "ports": [{"name": "web", "port": 1}, {"name": "rpc", "port": 3}]}}),
            Some(old)
        )
        .is_empty()
    );
}

#[test]
fn unchanged_values_are_ratcheted() {
    let bad = json!({"spec": {"size": "0"}});
    assert_eq!(errors(bad.clone(), None).len(), 1);
    assert!(errors(bad.clone(), Some(bad)).is_empty());
}

fn compile_errors(rule: Value, on: Value) -> Vec<String> {
    let mut s = json!({"type": "object", "properties": {"spec": on}});
    s["properties"]["spec"]["x-kubernetes-validations"] = json!([rule]);
    match compile(&s, PATH) {
        Ok(_) => Vec::new(),
        Err(causes) => causes.into_iter().map(|c| c.message).collect(),
    }
}

#[test]
fn bad_rules_fail_to_compile() {
    let obj = json!({"type": "object", "properties": {"replicas": {"type": "integer"}, "image": {"type": "string"}}});
    assert!(compile_errors(json!({"rule": "self.replicas > 0"}), obj.clone()).is_empty());
    assert!(compile_errors(json!({"rule": "self.replicas >"}), obj.clone())[0].contains("compilation failed"));
    let undefined = compile_errors(json!({"rule": "self.replica > 0"}), obj.clone());
    assert!(undefined[0].starts_with(
        r#"spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:"self.replica > 0", Message:"", MessageExpression:"", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:5: undefined field 'replica'
 | self.replica > 0
 | ....^"#
    ), "{undefined:?}");
    assert!(
        compile_errors(json!({"rule": "isQuantity(self.replicas)"}), obj.clone())[0]
            .contains("found no matching overload for 'isQuantity' applied to '(int)'")
    );
    assert!(
        compile_errors(json!({"rule": "self.image.frobnicate()"}), obj.clone())[0]
            .contains("undeclared reference to 'frobnicate'")
    );
    assert!(compile_errors(json!({"rule": "self.image"}), obj.clone())[0].contains("must evaluate to a bool"));
    assert!(
        compile_errors(json!({"rule": "self.replicas > 0", "reason": "Nope"}), obj.clone())[0]
            .contains("Unsupported value: \"Nope\"")
    );
    assert!(
        compile_errors(json!({"rule": "self.replicas > 0", "fieldPath": ".nope"}), obj.clone())[0]
            .contains("fieldPath must be a valid path")
    );
    let in_set = json!({"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string",
        "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}});
    let mut s = json!({"type": "object", "properties": {"spec": in_set}});
    let e = compile(&s, PATH).err().unwrap_or_default();
    assert!(e[0].message.contains("oldSelf cannot be used on the uncorrelatable portion"), "{e:?}");
    s["properties"]["spec"]["properties"]["tags"]["x-kubernetes-list-type"] = json!("map");
    s["properties"]["spec"]["properties"]["tags"]["x-kubernetes-list-map-keys"] = json!([]);
    assert!(compile(&s, PATH).is_ok());
}

#[test]
fn root_rules_see_type_and_object_meta() {
    let s = json!({"type": "object", "properties": {"spec": {"type": "object"}},
        "x-kubernetes-validations": [{"rule": "self.metadata.name.size() <= 5 && self.kind == 'Widget'", "message": "short names only"}]});
    let rules = compile(&s, PATH).unwrap_or_else(|e| panic!("{e:?}"));
    let obj = |name: &str| json!({"apiVersion": "x/v1", "kind": "Widget", "metadata": {"name": name, "uid": "u"}, "spec": {}});
    assert!(rules.validate(&obj("demo"), None).is_empty());
    let errors: Vec<String> = rules.validate(&obj("toolong"), None).into_iter().map(|c| c.message).collect();
    assert_eq!(errors, vec![r#"<nil>: Invalid value: "object": short names only"#]);
    let mut bad = s.clone();
    bad["x-kubernetes-validations"][0]["rule"] = json!("self.metadata.uid == ''");
    assert!(compile(&bad, PATH).is_err(), "only name and generateName of metadata are visible");
}
