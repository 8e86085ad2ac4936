//! Test harness: clusters of real `kudu` master and tablet server processes on loopback
//! addresses, built on the workspace's one test kit (`kudu-testkit`: processes with fault
//! injection, free addresses, polling with deadlines, never fixed sleeps).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use kudu::catalog::{Column, ColumnType, Schema};
use kudu::client::{ClientOptions, MasterClient};
use kudu::pb::master as pb;
use kudu::security::{Role, Security};

pub use kudu_testkit::{Process, WAIT, free_addr, wait_for};

pub fn kudu_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kudu")
}

/// One server process: a [`Process`] with its addresses.
pub struct Proc {
    pub name: String,
    pub addr: String,
    pub http_addr: Option<String>,
    pub data_dir: PathBuf,
    process: Process,
}

impl Proc {
    pub fn pid(&self) -> Option<i32> {
        self.process.pid()
    }

    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// kill -9.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM and wait for the process to exit; true if it exited cleanly (status 0) in
    /// time, false if it had to be killed or failed.
    pub fn stop(&mut self) -> bool {
        self.process.stop()
    }

    pub fn pause(&self) {
        self.process.pause();
    }

    pub fn resume(&self) {
        self.process.resume();
    }

    pub fn restart(&mut self) {
        self.process.restart();
    }

    /// Deletes the data directory (the process must be stopped).
    pub fn wipe(&mut self) {
        self.process.wipe();
    }

    /// Replaces the seed list (e.g. when a master joins an existing cluster).
    pub fn set_master_addresses(&mut self, addresses: &[String]) {
        self.set_flag("--master-addresses", &addresses.join(","));
    }

    /// Replaces the value of `flag` for the next (re)start.
    pub fn set_flag(&mut self, flag: &str, value: &str) {
        let args = self.process.args_mut();
        if let Some(i) = args.iter().position(|a| a == flag) {
            args[i + 1] = value.to_string();
        }
    }

    /// Adds arguments (e.g. a flag and its value) for the next (re)start.
    pub fn add_args(&mut self, args: &[String]) {
        self.process.args_mut().extend(args.iter().cloned());
    }

    /// Restarts the process listening on `addr` instead (same data directory).
    pub fn move_to(&mut self, addr: String) {
        self.process.stop();
        self.set_flag("--rpc-addr", &addr);
        self.addr = addr;
        self.process.start();
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// A cluster CA in a test's directory and the certificates it signs (`kudu cert`'s files).
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    /// A new CA under `dir/ca`.
    pub fn new(dir: &std::path::Path) -> Certs {
        let dir = dir.join("certs");
        kudu::security::issue::write_ca(&dir.join("ca"), "test-ca", 30).expect("create CA");
        Certs { dir }
    }

    /// The CA's directory (`ca.crt`, `ca.key`).
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.join("ca")
    }

    /// Issues a certificate of `role` for `names` into `dir/LABEL` and returns that directory.
    pub fn issue(&self, label: &str, role: Role, names: &[&str]) -> PathBuf {
        let out = self.dir.join(label);
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        kudu::security::issue::write_cert(&self.ca_dir(), &out, role, &names, 30, true).expect("issue certificate");
        out
    }

    /// The client-side security of a certificate issued into `dir`.
    pub fn load(dir: &std::path::Path) -> Security {
        Security::load(dir).expect("load certificates")
    }
}

/// A cluster of real processes in a temporary directory.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub masters: Vec<Proc>,
    pub tservers: Vec<Proc>,
    pub tserver_timeout_ms: u64,
    /// Extra arguments for every master started from now on.
    pub master_flags: Vec<String>,
    /// Mutual TLS: every server gets a certificate naming its IP; none: `--insecure`.
    pub certs: Option<Certs>,
    next_proc: usize,
}

impl Cluster {
    /// Starts `masters` masters together (they bootstrap one Raft group) and `tservers`
    /// tablet servers.
    pub fn start(masters: usize, tservers: usize) -> Cluster {
        Self::start_with_flags(masters, tservers, &[])
    }

    /// Like [`Cluster::start`], with extra master flags.
    pub fn start_with_flags(masters: usize, tservers: usize, master_flags: &[String]) -> Cluster {
        Self::start_inner(masters, tservers, master_flags, false)
    }

    /// Like [`Cluster::start`], over mutual TLS: a CA in the cluster's directory, a `master`
    /// or `tserver` certificate per process naming its IP; [`Cluster::client`] uses an
    /// `admin` certificate.
    pub fn start_tls(masters: usize, tservers: usize) -> Cluster {
        Self::start_inner(masters, tservers, &[], true)
    }

