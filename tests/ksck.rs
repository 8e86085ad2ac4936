//! `kudu cluster ksck` against real processes: a healthy cluster passes (exit 0, text and
//! JSON); a killed tablet server fails it, naming the tablets that lost a replica.

mod common;

use std::time::Duration;

use common::{
    Cluster, WAIT, addrs_on_distinct_ips, cli, ip_of, kudu_client_for, mapping_flags, simple_schema, tablet_ids,
    wait_for,
};
use serde_json::Value;

/// Runs `kudu cluster ksck --format json`: (exit status, report).
fn ksck_json(master: &str) -> (bool, Value, String) {
    let (ok, out, err) = cli(&["cluster", "ksck", "-m", master, "--format", "json"]);
    let report = serde_json::from_str(&out).unwrap_or(Value::Null);
    (ok, report, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ksck_passes_a_healthy_cluster_and_names_the_tablets_of_a_dead_server() {
    let scripts = tempfile::tempdir().expect("tempdir");
    let addrs = addrs_on_distinct_ips(3, &[]);
    let cases: String = addrs.iter().enumerate().map(|(i, a)| format!("{} ) echo /L{i} ;;\n", ip_of(a))).collect();
    let flags = mapping_flags(scripts.path(), &format!("case \"$1\" in\n{cases}esac"));
    let mut cluster = Cluster::start_with_flags(3, 0, &flags);
    for addr in &addrs {
        cluster.add_tserver_at(addr.clone());
    }
    cluster.wait_leader().await;
    cluster.wait_tservers(3).await;
    let client = kudu_client_for(&cluster.master_addrs(), Duration::from_secs(60), Duration::from_secs(10));
    client.masters().create_table("checked", &simple_schema(), 3, 3).await.expect("create");
    client.wait_for_leaders("checked", WAIT).await.expect("tablet leaders");
    let master = cluster.master_addrs().join(",");

    // Healthy once every report has reached the catalog.
    let report = wait_for("ksck to pass", WAIT, || async {
        let (ok, report, _) = ksck_json(&master);
        ok.then_some(report)
    })
    .await;
    assert_eq!(report["healthy"], true, "{report:#}");
    assert_eq!(report["masters"].as_array().map(Vec::len), Some(3), "{report:#}");
    let servers = report["tablet_servers"].as_array().expect("tablet servers");
    assert_eq!(servers.len(), 3);
    assert!(servers.iter().all(|s| s["live"] == true && s["location"].as_str().is_some_and(|l| l.starts_with("/L"))));
    assert_eq!(report["placement_violations"], 0);
    assert_eq!(report["tables"][0]["healthy_tablets"], 3, "{report:#}");
    let (ok, text, err) = cli(&["cluster", "ksck", "-m", &master]);
    assert!(ok, "{text}{err}");
    assert!(text.trim_end().ends_with("OK"), "{text}");

    // A tablet server dies: ksck fails and names every tablet that had a replica there.
    let tablets = tablet_ids(&client, "checked").await;
    cluster.tservers[0].kill();
    let report = wait_for("ksck to report the dead tablet server", WAIT, || async {
        let (ok, report, _) = ksck_json(&master);
        assert!(!ok || report["healthy"] == true, "a failing ksck exits non-zero");
        let problems = report["problems"].as_array()?;
        problems.iter().any(|p| p["kind"] == "TABLET_SERVER_UNRESPONSIVE").then_some(report)
    })
    .await;
    assert_eq!(report["healthy"], false);
    let problems = report["problems"].as_array().expect("problems");
    for tablet in &tablets {
        assert!(
            problems.iter().any(|p| p["kind"] == "REPLICA_UNAVAILABLE"
                && p["subject"].as_str().is_some_and(|s| s.contains(tablet.as_str()))),
            "tablet {tablet} not named: {report:#}"
        );
    }
    let (ok, text, err) = cli(&["cluster", "ksck", "-m", &master]);
    assert!(!ok, "{text}");
    assert!(err.contains("problem"), "{err}");
    assert!(tablets.iter().all(|t| text.contains(t.as_str())), "{text}");
}
