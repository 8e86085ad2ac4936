//! The location mapping command: run by the leader master when a tablet server registers;
//! failures and invalid locations are registration errors, never silent defaults.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Cluster, WAIT, simple_schema, wait_for};

/// Writes an executable mapping script and returns the master flag that uses it.
fn mapping_flag(dir: &Path, body: &str) -> Vec<String> {
    let path = dir.join("map-location");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    vec!["--location-mapping-cmd".into(), path.display().to_string()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tablet_servers_get_the_location_the_command_prints() {
    let scripts = tempfile::tempdir().expect("tempdir");
    // 127.0.0.N -> /dc-0/rack-N
    let flags = mapping_flag(scripts.path(), r#"echo "/dc-0/rack-${1##*.}""#);
    let cluster = Cluster::start_with_flags(1, 2, &flags);
    cluster.wait_leader().await;
    cluster.wait_tservers(2).await;
    let client = cluster.client();
    let servers = wait_for("locations on every tablet server", WAIT, || async {
        let servers = client.list_tablet_servers().await.ok()?;
        servers.iter().all(|s| !s.location.is_empty()).then_some(servers)
    })
    .await;
    for s in &servers {
        let ip_last = s.rpc_address.split(':').next().and_then(|ip| ip.rsplit('.').next()).expect("ip");
        assert_eq!(s.location, format!("/dc-0/rack-{ip_last}"), "{s:?}");
    }
    client.create_table("placed", &simple_schema(), 2, 1).await.expect("create with located servers");
    let locations = client.get_table_locations("placed").await.expect("locations");
    assert!(locations.tablets.iter().flat_map(|t| &t.replicas).all(|r| r.location.starts_with("/dc-0/rack-")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_or_invalid_mapping_is_a_registration_error() {
    for (body, expected) in [("echo boom >&2; exit 2", "boom"), ("echo rack-04", "must start with '/'")] {
        let scripts = tempfile::tempdir().expect("tempdir");
        let cluster = Cluster::start_with_flags(1, 1, &mapping_flag(scripts.path(), body));
        cluster.wait_leader().await;
        let log = wait_for("the tablet server to report the refusal", WAIT, || async {
            let log = cluster.tservers[0].log();
            log.contains("LOCATION_MAPPING_FAILED").then_some(log)
        })
        .await;
        assert!(log.contains(expected), "{log}");
        // Never a silent default: the server has no location and receives no replicas.
        let err = cluster.client().create_table("nowhere", &simple_schema(), 1, 1).await.expect_err("no placement");
        assert_eq!(err.code(), Some("NOT_ENOUGH_TABLET_SERVERS"), "{err}");
        let servers = cluster.client().list_tablet_servers().await.expect("list");
        assert!(servers.iter().all(|s| s.location.is_empty()), "{servers:?}");
    }
}
