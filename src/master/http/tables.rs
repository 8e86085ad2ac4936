//! `/tables` (every table and its tablets, from the applied catalog alone, so every master
//! shows the same page) and `/tables/{name}` (one table: schema, and each tablet with its
//! replicas, leader, locations, health and standing under the placement policy).

use super::view::{ClusterView, Compliance, ServerView, Whereabouts};
use crate::catalog::{Catalog, Table, Tablet};
use crate::ids::TServerId;
use crate::web::{Markup, Tone, badge, count, grid, path_segment, row};

/// The link to a table's page.
pub fn table_href(name: &str) -> String {
    format!("/tables/{}", path_segment(name))
}

/// Every table, then the tablets of each.
pub fn tables_page(catalog: &Catalog) -> Markup {
    let rows = catalog.tables().map(|t| {
        let columns: Vec<String> =
            t.schema.columns.iter().map(|c| format!("{}:{} (#{})", c.name, c.data_type, c.id)).collect();
        row(
            &[],
            [
                Markup::text(&t.name),
                Markup::text(t.id.as_str()),
                Markup::text(columns.join(", ")),
                Markup::text(t.schema.primary_key.join(", ")),
                Markup::text(t.num_partitions.to_string()),
                Markup::text(t.replication_factor.to_string()),
                Markup::text(t.version.to_string()),
                Markup::link(&table_href(&t.name), "schema, replicas, placement"),
            ],
        )
    });
    let headers = ["name", "id", "columns", "primary key", "partitions", "replicas", "version", "details"];
    let mut body = Markup::el_text("p", "Served from this master's applied catalog (may lag on a follower).")
        .and(grid(&headers, rows));
    for t in catalog.tables() {
        let tablets = catalog.tablets_of(&t.id).into_iter().map(|tablet| {
            let replicas: Vec<&str> = tablet.replicas.iter().map(TServerId::as_str).collect();
            let cells = [
                tablet.partition.to_string(),
                tablet.id.to_string(),
                replicas.join(", "),
                tablet.leader.as_ref().map_or_else(|| "unknown".to_string(), ToString::to_string),
                tablet.term.to_string(),
                match &tablet.pending_move {
                    Some(m) => format!("{} -> {}", m.from.as_ref().map_or("(none)", |f| f.as_str()), m.to),
                    None => String::new(),
                },
            ];
            row(&[], cells.into_iter().map(Markup::text))
        });
        body.push(Markup::el_text("h2", format!("Tablets of {}", t.name)));
        body.push(Markup::el("p", &[], Markup::link(&table_href(&t.name), format!("The page of table {}", t.name))));
        body.push(grid(&["partition", "tablet id", "replicas (voters)", "leader", "term", "replica move"], tablets));
    }
    body.push(Markup::el_text("p", format!("Deleted tablets remembered as tombstones: {}.", catalog.num_tombstones())));
    body
}

/// One table: its schema, then its tablets.
pub fn table_page(table: &Table, tablets: &[&Tablet], view: &ClusterView) -> Markup {
    let mut body = Markup::el_text(
        "p",
        format!(
            "Table id {}, {}, schema version {}, {} hash partitions, replication factor {}.",
            table.id,
            table.state.name(),
            table.version,
            table.num_partitions,
            table.replication_factor
        ),
    );
    body.push(Markup::el_text("h2", "Schema"));
    body.push(schema(table));
    body.push(Markup::el_text("h2", "Tablets"));
    let led = tablets.iter().filter(|t| t.leader.is_some()).count();
    let violating =
        tablets.iter().filter(|t| matches!(view.compliance(t, table.replication_factor), Compliance::Violates { .. }));
    let mut summary = format!("{}, {led} with a known leader", count(tablets.len(), "tablet"));
    if view.policy_applies {
        summary += &format!("; {} break the placement policy", violating.count());
    }
    body.push(Markup::el_text("p", summary + "."));
    let rows = tablets.iter().map(|t| tablet_row(t, table.replication_factor, view));
    let headers = ["partition", "tablet id", "state", "term", "replicas (leader marked)", "placement", "health"];
    body.push(grid(&headers, rows));
    body
}

fn schema(table: &Table) -> Markup {
    let rows = table.schema.columns.iter().enumerate().map(|(i, c)| {
        let key = table.schema.primary_key.iter().position(|k| k == &c.name);
        row(
            &[],
            [
                Markup::text((i + 1).to_string()),
                Markup::el_text("b", &c.name),
                Markup::text(c.data_type.name()),
                Markup::text(if c.nullable { "yes" } else { "no" }),
                key.map_or_else(Markup::new, |k| badge(Tone::Plain, format!("key {}", k + 1))),
                Markup::text(c.id.to_string()),
            ],
        )
    });
    grid(&["#", "column", "type", "nullable", "primary key", "column id"], rows)
}

