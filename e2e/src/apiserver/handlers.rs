//! HTTP routing: maps Kubernetes REST paths and verbs onto `Api` operations.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use tokio::sync::watch;

use super::discovery;
use super::error::{ApiError, success_status};
use super::openapi;
use super::ops::{
    Api, DeleteOptions, DeleteOutcome, FieldValidation, PatchType, Propagation, Subresource, WriteOptions, present,
};
use super::protobuf;
use super::registry::ResourceType;
use super::selector::{FieldSelector, LabelSelector};
use super::table;
use super::util::{Query, meta_str};
use super::watch::{self as watching, WatchRequest};

/// Largest accepted request body.
const MAX_BODY: usize = 64 << 20;

/// Shared state of the HTTP layer.
#[derive(Debug)]
pub struct AppState {
    /// The API.
    pub api: Api,
    /// Flips to true on shutdown; ends watch streams.
    pub shutdown: watch::Receiver<bool>,
    /// `host:port` clients use.
    pub server_address: String,
}

fn respond(code: u16, content_type: &str, body: String) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn json(code: u16, v: &Value) -> Response {
    respond(code, "application/json", v.to_string())
}

fn error(e: &ApiError) -> Response {
    json(e.code, &e.to_status())
}

/// Entry point for every request.
pub async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Some((ns, name)) = super::exec::exec_target(parts.uri.path()) {
        let uri = parts.uri.clone();
        let resp = super::exec::handle(&state.api, parts, &ns, &name).await.unwrap_or_else(|e| error(&e));
        tracing::debug!(uri = %uri, status = resp.status().as_u16(), "exec");
        return resp;
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return error(&ApiError::bad_request(format!("reading body: {e}"))),
    };
    let query = Query::parse(parts.uri.query());
    let path = parts.uri.path().to_string();
    let resp = route(&state, &parts.method, &path, &query, &parts.headers, &bytes).unwrap_or_else(|e| error(&e));
    tracing::debug!(method = %parts.method, uri = %parts.uri, status = resp.status().as_u16(), "request");
    resp
}

fn route(
    state: &AppState,
    method: &Method,
    path: &str,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let registry = &state.api.registry;
    let read_only = |r: Result<Response, ApiError>| {
        if method == Method::GET {
            r
        } else {
            Err(ApiError::method_not_allowed(format!("{method} is not allowed on {path}")))
        }
    };
    match segs.as_slice() {
        ["version"] => read_only(Ok(json(200, &discovery::version()))),
        ["healthz" | "readyz" | "livez"] => read_only(Ok(respond(200, "text/plain", "ok".into()))),
        ["api"] if discovery::wants_aggregated(accept) => {
            read_only(Ok(respond(200, discovery::AGGREGATED_V2, discovery::aggregated(registry, true).to_string())))
        }
        ["apis"] if discovery::wants_aggregated(accept) => {
            read_only(Ok(respond(200, discovery::AGGREGATED_V2, discovery::aggregated(registry, false).to_string())))
        }
        ["api"] => read_only(Ok(json(200, &discovery::api_versions(&state.server_address)))),
        ["apis"] => read_only(Ok(json(200, &discovery::api_group_list(registry)))),
        ["api", v] => read_only(
            discovery::resource_list(registry, "", v).map(|d| json(200, &d)).ok_or_else(|| ApiError::no_route(path)),
        ),
        ["apis", g] => read_only(
            discovery::api_group_doc(registry, g).map(|d| json(200, &d)).ok_or_else(|| ApiError::no_route(path)),
        ),
        ["apis", g, v] => read_only(
            discovery::resource_list(registry, g, v).map(|d| json(200, &d)).ok_or_else(|| ApiError::no_route(path)),
        ),
        ["openapi", "v3"] => read_only(Ok(json(200, &openapi::root(registry)))),
        ["openapi", "v3", rest @ ..] => read_only(
            openapi::group_version(registry, &rest.join("/"))
                .map(|d| json(200, &d))
                .ok_or_else(|| ApiError::no_route(path)),
        ),
        ["api", v, rest @ ..] => resource_request(state, method, "", v, rest, query, headers, body),
        ["apis", g, v, rest @ ..] => resource_request(state, method, g, v, rest, query, headers, body),
        _ => Err(ApiError::no_route(path)),
    }
}

fn write_options(query: &Query) -> Result<WriteOptions, ApiError> {
    let field_validation = match query.get("fieldValidation") {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Strict, Warn, Ignore, got {other:?}"
            )));
        }
    };
    Ok(WriteOptions {
        field_manager: query.get("fieldManager").map(String::from),
        field_validation,
        dry_run: query.get("dryRun") == Some("All"),
        force: query.flag("force"),
    })
}

fn accept(headers: &HeaderMap) -> &str {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a JSON (or Kubernetes protobuf) object body.
fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    if ct == "application/vnd.kubernetes.protobuf" {
        return protobuf::decode(body);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}

fn parse_rv(query: &Query) -> Result<Option<u64>, ApiError> {
    match query.get("resourceVersion") {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}"))),
    }
}

