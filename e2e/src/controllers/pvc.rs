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

/// Directory backing claim `name` in namespace `ns`.
pub fn claim_dir(state_dir: &Path, ns: &str, name: &str) -> PathBuf {
    state_dir.join("volumes").join(ns).join(name)
}

/// File beside a claim's directory naming the uid of the claim the directory belongs to: a
/// claim deleted and recreated under the same name (a StatefulSet replacing a lost volume)
/// must get an empty volume even when the directory of the old one was not removed yet.
pub fn claim_uid_file(state_dir: &Path, ns: &str, name: &str) -> PathBuf {
    state_dir.join("volumes").join(ns).join(format!(".{name}.uid"))
}

/// The directory of claim `name` with uid `uid`, emptied first if it belonged to an
/// earlier claim of the same name.
pub fn claim_dir_for(state_dir: &Path, ns: &str, name: &str, uid: &str) -> std::io::Result<PathBuf> {
    let dir = claim_dir(state_dir, ns, name);
    let uid_file = claim_uid_file(state_dir, ns, name);
    let owner = std::fs::read_to_string(&uid_file).ok();
    if owner.as_deref() != Some(uid) {
        if owner.is_some() && dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        std::fs::write(&uid_file, uid)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
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
    let root = state_dir.join("volumes");
    let Ok(namespaces) = std::fs::read_dir(&root) else {
        return;
    };
    for ns in namespaces.flatten() {
        let ns_name = ns.file_name().to_string_lossy().into_owned();
        for claim in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            let claim_name = claim.file_name().to_string_lossy().into_owned();
            if claim_name.starts_with('.') {
                // A claim's uid file, removed with its directory.
                continue;
            }
            let exists = claims.iter().any(|c| {
                meta_str(c, "namespace") == Some(ns_name.as_str()) && meta_str(c, "name") == Some(claim_name.as_str())
            });
            if !exists {
                if let Err(e) = std::fs::remove_dir_all(claim.path()) {
                    tracing::warn!(error = %e, path = %claim.path().display(), "removing volume of deleted claim");
                }
                let _ = std::fs::remove_file(claim_uid_file(state_dir, &ns_name, &claim_name));
            }
        }
    }
}
