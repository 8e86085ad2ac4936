//! Small HTML helpers for the servers' status pages: escaping, [`Markup`] built only from
//! escaped parts, tables, links and a page frame with one shared stylesheet. Pages are
//! self-contained (no scripts, no external assets), so they work offline.

use std::fmt::Write as _;

use axum::response::Html;

/// `s` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// `s` as one percent-encoded URL path segment (everything but `[A-Za-z0-9_.~-]` encoded).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'~' | b'-') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `n` and `noun`, plural unless `n` is 1: `1 tablet`, `3 tablets`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// HTML that is safe to insert: made only of escaped text and of elements whose tag and
/// attribute names are static and whose attribute values are escaped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Markup(String);

impl Markup {
    /// Nothing.
    pub fn new() -> Markup {
        Markup(String::new())
    }

    /// Text, escaped.
    pub fn text(s: impl AsRef<str>) -> Markup {
        Markup(escape(s.as_ref()))
    }

    /// `<name a="v" ...>body</name>`, attribute values escaped.
    pub fn el(name: &'static str, attrs: &[(&'static str, &str)], body: Markup) -> Markup {
        let mut out = String::with_capacity(body.0.len() + 16);
        out.push('<');
        out.push_str(name);
        for (attr, value) in attrs {
            let _ = write!(out, " {attr}=\"{}\"", escape(value));
        }
        out.push('>');
        out.push_str(&body.0);
        let _ = write!(out, "</{name}>");
        Markup(out)
    }

    /// `<name>text</name>`, the text escaped.
    pub fn el_text(name: &'static str, text: impl AsRef<str>) -> Markup {
        Markup::el(name, &[], Markup::text(text))
    }

    /// A link to `href` showing `text`.
    pub fn link(href: &str, text: impl AsRef<str>) -> Markup {
        Markup::el("a", &[("href", href)], Markup::text(text))
    }

    /// Appends `other`.
    pub fn push(&mut self, other: Markup) {
        self.0.push_str(&other.0);
    }

    /// `self` followed by `other`.
    pub fn and(mut self, other: Markup) -> Markup {
        self.push(other);
        self
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromIterator<Markup> for Markup {
    fn from_iter<I: IntoIterator<Item = Markup>>(iter: I) -> Markup {
        let mut out = Markup::new();
        out.extend(iter);
        out
    }
}

impl Extend<Markup> for Markup {
    fn extend<I: IntoIterator<Item = Markup>>(&mut self, iter: I) {
        for m in iter {
            self.push(m);
        }
    }
}

/// A table row `<tr attrs>` with one `<td>` per cell.
pub fn row(attrs: &[(&'static str, &str)], cells: impl IntoIterator<Item = Markup>) -> Markup {
    Markup::el("tr", attrs, cells.into_iter().map(|c| Markup::el("td", &[], c)).collect())
}

/// A table with `headers` above `rows` (made with [`row`]).
pub fn grid(headers: &[&str], rows: impl IntoIterator<Item = Markup>) -> Markup {
    let head = Markup::el("tr", &[], headers.iter().map(|h| Markup::el_text("th", h)).collect());
    Markup::el("table", &[], head.and(rows.into_iter().collect()))
}

/// An HTML table with `headers`, one row per item of `rows` (cells are escaped).
pub fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    grid(headers, rows.map(|cells| row(&[], cells.into_iter().map(Markup::text)))).into_string()
}

/// The colour of a [`badge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Healthy, complying.
    Ok,
    /// Broken, violating.
    Bad,
    /// Needs attention.
    Warn,
    /// Gone quiet (an unresponsive server).
    Dead,
    /// A Raft leader.
    Leader,
    /// Neutral.
    Plain,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Ok => "badge ok",
            Tone::Bad => "badge bad",
            Tone::Warn => "badge warn",
            Tone::Dead => "badge dead",
            Tone::Leader => "badge leader",
            Tone::Plain => "badge",
        }
    }
}

/// A small coloured label.
pub fn badge(tone: Tone, text: impl AsRef<str>) -> Markup {
    Markup::el("span", &[("class", tone.class())], Markup::text(text))
}

/// The stylesheet of every page.
const STYLE: &str = "body{font-family:sans-serif;margin:1em 2em;color:#1f2328}\
    nav a{margin-right:1em}\
    table{border-collapse:collapse;margin:.5em 0 1em}\
    td,th{padding:3px 10px;text-align:left;vertical-align:top;border-bottom:1px solid #d0d7de}\
    th{background:#f6f8fa}\
    ul.replicas{list-style:none;margin:0;padding:0}ul.replicas li{white-space:nowrap}\
    .badge{display:inline-block;white-space:nowrap;padding:0 6px;margin:0 2px;border-radius:8px;font-size:85%;color:#fff;background:#57606a}\
    .badge.ok{background:#1a7f37}.badge.bad{background:#cf222e}.badge.warn{background:#9a6700}\
    .badge.dead{background:#8c959f}.badge.leader{background:#0969da}\
    li.leader{font-weight:bold}\
    tr.violates td{background:#ffebe9}\
    .pictures{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}\
    svg text{font-family:sans-serif;font-size:12px}\
    .muted{color:#57606a}";

/// A page titled `title` with navigation links `nav` (`(href, label)`) above `body`.
pub fn page(title: &str, nav: &[(&str, &str)], body: &str) -> Html<String> {
    let links: Markup = nav.iter().map(|(href, label)| Markup::link(href, label)).collect();
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head>\
         <body><nav>{nav}</nav><h1>{t}</h1>{body}</body></html>",
        t = escape(title),
        nav = links.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        let evil = "<script>alert('x')</script>&\"";
        let m = Markup::el("a", &[("href", evil)], Markup::text(evil));
        assert!(!m.as_str().contains("<script>"), "{m:?}");
        assert_eq!(m.as_str().matches('"').count(), 2, "only the attribute's own quotes: {m:?}");
        assert!(m.as_str().contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"), "{m:?}");
        let t = table(&["<h>"], std::iter::once(vec!["<c>".to_string()]));
        assert_eq!(t, "<table><tr><th>&lt;h&gt;</th></tr><tr><td>&lt;c&gt;</td></tr></table>");
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(path_segment("metrics.daily-2024_v1"), "metrics.daily-2024_v1");
        assert_eq!(path_segment("a/b c?<\u{e9}"), "a%2Fb%20c%3F%3C%C3%A9");
    }

    #[test]
    fn pages_escape_their_title_and_nav() {
        let Html(html) = page("<t>", &[("/x?a=1&b=2", "<n>")], "<p>body</p>");
        assert!(html.contains("<title>&lt;t&gt;</title>") && html.contains("<h1>&lt;t&gt;</h1>"), "{html}");
        assert!(html.contains("<a href=\"/x?a=1&amp;b=2\">&lt;n&gt;</a>"), "{html}");
        assert!(html.contains("<p>body</p>"), "{html}");
    }
}
