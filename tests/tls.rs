//! Mutual TLS with roles, end to end with real processes: a TLS cluster (3 masters, 3
//! tablet servers) serving DDL, writes and scans to a `client` certificate; clients without
//! a certificate, with one of another CA or in plaintext refused and nothing changed;
//! membership changes refused to `client` and `tserver` certificates; a tablet server
//! certificate heartbeating as another server refused; the web pages plain HTTP and
//! read-only; servers and the CLI refusing to run without `--certs-dir` or `--insecure`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Certs, Cluster, WAIT, http_get, kudu_bin, simple_row, simple_schema, wait_for};
use kudu::client::{ClientError, ClientOptions, KuduClient, MasterClient, RowWrite, ScanSpec};
use kudu::pb::master as pb;
use kudu::pb::master::master_service_client::MasterServiceClient;
use kudu::security::{Role, Security};
use kudu::tablet::OpKind;

fn options(security: Security) -> ClientOptions {
    ClientOptions { timeout: Duration::from_secs(20), rpc_timeout: Duration::from_secs(5), security }
}

/// The `kudu` CLI with `args` and nothing from the environment choosing security.
fn kudu(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(kudu_bin())
        .args(args)
        .env_remove("KUDU_MASTERS")
        .env_remove("KUDU_CERTS_DIR")
        .env_remove("KUDU_INSECURE")
        .output()
        .expect("run kudu");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn table_names(client: &MasterClient) -> Vec<String> {
    let mut names: Vec<String> = client.list_tables().await.expect("list tables").into_iter().map(|t| t.name).collect();
    names.sort();
    names
}

async fn member_ids(client: &MasterClient) -> Vec<u64> {
    let mut ids: Vec<u64> =
        client.list_masters().await.expect("list masters").members.iter().map(|m| m.node_id).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_certified_clients_and_refuses_everyone_else() {
    let cluster = Cluster::start_tls(3, 3);
    cluster.wait_leader().await;
    cluster.wait_tservers(3).await;
    let certs = cluster.certs.as_ref().expect("TLS cluster");
    let masters = cluster.master_addrs();
    let admin = cluster.client();

    // A `client` certificate: DDL, writes and scans over TLS.
    let alice = certs.issue("alice", Role::Client, &["alice"]);
    let client = KuduClient::new(masters.clone(), options(Certs::load(&alice))).expect("client");
    client.masters().create_table("t", &simple_schema(), 3, 3).await.expect("create table over TLS");
    client.wait_for_leaders("t", WAIT).await.unwrap_or_else(|e| {
        cluster.dump_logs();
        panic!("tablets never got leaders: {e}")
    });
    let rows: Vec<RowWrite> =
        (0..50).map(|i| RowWrite { kind: OpKind::Insert, row: simple_row(i, Some("tls")) }).collect();
    let outcome = client.write("t", &rows).await.expect("write over TLS");
    assert_eq!((outcome.applied, outcome.failures.len()), (50, 0), "{outcome:?}");
    let scanned = client.scan("t", &ScanSpec::default()).await.expect("scan over TLS");
    assert_eq!(scanned.len(), 50);
    assert!(scanned.iter().all(|r| r["v"] == "tls"));

    // The CLI with the same certificate directory.
    let masters_flag = masters.join(",");
    let alice_dir = alice.display().to_string();
    let (ok, out, err) = kudu(&["table", "list", "-m", &masters_flag, "--certs-dir", &alice_dir]);
    assert!(ok && out.contains('t'), "{out}{err}");

    let before_tables = table_names(&admin).await;
    let before_members = member_ids(&admin).await;
    assert_eq!(before_members.len(), 3);

    // No client certificate (TLS, verifying the servers against the CA): UNAUTHENTICATED.
    let ca = tonic::transport::Certificate::from_pem(std::fs::read(certs.ca_dir().join("ca.crt")).expect("ca"));
    let leader = cluster.wait_leader().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{leader}"))
        .expect("endpoint")
        .tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(ca))
        .expect("tls")
        .connect()
        .await
        .expect("connect");
    let mut anonymous = MasterServiceClient::new(channel);
    let request = pb::CreateTableRequest { name: "anonymous".into(), ..Default::default() };
    let status = anonymous.create_table(request).await.expect_err("no certificate");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("no client certificate"), "{}", status.message());
    let status = anonymous.list_tables(pb::ListTablesRequest::default()).await.expect_err("no certificate");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");

    // A certificate of another CA: the TLS handshake fails, nothing is done.
    let other_dir = cluster.dir.path().join("other");
    let other = Certs::new(&other_dir).issue("mallory", Role::Admin, &["mallory"]);
    let mallory = MasterClient::new(
        masters.clone(),
        ClientOptions { timeout: Duration::from_secs(5), ..options(Certs::load(&other)) },
    )
    .expect("client");
    let refused = mallory.create_table("mallory", &simple_schema(), 1, 1).await.expect_err("foreign CA");
    assert!(!matches!(refused, ClientError::Master { .. }), "no master accepted it: {refused}");
    let (ok, _, err) = kudu(&[
        "table",
        "list",
        "-m",
        &masters_flag,
        "--certs-dir",
        &other.display().to_string(),
        "--timeout-ms",
        "3000",
    ]);
    assert!(!ok && err.starts_with("error:") && err.trim_end().lines().count() == 1, "{err}");
    assert!(err.contains("certificate"), "the error says why: {err}");

    // Plaintext against TLS servers: refused too.
    let (ok, _, err) = kudu(&[
        "table",
        "create",
        "plain",
        "--columns",
        "id:int64",
        "--primary-key",
        "id",
        "-m",
        &masters_flag,
        "--insecure",
        "--timeout-ms",
        "3000",
    ]);
    assert!(!ok && err.starts_with("error:"), "{err}");

    // Membership changes: a `client` certificate may not add, a `tserver` one may not remove.
    let spare = common::free_addr();
    let err = client.masters().add_master(&spare).await.expect_err("client may not add masters");
    assert_eq!(err.code(), Some("NOT_AUTHORIZED"), "{err}");
    assert!(err.to_string().contains("role 'client'") && err.to_string().contains("AddMaster"), "{err}");
    let ts_cert = certs.issue("ts-intruder", Role::Tserver, &["ts-intruder.invalid"]);
    let intruder = MasterClient::new(masters.clone(), options(Certs::load(&ts_cert))).expect("client");
    let err = intruder.remove_master(Some(&masters[0]), None).await.expect_err("tserver may not remove masters");
    assert_eq!(err.code(), Some("NOT_AUTHORIZED"), "{err}");
    assert!(err.to_string().contains("role 'tserver'") && err.to_string().contains("RemoveMaster"), "{err}");
    let (ok, _, err) = kudu(&["master", "remove", &masters[1], "-m", &masters_flag, "--certs-dir", &alice_dir]);
    assert!(!ok && err.contains("NOT_AUTHORIZED"), "{err}");

    // A tablet server certificate heartbeating as another server (its address is not one of
    // the certificate's names): refused, the registration untouched.
    let victim = cluster.tservers[0].addr.clone();
    let pool = kudu::rpc::ChannelPool::default().with_security(Certs::load(&ts_cert));
    let mut master = MasterServiceClient::new(pool.get(&leader).expect("channel"));
    let servers = admin.list_tablet_servers().await.expect("tablet servers");
    let victim_entry = servers.iter().find(|s| s.rpc_address == victim).expect("victim registered").clone();
    let forged = pb::TsHeartbeatRequest {
        ts_uuid: victim_entry.uuid.clone(),
        rpc_address: victim.clone(),
        instance_id: "forged".into(),
        ..Default::default()
    };
    let status = master.ts_heartbeat(forged).await.expect_err("forged heartbeat");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("TSHeartbeat refused") && status.message().contains("ts-intruder.invalid"),
        "{}",
        status.message()
    );
    // ... nor with the victim's uuid from an address the certificate does name.
    let takeover = pb::TsHeartbeatRequest {
        ts_uuid: victim_entry.uuid.clone(),
        rpc_address: "ts-intruder.invalid:7050".into(),
        instance_id: "forged".into(),
        ..Default::default()
    };
    let status = master.ts_heartbeat(takeover).await.expect_err("uuid takeover");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("registered and live"), "{}", status.message());
    let servers = admin.list_tablet_servers().await.expect("tablet servers");
    let after = servers.iter().find(|s| s.uuid == victim_entry.uuid).expect("still registered");
    assert_eq!(after.rpc_address, victim);
    // A `client` certificate may not heartbeat at all.
    let mut as_client = MasterServiceClient::new(
        kudu::rpc::ChannelPool::default().with_security(Certs::load(&alice)).get(&leader).expect("channel"),
    );
    let status = as_client
        .ts_heartbeat(pb::TsHeartbeatRequest { rpc_address: victim.clone(), ..Default::default() })
        .await
        .expect_err("client heartbeat");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // Nothing changed.
    assert_eq!(table_names(&admin).await, before_tables);
    assert_eq!(member_ids(&admin).await, before_members);
    assert!(before_tables == vec!["t".to_string()], "{before_tables:?}");

    // The web pages stay plain HTTP on their own port, and read-only.
    let http = cluster.masters[0].http_addr.clone().expect("http address");
    let (status, body) = tokio::task::spawn_blocking({
        let http = http.clone();
        move || http_get(&http, "/masters")
    })
    .await
    .expect("http");
    assert_eq!(status, 200, "{body}");
    let post = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&http).expect("connect http");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        write!(stream, "POST /masters HTTP/1.1\r\nHost: {http}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
    })
    .await
    .expect("http");
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
}

