//! Inline SVG drawings of the placement page: a box per location with a bar per tablet
//! server (replicas, leaders darker), and a strip of squares per table, one per tablet,
//! coloured by the placement policy. No scripts; tooltips are SVG `<title>`s.

use super::view::{Compliance, ServerView};
use crate::catalog::Tablet;
use crate::web::{Markup, count};

const BOX_WIDTH: u32 = 380;
const NAME_WIDTH: u32 = 150;
const BAR_MAX: u32 = 150;
const ROW: u32 = 24;
const HEADER: u32 = 32;

/// Colours of the drawings.
const REPLICAS: &str = "#54aeff";
const LEADERS: &str = "#0969da";
const DEAD: &str = "#afb8c1";
const COMPLIES: &str = "#2da44e";
const VIOLATES: &str = "#cf222e";
const NOT_APPLICABLE: &str = "#8c959f";

fn num(n: u32) -> String {
    n.to_string()
}

fn svg_text(x: u32, y: u32, attrs: &[(&'static str, &str)], text: impl AsRef<str>) -> Markup {
    let (x, y) = (num(x), num(y));
    let mut all = vec![("x", x.as_str()), ("y", y.as_str())];
    all.extend_from_slice(attrs);
    Markup::el("text", &all, Markup::text(text))
}

fn rect(x: u32, y: u32, width: u32, height: u32, attrs: &[(&'static str, &str)], body: Markup) -> Markup {
    let (x, y, width, height) = (num(x), num(y), num(width), num(height));
    let mut all = vec![("x", x.as_str()), ("y", y.as_str()), ("width", width.as_str()), ("height", height.as_str())];
    all.extend_from_slice(attrs);
    Markup::el("rect", &all, body)
}

/// `s` cut to `max` characters with an ellipsis.
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((end, _)) => format!("{}…", &s[..end]),
    }
}

/// Width of a bar for `count` when the longest bar is `max`.
fn bar(count: usize, max: usize) -> u32 {
    if count == 0 || max == 0 {
        return 0;
    }
    let width = (count.min(max) as u64 * u64::from(BAR_MAX)) / max as u64;
    u32::try_from(width).unwrap_or(BAR_MAX).max(2)
}

/// A location's box: its name and totals, and one bar per server sized by its replica
/// count relative to `max_replicas` (the most any server holds).
pub fn location_box(name: &str, servers: &[&ServerView], max_replicas: usize) -> Markup {
    let replicas: usize = servers.iter().map(|s| s.replicas).sum();
    let leaders: usize = servers.iter().map(|s| s.leaders).sum();
    let totals =
        format!("{} · {} · {}", count(servers.len(), "server"), count(replicas, "replica"), count(leaders, "leader"));
    let height = HEADER + ROW * u32::try_from(servers.len()).unwrap_or(0) + 8;
    let mut body = Markup::el_text("title", format!("{name}: {totals}"));
    body.push(rect(
        1,
        1,
        BOX_WIDTH - 2,
        height - 2,
        &[("rx", "8"), ("fill", "#f6f8fa"), ("stroke", "#57606a")],
        Markup::new(),
    ));
    body.push(svg_text(12, 21, &[("font-weight", "bold"), ("class", "location-name")], name));
    body.push(svg_text(BOX_WIDTH - 12, 21, &[("text-anchor", "end"), ("fill", "#57606a")], &totals));
    for (i, s) in servers.iter().enumerate() {
        let y = HEADER + ROW * u32::try_from(i).unwrap_or(0);
        let state = if s.live { "live" } else { "unresponsive" };
        let tooltip =
            format!("{} at {} ({state}): {} replicas, {} leaders", s.id, s.rpc_address, s.replicas, s.leaders);
        let mut g = Markup::el_text("title", tooltip);
        g.push(svg_text(12, y + 13, &[], shorten(s.id.as_str(), 16)));
        let fill = if s.live { REPLICAS } else { DEAD };
        g.push(rect(NAME_WIDTH, y, bar(s.replicas, max_replicas), 16, &[("rx", "3"), ("fill", fill)], Markup::new()));
        let leader_fill = if s.live { LEADERS } else { DEAD };
        g.push(rect(
            NAME_WIDTH,
            y,
            bar(s.leaders, max_replicas),
            16,
            &[("rx", "3"), ("fill", leader_fill)],
            Markup::new(),
        ));
        let label = if s.live { s.replicas.to_string() } else { format!("{} (unresponsive)", s.replicas) };
        g.push(svg_text(NAME_WIDTH + bar(s.replicas, max_replicas) + 6, y + 13, &[("class", "replica-count")], label));
        body.push(Markup::el("g", &[("class", "server"), ("data-ts", s.id.as_str())], g));
    }
    let (width, height) = (num(BOX_WIDTH), num(height));
    Markup::el(
        "svg",
        &[
            ("class", "location"),
            ("data-location", name),
            ("width", &width),
            ("height", &height),
            ("role", "img"),
            ("aria-label", &format!("{name}: {totals}")),
        ],
        body,
    )
}

const SQUARE: u32 = 14;
const STEP: u32 = 18;
const PER_ROW: usize = 32;

/// How a tablet's square is drawn.
#[derive(Clone, Copy)]
enum Square {
    Complies,
    Violates,
    NotApplicable,
}

impl Square {
    fn of(compliance: &Compliance) -> Square {
        match compliance {
            Compliance::NotApplicable => Square::NotApplicable,
            Compliance::Complies => Square::Complies,
            Compliance::Violates { .. } => Square::Violates,
        }
    }

    /// Its class and fill colour.
    fn style(self) -> (&'static str, &'static str) {
        match self {
            Square::NotApplicable => ("tablet not-applicable", NOT_APPLICABLE),
            Square::Complies => ("tablet complies", COMPLIES),
            Square::Violates => ("tablet violates", VIOLATES),
        }
    }
}

/// One square per tablet of a table, in partition order, coloured by compliance; a
/// violating square is outlined and crossed so it reads without colour too.
pub fn tablet_strip(table: &str, tablets: &[(&Tablet, Compliance)]) -> Markup {
    let rows = u32::try_from(tablets.len().div_ceil(PER_ROW).max(1)).unwrap_or(1);
    let columns = u32::try_from(tablets.len().clamp(1, PER_ROW)).unwrap_or(1);
    let mut body = Markup::new();
    for (i, (tablet, compliance)) in tablets.iter().enumerate() {
        let x = 2 + STEP * u32::try_from(i % PER_ROW).unwrap_or(0);
        let y = 2 + STEP * u32::try_from(i / PER_ROW).unwrap_or(0);
        let standing = match compliance {
            Compliance::NotApplicable => "placement policy not applicable".to_string(),
            Compliance::Complies => "complies with the placement policy".to_string(),
            Compliance::Violates { location, replicas } => {
                format!("VIOLATES the placement policy: {replicas} of {} replicas in {location}", tablet.replicas.len())
            }
        };
        let tooltip = Markup::el_text(
            "title",
            format!("{table} partition {} (tablet {}): {standing}", tablet.partition, tablet.id),
        );
        let (class, fill) = Square::of(compliance).style();
        let mut attrs = vec![("class", class), ("data-tablet", tablet.id.as_str()), ("fill", fill), ("rx", "2")];
        if matches!(compliance, Compliance::Violates { .. }) {
            attrs.extend([("stroke", "#1f2328"), ("stroke-width", "2")]);
        }
        body.push(rect(x, y, SQUARE, SQUARE, &attrs, tooltip));
        if matches!(compliance, Compliance::Violates { .. }) {
            let (x1, y1, x2, y2) = (num(x + 3), num(y + 3), num(x + SQUARE - 3), num(y + SQUARE - 3));
            let cross = format!("M{x1} {y1}L{x2} {y2}M{x2} {y1}L{x1} {y2}");
            body.push(Markup::el("path", &[("d", &cross), ("stroke", "#fff"), ("stroke-width", "2")], Markup::new()));
        }
    }
    let (width, height) = (num(4 + STEP * columns), num(4 + STEP * rows));
    let label = format!("{} tablets of {table}", tablets.len());
    Markup::el(
        "svg",
        &[("class", "tablets"), ("width", &width), ("height", &height), ("role", "img"), ("aria-label", &label)],
        body,
    )
}

/// The colour key of the tablet squares.
pub fn legend() -> Markup {
    let entry = |square: Square, text: &str| {
        let (_, fill) = square.style();
        let drawn = Markup::el(
            "svg",
            &[("width", "16"), ("height", "16")],
            rect(1, 1, SQUARE, SQUARE, &[("fill", fill), ("rx", "2")], Markup::new()),
        );
        drawn.and(Markup::text(format!(" {text}   ")))
    };
    let bars = |fill: &str, text: &str| {
        Markup::el(
            "svg",
            &[("width", "24"), ("height", "16")],
            rect(1, 3, 22, 10, &[("fill", fill), ("rx", "2")], Markup::new()),
        )
        .and(Markup::text(format!(" {text}   ")))
    };
    let squares = entry(Square::Complies, "complies")
        .and(entry(Square::Violates, "violates (a location holds a majority of its replicas)"))
        .and(entry(Square::NotApplicable, "policy not applicable"));
    let servers =
        bars(REPLICAS, "replicas").and(bars(LEADERS, "of which leaders")).and(bars(DEAD, "unresponsive server"));
    Markup::el("p", &[("class", "muted")], squares).and(Markup::el("p", &[("class", "muted")], servers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_fullest_server() {
        assert_eq!(bar(0, 10), 0);
        assert_eq!(bar(10, 10), BAR_MAX);
        assert_eq!(bar(5, 10), BAR_MAX / 2);
        assert_eq!(bar(1, 10_000), 2, "a server with replicas always shows a bar");
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
