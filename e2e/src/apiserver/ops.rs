//! Object operations with Kubernetes API semantics (create, update, patch, delete, list)
//! on top of the store. Used by the HTTP handlers and by in-process controllers alike.

use std::sync::Arc;

use serde_json::{Value, json};

use super::apply::server_side_apply;
use super::crd::{established_status, resource_type_from_crd};
use super::defaults::apply_builtin_defaults;
use super::error::{ApiError, FieldCause};
use super::patch::{json_patch, merge_patch, strategic_merge};
use super::registry::{Registry, ResKey, ResourceType};
use super::scale::scale_of;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Store, Txn};
use super::util::{ensure_object, meta_mut, meta_str, new_uid, now_rfc3339, random_suffix};
use super::validation::{apply_defaults, prune, validate};

pub use super::delete::{DeleteOptions, DeleteOutcome, FOREGROUND_FINALIZER, Propagation, owner_uids};

/// Which part of an object a request addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    /// The object itself.
    Main,
    /// `/status`.
    Status,
    /// `/scale`.
    Scale,
}

/// The `fieldValidation` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Reject unknown fields.
    Strict,
    /// Drop unknown fields (the emulator does not return warnings).
    #[default]
    Warn,
    /// Drop unknown fields.
    Ignore,
}

/// Options common to writes.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `force=true` (server-side apply takes conflicting fields).
    pub force: bool,
}

/// PATCH content types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

/// The API: registry plus store, with all write semantics.
#[derive(Debug, Clone)]
pub struct Api {
    /// All objects.
    pub store: Arc<Store>,
    /// Known resource types.
    pub registry: Arc<Registry>,
    /// Pods bound to a node are deleted gracefully (the kubelet completes the delete).
    pub graceful_pods: bool,
    /// Where the kubelet keeps pod directories (serves `pods/{name}/log`).
    pub pods_dir: Option<std::path::PathBuf>,
    /// Starts commands in pods (serves `pods/{name}/exec`).
    pub exec: Option<Arc<dyn super::exec::PodExec>>,
}

/// Finalizer on every CRD: its custom resources are deleted (honouring their own
/// finalizers) before the CRD is removed.
pub const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

pub(super) fn is_crd(rt: &ResourceType) -> bool {
    rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions"
}

/// Sets `apiVersion` and `kind` for the version a client asked for.
pub fn present(mut obj: Value, rt: &ResourceType, version: &str) -> Value {
    let root = ensure_object(&mut obj);
    root.insert("apiVersion".into(), json!(rt.api_version(version)));
    root.insert("kind".into(), json!(rt.kind));
    obj
}

pub(super) fn ns_of<'a>(rt: &ResourceType, ns: Option<&'a str>) -> &'a str {
    if rt.namespaced { ns.unwrap_or("") } else { "" }
}

pub(super) fn rv_of(obj: &Value) -> &str {
    meta_str(obj, "resourceVersion").unwrap_or("")
}

pub(super) fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

/// The object without metadata and status, for generation tracking.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    v
}

impl Api {
    /// A fresh API over an empty store with the built-in kinds.
    pub fn new() -> Self {
        Self::with_history(20_000)
    }

    /// Like `new`, keeping only the last `limit` changes for watch resumption.
    pub fn with_history(limit: usize) -> Self {
        Self {
            store: Arc::new(Store::new(limit)),
            registry: Arc::new(Registry::with_builtins()),
            graceful_pods: false,
            pods_dir: None,
            exec: None,
        }
    }

    /// Looks up the type for a storage key.
    pub fn resource(&self, group: &str, plural: &str) -> Result<Arc<ResourceType>, ApiError> {
        self.registry
            .by_key(&ResKey::new(group, plural))
            .ok_or_else(|| ApiError::no_route(&format!("{group}/{plural}")))
    }

