//! Deletion: DeleteOptions, finalizers and deletionTimestamp, cascading policies, graceful
//! pod deletion and removal hooks (a CRD's removal drops its kind and objects).

use serde_json::{Value, json};

use super::error::ApiError;
use super::ops::{Api, finalizers, is_crd, ns_of, present, rv_of};
use super::registry::{ResKey, ResourceType};
use super::store::Txn;
use super::util::{ensure_object, meta_mut, meta_str, now_rfc3339};

/// `propagationPolicy` of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Delete now; the garbage collector removes dependents afterwards.
    #[default]
    Background,
    /// Keep the owner (with a `foregroundDeletion` finalizer) until dependents are gone.
    Foreground,
    /// Delete now and strip the owner reference from dependents.
    Orphan,
}

/// Parsed DeleteOptions.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// Cascading policy.
    pub propagation: Propagation,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// `dryRun`.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Parses a DeleteOptions JSON body (empty body = defaults).
    pub fn from_json(v: &Value) -> Result<Self, ApiError> {
        let propagation = match v.get("propagationPolicy").and_then(Value::as_str) {
            None | Some("Background") => Propagation::Background,
            Some("Foreground") => Propagation::Foreground,
            Some("Orphan") => Propagation::Orphan,
            Some(other) => {
                return Err(ApiError::bad_request(format!("unknown propagationPolicy {other:?}")));
            }
        };
        let propagation = if v.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
            Propagation::Orphan
        } else {
            propagation
        };
        let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(String::from);
        Ok(Self {
            propagation,
            uid: s("/preconditions/uid"),
            resource_version: s("/preconditions/resourceVersion"),
            grace_period: v.get("gracePeriodSeconds").and_then(Value::as_i64),
            dry_run: v.get("dryRun").and_then(Value::as_array).is_some_and(|a| !a.is_empty()),
        })
    }
}

/// Result of a delete.
#[derive(Debug, Clone)]
pub enum DeleteOutcome {
    /// Removed; the last state.
    Deleted(Value),
    /// Marked with deletionTimestamp; finalizers (or a terminating namespace) hold it.
    Pending(Value),
}

/// Finalizer the garbage collector honours for foreground deletion.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

impl Api {
    /// DELETE one object.
    pub fn delete(
        &self,
        rt: &ResourceType,
        version: &str,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome, ApiError> {
        let out = self.store.write(|t| self.delete_in(t, rt, ns, name, opts))?;
        Ok(match out {
            DeleteOutcome::Deleted(o) => DeleteOutcome::Deleted(present(o, rt, version)),
            DeleteOutcome::Pending(o) => DeleteOutcome::Pending(present(o, rt, version)),
        })
    }

    /// Removes an object and runs removal hooks (CRD removal drops its objects and kind).
    pub(super) fn remove_in(&self, t: &mut Txn<'_>, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        let removed = t.remove(&rt.key(), ns, name)?;
        if is_crd(rt)
            && let Some(custom) = self.registry.remove_custom(name)
        {
            let key = custom.key();
            let victims: Vec<(String, String)> = t
                .list(&key, None)
                .map(|o| {
                    (meta_str(o, "namespace").unwrap_or("").to_string(), meta_str(o, "name").unwrap_or("").to_string())
                })
                .collect();
            for (ns, n) in victims {
                t.remove(&key, &ns, &n);
            }
        }
        Some(removed)
    }

    /// Deletes inside a transaction.
    pub fn delete_in(
        &self,
        t: &mut Txn<'_>,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome, ApiError> {
        let ns = ns_of(rt, ns);
        let current =
            t.get(&rt.key(), ns, name).cloned().ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let uid = meta_str(&current, "uid").unwrap_or("").to_string();
        if let Some(want) = opts.uid.as_deref().filter(|u| *u != uid) {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
            ));
        }
        if let Some(want) = opts.resource_version.as_deref().filter(|r| *r != rv_of(&current)) {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                    rv_of(&current)
                ),
            ));
        }
        if opts.dry_run {
            return Ok(DeleteOutcome::Deleted(current));
        }
        let mut obj = current.clone();
        let mut fins = finalizers(&obj);
        if opts.propagation == Propagation::Foreground && !fins.iter().any(|f| f == FOREGROUND_FINALIZER) {
            fins.push(FOREGROUND_FINALIZER.into());
        }
        if opts.propagation == Propagation::Orphan {
            orphan_dependents(t, &uid);
        }
        let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
        let bound_pod = rt.group.is_empty()
            && rt.plural == "pods"
            && obj.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
        let graceful = self.graceful_pods && bound_pod && opts.grace_period != Some(0);
        if fins.is_empty() && !is_namespace && !graceful {
            return self
                .remove_in(t, rt, ns, name)
                .map(DeleteOutcome::Deleted)
                .ok_or_else(|| ApiError::internal("object vanished during delete"));
        }
        if graceful
            && current.pointer("/metadata/deletionTimestamp").is_some()
            && fins.is_empty()
            && opts.grace_period == Some(0)
        {
            return self
                .remove_in(t, rt, ns, name)
                .map(DeleteOutcome::Deleted)
                .ok_or_else(|| ApiError::internal("object vanished during delete"));
        }
        let meta = meta_mut(&mut obj);
        if !fins.is_empty() {
            meta.insert("finalizers".into(), json!(fins));
        }
        if !meta.contains_key("deletionTimestamp") {
            meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            let grace = if graceful {
                opts.grace_period
                    .or_else(|| current.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
                    .unwrap_or(30)
            } else {
                0
            };
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
        if is_namespace {
            ensure_object(ensure_object(&mut obj).entry("status").or_insert_with(|| json!({})))
                .insert("phase".into(), json!("Terminating"));
        }
        if obj == current {
            return Ok(DeleteOutcome::Pending(current));
        }
        Ok(DeleteOutcome::Pending(t.put(&rt.key(), obj)))
    }
}

/// Removes owner references to `uid` from every object.
fn orphan_dependents(t: &mut Txn<'_>, uid: &str) {
    let dependents: Vec<(ResKey, Value)> =
        t.all().filter(|(_, o)| owner_uids(o).any(|u| u == uid)).map(|(r, o)| (r.clone(), o.clone())).collect();
    for (res, mut obj) in dependents {
        if let Some(refs) = obj.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
        }
        t.put(&res, obj);
    }
}

/// UIDs in an object's ownerReferences.
pub fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
}
