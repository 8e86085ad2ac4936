//! Three of our masters on loopback without tablet servers (the scale figures bring
//! simulated ones), each reachable and killable on its own.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kudu_client::pb::master as pb;
use kudu_client::pb::master::master_service_client::MasterServiceClient;
use kudu_testkit::{Process, free_addr};

use crate::sim;

/// How long the group may take to elect a leader.
const SETTLE: Duration = Duration::from_secs(60);

/// Three masters started together.
pub struct Masters {
    pub members: Vec<Process>,
    /// RPC addresses, in member order.
    pub addresses: Vec<String>,
}

impl Masters {
    /// Starts 3 masters from `kudu` with data under `dir`, each with `flags` besides the
    /// ones that place it; logs warnings unless `KUDU_BENCH_LOG` says otherwise.
    pub fn start(kudu: &Path, dir: &Path, flags: &[String]) -> Masters {
        Self::start_logging(kudu, dir, flags, &crate::systems::log_filter())
    }

    /// Like [`Masters::start`], logging with `filter` (`RUST_LOG`).
    pub fn start_logging(kudu: &Path, dir: &Path, flags: &[String], filter: &str) -> Masters {
        let addresses: Vec<String> = (0..3).map(|_| free_addr()).collect();
        let seeds = addresses.join(",");
        let members = addresses
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let data = dir.join(format!("master-{i}"));
                let mut args = vec!["master".into(), "run".into(), "--data-dir".into(), data.display().to_string()];
                args.extend(["--rpc-addr".into(), addr.clone(), "--master-addresses".into(), seeds.clone()]);
                args.push("--insecure".into());
                args.extend(flags.iter().cloned());
                let mut p = Process::new(kudu, args, data).env("RUST_LOG", filter);
                p.start();
                p
            })
            .collect();
        Masters { members, addresses }
    }

    /// A gRPC client of member `i` alone (no leader discovery, no retries).
    pub fn client(&self, i: usize) -> Result<MasterServiceClient<tonic::transport::Channel>> {
        Ok(MasterServiceClient::new(sim::channel(&self.addresses[i])?))
    }

    /// The running member that says it leads, if one does now.
    pub async fn try_leader(&self) -> Option<usize> {
        for (i, member) in self.members.iter().enumerate() {
            if !member.is_running() {
                continue;
            }
            let Ok(mut client) = self.client(i) else { continue };
            let mut request = tonic::Request::new(pb::ConnectToMasterRequest::default());
            request.set_timeout(Duration::from_secs(1));
            if let Ok(r) = client.connect_to_master(request).await
                && r.into_inner().role == pb::Role::Leader as i32
            {
                return Some(i);
            }
        }
        None
    }

    /// Waits for a leader and returns its index.
    pub async fn leader(&self) -> Result<usize> {
        let deadline = Instant::now() + SETTLE;
        loop {
            if let Some(i) = self.try_leader().await {
                return Ok(i);
            }
            if Instant::now() > deadline {
                bail!("no leader within {SETTLE:?}\n{}", self.logs_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines each member logged, to explain a failure.
    pub fn logs_tail(&self) -> String {
        crate::systems::logs_tail(&self.members)
    }
}