/// Runs `kudu ARGS` expecting it to exit on its own; returns (success, stderr).
async fn exits(args: Vec<String>) -> (bool, String) {
    let mut child = Command::new(kudu_bin())
        .args(&args)
        .env_remove("KUDU_MASTERS")
        .env_remove("KUDU_CERTS_DIR")
        .env_remove("KUDU_INSECURE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kudu");
    let status = wait_for(&format!("kudu {} to exit", args.join(" ")), WAIT, || {
        let status = child.try_wait().expect("wait");
        async move { status }
    })
    .await;
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut err).expect("stderr");
    (status.success(), err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_and_the_cli_need_certs_or_insecure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = common::free_addr();
    let data = dir.path().join("data").display().to_string();
    let one_line = |err: &str| {
        err.trim_end().lines().count() == 1
            && err.starts_with("error:")
            && err.contains("--certs-dir")
            && err.contains("--insecure")
    };
    for role in ["master", "tserver"] {
        let args = ["--data-dir", &data, "--rpc-addr", &addr, "--master-addresses", &addr];
        let (ok, err) = exits([&[role, "run"][..], &args].concat().iter().map(|s| s.to_string()).collect()).await;
        assert!(!ok && one_line(&err), "{role}: {err}");
    }
    let (ok, _, err) = kudu(&["table", "list", "-m", &addr]);
    assert!(!ok && one_line(&err), "{err}");
    let (ok, _, err) = kudu(&["master", "list", "-m", &addr, "--certs-dir", "/x", "--insecure"]);
    assert!(!ok && err.contains("exclude each other"), "{err}");

    // A server refuses a certificate of another role.
    let certs = Certs::new(dir.path());
    let client_cert = certs.issue("alice", Role::Client, &["alice"]).display().to_string();
    let args = [
        "master",
        "run",
        "--data-dir",
        &data,
        "--rpc-addr",
        &addr,
        "--master-addresses",
        &addr,
        "--certs-dir",
        &client_cert,
    ];
    let (ok, err) = exits(args.iter().map(|s| s.to_string()).collect()).await;
    assert!(!ok && err.contains("is a client certificate") && err.contains("master"), "{err}");
    assert!(!std::path::Path::new(&data).exists(), "nothing was created");
}

