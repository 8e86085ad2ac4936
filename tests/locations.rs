//! Locations and the placement policy with real processes: the location mapping command
//! run by the leader master when a tablet server registers (failures and invalid answers
//! are registration errors, never silent defaults), and placement that never puts a
//! majority of a tablet's replicas in one location.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Cluster, WAIT, addrs_on_distinct_ips, cli, http_get, ip_of, mapping_flags, simple_schema, wait_for};
use kudu::pb::master as pb;

/// Waits until the leader lists `n` live tablet servers, each with a location.
async fn wait_located(cluster: &Cluster, n: usize) -> Vec<pb::TabletServerEntry> {
    let client = cluster.client();
    wait_for(&format!("{n} live tablet servers with locations"), WAIT, || async {
        let servers = client.list_tablet_servers().await.ok()?;
        (servers.iter().filter(|s| s.live && !s.location.is_empty()).count() >= n).then_some(servers)
    })
    .await
}

/// The value of an unlabelled metric on a master's /metrics page.
fn metric(http_addr: &str, name: &str) -> Option<f64> {
    let (_, body) = http_get(http_addr, "/metrics");
    body.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tablet_servers_get_the_location_the_command_prints_and_a_moved_one_a_new_one() {
    let scripts = tempfile::tempdir().expect("tempdir");
    // 127.0.0.N -> /dc-0/rack-N
    let flags = mapping_flags(scripts.path(), r#"echo "/dc-0/rack-${1##*.}""#);
    let mut cluster = Cluster::start_with_flags(1, 2, &flags);
    cluster.wait_leader().await;
    let servers = wait_located(&cluster, 2).await;
    let rack = |addr: &str| format!("/dc-0/rack-{}", ip_of(addr).rsplit('.').next().unwrap_or_default());
    for s in &servers {
        assert_eq!(s.location, rack(&s.rpc_address), "{s:?}");
        assert!(s.registration_error.is_empty(), "{s:?}");
    }
    let client = cluster.client();
    client.create_table("placed", &simple_schema(), 2, 1).await.expect("create with located servers");
    let locations = client.get_table_locations("placed").await.expect("locations");
    assert!(locations.tablets.iter().flat_map(|t| &t.replicas).all(|r| r.location.starts_with("/dc-0/rack-")));

    // The pod moves to another node: the server comes back (same uuid) on another IP and
    // registers again, with the location of its new host.
    let others: Vec<String> = cluster.tservers.iter().map(|t| t.addr.clone()).collect();
    let new_addr = addrs_on_distinct_ips(1, &others).remove(0);
    cluster.tservers[0].move_to(new_addr.clone());
    let moved = wait_for("the moved tablet server's new location", WAIT, || async {
        let servers = client.list_tablet_servers().await.ok()?;
        servers.into_iter().find(|s| s.rpc_address == new_addr && s.live && !s.location.is_empty())
    })
    .await;
    assert_eq!(moved.location, rack(&new_addr));
    assert_eq!(client.list_tablet_servers().await.expect("list").len(), 2, "the same server, not a new one");
}

/// 6 tablet servers, 2 in each of /L0, /L1, /L2; 50 tables of replication factor 3: every
/// tablet has one replica in each location and the servers of a location share the load.
/// Then /L2 fails: new tablets are placed anyway, against the policy, and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_spread_over_locations_and_violations_are_counted() {
    let scripts = tempfile::tempdir().expect("tempdir");
    let addrs = addrs_on_distinct_ips(6, &[]);
    let location_of: BTreeMap<String, String> =
        addrs.iter().enumerate().map(|(i, a)| (a.clone(), format!("/L{}", i % 3))).collect();
    let table: String = location_of.iter().map(|(a, l)| format!("{} {l}\n", ip_of(a))).collect();
    std::fs::write(scripts.path().join("hosts"), table).expect("write hosts");
    let hosts = scripts.path().join("hosts");
    let mut flags =
        mapping_flags(scripts.path(), &format!(r#"awk -v h="$1" '$1 == h {{ print $2 }}' {}"#, hosts.display()));
    // Re-replication would move the dead location's replicas (and count violations too).
    flags.extend(["--max-concurrent-rereplications".to_string(), "0".to_string()]);
    let mut cluster = Cluster::start_with_flags(1, 0, &flags);
    for addr in &addrs {
        cluster.add_tserver_at(addr.clone());
    }
    cluster.wait_leader().await;
    let servers = wait_located(&cluster, 6).await;
    for s in &servers {
        assert_eq!(Some(&s.location), location_of.get(&s.rpc_address), "{s:?}");
    }

    let client = cluster.client();
    const TABLES: usize = 50;
    for i in 0..TABLES {
        client.create_table(&format!("t{i:02}"), &simple_schema(), 1, 3).await.expect("create");
    }
    let all_locations: BTreeSet<&str> = ["/L0", "/L1", "/L2"].into();
    for i in 0..TABLES {
        let name = format!("t{i:02}");
        let locations = client.get_table_locations(&name).await.expect("locations");
        assert_eq!(locations.tablets.len(), 1);
        for tablet in &locations.tablets {
            let servers: BTreeSet<&str> = tablet.replicas.iter().map(|r| r.ts_uuid.as_str()).collect();
            assert_eq!(servers.len(), 3, "{name}: distinct servers {tablet:?}");
            let mut per_location: BTreeMap<&str, usize> = BTreeMap::new();
            for r in &tablet.replicas {
                let expected = location_of.get(&r.rpc_address).map(String::as_str);
                assert_eq!(Some(r.location.as_str()), expected, "{name}: reported location of {r:?}");
                *per_location.entry(r.location.as_str()).or_default() += 1;
            }
            assert!(per_location.values().all(|&n| n == 1), "{name}: a majority in one location: {per_location:?}");
            assert_eq!(per_location.keys().copied().collect::<BTreeSet<_>>(), all_locations, "{name}");
        }
    }
    // Within a location the two servers share its 50 replicas.
    let servers = client.list_tablet_servers().await.expect("list");
    let loads: Vec<u32> = servers.iter().map(|s| s.num_replicas).collect();
    assert_eq!(loads.iter().sum::<u32>(), 150, "{servers:?}");
    assert!(loads.iter().all(|&n| (22..=28).contains(&n)), "uneven within locations: {servers:?}");
    let master_http = cluster.masters[0].http_addr.clone().expect("http");
    let violations = "kudu_master_placement_policy_violations_total";
    assert_eq!(metric(&master_http, violations), Some(0.0));

    // `kudu tserver list` shows location, liveness and replica count.
    let master = cluster.masters[0].addr.clone();
    let (ok, out, err) = cli(&["tserver", "list", "-m", &master, "--format", "json"]);
    assert!(ok, "{err}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    assert_eq!(listed.len(), 6, "{out}");
    for s in &listed {
        let addr = s["rpc_address"].as_str().expect("address");
        assert_eq!(s["location"].as_str(), location_of.get(addr).map(String::as_str), "{s}");
        assert_eq!((s["live"].as_bool(), s["state"].as_str()), (Some(true), Some("live")), "{s}");
        assert!(s["replicas"].as_u64().is_some_and(|n| n >= 22), "{s}");
    }

    // /L2 fails: no compliant placement exists for replication factor 3, so the tablets of
    // a new table get 2 replicas in one location rather than staying unplaced.
    let l2: Vec<usize> = (0..6).filter(|i| i % 3 == 2).collect();
    for &i in &l2 {
        cluster.tservers[i].kill();
    }
    wait_for("/L2's servers to be unresponsive", WAIT, || async {
        let servers = client.list_tablet_servers().await.ok()?;
        (servers.iter().filter(|s| !s.live).count() == l2.len()).then_some(())
    })
    .await;
    let (ok, text, err) = cli(&["tserver", "list", "-m", &master]);
    assert!(ok, "{err}");
    assert_eq!(text.matches("UNRESPONSIVE").count(), 2, "{text}");
    client.create_table("forced", &simple_schema(), 2, 3).await.expect("placed anyway");
    let forced = client.get_table_locations("forced").await.expect("locations");
    for tablet in &forced.tablets {
        let in_locations: BTreeSet<&str> = tablet.replicas.iter().map(|r| r.location.as_str()).collect();
        assert_eq!(tablet.replicas.len(), 3, "{tablet:?}");
        assert_eq!(in_locations, ["/L0", "/L1"].into(), "{tablet:?}");
    }
    assert_eq!(metric(&master_http, violations), Some(2.0), "one violation per tablet");
}

/// A mapping command that fails, hangs past its timeout, prints an invalid location or
/// prints nothing: the tablet server gets a clear registration error (in its log and in
/// `kudu tserver list`) and no replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_mapping_answers_are_registration_errors_and_get_no_replicas() {
    let scripts = tempfile::tempdir().expect("tempdir");
    let addrs = addrs_on_distinct_ips(5, &[]);
    let [good, fails, hangs, invalid, empty] = [0, 1, 2, 3, 4].map(|i| addrs[i].clone());
    let body = format!(
        "case \"$1\" in\n{} ) echo /L0 ;;\n{} ) echo boom >&2; exit 2 ;;\n{} ) exec sleep 60 ;;\n{} ) echo rack-04 ;;\n{} ) ;;\nesac",
        ip_of(&good),
        ip_of(&fails),
        ip_of(&hangs),
        ip_of(&invalid),
        ip_of(&empty)
    );
    let mut flags = mapping_flags(scripts.path(), &body);
    flags.extend(["--location-mapping-timeout-ms".to_string(), "2000".to_string()]);
    let mut cluster = Cluster::start_with_flags(1, 0, &flags);
    for addr in &addrs {
        cluster.add_tserver_at(addr.clone());
    }
    cluster.wait_leader().await;
    let expected =
        [(&fails, "boom"), (&hangs, "timed out"), (&invalid, "must start with '/'"), (&empty, "printed nothing")];
    for (addr, why) in expected {
        let ts = cluster.tservers.iter().find(|t| &t.addr == addr).expect("tserver");
        wait_for(&format!("{addr} to log its registration error ({why})"), WAIT, || async {
            let log = ts.log();
            log.lines().any(|l| l.contains("LOCATION_MAPPING_FAILED") && l.contains(why)).then_some(())
        })
        .await;
    }
    let client = cluster.client();
    let servers = wait_for("every tablet server listed", WAIT, || async {
        let servers = client.list_tablet_servers().await.ok()?;
        let failed = servers.iter().filter(|s| !s.registration_error.is_empty()).count();
        (servers.len() == 5 && failed == 4 && servers.iter().any(|s| s.location == "/L0")).then_some(servers)
    })
    .await;
    for (addr, why) in expected {
        let s = servers.iter().find(|s| &s.rpc_address == addr).expect("listed");
        assert!(s.location.is_empty(), "never a silent default: {s:?}");
        assert!(s.registration_error.contains(why), "{s:?}");
    }

    // Only the good server receives replicas; there is no room for replication factor 3.
    client.create_table("only-good", &simple_schema(), 6, 1).await.expect("create");
    let locations = client.get_table_locations("only-good").await.expect("locations");
    for tablet in &locations.tablets {
        let hosts: Vec<&str> = tablet.replicas.iter().map(|r| r.rpc_address.as_str()).collect();
        assert_eq!(hosts, [good.as_str()], "{tablet:?}");
    }
    let err = client.create_table("rf3", &simple_schema(), 1, 3).await.expect_err("one placeable server");
    assert_eq!(err.code(), Some("NOT_ENOUGH_TABLET_SERVERS"), "{err}");

    let (ok, text, err) = cli(&["tserver", "list", "-m", &cluster.masters[0].addr]);
    assert!(ok, "{err}");
    assert_eq!(text.matches("registration failed").count(), 4, "{text}");
}
