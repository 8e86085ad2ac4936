//! The Helm chart: values match their schema, and the operator's ClusterRole grants
//! exactly what the builders and the membership loop need, verb by verb.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use kudu_operator::build::{BuildInputs, Object, build_all};
use serde_json::Value;

fn chart_file(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/kudu-operator").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A template document with its template-only lines dropped and inline `{{ }}` actions
/// replaced by a placeholder, parsed as YAML. Only for templates whose actions are whole
/// lines or scalar values.
fn parse_template(text: &str) -> Value {
    let action = regex::Regex::new(r"\{\{.*?\}\}").unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("{{"))
        .map(|l| format!("{}\n", action.replace_all(l, "templated")))
        .collect();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn template_yaml(relative: &str) -> Value {
    parse_template(&chart_file(relative))
}

#[test]
fn chart_metadata() {
    let chart: Value = serde_saphyr::from_str(&chart_file("Chart.yaml")).unwrap();
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "kudu-operator");
    assert_eq!(chart["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn default_values_match_the_values_schema() {
    let schema: Value = serde_json::from_str(&chart_file("values.schema.json")).unwrap();
    let values: Value = serde_saphyr::from_str(&chart_file("values.yaml")).unwrap();
    assert_eq!(support::schema::validate(&schema, &values), Vec::<String>::new());

    let mut bad = values.clone();
    bad["image"]["pullPolicy"] = "Sometimes".into();
    bad["httpPort"] = 0.into();
    bad["unknown"] = true.into();
    let errors = support::schema::validate(&schema, &bad);
    assert_eq!(errors.len(), 3, "{errors:?}");
}

/// (apiGroup, resource) -> verbs granted by the operator's ClusterRole.
fn granted() -> Vec<(String, String, BTreeSet<String>)> {
    let role = template_yaml("templates/clusterrole.yaml");
    assert_eq!(role["kind"], "ClusterRole");
    let strings =
        |v: &Value| -> Vec<String> { v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect() };
    let mut out = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        let verbs: BTreeSet<String> = strings(&rule["verbs"]).into_iter().collect();
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                out.push((group.clone(), resource, verbs.clone()));
            }
        }
    }
    out
}

fn verbs_for(group: &str, resource: &str) -> BTreeSet<String> {
    granted().into_iter().filter(|(g, r, _)| g == group && r == resource).flat_map(|(_, _, v)| v).collect()
}

#[test]
fn cluster_role_has_no_wildcards() {
    for (group, resource, verbs) in granted() {
        assert!(!group.contains('*') && !resource.contains('*'), "{group}/{resource}");
        assert!(!verbs.contains("*"), "{group}/{resource}");
        for dangerous in ["escalate", "bind", "impersonate", "deletecollection"] {
            assert!(!verbs.contains(dangerous), "{group}/{resource}: {dangerous}");
        }
    }
}

#[test]
fn cluster_role_covers_every_built_kind() {
    let cluster = support::cluster("image: kudu:1\n");
    let spec = kudu_operator::validate::validate(&cluster).unwrap();
    let kinds: BTreeSet<(&str, &str)> = build_all(&spec, BuildInputs::initial(&spec))
        .unwrap()
        .iter()
        .map(|o| match o {
            Object::ServiceAccount(_) => ("", "serviceaccounts"),
            Object::Role(_) => ("rbac.authorization.k8s.io", "roles"),
            Object::RoleBinding(_) => ("rbac.authorization.k8s.io", "rolebindings"),
            Object::ClusterRole(_) => ("rbac.authorization.k8s.io", "clusterroles"),
            Object::ClusterRoleBinding(_) => ("rbac.authorization.k8s.io", "clusterrolebindings"),
            Object::ConfigMap(_) => ("", "configmaps"),
            Object::Service(_) => ("", "services"),
            Object::PodDisruptionBudget(_) => ("policy", "poddisruptionbudgets"),
            Object::StatefulSet(_) => ("apps", "statefulsets"),
        })
        .collect();
    assert_eq!(kinds.len(), 9);
    for (group, resource) in kinds {
        let verbs = verbs_for(group, resource);
        for verb in ["get", "list", "watch", "create", "patch", "delete"] {
            assert!(verbs.contains(verb), "{group}/{resource} lacks {verb}");
        }
    }
}

#[test]
fn cluster_role_holds_what_it_grants_to_masters() {
    // RBAC lets the operator grant only permissions it holds itself.
    for resource in ["pods", "nodes"] {
        let verbs = verbs_for("", resource);
        assert!(verbs.contains("get") && verbs.contains("list"), "{resource}");
    }
    // Replacing a master deletes its pod and claim; nothing else is ever deleted there.
    assert!(verbs_for("", "pods").contains("delete"));
    assert!(verbs_for("", "persistentvolumeclaims").contains("delete"));
    assert!(!verbs_for("", "nodes").contains("delete"));
    let status = verbs_for("kudu.dev", "kuduclusters/status");
    assert!(status.contains("patch"));
    assert!(!verbs_for("kudu.dev", "kuduclusters").contains("create"));
}

#[test]
fn leader_election_role_is_limited_to_leases() {
    let text = chart_file("templates/role.yaml");
    let role_doc = text.split("\n---\n").next().unwrap();
    let role = parse_template(role_doc);
    assert_eq!(role["kind"], "Role");
    let rules = role["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["resources"], serde_json::json!(["leases"]));
    assert_eq!(rules[0]["verbs"], serde_json::json!(["get", "create", "update"]));
}

/// Substitute `{{ .Values.a.b }}` with the default values; other actions are left.
fn render_values(text: &str, values: &Value) -> String {
    let reference = regex::Regex::new(r"\{\{\s*\.Values\.([A-Za-z.]+)\s*\}\}").unwrap();
    reference
        .replace_all(text, |caps: &regex::Captures<'_>| {
            let mut node = values;
            for key in caps[1].split('.') {
                node = &node[key];
            }
            match node {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }
        })
        .into_owned()
}

#[test]
fn deployment_arguments_parse_as_the_operator_cli() {
    use clap::Parser;
    use kudu_operator::cli::{Cli, Command};

    let values: Value = serde_saphyr::from_str(&chart_file("values.yaml")).unwrap();
    let deployment = parse_template(&render_values(&chart_file("templates/deployment.yaml"), &values));
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let env: Vec<&str> = container["env"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    // The identity and the Lease namespace come from the downward API.
    assert!(env.contains(&"POD_NAME") && env.contains(&"POD_NAMESPACE"), "{env:?}");
    let mut argv = vec!["kudu-operator".to_owned()];
    argv.extend(container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()));
    argv.push("--identity=operator-pod".to_owned());
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let Command::Run(args) = cli.command else {
        panic!("the Deployment does not run the operator: {argv:?}");
    };
    assert_eq!(args.http_addr.port(), 8080);
    assert_eq!(args.lease_name, "kudu-operator");
    assert_eq!(args.lease_namespace, "$(POD_NAMESPACE)");
    // The probes hit the server the arguments configure.
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
}
