//! PersistentVolumeClaims: binds new claims at once (a directory per claim stands in for a
//! volume) and deletes the directory of a claim that no longer exists.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::write_status;
use crate::apiserver::Api;
use crate::apiserver::registry::ResKey;
use crate::apiserver::util::meta_str;

/// Directory backing claim `name` in namespace `ns`.
pub fn claim_dir(state_dir: &Path, ns: &str, name: &str) -> PathBuf {
    state_dir.join("volumes").join(ns).join(name)
}

/// One pass: bind pending claims, remove directories of deleted claims.
pub fn sync_once(api: &Api, state_dir: &Path) {
    let claims: Vec<Value> =
        api.store.read(|s| s.list(&ResKey::new("", "persistentvolumeclaims"), None).cloned().collect());
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
            let exists = claims.iter().any(|c| {
                meta_str(c, "namespace") == Some(ns_name.as_str()) && meta_str(c, "name") == Some(claim_name.as_str())
            });
            if !exists && let Err(e) = std::fs::remove_dir_all(claim.path()) {
                tracing::warn!(error = %e, path = %claim.path().display(), "removing volume of deleted claim");
            }
        }
    }
}
