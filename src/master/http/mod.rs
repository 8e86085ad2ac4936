//! The master's web endpoints: health, Prometheus metrics and readable status pages
//! (masters, tables and one page per table, tablet servers, placement). Handlers gather a
//! snapshot; the pages are pure functions of it in the submodules.

mod picture;
mod placement;
mod tables;
mod tservers;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::node::MasterNode;
use crate::catalog::Catalog;
use crate::pb::master::Role;
use crate::web::{Markup, escape, table};
use view::{ClusterView, ServerView};

/// Routes of the web server.
pub fn router(node: Arc<MasterNode>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/masters", get(masters))
        .route("/tables", get(tables))
        .route("/tables/{name}", get(table_page))
        .route("/tablet-servers", get(tablet_servers))
        .route("/placement", get(placement))
        .with_state(node)
}

/// Links above every page.
const NAV: [(&str, &str); 5] = [
    ("/masters", "masters"),
    ("/tables", "tables"),
    ("/tablet-servers", "tablet servers"),
    ("/placement", "placement"),
    ("/metrics", "metrics"),
];

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
    page("Tables", tables::tables_page(&catalog).as_str())
}

/// The tablet servers as this master's registry knows them, with loads from `catalog`.
fn cluster_view(node: &MasterNode, catalog: &Catalog) -> ClusterView {
    let registry = &node.tservers;
    let mapping = node.locations.is_some();
    let servers = registry
        .all()
        .into_iter()
        .map(|s| {
            let (live, age) = (registry.is_live(&s), s.last_heartbeat.elapsed());
            ServerView::new(s, live, age, mapping)
        })
        .collect();
    ClusterView::new(servers, catalog)
}

/// Which master's view a page shows: tablet servers and locations are soft state, complete
/// only on the leader.
fn vantage(node: &MasterNode) -> Markup {
    let m = node.raft_metrics();
    let role = node.role(&m);
    let mut text = format!("As seen by master {} ({}, term {})", node.id, role.as_str_name(), m.current_term);
    if role != Role::Leader {
        let leader = m.current_leader.and_then(|id| MasterNode::member_address(&m, id));
        text +=
            &format!("; the leader, at {}, has the complete view", leader.as_deref().unwrap_or("an unknown address"));
    }
    Markup::el("p", &[("class", "muted")], Markup::text(text + "."))
}

#[tracing::instrument(skip(node))]
async fn table_page(State(node): State<Arc<MasterNode>>, Path(name): Path<String>) -> Response {
    let catalog = node.catalog.read().await;
    let Some(table) = catalog.table_by_name(&name) else {
        let body = Markup::el_text("p", format!("There is no table named {name}.")).and(Markup::el(
            "p",
            &[],
            Markup::link("/tables", "All tables"),
        ));
        return (StatusCode::NOT_FOUND, page("No such table", body.as_str())).into_response();
    };
    let view = cluster_view(&node, &catalog);
    let tablets = catalog.tablets_of(&table.id);
    let body = vantage(&node).and(tables::table_page(table, &tablets, &view));
    page(&format!("Table {}", table.name), body.as_str()).into_response()
}

async fn tablet_servers(State(node): State<Arc<MasterNode>>) -> Html<String> {
    let catalog = node.catalog.read().await;
    let view = cluster_view(&node, &catalog);
    page("Tablet servers", vantage(&node).and(tservers::tservers_page(&view)).as_str())
}

async fn placement(State(node): State<Arc<MasterNode>>) -> Html<String> {
    let catalog = node.catalog.read().await;
    let view = cluster_view(&node, &catalog);
    page("Placement", vantage(&node).and(placement::placement_page(&catalog, &view)).as_str())
}
