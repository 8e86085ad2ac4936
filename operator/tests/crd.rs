//! The CRD: checked-in copies match the generated text (the CI drift check), and the
//! schema accepts good specs and rejects bad ones.

mod support;

use std::path::PathBuf;

use serde_json::{Value, json};

use support::schema;

const REGENERATE: &str = "cargo run -p kudu-operator -- crd > crds/kudu.dev_kuduclusters.yaml \
     && cp crds/kudu.dev_kuduclusters.yaml charts/kudu-operator/crds/";

fn repo_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

fn assert_no_drift(relative: &str) {
    let generated = kudu_operator::crd::crd_yaml().expect("CRD renders");
    let checked_in = std::fs::read_to_string(repo_file(relative))
        .unwrap_or_else(|e| panic!("reading {relative}: {e}; regenerate with: {REGENERATE}"));
    assert!(generated == checked_in, "{relative} is out of date with the Rust types; regenerate with: {REGENERATE}");
}

#[test]
fn crds_dir_matches_generated_crd() {
    assert_no_drift("crds/kudu.dev_kuduclusters.yaml");
}

#[test]
fn helm_chart_crd_matches_generated_crd() {
    assert_no_drift("charts/kudu-operator/crds/kudu.dev_kuduclusters.yaml");
}

#[test]
fn checked_in_crd_parses_back_to_the_same_object() {
    let text = std::fs::read_to_string(repo_file("crds/kudu.dev_kuduclusters.yaml")).unwrap();
    let parsed: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(parsed, serde_json::to_value(kudu_operator::crd::crd()).unwrap());
}

fn version() -> Value {
    let crd = serde_json::to_value(kudu_operator::crd::crd()).unwrap();
    crd["spec"]["versions"][0].clone()
}

fn spec_schema() -> Value {
    version()["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

fn errors_for(spec: Value) -> Vec<String> {
    schema::validate(&spec_schema(), &spec)
}

#[track_caller]
fn assert_rejected(spec: Value, path: &str) {
    let errors = errors_for(spec.clone());
    assert!(errors.iter().any(|e| e.starts_with(path)), "expected an error at {path} for {spec}, got {errors:?}");
}

#[test]
fn crd_identity_and_subresources() {
    let crd = serde_json::to_value(kudu_operator::crd::crd()).unwrap();
    assert_eq!(crd["metadata"]["name"], "kuduclusters.kudu.dev");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["kind"], "KuduCluster");
    let version = version();
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["subresources"]["status"], json!({}));
    let columns: Vec<_> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["jsonPath"].as_str().unwrap()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Ready", ".status.conditions[?(@.type==\"Available\")].status"),
            ("Masters", ".status.masterVoters"),
            ("Leader", ".status.leader"),
            ("TServers", ".status.readyTServers"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
}

#[test]
fn fields_are_documented_for_kubectl_explain() {
    let spec = spec_schema();
    for path in [
        &["image"][..],
        &["masters", "replicas"],
        &["masters", "storage", "size"],
        &["tservers", "flags"],
        &["topology", "locationLabels"],
        &["masterReplacement", "gracePeriodSeconds"],
    ] {
        let mut node = &spec;
        for key in path {
            node = &node["properties"][key];
        }
        let description = node["description"].as_str().unwrap_or_default();
        assert!(description.len() > 10, "{path:?} has no description");
    }
}

#[test]
fn good_specs_are_accepted() {
    for spec in [
        json!({"image": "kudu:1"}),
        json!({
            "image": "kudu:1",
            "imagePullPolicy": "Always",
            "masters": {
                "replicas": 5,
                "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
                "storage": {"size": "20Gi", "storageClassName": "fast"},
                "flags": ["--raft-heartbeat-ms=500"],
                "podOverrides": {
                    "nodeSelector": {"disk": "ssd"},
                    "tolerations": [{"key": "dedicated", "operator": "Exists"}],
                    "annotations": {"a": "b"}
                }
            },
            "tservers": {"replicas": 7, "storage": {"size": "1.5Ti"}},
            "topology": {"locationLabels": ["example.com/rack", "topology.kubernetes.io/zone"]},
            "masterReplacement": {"enabled": false, "gracePeriodSeconds": 600}
        }),
    ] {
        assert_eq!(errors_for(spec.clone()), Vec::<String>::new(), "{spec}");
    }
}

#[test]
fn even_zero_or_too_many_masters_are_rejected() {
    for replicas in [0, 2, 4, 6, 8, 9, -1] {
        assert_rejected(json!({"image": "kudu:1", "masters": {"replicas": replicas}}), ".masters.replicas");
    }
    for replicas in [1, 3, 5, 7] {
        assert!(errors_for(json!({"image": "k", "masters": {"replicas": replicas}})).is_empty());
    }
}

#[test]
fn bad_label_keys_are_rejected() {
    for key in ["bad key", "-zone", "zone-", "Example.com/zone", "a/b/c", "", "/zone"] {
        assert_rejected(
            json!({"image": "kudu:1", "topology": {"locationLabels": [key]}}),
            ".topology.locationLabels[0]",
        );
    }
    assert_rejected(json!({"image": "kudu:1", "topology": {"locationLabels": []}}), ".topology.locationLabels");
    assert_rejected(
        json!({"image": "kudu:1", "topology": {"locationLabels": ["zone", "zone"]}}),
        ".topology.locationLabels",
    );
}

#[test]
fn negative_or_malformed_sizes_are_rejected() {
    for size in ["-1Gi", "-5", "ten", "10GB", "1Gi ", ""] {
        assert_rejected(json!({"image": "kudu:1", "masters": {"storage": {"size": size}}}), ".masters.storage.size");
        assert_rejected(json!({"image": "kudu:1", "tservers": {"storage": {"size": size}}}), ".tservers.storage.size");
    }
}

#[test]
fn other_out_of_range_values_are_rejected() {
    assert_rejected(json!({"image": ""}), ".image");
    assert_rejected(json!({"masters": {}}), ".image");
    assert_rejected(json!({"image": "k", "imagePullPolicy": "Sometimes"}), ".imagePullPolicy");
    assert_rejected(json!({"image": "k", "tservers": {"replicas": 0}}), ".tservers.replicas");
    assert_rejected(
        json!({"image": "k", "masterReplacement": {"gracePeriodSeconds": 10}}),
        ".masterReplacement.gracePeriodSeconds",
    );
    assert_rejected(json!({"image": "k", "masters": {"flags": ["verbose"]}}), ".masters.flags[0]");
    assert_rejected(json!({"image": "k", "mastrs": {}}), ".mastrs");
}

#[test]
fn cel_rules_cover_what_the_schema_cannot_say() {
    let rules = schema::cel_rules(&spec_schema());
    let has = |path: &str, needle: &str| rules.iter().any(|(p, r)| p == path && r.contains(needle));
    // Reserved flags, for both roles.
    for role in ["masters", "tservers"] {
        assert!(has(&format!(".{role}.flags"), "'--master-addresses'"), "{rules:?}");
        assert!(has(&format!(".{role}.flags"), "'--data-dir'"), "{rules:?}");
        // Zero size: the pattern allows `0`, CEL does not.
        assert!(has(&format!(".{role}.storage.size"), "isGreaterThan(quantity('0'))"));
        // Volume claim templates are immutable.
        assert!(has(&format!(".{role}.storage"), "self == oldSelf"));
    }
}