#[allow(clippy::too_many_arguments)]
fn resource_request(
    state: &AppState,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let api = &state.api;
    let ns_subresource = rest.len() == 3 && matches!(rest[2], "status" | "finalize");
    let (ns, rest) = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() && !ns_subresource => (Some(*ns), tail),
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return Err(ApiError::no_route(&rest.join("/"))),
    };
    let rt = api
        .registry
        .lookup(group, version, plural)
        .ok_or_else(|| ApiError::no_route(&format!("{group}/{version}/{plural}")))?;
    if (!rt.namespaced && ns.is_some()) || (rt.namespaced && ns.is_none() && name.is_some()) {
        return Err(ApiError::no_route(&rest.join("/")));
    }
    if let (Some(name), Some("eviction"), Some(ns)) = (name, sub, ns)
        && rt.group.is_empty()
        && rt.plural == "pods"
    {
        if *method != Method::POST {
            return Err(ApiError::method_not_allowed("evictions are created with POST"));
        }
        return Ok(json(201, &api.evict(ns, name, &decode_body(headers, body)?)?));
    }
    if let (Some(name), Some("log")) = (name, sub)
        && rt.group.is_empty()
        && rt.plural == "pods"
        && *method == Method::GET
    {
        return pod_log(state, &rt, ns, name, query);
    }
    let sub = match sub {
        None => Subresource::Main,
        Some("status") if rt.has_status => Subresource::Status,
        Some("scale") if rt.has_scale => Subresource::Scale,
        Some(other) => return Err(ApiError::no_route(&format!("{plural}/{other}"))),
    };
    match (method.clone(), name) {
        (Method::GET, None) if query.flag("watch") => Ok(start_watch(state, headers, rt, version, ns, query)?),
        (Method::GET, None) => {
            let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?;
            let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))?;
            let limit = query.get("limit").and_then(|l| l.parse().ok());
            let list = api.list(&rt, version, ns, &labels, &fields, limit, query.get("continue"))?;
            if table::wants_table(accept(headers)) {
                let items = list["items"].as_array().cloned().unwrap_or_default();
                return Ok(json(200, &table::render(&rt, version, &items, list["metadata"].clone())));
            }
            Ok(json(200, &list))
        }
        (Method::GET, Some(name)) if sub == Subresource::Scale => Ok(json(200, &api.get_scale(&rt, ns, name)?)),
        (Method::GET, Some(name)) => {
            let obj = api.get(&rt, version, ns, name)?;
            if table::wants_table(accept(headers)) {
                let meta = serde_json::json!({"resourceVersion": obj.pointer("/metadata/resourceVersion")});
                return Ok(json(200, &table::render(&rt, version, std::slice::from_ref(&obj), meta)));
            }
            Ok(json(200, &obj))
        }
        (Method::POST, None) if ns.is_some() || !rt.namespaced => {
            let obj = api.create(&rt, version, ns, decode_body(headers, body)?, &write_options(query)?)?;
            Ok(json(201, &obj))
        }
        (Method::PUT, Some(name)) => Ok(json(
            200,
            &api.update(&rt, version, ns, name, decode_body(headers, body)?, sub, &write_options(query)?)?,
        )),
        (Method::PATCH, Some(name)) => {
            let ptype = match content_type(headers).as_str() {
                "application/merge-patch+json" => PatchType::Merge,
                "application/json-patch+json" => PatchType::Json,
                "application/strategic-merge-patch+json" => PatchType::Strategic,
                "application/apply-patch+yaml" | "application/apply-patch+json" => PatchType::Apply,
                other => return Err(ApiError::unsupported_media_type(other)),
            };
            let patch: Value = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("error decoding patch (only JSON is supported, also for apply): {e}"))
            })?;
            let (obj, created) = api.patch(&rt, version, ns, name, ptype, &patch, sub, &write_options(query)?)?;
            Ok(json(if created { 201 } else { 200 }, &obj))
        }
        (Method::DELETE, Some(name)) if sub == Subresource::Main => {
            let opts = delete_options(headers, body, query)?;
            match api.delete(&rt, version, ns, name, &opts)? {
                DeleteOutcome::Pending(obj) => Ok(json(200, &obj)),
                DeleteOutcome::Deleted(obj) if rt.group.is_empty() && rt.plural == "pods" => Ok(json(200, &obj)),
                DeleteOutcome::Deleted(obj) => {
                    Ok(json(200, &success_status(&rt.group, &rt.plural, name, meta_str(&obj, "uid"))))
                }
            }
        }
        (Method::DELETE, None) => delete_collection(api, &rt, version, ns, query, headers, body),
        _ => Err(ApiError::method_not_allowed(format!("{method} is not supported here"))),
    }
}

