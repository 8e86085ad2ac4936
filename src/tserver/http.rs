//! The tablet server's web endpoints: health, Prometheus metrics and its replicas.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::replica::ReplicaStatus;
use super::server::TServerState;
use crate::web::{page, table};

const NAV: &[(&str, &str)] =
    &[("/tablets", "tablets"), ("/metrics", "metrics"), ("/healthz", "health"), ("/ready", "readiness")];

/// Routes of the web server.
pub fn router(state: Arc<TServerState>) -> Router {
    Router::new()
        .route("/", get(tablets))
        .route("/healthz", get(healthz))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/tablets", get(tablets))
        .with_state(state)
}

/// 200 once the server serves RPCs, 503 before and while shutting down.
async fn healthz(State(state): State<Arc<TServerState>>) -> Response {
    let serving = state.serving.load(Ordering::SeqCst);
    let body = format!(
        "{}\nuuid: {}\ncluster_id: {}\n",
        if serving { "ok" } else { "not serving" },
        state.uuid,
        state.cluster.id().unwrap_or_default()
    );
    let status = if serving { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, body).into_response()
}

/// Readiness: 200 once the server serves, a leader master of its cluster answered its
/// heartbeat, and every voter replica it hosts is caught up in its tablet leader's view
/// ([`super::readiness`]); 503 before and while draining, naming what is missing. A rolling
/// restart takes the next server down only after this.
async fn ready(State(state): State<Arc<TServerState>>) -> Response {
    let serving = state.serving.load(Ordering::SeqCst);
    let registered = state.registered.load(Ordering::SeqCst);
    let draining = state.tablets.draining();
    let lagging = if serving { state.tablets.lagging().await } else { Vec::new() };
    let ok = serving && registered && !draining && lagging.is_empty();
    let mut body = format!(
        "{}\nserving: {serving}\nregistered: {registered}\ndraining: {draining}\nlagging replicas: {}\n",
        if ok { "ok" } else { "not ready" },
        lagging.len()
    );
    for replica in lagging.iter().take(20) {
        body.push_str(&format!("  {replica}\n"));
    }
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, body).into_response()
}

async fn statuses(state: &TServerState) -> Result<Vec<ReplicaStatus>, Response> {
    state.tablets.statuses().await.map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
}

async fn metrics(State(state): State<Arc<TServerState>>) -> Response {
    match statuses(&state).await {
        Ok(statuses) => state.metrics.refresh(&statuses),
        Err(response) => return response,
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.encode()).into_response()
}

#[derive(Deserialize)]
struct Format {
    format: Option<String>,
}

/// One replica on `/tablets?format=json`.
#[derive(Serialize)]
struct TabletOut {
    tablet_id: String,
    table_id: String,
    table: String,
    partition: u32,
    state: &'static str,
    role: Option<&'static str>,
    term: u64,
    leader_uuid: Option<String>,
    voters: Vec<String>,
    schema_version: Option<u64>,
    tombstoned: bool,
}

impl From<&ReplicaStatus> for TabletOut {
    fn from(s: &ReplicaStatus) -> Self {
        TabletOut {
            tablet_id: s.meta.tablet_id.to_string(),
            table_id: s.meta.table_id.to_string(),
            table: s.meta.table_name.clone(),
            partition: s.meta.partition,
            state: s.meta.state.name(),
            role: s.role.map(|r| r.name()),
            term: s.term,
            leader_uuid: s.leader_uuid.clone(),
            voters: s.voters.clone(),
            schema_version: s.schema_version,
            tombstoned: s.meta.state == super::store::ReplicaState::Tombstoned,
        }
    }
}

async fn tablets(State(state): State<Arc<TServerState>>, Query(format): Query<Format>) -> Response {
    let statuses = match statuses(&state).await {
        Ok(statuses) => statuses,
        Err(response) => return response,
    };
    let out: Vec<TabletOut> = statuses.iter().map(TabletOut::from).collect();
    if format.format.as_deref() == Some("json") {
        return axum::Json(out).into_response();
    }
    let rows = out.iter().map(|t| {
        vec![
            t.tablet_id.clone(),
            t.table.clone(),
            t.partition.to_string(),
            if t.tombstoned { "TOMBSTONED (deleted)".to_string() } else { t.state.to_string() },
            t.role.unwrap_or("").to_string(),
            t.term.to_string(),
            t.leader_uuid.clone().unwrap_or_default(),
            t.schema_version.map(|v| v.to_string()).unwrap_or_default(),
        ]
    });
    let summary = format!(
        "<p>Tablet server {} in cluster {}.</p>",
        crate::web::escape(state.uuid.as_str()),
        crate::web::escape(&state.cluster.id().unwrap_or_else(|| "(none yet)".into()))
    );
    let headers = ["tablet id", "table", "partition", "state", "role", "term", "leader", "schema version"];
    page("Tablets", NAV, &(summary + &table(&headers, rows))).into_response()
}
