//! What a failed test prints about its local cluster: enough to find the cause without
//! running it again (the KuduClusters' status, pods, nodes, recent events and the tails of
//! every container log, deleted pods' included).

use std::fmt::Write as _;
use std::path::Path;

use kudu_e2e::apiserver::registry::ResKey;
use kudu_e2e::cluster::LocalCluster;
use serde_json::Value;

/// Log lines printed per container; the operator's decisions need more.
const LOG_LINES: usize = 25;
const OPERATOR_LOG_LINES: usize = 120;
/// Events printed, newest last.
const EVENTS: usize = 40;
/// Longer lines are cut (some log lines carry whole objects).
const LINE_CHARS: usize = 400;

/// A report of the state of `cluster`, read straight from the in-process API server and the
/// kubelet's log files (no client calls: it runs while the test unwinds).
pub fn report(cluster: &LocalCluster) -> String {
    let mut out = String::from("==== e2e diagnostics: the local cluster at the failure ====\n");
    let list = |group: &str, plural: &str| -> Vec<Value> {
        cluster.api().store.read(|s| s.list(&ResKey::new(group, plural), None).cloned().collect())
    };
    for kc in list("kudu.dev", "kuduclusters") {
        let status = serde_json::to_string_pretty(&kc["status"]).unwrap_or_default();
        let _ = writeln!(
            out,
            "-- KuduCluster {} (generation {}) status:\n{status}",
            name(&kc),
            kc["metadata"]["generation"]
        );
    }
    let _ = writeln!(out, "-- nodes:");
    for node in list("", "nodes") {
        let _ = writeln!(out, "{} Ready={}", name(&node), condition(&node, "Ready"));
    }
    let _ = writeln!(out, "-- pods:");
    for pod in list("", "pods") {
        let _ = writeln!(
            out,
            "{} uid={} node={} phase={} Ready={}{}",
            name(&pod),
            str_at(&pod, "/metadata/uid"),
            str_at(&pod, "/spec/nodeName"),
            str_at(&pod, "/status/phase"),
            condition(&pod, "Ready"),
            pod.pointer("/metadata/deletionTimestamp").map(|t| format!(" deleting since {t}")).unwrap_or_default(),
        );
    }
    let _ = writeln!(out, "-- claims:");
    for pvc in list("", "persistentvolumeclaims") {
        let deleting =
            pvc.pointer("/metadata/deletionTimestamp").map(|t| format!(" deleting since {t}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{} uid={} {}{deleting}",
            name(&pvc),
            str_at(&pvc, "/metadata/uid"),
            str_at(&pvc, "/status/phase")
        );
    }
    let mut events = list("", "events");
    events.sort_by_key(|e| e["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse::<u64>().ok()));
    let _ = writeln!(out, "-- last {EVENTS} events:");
    for e in events.iter().rev().take(EVENTS).rev() {
        let _ = writeln!(
            out,
            "{} {} {}/{}: {}",
            str_at(e, "/lastTimestamp"),
            str_at(e, "/reason"),
            str_at(e, "/involvedObject/kind"),
            str_at(e, "/involvedObject/name"),
            str_at(e, "/message"),
        );
    }
    if let Some(pods_dir) = &cluster.api().pods_dir {
        log_tails(&mut out, pods_dir);
    }
    out.push_str("==== end of e2e diagnostics ====\n");
    out
}

/// The tails of the container logs under `pods_dir` (`<ns>_<pod>_<uid>/<container>.log`),
/// oldest pod directory first.
fn log_tails(out: &mut String, pods_dir: &Path) {
    let mut logs: Vec<(std::time::SystemTime, std::path::PathBuf)> = walk_logs(pods_dir);
    logs.sort();
    for (_, path) in logs {
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let pod = path.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let lines = if pod.contains("operator") { OPERATOR_LOG_LINES } else { LOG_LINES };
        let all: Vec<&str> = text.lines().collect();
        let from = all.len().saturating_sub(lines);
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = writeln!(out, "-- {pod}/{file}: last {} of {} lines", all.len() - from, all.len());
        for line in &all[from..] {
            let cut: String = line.chars().take(LINE_CHARS).collect();
            let _ = writeln!(out, "  {cut}");
        }
    }
}

/// `(modified, path)` of every `*.log` one directory below `pods_dir`.
fn walk_logs(pods_dir: &Path) -> Vec<(std::time::SystemTime, std::path::PathBuf)> {
    let mut logs = Vec::new();
    for pod in std::fs::read_dir(pods_dir).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(pod.path()).into_iter().flatten().flatten() {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "log") {
                let created = pod.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
                logs.push((created, path));
            }
        }
    }
    logs
}

fn name(obj: &Value) -> String {
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{ns}/{}", str_at(obj, "/metadata/name")),
        None => str_at(obj, "/metadata/name").to_owned(),
    }
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("-")
}

/// `status (reason, since)` of condition `kind`, `-` when absent.
fn condition(obj: &Value, kind: &str) -> String {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .map(|c| {
            format!("{} ({}, since {})", str_at(c, "/status"), str_at(c, "/reason"), str_at(c, "/lastTransitionTime"))
        })
        .unwrap_or_else(|| "-".to_owned())
}