    /// GET one object.
    pub fn get(&self, rt: &ResourceType, version: &str, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let obj = self.store.read(|s| s.get(&rt.key(), ns_of(rt, ns), name).cloned());
        obj.map(|o| present(o, rt, version)).ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// LIST with selectors and `limit`/`continue` paging.
    #[allow(clippy::too_many_arguments)]
    pub fn list(
        &self,
        rt: &ResourceType,
        version: &str,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        cont: Option<&str>,
    ) -> Result<Value, ApiError> {
        let after = cont.filter(|c| !c.is_empty()).map(decode_continue).transpose()?;
        let (items, rv) = self.store.read(|s| {
            let items: Vec<Value> = s
                .list(&rt.key(), if rt.namespaced { ns } else { None })
                .filter(|o| labels.matches(o) && fields.matches(o))
                .filter(|o| after.as_ref().is_none_or(|a| obj_pos(o) > *a))
                .cloned()
                .collect();
            (items, s.rv())
        });
        let total = items.len();
        let take = limit.filter(|l| *l > 0).unwrap_or(usize::MAX).min(total);
        let items: Vec<Value> = items.into_iter().take(take).map(|o| present(o, rt, version)).collect();
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if take < total
            && let Some(last) = items.last()
        {
            meta["continue"] = json!(encode_continue(&obj_pos(last)));
            meta["remainingItemCount"] = json!(total - take);
        }
        Ok(
            json!({"apiVersion": rt.api_version(version), "kind": format!("{}List", rt.kind), "metadata": meta, "items": items}),
        )
    }

    /// POST: create an object.
    pub fn create(
        &self,
        rt: &ResourceType,
        version: &str,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let out = self.store.write(|t| self.create_in(t, rt, version, ns, body, opts))?;
        Ok(present(out, rt, version))
    }

    /// PUT: replace an object (or its status / scale).
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &self,
        rt: &ResourceType,
        version: &str,
        ns: Option<&str>,
        name: &str,
        body: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let out = self.store.write(|t| -> Result<Value, ApiError> {
            let current = t
                .get(&rt.key(), ns_of(rt, ns), name)
                .cloned()
                .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            if sub == Subresource::Scale {
                let replicas = body.pointer("/spec/replicas").cloned().unwrap_or(Value::Null);
                check_rv(rt, name, &current, &body)?;
                return self.write_scale(t, rt, version, current, replicas, opts);
            }
            let body_name = meta_str(&body, "name").unwrap_or("");
            if !body_name.is_empty() && body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            check_rv(rt, name, &current, &body)?;
            self.finish(t, rt, version, current, body, sub, opts)
        })?;
        Ok(if sub == Subresource::Scale { out } else { present(out, rt, version) })
    }

