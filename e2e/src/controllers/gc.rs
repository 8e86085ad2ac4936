//! Garbage collector: deletes objects whose owners are gone, completes foreground deletion,
//! and empties terminating namespaces before removing them.

use std::collections::HashSet;

use serde_json::Value;
use tokio::sync::watch;

use crate::apiserver::Api;
use crate::apiserver::ops::{DeleteOptions, FOREGROUND_FINALIZER, owner_uids};
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
