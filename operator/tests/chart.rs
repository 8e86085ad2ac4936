//! The Helm chart: values match their schema, and the operator's ClusterRole (or, with
//! `rbac.scope: namespace`, its Role) grants exactly what the builders and the membership
//! loop need, verb by verb. The e2e Helm test renders the chart with the real Helm.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use kudu_operator::build::{BuildInputs, Object, OperatorEnv, build_for};
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

/// `text` with the blocks of `{{- if eq .Values.rbac.scope "X" }}` kept only for `scope`
/// (other blocks are kept; their action lines go in [`parse_template`]).
fn with_scope(text: &str, scope: &str) -> String {
    let condition = regex::Regex::new(r#"^\{\{-? if eq \.Values\.rbac\.scope "(\w+)" -?\}\}"#).unwrap();
    let mut open: Vec<bool> = Vec::new();
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(caps) = condition.captures(trimmed) {
            open.push(&caps[1] == scope);
            continue;
        }
        if trimmed.starts_with("{{- if") || trimmed.starts_with("{{- with") || trimmed.starts_with("{{ if") {
            open.push(true);
        } else if trimmed.starts_with("{{- end") || trimmed.starts_with("{{ end") {
            open.pop();
            continue;
        }
        if open.iter().all(|keep| *keep) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The documents of a template rendered for `scope` (empty ones dropped).
fn scoped_documents(relative: &str, scope: &str) -> Vec<Value> {
    with_scope(&chart_file(relative), scope)
        .split("\n---\n")
        .filter(|doc| doc.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')))
        .map(parse_template)
        .collect()
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
    let docs = scoped_documents("templates/clusterrole.yaml", "cluster");
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["kind"], "ClusterRole");
    rules_of(&docs[0])
}

fn rules_of(role: &Value) -> Vec<(String, String, BTreeSet<String>)> {
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
    let kinds: BTreeSet<(&str, &str)> =
        build_for(&spec, BuildInputs::initial(&spec), &OperatorEnv::cluster_wide("ops"))
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
                Object::NetworkPolicy(_) => ("networking.k8s.io", "networkpolicies"),
                Object::StatefulSet(_) => ("apps", "statefulsets"),
            })
            .collect();
    assert_eq!(kinds.len(), 10);
    for (group, resource) in kinds {
        // Server-side apply creates or patches.
        let verbs = verbs_for(group, resource);
        for verb in ["create", "patch"] {
            assert!(verbs.contains(verb), "{group}/{resource} lacks {verb}");
        }
    }
}

/// Every verb of the ClusterRole with the calls that use it (`operator/src`): nothing
/// more is granted. A new API call must be added here and to the chart's roles.
const AUDITED: &[(&str, &str, &[&str])] = &[
    // Controller watch (list, watch); finalizer add/remove (JSON patch).
    ("kudu.dev", "kuduclusters", &["list", "patch", "watch"]),
    // controller::reconcile_apply reads the status fresh, patch_status writes it.
    ("kudu.dev", "kuduclusters/status", &["get", "patch"]),
    // Owner references with blockOwnerDeletion need update on the owner's finalizers.
    ("kudu.dev", "kuduclusters/finalizers", &["update"]),
    // apply (create, patch), reconcile_apply get_opt, execute resize (patch), owned watch.
    ("apps", "statefulsets", &["create", "get", "list", "patch", "watch"]),
    ("", "services", &["create", "list", "patch", "watch"]),
    ("", "configmaps", &["create", "list", "patch", "watch"]),
    ("", "serviceaccounts", &["create", "patch"]),
    // controller::tls: the CA Secret read or created, certificate Secrets applied (never listed).
    ("", "secrets", &["create", "get", "patch"]),
    ("policy", "poddisruptionbudgets", &["create", "patch"]),
    ("networking.k8s.io", "networkpolicies", &["create", "patch"]),
    ("rbac.authorization.k8s.io", "roles", &["create", "patch"]),
    ("rbac.authorization.k8s.io", "rolebindings", &["create", "patch"]),
    // Applied, and deleted by the finalizer (controller::cleanup).
    ("rbac.authorization.k8s.io", "clusterroles", &["create", "delete", "patch"]),
    ("rbac.authorization.k8s.io", "clusterrolebindings", &["create", "delete", "patch"]),
    // gather lists, the controller watches, replace re-reads and deletes (also granted
    // onward: get, list).
    ("", "pods", &["delete", "get", "list", "watch"]),
    // replace re-reads and deletes a lost master's claim.
    ("", "persistentvolumeclaims", &["delete", "get"]),
    // gather and replace get, observe_zones lists (also granted onward: get, list).
    ("", "nodes", &["get", "list"]),
    // The event recorder.
    ("events.k8s.io", "events", &["create", "patch"]),
];

