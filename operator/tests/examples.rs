//! The manifests in `examples/` parse into `KuduCluster`, pass the CRD schema and the
//! validate step, and build.

mod support;

use std::path::PathBuf;

use kudu_operator::build::{BuildInputs, build_all};
use kudu_operator::crd::KuduCluster;
use kudu_operator::validate::validate;
use serde_json::Value;

fn read_example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parse, schema-check, validate and build one example; returns the parsed object.
fn check_example(name: &str) -> KuduCluster {
    let text = read_example(name);
    let raw: Value = serde_saphyr::from_str(&text).expect("example is YAML");
    let crd = serde_json::to_value(kudu_operator::crd::crd()).unwrap();
    let spec_schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let errors = support::schema::validate(spec_schema, &raw["spec"]);
    assert!(errors.is_empty(), "{name} fails the CRD schema: {errors:?}");

    let mut cluster: KuduCluster = serde_saphyr::from_str(&text).expect("example parses as KuduCluster");
    assert_eq!(raw["apiVersion"], "kudu.dev/v1alpha1");
    assert_eq!(raw["kind"], "KuduCluster");
    // As the API server would: a namespace when the manifest has none, and a uid.
    cluster.metadata.namespace.get_or_insert_with(|| "default".to_owned());
    cluster.metadata.uid = Some("uid".to_owned());
    let spec = validate(&cluster).unwrap_or_else(|e| panic!("{name} fails validation: {e}"));
    let objects = build_all(&spec, BuildInputs::initial(&spec)).expect("example builds");
    assert_eq!(objects.len(), 13);
    cluster
}

#[test]
fn minimal_example_is_valid() {
    let cluster = check_example("minimal.yaml");
    assert_eq!(cluster.spec.masters.replicas, 1);
    assert_eq!(cluster.spec.tservers.replicas, 3);
}

#[test]
fn production_example_is_valid() {
    let cluster = check_example("production.yaml");
    assert_eq!(cluster.spec.masters.replicas, 5);
    assert_eq!(cluster.spec.master_replacement.grace_period_seconds, 600);
    assert!(cluster.spec.tservers.pod_overrides.affinity.is_some());
    assert_eq!(cluster.spec.masters.storage.storage_class_name.as_deref(), Some("ssd-zonal"));
}

#[test]
fn every_example_is_tested() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["minimal.yaml", "production.yaml"]);
}
