//! StatefulSet controller: ordinal pods `{name}-{i}` with hostname/subdomain, PVCs from
//! claim templates (kept when pods go), recreation of missing or finished pods, ordered
//! (or parallel) scale up and down, rolling updates by revision, and status counts.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{controlled_by, events, owner_ref, pod_ready, write_status};
use crate::apiserver::ops::{DeleteOptions, WriteOptions};
use crate::apiserver::registry::ResKey;
use crate::apiserver::util::meta_str;
use crate::apiserver::{Api, ApiError};

/// Label with the pod's revision.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// Label with the pod name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Label with the ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// FNV-1a over the template: the revision name suffix.
fn template_hash(template: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in template.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:010x}", h & 0xff_ffff_ffff)
}

fn ordinal(sts_name: &str, pod: &Value) -> Option<usize> {
    meta_str(pod, "name")?.strip_prefix(sts_name)?.strip_prefix('-')?.parse().ok()
}

fn revision(pod: &Value) -> &str {
    pod.pointer(&format!("/metadata/labels/{REVISION_LABEL}")).and_then(Value::as_str).unwrap_or("")
}

fn terminating(pod: &Value) -> bool {
    meta_str(pod, "deletionTimestamp").is_some()
}

fn finished(pod: &Value) -> bool {
    matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
}

/// One pass over all StatefulSets.
pub fn sync_once(api: &Api) {
    let (sets, pods) = api.store.read(|s| {
        (
            s.list(&ResKey::new("apps", "statefulsets"), None).cloned().collect::<Vec<_>>(),
            s.list(&ResKey::new("", "pods"), None).cloned().collect::<Vec<_>>(),
        )
    });
    for sts in &sets {
        if let Err(e) = reconcile(api, sts, &pods) {
            tracing::debug!(error = %e, statefulset = meta_str(sts, "name"), "statefulset reconcile failed");
        }
    }
}

fn claim_name(template: &Value, sts: &str, i: usize) -> String {
    format!("{}-{sts}-{i}", meta_str(template, "name").unwrap_or("data"))
}

/// Creates missing claims of ordinal `i`; `false` while one of them is still being deleted
/// (the pod must wait for a fresh claim, as the real controller does).
fn ensure_claims(api: &Api, sts: &Value, i: usize) -> Result<bool, ApiError> {
    let (ns, name) = (meta_str(sts, "namespace"), meta_str(sts, "name").unwrap_or(""));
    let rt = api.resource("", "persistentvolumeclaims")?;
    for tmpl in sts.pointer("/spec/volumeClaimTemplates").and_then(Value::as_array).into_iter().flatten() {
        let claim = claim_name(tmpl, name, i);
        if let Ok(existing) = api.get(&rt, "v1", ns, &claim) {
            if meta_str(&existing, "deletionTimestamp").is_some() {
                return Ok(false);
            }
            continue;
        }
        let mut labels = sts.pointer("/spec/selector/matchLabels").cloned().unwrap_or_else(|| json!({}));
        if let (Some(l), Some(extra)) =
            (labels.as_object_mut(), tmpl.pointer("/metadata/labels").and_then(Value::as_object))
        {
            l.extend(extra.clone());
        }
        let mut pvc = json!({"metadata": {"name": claim, "labels": labels}, "spec": tmpl.get("spec").cloned().unwrap_or_else(|| json!({}))});
        if sts.pointer("/spec/persistentVolumeClaimRetentionPolicy/whenDeleted").and_then(Value::as_str)
            == Some("Delete")
        {
            pvc["metadata"]["ownerReferences"] = json!([owner_ref(sts)]);
        }
        match api.create(&rt, "v1", ns, pvc, &WriteOptions::default()) {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn new_pod(sts: &Value, i: usize, rev: &str) -> Value {
    let name = meta_str(sts, "name").unwrap_or("");
    let pod_name = format!("{name}-{i}");
    let template = sts.pointer("/spec/template").cloned().unwrap_or_else(|| json!({}));
    let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}));
    if let Some(l) = labels.as_object_mut() {
        l.insert(REVISION_LABEL.into(), json!(rev));
        l.insert(POD_NAME_LABEL.into(), json!(pod_name));
        l.insert(POD_INDEX_LABEL.into(), json!(i.to_string()));
    }
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    spec["hostname"] = json!(pod_name);
    if let Some(svc) = sts.pointer("/spec/serviceName").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        spec["subdomain"] = json!(svc);
    }
    let mut volumes: Vec<Value> = spec.get("volumes").and_then(Value::as_array).cloned().unwrap_or_default();
    for tmpl in sts.pointer("/spec/volumeClaimTemplates").and_then(Value::as_array).into_iter().flatten() {
        let vname = meta_str(tmpl, "name").unwrap_or("data");
        volumes.retain(|v| v.get("name").and_then(Value::as_str) != Some(vname));
        volumes.push(json!({"name": vname, "persistentVolumeClaim": {"claimName": claim_name(tmpl, name, i)}}));
    }
    if !volumes.is_empty() {
        spec["volumes"] = json!(volumes);
    }
    json!({
        "metadata": {
            "name": pod_name,
            "labels": labels,
            "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or_else(|| json!({})),
            "ownerReferences": [owner_ref(sts)],
        },
        "spec": spec,
    })
}