#[test]
fn kudu_cert_writes_the_files_of_a_tls_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca").display().to_string();
    let out = dir.path().join("m0").display().to_string();
    let (ok, _, err) = kudu(&["cert", "create-ca", "--out", &ca]);
    assert!(ok, "{err}");
    let (ok, _, err) = kudu(&["cert", "create-ca", "--out", &ca]);
    assert!(!ok && err.contains("refusing to overwrite"), "{err}");
    let (ok, _, err) =
        kudu(&["cert", "create", "--ca", &ca, "--role", "master", "--out", &out, "127.0.0.11", "master-0.svc"]);
    assert!(ok, "{err}");
    let security = Security::load(std::path::Path::new(&out)).expect("load");
    let identity = security.identity().expect("identity");
    assert_eq!((identity.role, identity.name.as_str()), (Role::Master, "127.0.0.11"));
    assert!(identity.is_named("master-0.svc"));
    let (ok, _, err) = kudu(&["cert", "create", "--ca", &ca, "--role", "root", "--out", &out, "x"]);
    assert!(!ok && err.contains("unknown role"), "{err}");
}

/// The certificate a server presents to a new TLS connection at `addr` (verified against
/// the CA in `ca_pem`), as DER.
async fn presented_certificate(addr: &str, ca_pem: &[u8]) -> Option<Vec<u8>> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(ca.ok()?).ok()?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let host = common::ip_of(addr).to_string();
    let name = ServerName::try_from(host).ok()?;
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp)).await.ok()?.ok()?;
    tls.get_ref().1.peer_certificates()?.first().map(|c| c.to_vec())
}

