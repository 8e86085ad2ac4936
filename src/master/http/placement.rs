//! `/placement`: the tablet servers of each location and their loads as a picture, every
//! tablet as a square coloured by the placement policy, and the tablets that break it
//! listed. The rule itself is [`crate::placement::policy`]'s, through [`ClusterView`].

use super::picture::{legend, location_box, tablet_strip};
use super::tables::table_href;
use super::view::{ClusterView, Compliance, ServerView};
use crate::catalog::{Catalog, Tablet};
use crate::location::Location;
use crate::web::{Markup, Tone, badge, grid, row};

/// A tablet that breaks the policy, with its table's name.
struct Violation<'a> {
    table: &'a str,
    tablet: &'a Tablet,
    location: Location,
    replicas: usize,
}

pub fn placement_page(catalog: &Catalog, view: &ClusterView) -> Markup {
    let groups = view.by_location();
    let located = groups.iter().filter(|(l, _)| l.is_some()).count();
    let mut body = Markup::el_text(
        "p",
        "The placement policy: no location may hold a majority of a tablet's replicas. \
         It applies once the tablet servers span at least two locations.",
    );
    let standing = if view.policy_applies {
        badge(Tone::Ok, format!("applies: the tablet servers span {located} locations"))
    } else {
        badge(Tone::Plain, format!("does not apply: the tablet servers span {located} location(s)"))
    };
    body.push(Markup::el("p", &[("class", "policy")], Markup::text("The policy ").and(standing)));

    // Every tablet with its standing, by table.
    let mut strips = Markup::new();
    let mut violations = Vec::new();
    let mut total = 0;
    for table in catalog.tables() {
        let tablets: Vec<(&Tablet, Compliance)> = catalog
            .tablets_of(&table.id)
            .into_iter()
            .map(|t| (t, view.compliance(t, table.replication_factor)))
            .collect();
        total += tablets.len();
        for (tablet, compliance) in &tablets {
            if let Compliance::Violates { location, replicas } = compliance {
                violations.push(Violation {
                    table: &table.name,
                    tablet,
                    location: location.clone(),
                    replicas: *replicas,
                });
            }
        }
        strips.push(row(
            &[("data-table", &table.name)],
            [Markup::link(&table_href(&table.name), &table.name), tablet_strip(&table.name, &tablets)],
        ));
    }
    let count = if violations.is_empty() {
        badge(Tone::Ok, format!("0 of {total} tablets break the placement policy"))
    } else {
        badge(Tone::Bad, format!("{} of {total} tablets break the placement policy", violations.len()))
    };
    body.push(Markup::el("p", &[("class", "violation-count")], count));

    body.push(Markup::el_text("h2", "Locations"));
    let max_replicas = view.servers.iter().map(|s| s.replicas).max().unwrap_or(0);
    let boxes: Markup = groups
        .iter()
        .map(|(location, servers)| {
            let name = location.map_or("(no location)", Location::as_str);
            location_box(name, servers, max_replicas)
        })
        .collect();
    body.push(Markup::el("div", &[("class", "pictures")], boxes));
    body.push(locations_table(&groups, &violations));

    body.push(Markup::el_text("h2", "Tablets"));
    body.push(legend());
    body.push(grid(&["table", "tablets (one square each, in partition order)"], [strips]));

    body.push(Markup::el_text("h2", "Tablets that break the placement policy"));
    if violations.is_empty() {
        body.push(Markup::el_text("p", "None."));
    } else {
        body.push(violations_table(&violations, view));
    }
    body
}

fn locations_table(groups: &[(Option<&Location>, Vec<&ServerView>)], violations: &[Violation<'_>]) -> Markup {
    let rows = groups.iter().map(|(location, servers)| {
        let name = location.map_or("(no location)", Location::as_str);
        let majorities = violations.iter().filter(|v| Some(&v.location) == *location).count();
        let live = servers.iter().filter(|s| s.live).count();
        row(
            &[("data-location", name)],
            [
                Markup::el_text("b", name),
                Markup::text(format!("{} ({live} live)", servers.len())),
                Markup::text(servers.iter().map(|s| s.replicas).sum::<usize>().to_string()),
                Markup::text(servers.iter().map(|s| s.leaders).sum::<usize>().to_string()),
                if majorities == 0 { Markup::text("0") } else { badge(Tone::Bad, majorities.to_string()) },
            ],
        )
    });
    grid(&["location", "tablet servers", "replicas", "leaders", "tablets with a majority here"], rows)
}

fn violations_table(violations: &[Violation<'_>], view: &ClusterView) -> Markup {
    let rows = violations.iter().map(|v| {
        let replicas: Vec<String> = v
            .tablet
            .replicas
            .iter()
            .map(|id| {
                let location = view.server(id).and_then(|s| s.location()).map_or("?", Location::as_str);
                format!("{id} ({location})")
            })
            .collect();
        row(
            &[("class", "violates"), ("data-tablet", v.tablet.id.as_str())],
            [
                Markup::link(&table_href(v.table), v.table),
                Markup::text(v.tablet.partition.to_string()),
                Markup::el_text("code", v.tablet.id.as_str()),
                badge(Tone::Bad, format!("{} of {} replicas in {}", v.replicas, v.tablet.replicas.len(), v.location)),
                Markup::text(replicas.join(", ")),
            ],
        )
    });
    grid(&["table", "partition", "tablet id", "majority", "replicas"], rows)
}