/// `GET pods/{name}/log`: the container's output so far (`follow` is not streamed).
fn pod_log(
    state: &AppState,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    let api = &state.api;
    let pod = api.get(rt, "v1", ns, name)?;
    let containers: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let container = match query.get("container") {
        Some(c) => c,
        None if containers.len() == 1 => containers[0],
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: {containers:?}"
            )));
        }
    };
    if !containers.contains(&container) {
        return Err(ApiError::bad_request(format!("container {container} is not valid for pod {name}")));
    }
    let dir = api.pods_dir.as_ref().ok_or_else(|| ApiError::bad_request("this server runs no kubelet"))?;
    let path = super::ops::pod_dir(dir, &pod).join(format!("{container}.log"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let text = match query.get("tailLines").and_then(|t| t.parse::<usize>().ok()) {
        Some(n) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].iter().map(|l| format!("{l}\n")).collect()
        }
        None => text,
    };
    if !query.flag("follow") {
        return Ok(respond(200, "text/plain", text));
    }
    let uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_string();
    let stream = follow_log(
        api.clone(),
        rt.key(),
        ns.unwrap_or("").to_string(),
        name.to_string(),
        uid,
        path,
        text,
        state.shutdown.clone(),
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(format!("building log response: {e}")))
}

/// Streams `initial`, then whatever is appended to the log, until the pod is gone.
#[allow(clippy::too_many_arguments)]
fn follow_log(
    api: Api,
    key: super::registry::ResKey,
    ns: String,
    name: String,
    uid: String,
    path: std::path::PathBuf,
    initial: String,
    mut shutdown: watch::Receiver<bool>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    tokio::spawn(async move {
        let mut offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if tx.send(bytes::Bytes::from(initial)).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = shutdown.wait_for(|s| *s) => return,
                _ = tx.closed() => return,
            }
            if let Ok(data) = std::fs::read(&path) {
                let len = data.len() as u64;
                if len > offset {
                    let chunk = bytes::Bytes::copy_from_slice(&data[offset as usize..]);
                    offset = len;
                    if tx.send(chunk).await.is_err() {
                        return;
                    }
                }
            }
            let alive =
                api.store.read(|s| s.get(&key, &ns, &name).and_then(|p| meta_str(p, "uid")).is_some_and(|u| u == uid));
            if !alive {
                return;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) })
}

fn delete_options(headers: &HeaderMap, body: &[u8], query: &Query) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions::from_json(&decode_body(headers, body)?)?;
    match query.get("propagationPolicy") {
        Some("Foreground") => opts.propagation = Propagation::Foreground,
        Some("Orphan") => opts.propagation = Propagation::Orphan,
        Some("Background") => opts.propagation = Propagation::Background,
        _ => {}
    }
    if let Some(g) = query.get("gracePeriodSeconds").and_then(|g| g.parse().ok()) {
        opts.grace_period = Some(g);
    }
    opts.dry_run |= query.get("dryRun") == Some("All");
    Ok(opts)
}

#[allow(clippy::too_many_arguments)]
fn delete_collection(
    api: &Api,
    rt: &Arc<ResourceType>,
    version: &str,
    ns: Option<&str>,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let opts = delete_options(headers, body, query)?;
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))?;
    let deleted = api.store.write(|t| -> Result<Vec<Value>, ApiError> {
        let names: Vec<(String, String)> = t
            .list(&rt.key(), if rt.namespaced { ns } else { None })
            .filter(|o| labels.matches(o) && fields.matches(o))
            .map(|o| {
                (meta_str(o, "namespace").unwrap_or("").to_string(), meta_str(o, "name").unwrap_or("").to_string())
            })
            .collect();
        let mut out = Vec::new();
        for (ons, name) in names {
            match api.delete_in(t, rt, Some(&ons), &name, &opts)? {
                DeleteOutcome::Deleted(o) | DeleteOutcome::Pending(o) => out.push(present(o, rt, version)),
            }
        }
        Ok(out)
    })?;
    let rv = api.store.read(|s| s.rv());
    Ok(json(
        200,
        &serde_json::json!({"apiVersion": rt.api_version(version), "kind": format!("{}List", rt.kind), "metadata": {"resourceVersion": rv.to_string()}, "items": deleted}),
    ))
}

fn start_watch(
    state: &AppState,
    headers: &HeaderMap,
    rt: Arc<ResourceType>,
    version: &str,
    ns: Option<&str>,
    query: &Query,
) -> Result<Response, ApiError> {
    let send_initial = query.flag("sendInitialEvents");
    if send_initial && query.get("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::unprocessable("sendInitialEvents requires resourceVersionMatch=NotOlderThan"));
    }
    let timeout = query.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()).unwrap_or(1800).min(3600);
    let req = WatchRequest {
        rt,
        version: version.to_string(),
        ns: ns.map(String::from),
        labels: LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?,
        fields: FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))?,
        resource_version: parse_rv(query)?,
        send_initial,
        bookmarks: query.flag("allowWatchBookmarks"),
        timeout: Duration::from_secs(timeout),
        table: table::wants_table(accept(headers)),
    };
    let stream = watching::start(state.api.store.clone(), req, state.shutdown.clone());
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(format!("building watch response: {e}")))
}
