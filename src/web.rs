//! Small HTML helpers for the servers' status pages (escaping, tables, a page frame).

use std::fmt::Write as _;

use axum::response::Html;

/// `s` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A page titled `title` with navigation links `nav` (`(href, label)`) above `body`.
pub fn page(title: &str, nav: &[(&str, &str)], body: &str) -> Html<String> {
    let links: Vec<String> =
        nav.iter().map(|(href, label)| format!("<a href=\"{}\">{}</a>", escape(href), escape(label))).collect();
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif}}td,th{{padding:2px 10px;text-align:left}}</style></head>\
         <body><p>{nav}</p><h1>{t}</h1>{body}</body></html>",
        t = escape(title),
        nav = links.join(" | ")
    ))
}

/// An HTML table with `headers`, one row per item of `rows` (cells are escaped).
pub fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut out = String::from("<table><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(&cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}
