//! Pod status as the kubelet reports it: phase, conditions, container statuses and
//! addresses, derived from what its containers are doing.

use serde_json::{Value, json};

use super::container::ContainerState;
use crate::controllers::condition;

/// What the kubelet knows about a pod it runs.
#[derive(Debug, Clone)]
pub struct Running<'a> {
    /// The pod's address.
    pub ip: &'a str,
    /// When the kubelet started it.
    pub start_time: &'a str,
    /// How many of `containers` are init containers (they come first).
    pub init_count: usize,
    /// Init containers, then main containers.
    pub containers: Vec<ContainerState>,
}

/// The status of `pod`; `rt` is `None` when the kubelet runs nothing for it (not started
/// yet, or stopped because its node is not Ready), `problem` why it could not start.
pub fn pod_status(pod: &Value, rt: Option<Running<'_>>, node_ready: bool, problem: Option<&str>) -> Value {
    let prev = pod.get("status").cloned().unwrap_or_else(|| json!({}));
    let prev_conds = prev.get("conditions");
    let all: &[ContainerState] = rt.as_ref().map_or(&[], |r| r.containers.as_slice());
    let init_count = rt.as_ref().map_or(0, |r| r.init_count).min(all.len());
    let (inits, containers) = all.split_at(init_count);
    let mut statuses: Vec<Value> = containers.iter().map(ContainerState::to_status).collect();
    let init_statuses: Vec<Value> = inits.iter().map(ContainerState::to_status).collect();
    if rt.is_none() {
        let reason = if node_ready { "ContainerCreating" } else { "NodeNotReady" };
        statuses = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                let mut s = ContainerState::new(c.get("name").and_then(Value::as_str).unwrap_or(""), c.get("image").and_then(Value::as_str).unwrap_or(""), false);
                s.state = json!({"waiting": {"reason": if problem.is_some() { "CreateContainerConfigError" } else { reason }, "message": problem.unwrap_or("")}});
                s.to_status()
            })
            .collect();
    }
    let initialized = inits.iter().all(|c| c.done && c.exit_code == Some(0));
    let init_failed = inits.iter().any(|c| c.done && c.exit_code != Some(0));
    let containers_ready = initialized && !containers.is_empty() && containers.iter().all(|c| c.ready);
    let ready = containers_ready && node_ready;
    let all_done = !containers.is_empty() && containers.iter().all(|c| c.done);
    let phase = if init_failed {
        "Failed"
    } else if all_done {
        if containers.iter().all(|c| c.exit_code == Some(0)) { "Succeeded" } else { "Failed" }
    } else if containers.iter().any(|c| c.started) {
        "Running"
    } else {
        prev.get("phase").and_then(Value::as_str).filter(|p| *p == "Running").unwrap_or("Pending")
    };
    let mut status = json!({
        "phase": phase,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "qosClass": prev.get("qosClass").cloned().unwrap_or_else(|| json!("BestEffort")),
        "conditions": [
            condition(prev_conds, "PodReadyToStartContainers", rt.is_some(), "", ""),
            condition(prev_conds, "Initialized", initialized || rt.is_none(), if initialized || rt.is_none() { "" } else { "ContainersNotInitialized" }, ""),
            condition(prev_conds, "Ready", ready, if ready { "" } else if node_ready { "ContainersNotReady" } else { "NodeNotReady" }, ""),
            condition(prev_conds, "ContainersReady", containers_ready, if containers_ready { "" } else { "ContainersNotReady" }, ""),
            condition(prev_conds, "PodScheduled", true, "", ""),
        ],
        "containerStatuses": statuses,
    });
    if !init_statuses.is_empty() {
        status["initContainerStatuses"] = json!(init_statuses);
    }
    match &rt {
        Some(r) => {
            status["podIP"] = json!(r.ip);
            status["podIPs"] = json!([{"ip": r.ip}]);
            status["startTime"] = json!(r.start_time);
        }
        None => {
            for k in ["podIP", "podIPs", "startTime"] {
                if let Some(v) = prev.get(k) {
                    status[k] = v.clone();
                }
            }
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": {"phase": "Pending"}})
    }

    fn state(name: &str, ready: bool, done: Option<i32>) -> ContainerState {
        let mut s = ContainerState::new(name, "i", false);
        s.started = true;
        s.ready = ready;
        s.done = done.is_some();
        s.exit_code = done;
        s.state = if done.is_some() { json!({"terminated": {"exitCode": done}}) } else { json!({"running": {}}) };
        s
    }

    fn cond(status: &Value, kind: &str) -> String {
        status["conditions"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["type"] == kind))
            .map(|c| c["status"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    #[test]
    fn running_ready_pod() {
        let rt = Running {
            ip: "127.1.1.2",
            start_time: "t",
            init_count: 1,
            containers: vec![state("init", false, Some(0)), state("c", true, None)],
        };
        let st = pod_status(&pod(), Some(rt), true, None);
        assert_eq!(st["phase"], "Running");
        assert_eq!(st["podIP"], "127.1.1.2");
        assert_eq!((cond(&st, "Initialized"), cond(&st, "Ready")), ("True".into(), "True".into()));
        assert_eq!(st["initContainerStatuses"][0]["name"], "init");
    }

    #[test]
    fn not_ready_node_and_pending_init() {
        let rt = Running {
            ip: "127.1.1.2",
            start_time: "t",
            init_count: 1,
            containers: vec![state("init", false, None), ContainerState::new("c", "i", false)],
        };
        let st = pod_status(&pod(), Some(rt), true, None);
        assert_eq!((st["phase"].as_str(), cond(&st, "Initialized")), (Some("Pending"), "False".into()));
        let stopped = pod_status(&pod(), None, false, None);
        assert_eq!(cond(&stopped, "Ready"), "False");
        assert_eq!(stopped["containerStatuses"][0]["state"]["waiting"]["reason"], "NodeNotReady");
    }

    #[test]
    fn failed_init_fails_the_pod() {
        let rt = Running {
            ip: "127.1.1.2",
            start_time: "t",
            init_count: 1,
            containers: vec![state("init", false, Some(1)), ContainerState::new("c", "i", false)],
        };
        assert_eq!(pod_status(&pod(), Some(rt), true, None)["phase"], "Failed");
    }
}
