//! Deployment controller: one ReplicaSet per pod template (`{deploy}-{hash}`, label
//! `pod-template-hash`). The new ReplicaSet gets all replicas at once; old ones are scaled
//! to zero when it is fully available (Recreate: first). Old ReplicaSets beyond
//! `revisionHistoryLimit` are deleted. Status and conditions as `kubectl rollout status`
//! and Helm's wait read them.

use serde_json::{Value, json};

use super::{condition, controlled_by, owner_ref, write_status};
use crate::apiserver::Api;
use crate::apiserver::ops::{DeleteOptions, Subresource, WriteOptions};
use crate::apiserver::registry::ResKey;
use crate::apiserver::util::{meta_mut, meta_str};

/// Label distinguishing the ReplicaSets of one Deployment.
pub const HASH_LABEL: &str = "pod-template-hash";
const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

fn template_hash(template: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in template.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10).map(|i| ALPHABET[((h >> (i * 6)) % ALPHABET.len() as u64) as usize] as char).collect()
}

fn int(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_u64).unwrap_or(0)
}

fn revision(rs: &Value) -> u64 {
    rs.pointer(&format!("/metadata/annotations/{}", REVISION_ANNOTATION.replace('/', "~1")))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// One pass over all Deployments.
pub fn sync_once(api: &Api) {
    let (deployments, sets) = api.store.read(|s| {
        (
            s.list(&ResKey::new("apps", "deployments"), None).cloned().collect::<Vec<_>>(),
            s.list(&ResKey::new("apps", "replicasets"), None).cloned().collect::<Vec<_>>(),
        )
    });
    for d in deployments.iter().filter(|d| meta_str(d, "deletionTimestamp").is_none()) {
        if let Err(e) = reconcile(api, d, &sets) {
            tracing::debug!(error = %e, deployment = meta_str(d, "name"), "deployment reconcile failed");
        }
    }
}

fn set_replicas(api: &Api, d: &Value, rs: &Value, replicas: u64) -> Result<(), crate::apiserver::ApiError> {
    let from = rs.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(0);
    if from == replicas {
        return Ok(());
    }
    let verb = if replicas > from { "up" } else { "down" };
    let msg = format!("Scaled {verb} replica set {} from {from} to {replicas}", meta_str(rs, "name").unwrap_or(""));
    super::events::record(api, d, super::events::Kind::Normal, "ScalingReplicaSet", &msg, "deployment-controller");
    let rt = api.resource("apps", "replicasets")?;
    let mut body = rs.clone();
    meta_mut(&mut body).remove("resourceVersion");
    body["spec"]["replicas"] = json!(replicas);
    api.update(
        &rt,
        "v1",
        meta_str(rs, "namespace"),
        meta_str(rs, "name").unwrap_or(""),
        body,
        Subresource::Main,
        &WriteOptions::default(),
    )?;
    Ok(())
}

fn reconcile(api: &Api, d: &Value, all_sets: &[Value]) -> Result<(), crate::apiserver::ApiError> {
    let (ns, name, uid) =
        (meta_str(d, "namespace"), meta_str(d, "name").unwrap_or(""), meta_str(d, "uid").unwrap_or(""));
    let replicas = d.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
    let template = d.pointer("/spec/template").cloned().unwrap_or_else(|| json!({}));
    let hash = template_hash(&template);
    let rs_name = format!("{name}-{hash}");
    let owned: Vec<&Value> =
        all_sets.iter().filter(|r| meta_str(r, "namespace") == ns && controlled_by(r, uid)).collect();
    let max_rev = owned.iter().map(|r| revision(r)).max().unwrap_or(0);
    let new_rs = owned.iter().find(|r| meta_str(r, "name") == Some(rs_name.as_str())).copied();
    let old: Vec<&Value> = owned.iter().filter(|r| meta_str(r, "name") != Some(rs_name.as_str())).copied().collect();
    let recreate = d.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate");
    let rs_rt = api.resource("apps", "replicasets")?;

    let old_pods: u64 = old.iter().map(|r| int(r.pointer("/status/replicas"))).sum();
    let new_rs = match new_rs {
        Some(rs) => {
            if !(recreate && old_pods > 0) {
                set_replicas(api, d, rs, replicas)?;
            }
            Some(rs.clone())
        }
        None => {
            let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}));
            labels[HASH_LABEL] = json!(hash);
            let mut selector = d.pointer("/spec/selector").cloned().unwrap_or_else(|| json!({}));
            selector["matchLabels"][HASH_LABEL] = json!(hash);
            let mut tmpl = template.clone();
            tmpl["metadata"]["labels"] = labels.clone();
            let start = if recreate && old_pods > 0 { 0 } else { replicas };
            let rs = json!({
                "metadata": {"name": rs_name, "labels": labels, "annotations": {REVISION_ANNOTATION: (max_rev + 1).to_string()}, "ownerReferences": [owner_ref(d)]},
                "spec": {"replicas": start, "selector": selector, "template": tmpl},
            });
            match api.create(&rs_rt, "v1", ns, rs, &WriteOptions::default()) {
                Ok(created) => Some(created),
                Err(e) if e.code == 409 => None,
                Err(e) => return Err(e),
            }
        }
    };
    let Some(new_rs) = new_rs else { return Ok(()) };
    let new_ready = int(new_rs.pointer("/status/readyReplicas"));
    let new_count = int(new_rs.pointer("/status/replicas"));
    if recreate || (new_ready >= replicas && new_count == replicas) {
        for rs in &old {
            set_replicas(api, d, rs, 0)?;
        }
    }
    let limit = d.pointer("/spec/revisionHistoryLimit").and_then(Value::as_u64).unwrap_or(10) as usize;
    let mut idle: Vec<&&Value> = old
        .iter()
        .filter(|r| int(r.pointer("/spec/replicas")) == 0 && int(r.pointer("/status/replicas")) == 0)
        .collect();
    idle.sort_by_key(|r| revision(r));
    if idle.len() > limit {
        for rs in &idle[..idle.len() - limit] {
            let _ = api.delete(&rs_rt, "v1", ns, meta_str(rs, "name").unwrap_or(""), &DeleteOptions::default());
        }
    }

    let total = new_count + old_pods;
    let ready = new_ready + old.iter().map(|r| int(r.pointer("/status/readyReplicas"))).sum::<u64>();
    let prev = d.pointer("/status/conditions");
    let complete = new_count == replicas && new_ready == replicas && old_pods == 0;
    let status = json!({
        "observedGeneration": d.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        "replicas": total,
        "updatedReplicas": new_count,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": total.saturating_sub(ready),
        "conditions": [
            condition(prev, "Available", ready >= replicas, if ready >= replicas { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" }, ""),
            condition(prev, "Progressing", true, if complete { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" }, &format!("ReplicaSet \"{rs_name}\" is progressing.")),
        ],
    });
    write_status(api, "apps", "deployments", d, status)
}
