//! The master's pages as a person sees them: headless Chromium loads the table page, the
//! tablet-server page and the placement view of a real cluster whose tablet servers span
//! three locations, with one table that complies with the placement policy and one that
//! cannot (replication factor 5 with three of the five servers in one location).
//!
//! Needs Chromium (the Debian package `chromium`, installed by `scripts/setup.sh`). Without
//! it the test fails under CI and is skipped, saying why, elsewhere.

#[path = "web_pages/browser.rs"]
mod browser;
mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use browser::{Browser, element, elements, visible_text};
use common::{Cluster, WAIT, addrs_on_distinct_ips, ip_of, mapping_flags, simple_schema, wait_for};
use kudu::pb::master as pb;
use kudu_testkit::eventually;

/// The browser, or `None` (skip) where none is installed and this is not CI.
fn browser_or_skip() -> Option<Browser> {
    match Browser::find() {
        Ok(browser) => Some(browser),
        Err(why) if std::env::var_os("CI").is_some() => panic!("the web page tests need Chromium under CI: {why}"),
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// Where screenshots are kept for people to look at.
fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web_pages");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// What the catalog says, through the client: every tablet of `tables` with its replicas
/// (uuid, address, location) and leader.
async fn locations(cluster: &Cluster, tables: &[&str]) -> BTreeMap<String, Vec<pb::TabletLocations>> {
    let client = cluster.client();
    let mut all = BTreeMap::new();
    for &table in tables {
        all.insert(table.to_string(), client.get_table_locations(table).await.expect("locations").tablets);
    }
    all
}

/// Checks a table page: every tablet listed, its leader marked (once), every replica
/// with its address and location, and the placement standing `standing`.
fn check_table_page(dom: &str, table: &str, tablets: &[pb::TabletLocations], standing: &str) -> Result<(), String> {
    let text = visible_text(dom);
    for needed in [format!("Table {table}"), "Schema".into(), "id int64".into(), "v string".into()] {
        if !text.contains(&needed) {
            return Err(format!("the page does not show {needed:?}: {text}"));
        }
    }
    for tablet in tablets {
        let id = &tablet.tablet_id;
        let row = element(dom, "tr", &format!("data-tablet=\"{id}\"")).ok_or(format!("no row for tablet {id}"))?;
        let replicas = elements(row, "li");
        if replicas.len() != tablet.replicas.len() {
            return Err(format!(
                "tablet {id}: {} replicas shown, {} in the catalog",
                replicas.len(),
                tablet.replicas.len()
            ));
        }
        if tablet.leader_ts_uuid.is_empty() {
            return Err(format!("tablet {id} has no leader yet"));
        }
        let marked: Vec<String> =
            replicas.iter().map(|r| visible_text(r)).filter(|t| t.starts_with("LEADER")).collect();
        if marked != [format!("LEADER {}", replica_text(tablet, &tablet.leader_ts_uuid))] {
            return Err(format!("tablet {id}: leader {} not marked alone: {marked:?}", tablet.leader_ts_uuid));
        }
        for r in &tablet.replicas {
            let shown = replica_text(tablet, &r.ts_uuid);
            if !replicas.iter().any(|li| visible_text(li).ends_with(&shown)) {
                return Err(format!("tablet {id}: replica {shown:?} not shown in {replicas:?}"));
            }
        }
        let row_text = visible_text(row);
        if !row_text.contains(standing) || !row_text.contains("RUNNING") {
            return Err(format!("tablet {id}: not RUNNING and {standing:?}: {row_text}"));
        }
    }
    Ok(())
}

/// How the page shows replica `uuid` of `tablet`: uuid, address, location.
fn replica_text(tablet: &pb::TabletLocations, uuid: &str) -> String {
    let r = tablet.replicas.iter().find(|r| r.ts_uuid == uuid);
    let (address, location) = r.map_or(("?", "?"), |r| (r.rpc_address.as_str(), r.location.as_str()));
    format!("{uuid} · {address} · {location}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_tables_tablet_servers_and_placement_in_a_browser() {
    let Some(browser) = browser_or_skip() else { return };
    // Three tablet servers in /L0, one in /L1, one in /L2.
    let scripts = tempfile::tempdir().expect("tempdir");
    let addrs = addrs_on_distinct_ips(5, &[]);
    let location = |i: usize| ["/L0", "/L0", "/L0", "/L1", "/L2"][i].to_string();
    let location_of: BTreeMap<String, String> =
        addrs.iter().enumerate().map(|(i, a)| (a.clone(), location(i))).collect();
    let hosts: String = location_of.iter().map(|(a, l)| format!("{} {l}\n", ip_of(a))).collect();
    let hosts_file = scripts.path().join("hosts");
    std::fs::write(&hosts_file, hosts).expect("write hosts");
    let flags =
        mapping_flags(scripts.path(), &format!(r#"awk -v h="$1" '$1 == h {{ print $2 }}' {}"#, hosts_file.display()));
    let mut cluster = Cluster::start_with_flags(1, 0, &flags);
    for addr in &addrs {
        cluster.add_tserver_at(addr.clone());
    }
    cluster.wait_leader().await;
    let client = cluster.client();
    wait_for("5 live tablet servers with locations", WAIT, || async {
        let servers = client.list_tablet_servers().await.ok()?;
        (servers.iter().filter(|s| s.live && !s.location.is_empty()).count() == 5).then_some(())
    })
    .await;

    // Replication factor 3 fits one replica per location; 5 cannot avoid three in /L0.
    client.create_table("spread", &simple_schema(), 3, 3).await.expect("create spread");
    client.create_table("crowded", &simple_schema(), 2, 5).await.expect("create crowded");
    let tables = ["crowded", "spread"];
    let catalog = wait_for("every tablet to report a leader", WAIT, || async {
        let all = locations(&cluster, &tables).await;
        all.values().flatten().all(|t| !t.leader_ts_uuid.is_empty()).then_some(all)
    })
    .await;
    let http = cluster.masters[0].http_addr.clone().expect("http address");
    let base = format!("http://{http}");

    // The table pages: every tablet, its leader marked, replicas with their locations.
    for (table, standing) in [("crowded", "violates 3 of 5 replicas in /L0"), ("spread", "complies")] {
        let url = format!("{base}/tables/{table}");
        eventually(WAIT, &format!("the page of {table} to show every tablet and leader"), || async {
            let catalog = locations(&cluster, &tables).await;
            let dom = browser.dom(&url).await?;
            check_table_page(&dom, table, &catalog[table], standing).map(Some)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let tables_dom = browser.dom(&format!("{base}/tables")).await.expect("/tables");
    for table in tables {
        assert!(tables_dom.contains(&format!("href=\"/tables/{table}\"")), "/tables links {table}: {tables_dom}");
    }
    let missing = browser.dom(&format!("{base}/tables/nope")).await.expect("missing table page");
    assert!(visible_text(&missing).contains("There is no table named nope"), "{missing}");

    // The tablet-server page: location, liveness and the catalog's counts per server.
    let servers = client.list_tablet_servers().await.expect("list");
    eventually(WAIT, "the tablet-server page to show locations and counts", || async {
        let catalog = locations(&cluster, &tables).await;
        let dom = browser.dom(&format!("{base}/tablet-servers")).await?;
        let text = visible_text(&dom);
        if !text.contains("5 tablet servers: 5 live, 0 unresponsive, in 3 locations.") {
            return Err(format!("summary missing: {text}"));
        }
        for s in &servers {
            let row =
                element(&dom, "tr", &format!("data-ts=\"{}\"", s.uuid)).ok_or(format!("no row for {}", s.uuid))?;
            let cells: Vec<String> = elements(row, "td").into_iter().map(visible_text).collect();
            let replicas = catalog.values().flatten().filter(|t| t.replicas.iter().any(|r| r.ts_uuid == s.uuid));
            let leaders = catalog.values().flatten().filter(|t| t.leader_ts_uuid == s.uuid).count();
            let location = &location_of[&s.rpc_address];
            let expected = [&s.uuid, &s.rpc_address, location, "live"].map(String::from);
            if cells.len() != 7
                || cells[..4] != expected
                || !cells[4].ends_with("s ago")
                || cells[5] != replicas.count().to_string()
                || cells[6] != leaders.to_string()
            {
                return Err(format!("row of {}: {cells:?}", s.uuid));
            }
        }
        Ok(Some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // The placement view: each location with its servers, the crowded tablets marked.
    let dom = browser.dom(&format!("{base}/placement")).await.expect("/placement");
    let text = visible_text(&dom);
    assert!(text.contains("The policy applies: the tablet servers span 3 locations"), "{text}");
    assert!(text.contains("2 of 5 tablets break the placement policy"), "{text}");
    for location in ["/L0", "/L1", "/L2"] {
        let picture = element(&dom, "svg", &format!("data-location=\"{location}\"")).expect("location box");
        let here: Vec<&pb::TabletServerEntry> =
            servers.iter().filter(|s| location_of[&s.rpc_address] == location).collect();
        assert!(visible_text(picture).starts_with(location), "{picture}");
        for s in &here {
            assert!(picture.contains(&format!("data-ts=\"{}\"", s.uuid)), "{location} lacks {}: {picture}", s.uuid);
        }
        assert!(visible_text(picture).contains(&format!("{} server", here.len())), "{picture}");
    }
    let violations = dom.split("Tablets that break the placement policy").nth(1).expect("the violating tablets");
    for tablet in &catalog["crowded"] {
        let id = &tablet.tablet_id;
        assert!(dom.contains(&format!("class=\"tablet violates\" data-tablet=\"{id}\"")), "square of {id}: {dom}");
        let row = element(violations, "tr", &format!("data-tablet=\"{id}\"")).expect("listed as violating");
        assert!(visible_text(row).contains("3 of 5 replicas in /L0"), "{row}");
    }
    for tablet in &catalog["spread"] {
        let id = &tablet.tablet_id;
        assert!(dom.contains(&format!("class=\"tablet complies\" data-tablet=\"{id}\"")), "square of {id}: {dom}");
        assert!(element(violations, "tr", &format!("data-tablet=\"{id}\"")).is_none(), "{id} listed as violating");
    }

    // Screenshots for people (and proof the pages render).
    let dir = screenshot_dir();
    for (page, path) in
        [("placement", "/placement"), ("table-crowded", "/tables/crowded"), ("tablet-servers", "/tablet-servers")]
    {
        let file = dir.join(format!("{page}.png"));
        browser.screenshot(&format!("{base}{path}"), &file).await.expect("screenshot");
        eprintln!("screenshot of {path}: {}", file.display());
    }
}