fn tablet_row(tablet: &Tablet, replication_factor: u32, view: &ClusterView) -> Markup {
    let compliance = view.compliance(tablet, replication_factor);
    let placement = match &compliance {
        Compliance::NotApplicable => badge(Tone::Plain, "one location: policy n/a"),
        Compliance::Complies => badge(Tone::Ok, "complies"),
        Compliance::Violates { location, replicas } => badge(Tone::Bad, "violates")
            .and(Markup::el_text("div", format!("{replicas} of {} replicas in {location}", tablet.replicas.len()))),
    };
    let problems = view.problems(tablet, replication_factor);
    let health = if problems.is_empty() {
        badge(Tone::Ok, "healthy")
    } else {
        problems.into_iter().map(|p| Markup::el("div", &[], badge(Tone::Warn, p))).collect()
    };
    let replicas: Markup =
        tablet.replicas.iter().map(|id| replica(id, tablet.leader.as_ref() == Some(id), view)).collect();
    let mut attrs = vec![("data-tablet", tablet.id.as_str())];
    if matches!(compliance, Compliance::Violates { .. }) {
        attrs.insert(0, ("class", "violates"));
    }
    row(
        &attrs,
        [
            Markup::text(tablet.partition.to_string()),
            Markup::el_text("code", tablet.id.as_str()),
            Markup::text(tablet.state.name()),
            Markup::text(tablet.term.to_string()),
            Markup::el("ul", &[("class", "replicas")], replicas),
            placement,
            health,
        ],
    )
}

/// One replica: `LEADER` marker, server uuid, address, location and liveness.
fn replica(id: &TServerId, leader: bool, view: &ClusterView) -> Markup {
    let mut item = if leader { badge(Tone::Leader, "LEADER") } else { Markup::new() };
    item.push(Markup::el_text("code", id.as_str()));
    match view.server(id) {
        Some(server) => {
            item.push(Markup::text(format!(" · {} · ", server.rpc_address)));
            item.push(whereabouts(server));
            if !server.live {
                item.push(badge(Tone::Dead, "unresponsive"));
            }
        }
        None => item.push(badge(Tone::Bad, "unknown tablet server")),
    }
    let class = if leader { "replica leader" } else { "replica" };
    Markup::el("li", &[("class", class), ("data-ts", id.as_str())], item)
}

/// A server's location as shown in tables.
pub fn whereabouts(server: &ServerView) -> Markup {
    match &server.whereabouts {
        Whereabouts::Located(location) => Markup::text(location.as_str()),
        Whereabouts::Unassigned => badge(Tone::Warn, "no location yet"),
        Whereabouts::Failed(e) => badge(Tone::Bad, format!("registration failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::catalog::{Column, ColumnType, Schema, TableState, TabletState};
    use crate::master::http::view::ServerView;
    use crate::master::tservers::{ServerLocation, TServerInfo};

    fn server(id: &str, location: &str, live: bool) -> ServerView {
        let info = TServerInfo {
            id: id.into(),
            rpc_address: format!("{id}.example:7050"),
            instance_id: "i".into(),
            location: ServerLocation::Assigned { location: location.parse().expect("location"), host: "h".into() },
            registered_at: Instant::now(),
            last_heartbeat: Instant::now(),
            reported: BTreeSet::from(["tab-0".into()]),
        };
        ServerView::new(info, live, Duration::ZERO, true)
    }

    fn evil_table() -> Table {
        Table {
            id: "tid".into(),
            name: "<b>t</b>".into(),
            schema: Schema {
                columns: vec![Column::new("<script>x</script>", ColumnType::Int64, false)],
                primary_key: vec!["<script>x</script>".into()],
            },
            num_partitions: 1,
            replication_factor: 3,
            state: TableState::Running,
            version: 1,
            next_column_id: 1,
        }
    }

    #[test]
    fn the_table_page_marks_leaders_violations_and_escapes_names() {
        let view = ClusterView::new(
            vec![server("a", "/L0", true), server("b", "/L0", true), server("c", "/L1", false)],
            &Catalog::default(),
        );
        let tablet = Tablet {
            id: "tab-0".into(),
            table_id: "tid".into(),
            partition: 0,
            replicas: vec!["a".into(), "b".into(), "c".into()],
            leader: Some("b".into()),
            term: 2,
            state: TabletState::Running,
            config_index: None,
            pending_move: None,
        };
        let html = table_page(&evil_table(), &[&tablet], &view).into_string();
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert!(html.contains(
            "<li class=\"replica leader\" data-ts=\"b\"><span class=\"badge leader\">LEADER</span><code>b</code>"
        ));
        assert_eq!(html.matches("LEADER").count(), 1, "{html}");
        assert!(html.contains("<tr class=\"violates\" data-tablet=\"tab-0\">"), "{html}");
        assert!(html.contains("violates</span><div>2 of 3 replicas in /L0</div>"), "{html}");
        assert!(html.contains("replica on unresponsive tablet server c"), "{html}");
        assert!(html.contains("1 tablet, 1 with a known leader; 1 break the placement policy."), "{html}");
    }

    #[test]
    fn table_links_are_encoded() {
        assert_eq!(table_href("metrics.daily-1"), "/tables/metrics.daily-1");
        assert_eq!(table_href("<b>t</b>"), "/tables/%3Cb%3Et%3C%2Fb%3E");
    }
}