    /// PATCH (all four patch types); returns the object and whether it was created.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        version: &str,
        ns: Option<&str>,
        name: &str,
        ptype: PatchType,
        body: &Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<(Value, bool), ApiError> {
        if ptype == PatchType::Strategic && !rt.supports_strategic_merge() {
            return Err(ApiError::unsupported_media_type("application/strategic-merge-patch+json"));
        }
        let (out, created) = self.store.write(|t| -> Result<(Value, bool), ApiError> {
            let current = t.get(&rt.key(), ns_of(rt, ns), name).cloned();
            if ptype == PatchType::Apply {
                let manager = opts
                    .field_manager
                    .as_deref()
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| ApiError::bad_request("PATCH requests to apply must have a fieldManager"))?;
                let sub_name = (sub == Subresource::Status).then_some("status");
                return match current {
                    None if sub == Subresource::Main => {
                        let mut obj =
                            server_side_apply(None, body, manager, &rt.api_version(version), None, opts.force)
                                .map_err(ApiError::apply_conflict)?;
                        let m = meta_mut(&mut obj);
                        m.insert("name".into(), json!(name));
                        Ok((self.create_in(t, rt, version, ns, obj, opts)?, true))
                    }
                    None => Err(ApiError::not_found(&rt.group, &rt.plural, name)),
                    Some(cur) => {
                        check_rv(rt, name, &cur, body)?;
                        let new = server_side_apply(
                            Some(&cur),
                            body,
                            manager,
                            &rt.api_version(version),
                            sub_name,
                            opts.force,
                        )
                        .map_err(ApiError::apply_conflict)?;
                        Ok((self.finish(t, rt, version, cur, new, sub, opts)?, false))
                    }
                };
            }
            let current = current.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            let mut target = if sub == Subresource::Scale { scale_of(rt, &current) } else { current.clone() };
            match ptype {
                PatchType::Merge => merge_patch(&mut target, body),
                PatchType::Strategic => strategic_merge(&mut target, body),
                PatchType::Json => json_patch(&mut target, body)?,
                PatchType::Apply => unreachable!("handled above"),
            }
            check_rv(rt, name, &current, &target)?;
            if sub == Subresource::Scale {
                let replicas = target.pointer("/spec/replicas").cloned().unwrap_or(Value::Null);
                return Ok((self.write_scale(t, rt, version, current, replicas, opts)?, false));
            }
            Ok((self.finish(t, rt, version, current, target, sub, opts)?, false))
        })?;
        Ok((if sub == Subresource::Scale { out } else { present(out, rt, version) }, created))
    }

    /// Creates inside a transaction.
    pub fn create_in(
        &self,
        t: &mut Txn<'_>,
        rt: &ResourceType,
        version: &str,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut obj = body;
        if !obj.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        if let Some(kind) = obj.get("kind").and_then(Value::as_str).filter(|k| !k.is_empty() && *k != rt.kind) {
            return Err(ApiError::bad_request(format!(
                "the kind in the body ({kind}) does not match the resource {} ({})",
                rt.plural, rt.kind
            )));
        }
        obj = present(obj, rt, version);
        let url_ns = ns_of(rt, ns).to_string();
        let meta = meta_mut(&mut obj);
        let mut name = meta.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        if name.is_empty() {
            match meta.get("generateName").and_then(Value::as_str).filter(|g| !g.is_empty()) {
                Some(prefix) => name = format!("{prefix}{}", random_suffix(5)),
                None => {
                    let cause = FieldCause {
                        reason: "FieldValueRequired",
                        field: "metadata.name".into(),
                        message: "metadata.name: Required value: name or generateName is required".into(),
                    };
                    return Err(ApiError::invalid(&rt.group, &rt.kind, "", vec![cause]));
                }
            }
            meta.insert("name".into(), json!(name));
        }
        if rt.namespaced {
            let body_ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
            if !body_ns.is_empty() && body_ns != url_ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta.insert("namespace".into(), json!(url_ns));
        } else {
            meta.remove("namespace");
        }
        for k in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
            meta.remove(k);
        }
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        if rt.namespaced {
            match t.get(&ResKey::new("", "namespaces"), "", &url_ns) {
                None => return Err(ApiError::not_found("", "namespaces", &url_ns)),
                Some(n) if meta_str(n, "deletionTimestamp").is_some() => {
                    return Err(ApiError {
                        code: 403,
                        reason: "Forbidden",
                        message: format!(
                            "{} \"{name}\" is forbidden: unable to create new content in namespace {url_ns} because it is being terminated",
                            rt.plural
                        ),
                        details: None,
                    });
                }
                Some(_) => {}
            }
        }
        if t.get(&rt.key(), &url_ns, &name).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if let Some(crd_name) = rt.custom.as_ref().map(|c| c.crd_name.as_str()) {
            let crd = t.get(&ResKey::new("apiextensions.k8s.io", "customresourcedefinitions"), "", crd_name);
            if crd.is_some_and(|c| meta_str(c, "deletionTimestamp").is_some()) {
                return Err(ApiError::method_not_allowed(format!(
                    "create not allowed while custom resource definition {crd_name} is terminating"
                )));
            }
        }
        if rt.has_status {
            ensure_object(&mut obj).remove("status");
        }
        self.admit(rt, version, &mut obj, None, opts)?;
        if opts.dry_run {
            return Ok(obj);
        }
        let stored = t.put(&rt.key(), obj);
        self.after_write(rt, &stored);
        Ok(stored)
    }

    /// Defaults, CRD schema handling and kind-specific hooks.
    fn admit(
        &self,
        rt: &ResourceType,
        version: &str,
        obj: &mut Value,
        old: Option<&Value>,
        opts: &WriteOptions,
    ) -> Result<(), ApiError> {
        if rt.custom.is_none() {
            apply_builtin_defaults(&rt.group, &rt.kind, obj, old.is_none());
            let causes = super::builtin_validation::validate(&rt.group, &rt.kind, obj, old);
            if !causes.is_empty() {
                let name = meta_str(obj, "name").unwrap_or("").to_string();
                return Err(ApiError::invalid(&rt.group, &rt.kind, &name, causes));
            }
        }
        let name = meta_str(obj, "name").unwrap_or("").to_string();
        if let Some(schema) = rt.schema(version) {
            apply_defaults(obj, schema);
            let unknown = prune(obj, schema, "", true);
            if opts.field_validation == FieldValidation::Strict && !unknown.is_empty() {
                let fields = unknown.iter().map(|u| format!("unknown field \"{u}\"")).collect::<Vec<_>>().join(", ");
                return Err(ApiError::bad_request(format!(
                    "{} in version \"{version}\" cannot be handled as a {}: strict decoding error: {fields}",
                    rt.kind, rt.kind
                )));
            }
            let mut causes = Vec::new();
            validate(obj, schema, "", true, &mut causes);
            // Like the API server: CEL rules run unless a value has the wrong type.
            if let Some(rules) = rt.rules(version).filter(|r| !r.is_empty()) {
                if causes.iter().any(|c| c.message.contains(" in body must be of type ")) {
                    causes.push(super::cel::not_checked());
                } else {
                    causes.extend(rules.validate(obj, old));
                }
            }
            if !causes.is_empty() {
                return Err(ApiError::invalid(&rt.group, &rt.kind, &name, causes));
            }
        }
        if is_crd(rt) {
            resource_type_from_crd(obj)?;
            let status = match old.and_then(|o| o.get("status")).filter(|s| s.get("conditions").is_some()) {
                Some(s) => s.clone(),
                None => established_status(obj),
            };
            ensure_object(obj).insert("status".into(), status);
            if old.is_none() {
                // Like the API server: instances are cleaned up before the CRD goes.
                let fins = meta_mut(obj).entry("finalizers").or_insert_with(|| json!([]));
                if let Some(list) = fins.as_array_mut().filter(|l| !l.iter().any(|f| f == CRD_CLEANUP_FINALIZER)) {
                    list.push(json!(CRD_CLEANUP_FINALIZER));
                }
            }
        }
        Ok(())
    }

    fn after_write(&self, rt: &ResourceType, stored: &Value) {
        if is_crd(rt)
            && let Ok(custom) = resource_type_from_crd(stored)
        {
            self.registry.upsert_custom(custom);
        }
    }

    /// Completes an update of `current` to `new` (rv already checked) inside a transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &self,
        t: &mut Txn<'_>,
        rt: &ResourceType,
        version: &str,
        current: Value,
        new: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut new = new;
        if !new.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        if sub == Subresource::Status {
            let mut merged = current.clone();
            let root = ensure_object(&mut merged);
            match new.get("status") {
                Some(s) if !s.is_null() => root.insert("status".into(), s.clone()),
                _ => root.remove("status"),
            };
            if let Some(mf) = new.pointer("/metadata/managedFields").cloned() {
                meta_mut(&mut merged).insert("managedFields".into(), mf);
            }
            new = merged;
        } else {
            let cur_meta = current.get("metadata").cloned().unwrap_or_else(|| json!({}));
            let meta = meta_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "namespace",
                "name",
                "generation",
            ] {
                match cur_meta.get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
            if !meta.contains_key("managedFields")
                && let Some(mf) = cur_meta.get("managedFields")
            {
                meta.insert("managedFields".into(), mf.clone());
            }
            if rt.has_status {
                let root = ensure_object(&mut new);
                match current.get("status") {
                    Some(s) => root.insert("status".into(), s.clone()),
                    None => root.remove("status"),
                };
            }
        }
        new = present(new, rt, version);
        self.admit(rt, version, &mut new, Some(&current), opts)?;
        let generation = current.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
        let generation = if spec_part(&current) != spec_part(&new) { generation + 1 } else { generation };
        let meta = meta_mut(&mut new);
        meta.insert("generation".into(), json!(generation));
        meta.insert("resourceVersion".into(), json!(rv_of(&current)));
        let terminating = meta.contains_key("deletionTimestamp");
        if without_times(&present(current.clone(), rt, version)) == without_times(&new) {
            return Ok(current);
        }
        if opts.dry_run {
            return Ok(new);
        }
        let (ns, name) =
            (meta_str(&new, "namespace").unwrap_or("").to_string(), meta_str(&new, "name").unwrap_or("").to_string());
        if terminating && finalizers(&new).is_empty() && !(rt.group.is_empty() && rt.plural == "namespaces") {
            t.put(&rt.key(), new);
            return self
                .remove_in(t, rt, &ns, &name)
                .ok_or_else(|| ApiError::internal("object vanished during delete"));
        }
        let stored = t.put(&rt.key(), new);
        self.after_write(rt, &stored);
        Ok(stored)
    }
}

