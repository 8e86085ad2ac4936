//! PersistentVolumeClaims: binds new claims at once (a directory per claim stands in for a
//! volume), lets a deleted claim go only once no pod uses it (pvc-protection), and deletes
//! the directory of a claim that no longer exists.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::write_status;
use crate::apiserver::Api;
use crate::apiserver::defaults::PVC_PROTECTION_FINALIZER;
use crate::apiserver::ops::{Subresource, WriteOptions};
use crate::apiserver::registry::ResKey;
use crate::apiserver::util::meta_str;

/// Directory backing the claim `name` with `uid` in namespace `ns`. A claim deleted and
/// created again under the same name is a new, empty volume, as in a real cluster: the
/// directory is per uid, so a recreated claim never finds the old claim's data (which it
/// did when a StatefulSet recreated the claim before this controller removed the old
/// directory: a "lost" master came back with its old Raft state).
pub fn claim_dir(state_dir: &Path, ns: &str, name: &str, uid: &str) -> PathBuf {
    state_dir.join("volumes").join(ns).join(name).join(uid)
}

/// Whether a pod (not yet removed and not finished) mounts claim `name` in `ns`.
fn in_use(pods: &[Value], ns: &str, name: &str) -> bool {
    pods.iter()
        .filter(|p| meta_str(p, "namespace") == Some(ns))
        .filter(|p| !matches!(p.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed")))
        .any(|p| {
            p.pointer("/spec/volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|v| v.pointer("/persistentVolumeClaim/claimName").and_then(Value::as_str) == Some(name))
        })
}

/// Releases terminating claims no pod uses any more (the pvc-protection controller).
fn release_unused(api: &Api, claims: &[Value], pods: &[Value]) {
    let Ok(rt) = api.resource("", "persistentvolumeclaims") else { return };
    for pvc in claims.iter().filter(|c| meta_str(c, "deletionTimestamp").is_some()) {
        let (ns, name) = (meta_str(pvc, "namespace").unwrap_or(""), meta_str(pvc, "name").unwrap_or(""));
        let protected = pvc
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x == PVC_PROTECTION_FINALIZER));
        if !protected || in_use(pods, ns, name) {
            continue;
        }
        let mut body = pvc.clone();
        crate::apiserver::util::meta_mut(&mut body).remove("resourceVersion");
        if let Some(f) = body.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
            f.retain(|x| x != PVC_PROTECTION_FINALIZER);
        }
        if let Err(e) = api.update(&rt, "v1", Some(ns), name, body, Subresource::Main, &WriteOptions::default()) {
            tracing::debug!(error = %e, claim = name, "releasing claim failed");
        }
    }
}

/// One pass: bind pending claims, release unused terminating ones, remove directories of
/// deleted claims.
pub fn sync_once(api: &Api, state_dir: &Path) {
    let (claims, pods) = api.store.read(|s| {
        (
            s.list(&ResKey::new("", "persistentvolumeclaims"), None).cloned().collect::<Vec<_>>(),
            s.list(&ResKey::new("", "pods"), None).cloned().collect::<Vec<_>>(),
        )
    });
    release_unused(api, &claims, &pods);
    for pvc in &claims {
        if pvc.pointer("/status/phase").and_then(Value::as_str) == Some("Bound") {
            continue;
        }
        let storage = pvc.pointer("/spec/resources/requests/storage").cloned().unwrap_or_else(|| json!("1Gi"));
        let status = json!({"phase": "Bound", "accessModes": pvc.pointer("/spec/accessModes").cloned().unwrap_or_else(|| json!(["ReadWriteOnce"])), "capacity": {"storage": storage}});
        if let Err(e) = write_status(api, "", "persistentvolumeclaims", pvc, status) {
            tracing::debug!(error = %e, "binding claim failed");
        }
    }
    remove_deleted_volumes(api, state_dir);
}

/// Removes the directories of claims that no longer exist. The directories are listed
/// before the claims are read: a directory is made only for a claim that exists, so a claim
/// created meanwhile is in the list read afterwards and its new directory stays.
fn remove_deleted_volumes(api: &Api, state_dir: &Path) {
    let root = state_dir.join("volumes");
    let mut found: Vec<(String, String, Vec<String>)> = Vec::new();
    for ns in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let ns_name = ns.file_name().to_string_lossy().into_owned();
        for claim in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            let claim_name = claim.file_name().to_string_lossy().into_owned();
            let uids = std::fs::read_dir(claim.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|u| u.file_name().to_string_lossy().into_owned())
                .collect();
            found.push((ns_name.clone(), claim_name, uids));
        }
    }
    let claims: Vec<(String, String, String)> = api.store.read(|s| {
        s.list(&ResKey::new("", "persistentvolumeclaims"), None)
            .map(|c| {
                let field = |f| meta_str(c, f).unwrap_or_default().to_owned();
                (field("namespace"), field("name"), field("uid"))
            })
            .collect()
    });
    for (ns, name, uids) in found {
        let current = claims.iter().find(|(n, c, _)| *n == ns && *c == name).map(|(_, _, uid)| uid.as_str());
        for uid in uids.iter().filter(|u| Some(u.as_str()) != current) {
            let path = claim_dir(state_dir, &ns, &name, uid);
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!(error = %e, path = %path.display(), "removing volume of deleted claim");
            }
        }
        if current.is_none() {
            // Empty now (a claim directory made meanwhile keeps it).
            let _ = std::fs::remove_dir(root.join(&ns).join(&name));
        }
    }
}
