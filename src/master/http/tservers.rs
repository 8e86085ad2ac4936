//! `/tablet-servers`: every tablet server with its location, liveness, last heartbeat and
//! how many replicas and leaders it holds.

use std::time::Duration;

use super::tables::whereabouts;
use super::view::ClusterView;
use crate::web::{Markup, Tone, badge, grid, row};

/// How long ago, for people: `0.3 s ago`, `42 s ago`, `3 min ago`.
pub fn ago(d: Duration) -> String {
    match d.as_secs() {
        0..10 => format!("{:.1} s ago", d.as_secs_f64()),
        10..120 => format!("{} s ago", d.as_secs()),
        120..7200 => format!("{} min ago", d.as_secs() / 60),
        s => format!("{} h ago", s / 3600),
    }
}

pub fn tservers_page(view: &ClusterView) -> Markup {
    let live = view.servers.iter().filter(|s| s.live).count();
    let locations = view.by_location().into_iter().filter(|(l, _)| l.is_some()).count();
    let summary = format!(
        "{} tablet servers: {live} live, {} unresponsive, in {locations} location{}. ",
        view.servers.len(),
        view.servers.len() - live,
        if locations == 1 { "" } else { "s" }
    );
    let policy = if view.policy_applies {
        "The placement policy applies: see the "
    } else {
        "The placement policy does not apply (fewer than two locations): see the "
    };
    let summary =
        Markup::text(summary + policy).and(Markup::link("/placement", "placement view")).and(Markup::text("."));
    let rows = view.servers.iter().map(|s| {
        row(
            &[("data-ts", s.id.as_str())],
            [
                Markup::el_text("code", s.id.as_str()),
                Markup::text(&s.rpc_address),
                whereabouts(s),
                if s.live { badge(Tone::Ok, "live") } else { badge(Tone::Dead, "unresponsive") },
                Markup::text(ago(s.since_heartbeat)),
                Markup::text(s.replicas.to_string()),
                Markup::text(s.leaders.to_string()),
            ],
        )
    });
    let headers = ["uuid", "rpc address", "location", "state", "last heartbeat", "replicas", "leaders"];
    Markup::el("p", &[], summary).and(grid(&headers, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago(Duration::from_millis(300)), "0.3 s ago");
        assert_eq!(ago(Duration::from_secs(42)), "42 s ago");
        assert_eq!(ago(Duration::from_secs(600)), "10 min ago");
        assert_eq!(ago(Duration::from_secs(3 * 3600 + 5)), "3 h ago");
    }
}