/// Directory of one pod under the kubelet's pods directory.
pub fn pod_dir(pods_dir: &std::path::Path, pod: &Value) -> std::path::PathBuf {
    let s = |f: &str| meta_str(pod, f).unwrap_or("").to_string();
    pods_dir.join(format!("{}_{}_{}", s("namespace"), s("name"), s("uid")))
}

impl Default for Api {
    fn default() -> Self {
        Self::new()
    }
}

/// The object without managedFields timestamps, to detect no-op writes.
fn without_times(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(entries) = v.pointer_mut("/metadata/managedFields").and_then(Value::as_array_mut) {
        for e in entries.iter_mut().filter_map(Value::as_object_mut) {
            e.remove("time");
        }
    }
    v
}

fn check_rv(rt: &ResourceType, name: &str, current: &Value, new: &Value) -> Result<(), ApiError> {
    let want = rv_of(new);
    if !want.is_empty() && want != rv_of(current) {
        return Err(ApiError::conflict(
            &rt.group,
            &rt.plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    Ok(())
}

fn obj_pos(obj: &Value) -> String {
    format!("{}/{}", meta_str(obj, "namespace").unwrap_or(""), meta_str(obj, "name").unwrap_or(""))
}

fn encode_continue(pos: &str) -> String {
    pos.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16).map_err(|_| bad()))
        .collect::<Result<Vec<u8>, _>>()?;
    String::from_utf8(bytes).map_err(|_| bad())
}
