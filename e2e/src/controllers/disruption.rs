//! Disruption controller: keeps PodDisruptionBudget status current.

use super::write_status;
use crate::apiserver::Api;
use crate::apiserver::disruption::{budget, status};
use crate::apiserver::registry::ResKey;
use crate::apiserver::util::meta_str;

/// One pass over all budgets.
pub fn sync_once(api: &Api) {
    let (pdbs, pods) = api.store.read(|s| {
        (
            s.list(&ResKey::new("policy", "poddisruptionbudgets"), None).cloned().collect::<Vec<_>>(),
            s.list(&ResKey::new("", "pods"), None).cloned().collect::<Vec<_>>(),
        )
    });
    for pdb in &pdbs {
        let st = status(pdb, budget(pdb, &pods), pdb.pointer("/status/conditions"));
        if pdb.get("status") == Some(&st) {
            continue;
        }
        if let Err(e) = write_status(api, "policy", "poddisruptionbudgets", pdb, st) {
            tracing::debug!(error = %e, pdb = meta_str(pdb, "name"), "budget status update failed");
        }
    }
}
