//! PodDisruptionBudget arithmetic, shared by the disruption controller (status) and the
//! eviction subresource (admission).

use serde_json::{Value, json};

use super::delete::DeleteOptions;
use super::error::{ApiError, success_status};
use super::ops::Api;
use super::registry::ResKey;
use super::selector::LabelSelector;
use super::util::meta_str;

/// How many pods a budget expects, has healthy, needs, and may lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Pods the budget covers.
    pub expected: u64,
    /// Ready pods among them.
    pub healthy: u64,
    /// Ready pods the budget requires.
    pub desired: u64,
    /// Voluntary disruptions allowed now.
    pub allowed: u64,
}

fn ready(pod: &Value) -> bool {
    meta_str(pod, "deletionTimestamp").is_none()
        && pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// An int-or-percent value scaled against `total` (percentages round up).
fn scaled(v: &Value, total: u64) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.strip_suffix('%')?.parse::<u64>().ok().map(|p| (total * p).div_ceil(100)),
        _ => None,
    }
}

/// Whether `pdb` covers `pod`.
pub fn covers(pdb: &Value, pod: &Value) -> bool {
    meta_str(pdb, "namespace") == meta_str(pod, "namespace")
        && pdb.pointer("/spec/selector").is_some_and(|s| LabelSelector::from_object(s).matches(pod))
}

/// Computes the budget of `pdb` over `pods` (all pods; filtered here).
pub fn budget(pdb: &Value, pods: &[Value]) -> Budget {
    let covered: Vec<&Value> =
        pods.iter().filter(|p| covers(pdb, p) && meta_str(p, "deletionTimestamp").is_none()).collect();
    let expected = covered.len() as u64;
    let healthy = covered.iter().filter(|p| ready(p)).count() as u64;
    let desired = match (pdb.pointer("/spec/minAvailable"), pdb.pointer("/spec/maxUnavailable")) {
        (Some(min), _) => scaled(min, expected).unwrap_or(expected),
        (None, Some(max)) => expected.saturating_sub(scaled(max, expected).unwrap_or(0)),
        (None, None) => expected,
    };
    Budget { expected, healthy, desired, allowed: healthy.saturating_sub(desired) }
}

/// The status a PodDisruptionBudget reports for `b`.
pub fn status(pdb: &Value, b: Budget, previous_conditions: Option<&Value>) -> Value {
    let allowed = b.allowed > 0;
    let since = previous_conditions
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter().find(|c| c["type"] == "DisruptionAllowed" && c["status"] == if allowed { "True" } else { "False" })
        })
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(super::util::now_rfc3339()));
    json!({
        "observedGeneration": pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        "expectedPods": b.expected,
        "currentHealthy": b.healthy,
        "desiredHealthy": b.desired,
        "disruptionsAllowed": b.allowed,
        "conditions": [{
            "type": "DisruptionAllowed",
            "status": if allowed { "True" } else { "False" },
            "reason": if allowed { "SufficientPods" } else { "InsufficientPods" },
            "message": "",
            "observedGeneration": pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
            "lastTransitionTime": since,
        }],
    })
}

impl Api {
    /// `POST pods/{name}/eviction`: deletes the pod unless a covering budget allows no
    /// disruption (429, as the API server answers `kubectl drain`).
    pub fn evict(&self, ns: &str, name: &str, eviction: &Value) -> Result<Value, ApiError> {
        let pods_rt = self.resource("", "pods")?;
        let opts = DeleteOptions::from_json(eviction.get("deleteOptions").unwrap_or(&Value::Null))?;
        self.store.write(|t| {
            let pod = t.get(&pods_rt.key(), ns, name).cloned().ok_or_else(|| ApiError::not_found("", "pods", name))?;
            let pods: Vec<Value> = t.list(&pods_rt.key(), Some(ns)).cloned().collect();
            let pdbs: Vec<Value> = t.list(&ResKey::new("policy", "poddisruptionbudgets"), Some(ns)).filter(|b| covers(b, &pod)).cloned().collect();
            if meta_str(&pod, "deletionTimestamp").is_none() {
                for pdb in &pdbs {
                    let b = budget(pdb, &pods);
                    if b.allowed == 0 {
                        let pdb_name = meta_str(pdb, "name").unwrap_or("");
                        return Err(ApiError::too_many_requests(
                            "Cannot evict pod as it would violate the pod's disruption budget.",
                            json!({"causes": [{"reason": "DisruptionBudget", "message": format!("The disruption budget {pdb_name} needs {} healthy pods and has {} currently", b.desired, b.healthy)}]}),
                        ));
                    }
                }
            }
            let uid = meta_str(&pod, "uid").map(String::from);
            self.delete_in(t, &pods_rt, Some(ns), name, &opts)?;
            Ok(success_status("", "pods", name, uid.as_deref()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "labels": {"app": "db"}},
               "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn min_available_and_max_unavailable() {
        let pods = vec![pod("a", true), pod("b", true), pod("c", false)];
        let pdb = |spec: Value| json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec});
        let sel = json!({"matchLabels": {"app": "db"}});
        assert_eq!(
            budget(&pdb(json!({"selector": sel, "minAvailable": 2})), &pods),
            Budget { expected: 3, healthy: 2, desired: 2, allowed: 0 }
        );
        assert_eq!(budget(&pdb(json!({"selector": sel, "maxUnavailable": 1})), &pods).allowed, 0);
        assert_eq!(budget(&pdb(json!({"selector": sel, "minAvailable": "50%"})), &pods).allowed, 0);
        assert_eq!(budget(&pdb(json!({"selector": sel, "minAvailable": "1"})), &pods).desired, 3);
        assert_eq!(budget(&pdb(json!({"selector": sel, "maxUnavailable": "34%"})), &pods).desired, 1);
    }
}
