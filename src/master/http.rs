//! The master's web endpoints: health, Prometheus metrics and readable status pages.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::node::MasterNode;
use crate::pb::master::Role;
use crate::web::{escape, table};

/// Routes of the web server.
pub fn router(node: Arc<MasterNode>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/masters", get(masters))
        .route("/tables", get(tables))
        .route("/tablet-servers", get(tablet_servers))
        .with_state(node)
}

/// Links above every page.
const NAV: [(&str, &str); 4] =
    [("/masters", "masters"), ("/tables", "tables"), ("/tablet-servers", "tablet servers"), ("/metrics", "metrics")];

fn page(title: &str, body: &str) -> Html<String> {
    crate::web::page(title, &NAV, body)
}

async fn index(State(node): State<Arc<MasterNode>>) -> Html<String> {
    masters(State(node)).await
}

/// 200 once this master is a member of a Raft group that has a leader and has applied what
/// it knows to be committed; 503 before (still joining, or cut off from the leader).
async fn healthz(State(node): State<Arc<MasterNode>>) -> Response {
    let m = node.raft_metrics();
    let role = node.role(&m);
    let member = !matches!(role, Role::NonMember | Role::Unknown);
    let caught_up = m.last_applied.as_ref().map(|l| l.index) >= m.local_committed.as_ref().map(|l| l.index);
    let healthy = member && m.current_leader.is_some() && caught_up && m.running_state.is_ok();
    let body = format!(
        "{}\nnode_id: {}\nrole: {}\nleader: {}\n",
        if healthy { "ok" } else { "not ready" },
        node.id,
        role.as_str_name(),
        m.current_leader.map(|l| l.to_string()).unwrap_or_else(|| "none".into())
    );
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, body).into_response()
}

async fn metrics(State(node): State<Arc<MasterNode>>) -> Response {
    let m = node.raft_metrics();
    let s = &node.metrics.state;
    s.is_leader.set(i64::from(m.current_leader == Some(node.id)));
    s.term.set(m.current_term as i64);
    s.commit_index.set(m.local_committed.as_ref().map(|l| l.index as i64).unwrap_or(0));
    s.applied_index.set(m.last_applied.as_ref().map(|l| l.index as i64).unwrap_or(0));
    s.snapshot_index.set(m.snapshot.as_ref().map(|l| l.index as i64).unwrap_or(0));
    s.purged_index.set(m.purged.as_ref().map(|l| l.index as i64).unwrap_or(0));
    s.members.set(m.membership_config.membership().nodes().count() as i64);
    {
        let catalog = node.catalog.read().await;
        s.tables.set(catalog.num_tables() as i64);
        s.tablets.set(catalog.num_tablets() as i64);
        s.replica_moves.set(catalog.num_pending_moves() as i64);
    }
    s.live_tservers.set(node.tservers.num_live() as i64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], node.metrics.encode()).into_response()
}

async fn masters(State(node): State<Arc<MasterNode>>) -> Html<String> {
    let m = node.raft_metrics();
    let cluster_id = node.catalog.read().await.cluster_id().map(str::to_string);
    let summary = format!(
        "<p>Cluster id: {}.</p><p>This master: node id {} at {}, role {}, term {}, committed index {}.</p>",
        escape(cluster_id.as_deref().unwrap_or("not set yet")),
        node.id,
        escape(&node.address),
        node.role(&m).as_str_name(),
        m.current_term,
        m.local_committed.as_ref().map(|l| l.index).unwrap_or(0)
    );
    let rows = node.members(&m).into_iter().map(|mm| {
        vec![
            mm.node_id.to_string(),
            mm.address,
            Role::try_from(mm.role).map(|r| r.as_str_name()).unwrap_or("?").to_string(),
            mm.voter.to_string(),
            mm.matched_index.to_string(),
        ]
    });
    page("Masters", &(summary + &table(&["node id", "address", "role", "voter", "matched index"], rows)))
}

async fn tables(State(node): State<Arc<MasterNode>>) -> Html<String> {
    let catalog = node.catalog.read().await;
    let rows = catalog.tables().map(|t| {
        let columns: Vec<String> =
            t.schema.columns.iter().map(|c| format!("{}:{} (#{})", c.name, c.data_type, c.id)).collect();
        vec![
            t.name.clone(),
            t.id.to_string(),
            columns.join(", "),
            t.schema.primary_key.join(", "),
            t.num_partitions.to_string(),
            t.replication_factor.to_string(),
            t.version.to_string(),
        ]
    });
    let note = "<p>Served from this master's applied catalog (may lag on a follower).</p>";
    let mut body =
        note.to_string() + &table(&["name", "id", "columns", "primary key", "partitions", "replicas", "version"], rows);
    for t in catalog.tables() {
        let tablets = catalog.tablets_of(&t.id).into_iter().map(|tablet| {
            let leader = tablet.leader.as_ref().map(|l| l.to_string()).unwrap_or_else(|| "unknown".into());
            let moving = match &tablet.pending_move {
                Some(m) => format!("{} -> {}", m.from.as_ref().map_or("(none)", |f| f.as_str()), m.to),
                None => String::new(),
            };
            vec![
                tablet.partition.to_string(),
                tablet.id.to_string(),
                tablet.replicas.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", "),
                leader,
                tablet.term.to_string(),
                moving,
            ]
        });
        let _ = write!(body, "<h2>Tablets of {}</h2>", escape(&t.name));
        body += &table(&["partition", "tablet id", "replicas (voters)", "leader", "term", "replica move"], tablets);
    }
    let _ = write!(body, "<p>Deleted tablets remembered as tombstones: {}.</p>", catalog.num_tombstones());
    page("Tables", &body)
}

async fn tablet_servers(State(node): State<Arc<MasterNode>>) -> Html<String> {
    let registry = &node.tservers;
    let rows = registry.all().into_iter().map(|s| {
        vec![
            s.id.to_string(),
            s.rpc_address.clone(),
            match (s.location.location(), s.location.error()) {
                (Some(location), _) => location.to_string(),
                (None, Some(error)) => format!("registration failed: {error}"),
                (None, None) => String::new(),
            },
            if registry.is_live(&s) { "live" } else { "unresponsive" }.to_string(),
            format!("{} ms", s.last_heartbeat.elapsed().as_millis()),
        ]
    });
    page("Tablet servers", &table(&["uuid", "rpc address", "location", "state", "last heartbeat"], rows))
}