    fn start_inner(masters: usize, tservers: usize, master_flags: &[String], tls: bool) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = tls.then(|| Certs::new(dir.path()));
        let mut cluster = Cluster {
            dir,
            masters: Vec::new(),
            tservers: Vec::new(),
            tserver_timeout_ms: 3_000,
            master_flags: master_flags.to_vec(),
            certs,
            next_proc: 0,
        };
        let addrs: Vec<String> = (0..masters).map(|_| free_addr()).collect();
        for addr in &addrs {
            let m = cluster.new_master(addr.clone(), &addrs);
            cluster.masters.push(m);
        }
        for _ in 0..tservers {
            cluster.add_tserver();
        }
        cluster
    }

    /// Starts a `kudu ROLE run` process at `addr` with the seed list `seeds` and `flags`.
    fn spawn_server(
        &mut self,
        role: &str,
        addr: String,
        seeds: &[String],
        http: Option<String>,
        flags: &[String],
    ) -> Proc {
        let name = format!("{role}-{}", self.next_proc);
        self.next_proc += 1;
        let data_dir = self.dir.path().join(&name);
        let mut args: Vec<String> = [role, "run", "--data-dir"].map(String::from).to_vec();
        args.push(data_dir.display().to_string());
        args.extend(["--rpc-addr".to_string(), addr.clone(), "--master-addresses".to_string(), seeds.join(",")]);
        if let Some(http) = &http {
            args.extend(["--http-addr".to_string(), http.clone()]);
        }
        match &self.certs {
            Some(certs) => {
                let cert_role = if role == "master" { Role::Master } else { Role::Tserver };
                let dir = certs.issue(&name, cert_role, &[ip_of(&addr)]);
                args.extend(["--certs-dir".to_string(), dir.display().to_string()]);
            }
            None => args.push("--insecure".to_string()),
        }
        args.extend(flags.iter().cloned());
        // The arguments choose the security: a KUDU_INSECURE or KUDU_CERTS_DIR in the test's
        // environment must not add the other one.
        let mut process = Process::new(kudu_bin(), args, &data_dir)
            .env("RUST_LOG", "info,openraft=warn")
            .without_env("KUDU_INSECURE")
            .without_env("KUDU_CERTS_DIR");
        process.start();
        Proc { name, addr, http_addr: http, data_dir, process }
    }

    /// A started master process at `addr` with the seed list `seeds`.
    pub fn new_master(&mut self, addr: String, seeds: &[String]) -> Proc {
        let mut flags: Vec<String> =
            ["--tserver-unresponsive-timeout-ms", &self.tserver_timeout_ms.to_string(), "--snapshot-every", "200"]
                .map(String::from)
                .to_vec();
        flags.extend(self.master_flags.iter().cloned());
        self.spawn_server("master", addr, seeds, Some(free_addr()), &flags)
    }

    /// Starts a tablet server with the current masters as its seed list.
    pub fn add_tserver(&mut self) {
        self.add_tserver_at(free_addr());
    }

    /// Starts a tablet server listening on `addr`.
    pub fn add_tserver_at(&mut self, addr: String) {
        let seeds = self.master_addrs();
        let flags = ["--heartbeat-interval-ms".to_string(), "300".to_string()];
        let p = self.spawn_server("tserver", addr, &seeds, Some(free_addr()), &flags);
        self.tservers.push(p);
    }

    pub fn master_addrs(&self) -> Vec<String> {
        self.masters.iter().map(|m| m.addr.clone()).collect()
    }

    /// A client of the masters (with an `admin` certificate over TLS).
    pub fn client(&self) -> MasterClient {
        client_with(&self.master_addrs(), self.admin_security())
    }

    /// What an administrator's client uses: an `admin` certificate over TLS, else plaintext.
    pub fn admin_security(&self) -> Security {
        match &self.certs {
            Some(certs) => Certs::load(&certs.issue("admin", Role::Admin, &["admin"])),
            None => Security::Insecure,
        }
    }

    pub fn master_by_addr(&mut self, addr: &str) -> &mut Proc {
        self.masters.iter_mut().find(|m| m.addr == addr).expect("no such master")
    }

    /// Waits until some master reports itself leader and returns its address.
    pub async fn wait_leader(&self) -> String {
        let client = self.client();
        wait_for("a leader master", WAIT, || async {
            for m in self.masters.iter().filter(|m| m.is_running()) {
                if let Ok(r) = client.connect_to(&m.addr).await
                    && r.role == pb::Role::Leader as i32
                {
                    return Some(m.addr.clone());
                }
            }
            None
        })
        .await
    }

    /// Waits until the leader sees `n` live tablet servers.
    pub async fn wait_tservers(&self, n: usize) {
        let client = self.client();
        wait_for(&format!("{n} live tablet servers"), WAIT, || async {
            let servers = client.list_tablet_servers().await.ok()?;
            (servers.iter().filter(|s| s.live).count() >= n).then_some(())
        })
        .await
    }

    /// Dumps every process log (for failure diagnosis).
    pub fn dump_logs(&self) {
        for p in self.masters.iter().chain(&self.tservers) {
            eprintln!("===== {} ({}) =====\n{}", p.name, p.addr, p.log());
        }
    }
}