/// The DER of the certificate in a directory's `tls.crt`.
fn certificate_der(dir: &std::path::Path) -> Vec<u8> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(dir.join("tls.crt")).expect("tls.crt").to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_use_renewed_certificates_without_a_restart() {
    let cluster = Cluster::start_tls(1, 1);
    cluster.wait_leader().await;
    cluster.wait_tservers(1).await;
    let admin = cluster.client();
    admin.create_table("before", &simple_schema(), 1, 1).await.expect("create table");
    let certs = cluster.certs.as_ref().expect("TLS cluster");
    let ca_pem = std::fs::read(certs.ca_dir().join("ca.crt")).expect("ca.crt");
    let (master_name, master_addr) = (cluster.masters[0].name.clone(), cluster.masters[0].addr.clone());
    let (tserver_name, tserver_ip) =
        (cluster.tservers[0].name.clone(), common::ip_of(&cluster.tservers[0].addr).to_string());
    let master_dir = certs.dir.join(&master_name);
    let old = certificate_der(&master_dir);
    assert_eq!(presented_certificate(&master_addr, &ca_pem).await.as_deref(), Some(&old[..]));
    let pids = (cluster.masters[0].pid(), cluster.tservers[0].pid());

    // Renew both servers' certificates in place, as the kubelet updates a Secret volume.
    let renewed_master = certs.issue(&master_name, Role::Master, &[common::ip_of(&master_addr)]);
    certs.issue(&tserver_name, Role::Tserver, &[&tserver_ip]);
    let new = certificate_der(&renewed_master);
    assert_ne!(old, new);
    wait_for("the master to present its renewed certificate", WAIT, || {
        let (addr, ca, new) = (master_addr.clone(), ca_pem.clone(), new.clone());
        async move { (presented_certificate(&addr, &ca).await.as_deref() == Some(&new[..])).then_some(()) }
    })
    .await;

    // Same processes, still serving: DDL over new connections, the tablet server (whose
    // client side starts over with its renewed certificate) still heartbeating.
    assert_eq!((cluster.masters[0].pid(), cluster.tservers[0].pid()), pids, "no process restarted");
    assert!(cluster.masters[0].is_running() && cluster.tservers[0].is_running());
    let fresh = common::client_with(&cluster.master_addrs(), cluster.admin_security());
    fresh.create_table("after", &simple_schema(), 1, 1).await.expect("DDL after the renewal");
    assert_eq!(table_names(&fresh).await, ["after", "before"]);
    cluster.wait_tservers(1).await;
}