fn delete_scaled_down_claims(
    api: &Api,
    sts: &Value,
    replicas: usize,
    pods: &BTreeMap<usize, &Value>,
) -> Result<(), ApiError> {
    let (ns, name) = (meta_str(sts, "namespace"), meta_str(sts, "name").unwrap_or(""));
    let rt = api.resource("", "persistentvolumeclaims")?;
    let prefixes: Vec<String> = sts
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| format!("{}-{name}-", meta_str(t, "name").unwrap_or("data")))
        .collect();
    let claims: Vec<Value> = api.store.read(|s| s.list(&rt.key(), ns).cloned().collect());
    for claim in &claims {
        let cname = meta_str(claim, "name").unwrap_or("");
        let ordinal =
            prefixes.iter().find_map(|p| cname.strip_prefix(p.as_str())).and_then(|o| o.parse::<usize>().ok());
        if let Some(i) = ordinal.filter(|i| *i >= replicas && !pods.contains_key(i)) {
            match api.delete(&rt, "v1", ns, cname, &DeleteOptions::default()) {
                Ok(_) => tracing::debug!(claim = cname, ordinal = i, "deleted claim of scaled-down ordinal"),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn delete_pod(api: &Api, sts: &Value, pod: &Value) -> Result<(), ApiError> {
    let rt = api.resource("", "pods")?;
    let pod_name = meta_str(pod, "name").unwrap_or("");
    match api.delete(&rt, "v1", meta_str(pod, "namespace"), pod_name, &DeleteOptions::default()) {
        Ok(_) => {
            let msg =
                format!("delete Pod {pod_name} in StatefulSet {} successful", meta_str(sts, "name").unwrap_or(""));
            events::record(api, sts, events::Kind::Normal, "SuccessfulDelete", &msg, "statefulset-controller");
            Ok(())
        }
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

fn reconcile(api: &Api, sts: &Value, all_pods: &[Value]) -> Result<(), ApiError> {
    if terminating(sts) {
        return Ok(());
    }
    let (ns, name, uid) =
        (meta_str(sts, "namespace"), meta_str(sts, "name").unwrap_or(""), meta_str(sts, "uid").unwrap_or(""));
    let replicas = sts.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1) as usize;
    let parallel = sts.pointer("/spec/podManagementPolicy").and_then(Value::as_str) == Some("Parallel");
    let rev = format!("{name}-{}", template_hash(sts.pointer("/spec/template").unwrap_or(&Value::Null)));
    let pods: BTreeMap<usize, &Value> = all_pods
        .iter()
        .filter(|p| meta_str(p, "namespace") == ns && controlled_by(p, uid))
        .filter_map(|p| ordinal(name, p).map(|i| (i, p)))
        .collect();
    let pods_rt = api.resource("", "pods")?;

    // Finished pods are replaced.
    for pod in pods.values().filter(|p| finished(p) && !terminating(p)) {
        delete_pod(api, sts, pod)?;
    }
    let any_terminating = pods.values().any(|p| terminating(p));
    let healthy = |i: usize| pods.get(&i).is_some_and(|p| pod_ready(p));

    // Scale up (and recreate missing ordinals).
    let mut blocked = false;
    for i in 0..replicas {
        match pods.get(&i) {
            Some(p) if !parallel && (!pod_ready(p) || terminating(p)) => {
                blocked = true;
                break;
            }
            Some(_) => {}
            None => {
                if !parallel && any_terminating {
                    blocked = true;
                    break;
                }
                if !ensure_claims(api, sts, i)? {
                    blocked = true;
                    break;
                }
                match api.create(&pods_rt, "v1", ns, new_pod(sts, i, &rev), &WriteOptions::default()) {
                    Ok(_) => {
                        let msg = format!("create Pod {name}-{i} in StatefulSet {name} successful");
                        events::record(
                            api,
                            sts,
                            events::Kind::Normal,
                            "SuccessfulCreate",
                            &msg,
                            "statefulset-controller",
                        );
                    }
                    Err(ApiError { code: 409, .. }) => {}
                    Err(e) => return Err(e),
                }
                if !parallel {
                    blocked = true;
                    break;
                }
            }
        }
    }

    // Scale down: highest ordinal first, one at a time unless parallel.
    let condemned: Vec<&&Value> =
        pods.iter().rev().filter(|(i, p)| **i >= replicas && !terminating(p)).map(|(_, p)| p).collect();
    let all_below_ready = (0..replicas).all(healthy);
    if !condemned.is_empty() && (parallel || (!blocked && !any_terminating && all_below_ready)) {
        for pod in if parallel { &condemned[..] } else { &condemned[..1] } {
            delete_pod(api, sts, pod)?;
        }
    }

    // whenScaled=Delete: claims of ordinals at or above `replicas` go once their pod is gone.
    if sts.pointer("/spec/persistentVolumeClaimRetentionPolicy/whenScaled").and_then(Value::as_str) == Some("Delete") {
        delete_scaled_down_claims(api, sts, replicas, &pods)?;
    }

    // Rolling update: replace the highest outdated ordinal at or above the partition.
    let rolling = sts.pointer("/spec/updateStrategy/type").and_then(Value::as_str) != Some("OnDelete");
    let partition =
        sts.pointer("/spec/updateStrategy/rollingUpdate/partition").and_then(Value::as_u64).unwrap_or(0) as usize;
    if rolling
        && !blocked
        && !any_terminating
        && all_below_ready
        && let Some(pod) = (partition..replicas).rev().filter_map(|i| pods.get(&i)).find(|p| revision(p) != rev)
    {
        delete_pod(api, sts, pod)?;
    }

    // Status.
    let live: Vec<&&Value> = pods.values().filter(|p| !terminating(p)).collect();
    let ready = live.iter().filter(|p| pod_ready(p)).count();
    let updated = live.iter().filter(|p| revision(p) == rev).count();
    let prev_current = sts
        .pointer("/status/currentRevision")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(&rev)
        .to_string();
    // As in Kubernetes, only a RollingUpdate completes: with OnDelete `currentRevision`
    // stays where it was (`completeRollingUpdate` in the real controller).
    let current_rev = if rolling && updated == replicas && live.len() == replicas && ready == replicas {
        rev.clone()
    } else {
        prev_current
    };
    let current = live.iter().filter(|p| revision(p) == current_rev).count();
    let mut status = Map::new();
    status.insert("observedGeneration".into(), sts.pointer("/metadata/generation").cloned().unwrap_or(json!(1)));
    status.insert("replicas".into(), json!(live.len()));
    status.insert("readyReplicas".into(), json!(ready));
    status.insert("availableReplicas".into(), json!(ready));
    status.insert("currentReplicas".into(), json!(current));
    status.insert("updatedReplicas".into(), json!(updated));
    status.insert("currentRevision".into(), json!(current_rev));
    status.insert("updateRevision".into(), json!(rev));
    status.insert("collisionCount".into(), json!(0));
    write_status(api, "apps", "statefulsets", sts, Value::Object(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_gets_identity_and_claims() {
        let sts = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"serviceName": "web", "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]},
        });
        let pod = new_pod(&sts, 2, "web-abc");
        assert_eq!(pod["metadata"]["name"], "web-2");
        assert_eq!(pod["spec"]["hostname"], "web-2");
        assert_eq!(pod["spec"]["subdomain"], "web");
        assert_eq!(pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"], "data-web-2");
        assert_eq!(pod["metadata"]["labels"][REVISION_LABEL], "web-abc");
        assert!(controlled_by(&pod, "u1"));
        assert_eq!(ordinal("web", &pod), Some(2));
    }

    #[test]
    fn revision_changes_with_template() {
        assert_ne!(template_hash(&json!({"a": 1})), template_hash(&json!({"a": 2})));
        assert_eq!(template_hash(&json!({"a": 1})), template_hash(&json!({"a": 1})));
    }
}
