//! The two systems under test, each a 3-member group of real processes on loopback: our
//! masters (plus one tablet server, so tables can be created) and etcd. Both fsync every
//! commit (their defaults); both run with the defaults a user gets unless flags are given.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use etcd_client::{Client as EtcdClient, ConnectOptions};
use kudu_client::client::{ClientOptions, MasterClient};
use kudu_testkit::{Process, free_addr};

/// How long a group may take to elect a leader (or re-admit a restarted member).
const SETTLE: Duration = Duration::from_secs(60);

/// Our processes' log filter: `KUDU_BENCH_LOG` (e.g. `info,openraft=debug` to see where a
/// failover spends its time), else warnings only.
pub fn log_filter() -> String {
    std::env::var("KUDU_BENCH_LOG").unwrap_or_else(|_| "warn".into())
}

/// The heartbeat figure's masters' log filter: `KUDU_BENCH_LOG`, else `info`, the default
/// of `kudu master run`, so the per-request cost measured is the binary's as a user runs it
/// (an info-level span or event per request would count).
pub fn default_master_log_filter() -> String {
    std::env::var("KUDU_BENCH_LOG").unwrap_or_else(|_| "info".into())
}

/// Which system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ours,
    Etcd,
}

/// A running 3-member group of either system.
pub struct Group {
    pub kind: Kind,
    members: Vec<Process>,
    /// Client addresses of the members, in member order (etcd: `http://` URLs).
    endpoints: Vec<String>,
    /// Our tablet server (tables need one); none for etcd.
    tserver_process: Option<Process>,
}

impl Group {
    /// Starts 3 of our masters and one tablet server from `kudu`, data under `dir`, each
    /// master with `flags` besides the ones that place it.
    pub fn start_ours(kudu: &Path, dir: &Path, flags: &[String]) -> Group {
        let masters = crate::masters::Masters::start(kudu, dir, flags);
        let seeds = masters.addresses.join(",");
        let data = dir.join("tserver-0");
        let args = ["tserver", "run", "--data-dir", &data.display().to_string(), "--rpc-addr", &free_addr()]
            .into_iter()
            .map(String::from)
            .chain(["--master-addresses".into(), seeds, "--insecure".into()])
            .collect();
        let mut tserver = Process::new(kudu, args, data).env("RUST_LOG", &log_filter());
        tserver.start();
        Group {
            kind: Kind::Ours,
            members: masters.members,
            endpoints: masters.addresses,
            tserver_process: Some(tserver),
        }
    }

    /// Starts a 3-member etcd cluster from `etcd`, data under `dir`.
    pub fn start_etcd(etcd: &Path, dir: &Path) -> Group {
        let clients: Vec<String> = (0..3).map(|_| format!("http://{}", free_addr())).collect();
        let peers: Vec<String> = (0..3).map(|_| format!("http://{}", free_addr())).collect();
        let initial = peers.iter().enumerate().map(|(i, p)| format!("e{i}={p}")).collect::<Vec<_>>().join(",");
        let members = (0..3)
            .map(|i| {
                let data = dir.join(format!("etcd-{i}"));
                let args = [
                    ("--name", format!("e{i}")),
                    ("--data-dir", data.display().to_string()),
                    ("--listen-client-urls", clients[i].clone()),
                    ("--advertise-client-urls", clients[i].clone()),
                    ("--listen-peer-urls", peers[i].clone()),
                    ("--initial-advertise-peer-urls", peers[i].clone()),
                    ("--initial-cluster", initial.clone()),
                    ("--initial-cluster-state", "new".into()),
                    ("--initial-cluster-token", "kudu-bench".into()),
                    ("--logger", "zap".into()),
                    ("--log-level", "warn".into()),
                ]
                .into_iter()
                .flat_map(|(k, v)| [k.to_string(), v])
                .collect();
                let mut p = Process::new(etcd, args, data);
                p.start();
                p
            })
            .collect();
        Group { kind: Kind::Etcd, members, endpoints: clients, tserver_process: None }
    }

    /// A client of our masters (default options, as a user gets them).
    pub fn master_client(&self) -> Result<MasterClient> {
        Ok(MasterClient::new(self.endpoints.clone(), ClientOptions::default())?)
    }

    /// A client of etcd over every member (its balancer spreads requests; a follower
    /// forwards writes to the leader).
    pub async fn etcd_client(&self) -> Result<EtcdClient> {
        let options =
            ConnectOptions::new().with_connect_timeout(Duration::from_secs(2)).with_timeout(Duration::from_secs(10));
        Ok(EtcdClient::connect(self.endpoints.clone(), Some(options)).await?)
    }

    /// The process ids of the running server processes (members and, for ours, the tablet
    /// server).
    pub fn server_pids(&self) -> Vec<i32> {
        self.members.iter().chain(&self.tserver_process).filter_map(Process::pid).collect()
    }

    /// The index of the current leader, as the members report it; waits for one.
    pub async fn leader(&self) -> Result<usize> {
        let deadline = Instant::now() + SETTLE;
        loop {
            if let Some(i) = self.try_leader().await {
                return Ok(i);
            }
            if Instant::now() > deadline {
                bail!("no {:?} leader within {SETTLE:?}", self.kind);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn try_leader(&self) -> Option<usize> {
        match self.kind {
            Kind::Ours => {
                let client = self.master_client().ok()?;
                let (address, _) = client.leader().await.ok()?;
                self.endpoints.iter().position(|e| *e == address)
            }
            Kind::Etcd => {
                for (i, endpoint) in self.endpoints.iter().enumerate() {
                    if !self.members[i].is_running() {
                        continue;
                    }
                    let options = ConnectOptions::new().with_timeout(Duration::from_secs(2));
                    let Ok(mut client) = EtcdClient::connect([endpoint.as_str()], Some(options)).await else {
                        continue;
                    };
                    let Ok(status) = client.status().await else { continue };
                    if status.header().is_some_and(|h| h.member_id() == status.leader()) {
                        return Some(i);
                    }
                }
                None
            }
        }
    }

    /// The Raft term of the current leader: its increase over a run counts elections.
    pub async fn term(&self) -> Result<u64> {
        match self.kind {
            Kind::Ours => Ok(self.master_client()?.leader().await?.1.term),
            Kind::Etcd => {
                let i = self.leader().await?;
                let options = ConnectOptions::new().with_timeout(Duration::from_secs(2));
                let mut client = EtcdClient::connect([self.endpoints[i].as_str()], Some(options)).await?;
                Ok(client.status().await?.raft_term())
            }
        }
    }

    /// kill -9 member `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Starts member `i` again on its data.
    pub fn restart(&mut self, i: usize) {
        self.members[i].start();
    }

    /// The last lines each member logged, to explain a failure.
    pub fn logs_tail(&self) -> String {
        logs_tail(&self.members)
    }
}

/// The last lines each of `members` logged, to explain a failure.
pub fn logs_tail(members: &[Process]) -> String {
    members
        .iter()
        .map(|m| {
            let log = m.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            format!("== {}\n{}", m.data_dir().display(), tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until `check` passes, up to [`SETTLE`].
pub async fn settle<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + SETTLE;
    while !check().await {
        if Instant::now() > deadline {
            return Err(anyhow::anyhow!("{what}: not within {SETTLE:?}")).context("settling");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
