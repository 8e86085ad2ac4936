//! Server-side defaults for the built-in kinds this emulator serves (the subset clients read).

use serde_json::{Map, Value, json};

use super::util::{base64_encode, ensure_object};

/// Finalizer keeping a PersistentVolumeClaim while a pod uses it.
pub const PVC_PROTECTION_FINALIZER: &str = "kubernetes.io/pvc-protection";

fn set_default(m: &mut Map<String, Value>, key: &str, v: Value) {
    m.entry(key.to_string()).or_insert(v);
}

fn obj_at<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    ensure_object(ensure_object(v).entry(key).or_insert_with(|| json!({})))
}

fn pod_spec_defaults(spec: &mut Value) {
    let s = ensure_object(spec);
    set_default(s, "restartPolicy", json!("Always"));
    set_default(s, "dnsPolicy", json!("ClusterFirst"));
    set_default(s, "schedulerName", json!("default-scheduler"));
    set_default(s, "terminationGracePeriodSeconds", json!(30));
    set_default(s, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        for c in s.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let c = ensure_object(c);
            set_default(c, "imagePullPolicy", json!("IfNotPresent"));
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
            for p in c.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                set_default(ensure_object(p), "protocol", json!("TCP"));
            }
        }
    }
}

fn template_defaults(spec: &mut Map<String, Value>) {
    if let Some(t) = spec.get_mut("template") {
        pod_spec_defaults(ensure_object(t).entry("spec").or_insert_with(|| json!({})));
    }
}

/// Applies defaults for `kind` (core and apps kinds); `create` is true on creation.
pub fn apply_builtin_defaults(group: &str, kind: &str, obj: &mut Value, create: bool) {
    match (group, kind) {
        ("", "Pod") => {
            pod_spec_defaults(ensure_object(obj).entry("spec").or_insert_with(|| json!({})));
            if create {
                let st = obj_at(obj, "status");
                set_default(st, "phase", json!("Pending"));
                set_default(st, "qosClass", json!("BestEffort"));
            }
        }
        ("", "Namespace") => {
            let name = obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
            let labels = ensure_object(obj_at(obj, "metadata").entry("labels").or_insert_with(|| json!({})));
            labels.insert("kubernetes.io/metadata.name".into(), name);
            set_default(obj_at(obj, "spec"), "finalizers", json!(["kubernetes"]));
            set_default(obj_at(obj, "status"), "phase", json!("Active"));
        }
        ("", "Secret") => {
            let root = ensure_object(obj);
            set_default(root, "type", json!("Opaque"));
            if let Some(Value::Object(string_data)) = root.remove("stringData") {
                let data = ensure_object(root.entry("data").or_insert_with(|| json!({})));
                for (k, v) in string_data {
                    data.insert(k, json!(base64_encode(v.as_str().unwrap_or("").as_bytes())));
                }
            }
        }
        ("", "Service") => {
            let spec = obj_at(obj, "spec");
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            for p in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                let p = ensure_object(p);
                set_default(p, "protocol", json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    set_default(p, "targetPort", port);
                }
            }
        }
        ("", "PersistentVolumeClaim") => {
            set_default(obj_at(obj, "spec"), "volumeMode", json!("Filesystem"));
            if create {
                set_default(obj_at(obj, "status"), "phase", json!("Pending"));
                // The storage-object-in-use protection admission plugin: a claim in use by a
                // pod stays (Terminating) until no pod uses it.
                let fins = obj_at(obj, "metadata").entry("finalizers").or_insert_with(|| json!([]));
                if let Some(list) = fins.as_array_mut().filter(|l| !l.iter().any(|f| f == PVC_PROTECTION_FINALIZER)) {
                    list.push(json!(PVC_PROTECTION_FINALIZER));
                }
            }
        }
        ("apps", "StatefulSet") => {
            let spec = obj_at(obj, "spec");
            set_default(spec, "replicas", json!(1));
            set_default(spec, "podManagementPolicy", json!("OrderedReady"));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "updateStrategy", json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
            set_default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            template_defaults(spec);
        }
        ("apps", "Deployment") => {
            let spec = obj_at(obj, "spec");
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
            template_defaults(spec);
        }
        ("apps", "ReplicaSet") => {
            let spec = obj_at(obj, "spec");
            set_default(spec, "replicas", json!(1));
            template_defaults(spec);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statefulset_gets_rolling_update_strategy() {
        let mut sts =
            json!({"metadata": {"name": "s"}, "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}});
        apply_builtin_defaults("apps", "StatefulSet", &mut sts, true);
        assert_eq!(sts["spec"]["updateStrategy"]["type"], "RollingUpdate");
        assert_eq!(sts["spec"]["replicas"], 1);
        assert_eq!(sts["spec"]["template"]["spec"]["restartPolicy"], "Always");
    }

    #[test]
    fn secret_string_data_is_encoded() {
        let mut s = json!({"metadata": {"name": "s"}, "stringData": {"k": "foobar"}});
        apply_builtin_defaults("", "Secret", &mut s, true);
        assert_eq!(s, json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"k": "Zm9vYmFy"}}));
    }
}
