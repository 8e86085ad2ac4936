//! The cluster chart (`charts/kudu-cluster`) against the CRD it fills: its values schema
//! refuses what the CRD refuses (same enums, bounds and patterns), its defaults are the
//! CRD's, and its template refuses the flags the operator reserves. Helm itself runs in
//! the e2e tests (`e2e/tests/helm.rs`).

mod support;

use std::path::PathBuf;

use kudu_operator::crd::{KuduClusterSpec, RESERVED_FLAGS};
use kudu_operator::validate::MAX_NAME_LEN;
use serde_json::Value;

fn chart_file(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/kudu-cluster").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn values_schema() -> Value {
    serde_json::from_str(&chart_file("values.schema.json")).expect("values.schema.json is JSON")
}

fn values() -> Value {
    serde_saphyr::from_str(&chart_file("values.yaml")).expect("values.yaml is YAML")
}

/// The CRD's schema of `spec`.
fn crd_spec() -> Value {
    let crd = serde_json::to_value(kudu_operator::crd::crd()).expect("CRD as JSON");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

/// The schema at `path` (`a.b.c`, through `properties`; `[]` steps into `items`).
fn at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(schema, |node, key| match key {
        "[]" => &node["items"],
        key => &node["properties"][key],
    })
}

/// Numbers compared as numbers (the CRD writes `1000.0`, the chart `1000`).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[test]
fn chart_metadata() {
    let chart: Value = serde_saphyr::from_str(&chart_file("Chart.yaml")).expect("Chart.yaml");
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "kudu-cluster");
    assert_eq!(chart["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn the_values_schema_refuses_what_the_crd_refuses() {
    let (chart, crd) = (values_schema(), crd_spec());
    let pairs = [
        ("masters.replicas", "masters.replicas", "enum"),
        ("tservers.replicas", "tservers.replicas", "minimum"),
        ("tservers.replicas", "tservers.replicas", "maximum"),
        ("masters.storage.size", "masters.storage.size", "pattern"),
        ("tservers.storage.size", "tservers.storage.size", "pattern"),
        ("masters.flags", "masters.flags", "maxItems"),
        ("masters.flags.[]", "masters.flags.[]", "pattern"),
        ("masters.flags.[]", "masters.flags.[]", "maxLength"),
        ("tservers.flags", "tservers.flags", "maxItems"),
        ("tservers.flags.[]", "tservers.flags.[]", "pattern"),
        ("topology.locationLabels", "topology.locationLabels", "minItems"),
        ("topology.locationLabels", "topology.locationLabels", "maxItems"),
        ("topology.locationLabels.[]", "topology.locationLabels.[]", "pattern"),
        ("topology.locationLabels.[]", "topology.locationLabels.[]", "maxLength"),
        ("masterReplacement.gracePeriodSeconds", "masterReplacement.gracePeriodSeconds", "minimum"),
        ("masterReplacement.gracePeriodSeconds", "masterReplacement.gracePeriodSeconds", "maximum"),
        ("rollout.memberTimeoutSeconds", "rollout.memberTimeoutSeconds", "minimum"),
        ("rollout.memberTimeoutSeconds", "rollout.memberTimeoutSeconds", "maximum"),
        ("image.pullPolicy", "imagePullPolicy", "enum"),
        ("network.allowedClients", "network.allowedClients", "maxItems"),
        ("network.metricsClients", "network.metricsClients", "maxItems"),
    ];
    for (chart_path, crd_path, keyword) in pairs {
        let (ours, theirs) = (&at(&chart, chart_path)[keyword], &at(&crd, crd_path)[keyword]);
        assert!(!theirs.is_null(), "the CRD has no {keyword} at {crd_path}");
        assert!(same(ours, theirs), "{chart_path}.{keyword}: chart {ours}, CRD {theirs}");
    }
    assert_eq!(at(&chart, "name")["maxLength"], MAX_NAME_LEN, "the operator's name limit");
}

#[test]
fn default_values_are_valid_and_are_the_crds_defaults() {
    let values = values();
    assert_eq!(support::schema::validate(&values_schema(), &values), Vec::<String>::new());
    let defaults: KuduClusterSpec = serde_json::from_value(serde_json::json!({"image": "kudu:1"})).expect("spec");
    assert_eq!(values["masters"]["replicas"], defaults.masters.replicas);
    assert_eq!(values["tservers"]["replicas"], defaults.tservers.replicas);
    assert_eq!(values["masters"]["storage"]["size"], defaults.masters.storage.size.as_str());
    assert_eq!(values["tservers"]["storage"]["size"], defaults.tservers.storage.size.as_str());
    assert_eq!(values["topology"]["locationLabels"], serde_json::json!(defaults.topology.location_labels));
    assert_eq!(values["masterReplacement"]["enabled"], defaults.master_replacement.enabled);
    assert_eq!(values["masterReplacement"]["gracePeriodSeconds"], defaults.master_replacement.grace_period_seconds);
    assert_eq!(values["image"]["pullPolicy"], defaults.image_pull_policy.as_str());
    assert_eq!(values["rollout"]["memberTimeoutSeconds"], defaults.rollout.member_timeout_seconds);

    let mut bad = values.clone();
    bad["masters"]["replicas"] = 2.into();
    bad["tservers"]["replicas"] = "three".into();
    bad["topology"]["locationLabels"] = serde_json::json!([]);
    bad["unknown"] = true.into();
    let errors = support::schema::validate(&values_schema(), &bad);
    assert_eq!(errors.len(), 4, "{errors:?}");
}

#[test]
fn the_template_refuses_every_reserved_flag() {
    let helpers = chart_file("templates/_helpers.tpl");
    let line = helpers.lines().find(|l| l.contains("regexMatch \"^--(")).expect("the reserved-flag check");
    for flag in RESERVED_FLAGS {
        let name = flag.trim_start_matches("--");
        assert!(
            line.contains(&format!("|{name}|"))
                || line.contains(&format!("({name}|"))
                || line.contains(&format!("|{name})")),
            "{flag} not refused: {line}"
        );
    }
}
