//! Headless Chromium for the web page tests: the DOM a browser builds from a page
//! (`--dump-dom`), screenshots, and reading the DOM the way a person reads the page.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one page load may take on a loaded 2-core machine.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// A headless Chromium with its own throwaway profile.
pub struct Browser {
    binary: PathBuf,
    profile: tempfile::TempDir,
}

impl Browser {
    /// `KUDU_CHROMIUM`, else `chromium`, `chromium-browser` or `google-chrome` on the PATH.
    pub fn find() -> Result<Browser, String> {
        let candidates: Vec<PathBuf> = match std::env::var_os("KUDU_CHROMIUM") {
            Some(path) => vec![PathBuf::from(path)],
            None => {
                let path = std::env::var_os("PATH").unwrap_or_default();
                std::env::split_paths(&path)
                    .flat_map(|dir| ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name)))
                    .collect()
            }
        };
        let binary = candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
            "no Chromium found (install the Debian package `chromium`: `bash scripts/setup.sh`, or set KUDU_CHROMIUM)"
                .to_string()
        })?;
        let profile = tempfile::tempdir().map_err(|e| format!("profile dir: {e}"))?;
        Ok(Browser { binary, profile })
    }

    async fn run(&self, args: &[String]) -> Result<String, String> {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
            .arg(format!("--user-data-dir={}", self.profile.path().display()))
            .args(args)
            .kill_on_drop(true);
        let out = tokio::time::timeout(LOAD_TIMEOUT, command.output())
            .await
            .map_err(|_| format!("chromium {args:?} took over {LOAD_TIMEOUT:?}"))?
            .map_err(|e| format!("running {}: {e}", self.binary.display()))?;
        if !out.status.success() {
            return Err(format!("chromium {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The DOM Chromium built from `url`, serialized.
    pub async fn dom(&self, url: &str) -> Result<String, String> {
        let dom = self.run(&["--dump-dom".to_string(), url.to_string()]).await?;
        if dom.contains("<body") { Ok(dom) } else { Err(format!("no page at {url}: {dom:?}")) }
    }

    /// A PNG screenshot of `url` at `path`.
    pub async fn screenshot(&self, url: &str, path: &Path) -> Result<(), String> {
        let args = [
            format!("--screenshot={}", path.display()),
            "--window-size=1280,1400".to_string(),
            "--hide-scrollbars".to_string(),
            url.to_string(),
        ];
        self.run(&args).await?;
        let png = std::fs::read(path).map_err(|e| format!("screenshot {}: {e}", path.display()))?;
        if png.len() > 8 && png.starts_with(b"\x89PNG") {
            Ok(())
        } else {
            Err(format!("{} is not a PNG", path.display()))
        }
    }
}

/// The first element `<tag ...>...</tag>` whose start tag contains `attr` (e.g.
/// `data-tablet="ID"`); elements of the same tag must not nest.
pub fn element<'a>(dom: &'a str, tag: &str, attr: &str) -> Option<&'a str> {
    let open = format!("<{tag}");
    let mut from = 0;
    while let Some(start) = dom[from..].find(&open).map(|i| i + from) {
        let head_end = dom[start..].find('>')? + start;
        if dom[start..head_end].contains(attr) {
            let end = dom[head_end..].find(&format!("</{tag}>"))? + head_end + tag.len() + 3;
            return Some(&dom[start..end]);
        }
        from = head_end;
    }
    None
}

/// Every element `<tag ...>...</tag>` in `html` (not nested).
pub fn elements<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        // `<th` is not `<thead`: the tag name must end here.
        let after = rest[start + open.len()..].chars().next();
        if !matches!(after, Some(' ' | '>')) {
            rest = &rest[start + open.len()..];
            continue;
        }
        let Some(len) = rest[start..].find(&close) else { break };
        found.push(&rest[start..start + len + close.len()]);
        rest = &rest[start + len + close.len()..];
    }
    found
}

/// What a person reads in `html`: no head, no tooltips (`<title>`), no tags, entities
/// decoded, whitespace collapsed.
pub fn visible_text(html: &str) -> String {
    let mut html = html.to_string();
    for tag in ["head", "title", "style"] {
        while let Some(start) = html.find(&format!("<{tag}")) {
            let close = format!("</{tag}>");
            let Some(len) = html[start..].find(&close) else { break };
            html.replace_range(start..start + len + close.len(), " ");
        }
    }
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn reading_the_dom() {
    let dom = "<html><head><title>t</title></head><body><table><tr data-x=\"1\"><th>h</th><td>a &amp; b</td>\
               <td><svg><title>tip</title><text>/L0</text></svg></td></tr></table></body></html>";
    let row = element(dom, "tr", "data-x=\"1\"").expect("row");
    assert_eq!(elements(row, "td").iter().map(|c| visible_text(c)).collect::<Vec<_>>(), ["a & b", "/L0"]);
    assert_eq!(visible_text(dom), "h a & b /L0");
    assert_eq!(element(dom, "tr", "data-x=\"2\""), None);
}
