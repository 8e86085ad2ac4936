//! Garbage collector: deletes objects whose owners are gone, completes foreground deletion,
//! empties terminating namespaces and CRDs (their custom resources) before removing them.

use std::collections::HashSet;

use serde_json::Value;
use tokio::sync::watch;

use crate::apiserver::Api;
use crate::apiserver::ops::{CRD_CLEANUP_FINALIZER, DeleteOptions, FOREGROUND_FINALIZER, owner_uids};
use crate::apiserver::registry::ResKey;
use crate::apiserver::store::Txn;
use crate::apiserver::util::meta_str;

/// Runs the collector until `shutdown` becomes true.
pub async fn run(api: Api, mut shutdown: watch::Receiver<bool>) {
    let mut changed = api.store.subscribe();
    loop {
        changed.borrow_and_update();
        collect_once(&api);
        tokio::select! {
            res = changed.changed() => if res.is_err() { return },
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

fn ident(obj: &Value) -> (String, String) {
    (meta_str(obj, "namespace").unwrap_or("").to_string(), meta_str(obj, "name").unwrap_or("").to_string())
}

fn delete(api: &Api, t: &mut Txn<'_>, res: &ResKey, ns: &str, name: &str) {
    let Some(rt) = api.registry.by_key(res) else {
        return;
    };
    let ns = (!ns.is_empty()).then_some(ns);
    if let Err(e) = api.delete_in(t, &rt, ns, name, &DeleteOptions::default()) {
        tracing::debug!(error = %e, resource = %res.plural, name, "garbage collection delete failed");
    }
}

/// One pass over all objects.
pub fn collect_once(api: &Api) {
    api.store.write(|t| {
        let uids: HashSet<String> = t.all().filter_map(|(_, o)| meta_str(o, "uid")).map(String::from).collect();
        let owned_by: HashSet<String> =
            t.all().flat_map(|(_, o)| owner_uids(o).map(String::from).collect::<Vec<_>>()).collect();

        // Dependents whose every owner is gone, or whose owner is being deleted in the foreground.
        let foreground: HashSet<String> = t
            .all()
            .filter(|(_, o)| has_finalizer(o, FOREGROUND_FINALIZER) && meta_str(o, "deletionTimestamp").is_some())
            .filter_map(|(_, o)| meta_str(o, "uid").map(String::from))
            .collect();
        let orphans: Vec<(ResKey, String, String)> = t
            .all()
            .filter(|(_, o)| meta_str(o, "deletionTimestamp").is_none())
            .filter(|(_, o)| {
                let owners: Vec<&str> = owner_uids(o).collect();
                !owners.is_empty()
                    && (owners.iter().all(|u| !uids.contains(*u)) || owners.iter().any(|u| foreground.contains(*u)))
            })
            .map(|(r, o)| {
                let (ns, name) = ident(o);
                (r.clone(), ns, name)
            })
            .collect();
        for (res, ns, name) in orphans {
            delete(api, t, &res, &ns, &name);
        }

        // Foreground owners whose dependents are all gone lose the finalizer.
        let done: Vec<(ResKey, Value)> = t
            .all()
            .filter(|(_, o)| has_finalizer(o, FOREGROUND_FINALIZER) && meta_str(o, "deletionTimestamp").is_some())
            .filter(|(_, o)| meta_str(o, "uid").is_none_or(|u| !owned_by.contains(u)))
            .map(|(r, o)| (r.clone(), o.clone()))
            .collect();
        for (res, mut obj) in done {
            if let Some(f) = obj.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
                f.retain(|x| x.as_str() != Some(FOREGROUND_FINALIZER));
            }
            finish_update(api, t, &res, obj);
        }

        // Terminating CRDs: delete their custom resources, then drop the cleanup finalizer.
        let crd_key = ResKey::new("apiextensions.k8s.io", "customresourcedefinitions");
        let terminating_crds: Vec<Value> = t
            .list(&crd_key, None)
            .filter(|c| meta_str(c, "deletionTimestamp").is_some() && has_finalizer(c, CRD_CLEANUP_FINALIZER))
            .cloned()
            .collect();
        for crd in terminating_crds {
            let crd_name = meta_str(&crd, "name").unwrap_or("").to_string();
            let kind =
                api.registry.all().into_iter().find(|r| r.custom.as_ref().is_some_and(|c| c.crd_name == crd_name));
            let instances: Vec<(String, String, bool)> = kind
                .as_ref()
                .map(|k| {
                    t.list(&k.key(), None)
                        .map(|o| (ident(o).0, ident(o).1, meta_str(o, "deletionTimestamp").is_some()))
                        .collect()
                })
                .unwrap_or_default();
            if instances.is_empty() {
                let mut done = crd.clone();
                if let Some(f) = done.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
                    f.retain(|x| x.as_str() != Some(CRD_CLEANUP_FINALIZER));
                }
                finish_update(api, t, &crd_key, done);
            } else if let Some(k) = kind {
                for (ns, name, already) in instances {
                    if !already {
                        delete(api, t, &k.key(), &ns, &name);
                    }
                }
            }
        }

        // Terminating namespaces: delete contents, then the namespace.
        let ns_key = ResKey::new("", "namespaces");
        let terminating: Vec<String> = t
            .list(&ns_key, None)
            .filter(|n| meta_str(n, "deletionTimestamp").is_some())
            .filter_map(|n| meta_str(n, "name").map(String::from))
            .collect();
        for ns in terminating {
            let contents: Vec<(ResKey, String, bool)> = t
                .all()
                .filter(|(_, o)| meta_str(o, "namespace") == Some(ns.as_str()))
                .map(|(r, o)| (r.clone(), ident(o).1, meta_str(o, "deletionTimestamp").is_some()))
                .collect();
            if contents.is_empty() {
                t.remove(&ns_key, "", &ns);
                continue;
            }
            for (res, name, already) in contents {
                if !already {
                    delete(api, t, &res, &ns, &name);
                }
            }
        }
    });
}

fn has_finalizer(obj: &Value, f: &str) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(f)))
}

fn finish_update(api: &Api, t: &mut Txn<'_>, res: &ResKey, obj: Value) {
    let Some(rt) = api.registry.by_key(res) else {
        return;
    };
    let (ns, name) = ident(&obj);
    let Some(current) = t.get(res, &ns, &name).cloned() else {
        return;
    };
    let version = rt.preferred_version().to_string();
    if let Err(e) =
        api.finish(t, &rt, &version, current, obj, crate::apiserver::ops::Subresource::Main, &Default::default())
    {
        tracing::debug!(error = %e, name, "garbage collector update failed");
    }
}