fn audited(namespaced_only: bool) -> Vec<(String, String, BTreeSet<String>)> {
    let cluster_scoped = ["nodes", "clusterroles", "clusterrolebindings"];
    let mut out: Vec<_> = AUDITED
        .iter()
        .filter(|(_, resource, _)| !(namespaced_only && cluster_scoped.contains(resource)))
        .map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), v.iter().map(|v| (*v).to_owned()).collect()))
        .collect();
    out.sort();
    out
}

#[test]
fn cluster_role_grants_exactly_the_audited_verbs() {
    let mut granted = granted();
    granted.sort();
    assert_eq!(granted, audited(false));
}

#[test]
fn namespace_scope_has_a_role_with_the_namespaced_rules_and_nothing_cluster_wide() {
    for template in ["templates/clusterrole.yaml", "templates/clusterrolebinding.yaml"] {
        assert!(scoped_documents(template, "namespace").is_empty(), "{template} renders in namespace scope");
        assert_eq!(scoped_documents(template, "cluster").len(), 1, "{template}");
    }
    assert!(scoped_documents("templates/namespace-role.yaml", "cluster").is_empty());
    let docs = scoped_documents("templates/namespace-role.yaml", "namespace");
    assert_eq!(docs.len(), 2);
    assert_eq!((docs[0]["kind"].as_str(), docs[1]["kind"].as_str()), (Some("Role"), Some("RoleBinding")));
    assert_eq!(docs[0]["metadata"]["namespace"], "templated");
    let mut rules = rules_of(&docs[0]);
    rules.sort();
    assert_eq!(rules, audited(true));
    assert_eq!(docs[1]["roleRef"]["kind"], "Role");
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

fn deployment_args(scope: &str) -> (Value, kudu_operator::cli::RunArgs) {
    use clap::Parser;
    use kudu_operator::cli::{Cli, Command};

    let values: Value = serde_saphyr::from_str(&chart_file("values.yaml")).unwrap();
    let text = with_scope(&chart_file("templates/deployment.yaml"), scope)
        .replace("{{ .Chart.Name }}", "kudu-operator")
        .replace("{{ .Release.Name }}", "op");
    let deployment = parse_template(&render_values(&text, &values));
    let container = deployment["spec"]["template"]["spec"]["containers"][0].clone();
    let mut argv = vec!["kudu-operator".to_owned()];
    argv.extend(container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()));
    argv.push("--identity=operator-pod".to_owned());
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let Command::Run(args) = cli.command else {
        panic!("the Deployment does not run the operator: {argv:?}");
    };
    (deployment, args)
}

#[test]
fn deployment_watches_one_namespace_in_namespace_scope() {
    let (_, cluster_wide) = deployment_args("cluster");
    assert_eq!(cluster_wide.watch_namespace, None);
    let (_, namespaced) = deployment_args("namespace");
    assert_eq!(namespaced.watch_namespace.as_deref(), Some("$(POD_NAMESPACE)"));
    // The NetworkPolicies admit the operator's pods by the Deployment's selector labels.
    for args in [cluster_wide, namespaced] {
        let labels: Vec<_> = args.pod_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(labels, ["app.kubernetes.io/instance=op", "app.kubernetes.io/name=kudu-operator"]);
    }
}

#[test]
fn operator_pod_is_hardened() {
    let (deployment, _) = deployment_args("cluster");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 10001);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let sc = &pod["containers"][0]["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
}

#[test]
fn deployment_arguments_parse_as_the_operator_cli() {
    use clap::Parser;
    use kudu_operator::cli::{Cli, Command};

    let values: Value = serde_saphyr::from_str(&chart_file("values.yaml")).unwrap();
    let text = with_scope(&chart_file("templates/deployment.yaml"), "cluster");
    let deployment = parse_template(&render_values(&text, &values));
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