/// `n` free addresses on `n` distinct loopback IPs (location mapping commands see only the
/// host), none of them on an IP in `avoid`.
pub fn addrs_on_distinct_ips(n: usize, avoid: &[String]) -> Vec<String> {
    let ip = |addr: &str| addr.rsplit_once(':').map(|(ip, _)| ip.to_string()).unwrap_or_default();
    let mut taken: std::collections::BTreeSet<String> = avoid.iter().map(|a| ip(a)).collect();
    let mut addrs = Vec::with_capacity(n);
    while addrs.len() < n {
        let addr = free_addr();
        if taken.insert(ip(&addr)) {
            addrs.push(addr);
        }
    }
    addrs
}

/// The IP of a `ip:port` address.
pub fn ip_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(ip, _)| ip)
}

/// Writes an executable location mapping script and returns the master flags that use it.
pub fn mapping_flags(dir: &std::path::Path, body: &str) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("map-location");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    vec!["--location-mapping-cmd".into(), path.display().to_string()]
}

/// A plaintext client of the masters at `addrs`.
pub fn client_for(addrs: &[String]) -> MasterClient {
    client_with(addrs, Security::Insecure)
}

/// A client of the masters at `addrs` over `security`.
pub fn client_with(addrs: &[String], security: Security) -> MasterClient {
    MasterClient::new(
        addrs.to_vec(),
        ClientOptions { timeout: Duration::from_secs(60), rpc_timeout: Duration::from_secs(10), security },
    )
    .expect("client")
}

/// `id:int64, v:string` keyed on id.
pub fn simple_schema() -> Schema {
    Schema {
        columns: vec![Column::new("id", ColumnType::Int64, false), Column::new("v", ColumnType::String, true)],
        primary_key: vec!["id".into()],
    }
}

/// A row of [`simple_schema`]: `id`, and `v` when given.
pub fn simple_row(id: i64, v: Option<&str>) -> kudu::tablet::JsonRow {
    let mut r = kudu::tablet::JsonRow::new();
    r.insert("id".into(), serde_json::json!(id));
    if let Some(v) = v {
        r.insert("v".into(), serde_json::json!(v));
    }
    r
}

/// A client of the whole cluster (rows too) with an overall deadline of `timeout`.
pub fn kudu_client_for(addrs: &[String], timeout: Duration, rpc_timeout: Duration) -> kudu::client::KuduClient {
    kudu::client::KuduClient::new(addrs.to_vec(), ClientOptions { timeout, rpc_timeout, ..Default::default() })
        .expect("client")
}

/// The ids of every tablet of `table`, as GetTableLocations lists them.
pub async fn tablet_ids(client: &kudu::client::KuduClient, table: &str) -> Vec<String> {
    let locations = client.masters().get_table_locations(table).await.expect("table locations");
    locations.tablets.into_iter().map(|t| t.tablet_id).collect()
}

/// tablet id -> leader uuid, as the leaders themselves report, over the tablet servers at
/// `addrs` (tablets without a leader, or on servers that do not answer, left out).
pub async fn tablet_leaders(
    client: &kudu::client::KuduClient,
    addrs: &[String],
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for addr in addrs {
        let Ok(listed) = client.list_tablets(addr).await else { continue };
        for r in listed.replicas.into_iter().filter(|r| r.role == "LEADER") {
            out.insert(r.tablet_id, listed.uuid.clone());
        }
    }
    out
}

/// Runs the `kudu` CLI and returns (success, stdout, stderr); plaintext (`KUDU_INSECURE=1`)
/// unless `args` give `--certs-dir`.
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(kudu_bin());
    command.args(args).env_remove("KUDU_MASTERS").env_remove("KUDU_CERTS_DIR").env_remove("KUDU_INSECURE");
    if !args.contains(&"--certs-dir") {
        command.env("KUDU_INSECURE", "1");
    }
    let out = command.output().expect("run kudu cli");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A plain HTTP/1.1 GET; returns (status code, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    try_http_get(addr, path).unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

/// [`http_get`] that reports a server that is not (yet) listening as an error.
pub fn try_http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}
