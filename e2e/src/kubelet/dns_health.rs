//! Cluster DNS that fails loudly: after each rewrite of the hosts file the kubelet looks a
//! few names up the way pods do. When they do not resolve it logs an error and sets the
//! `NetworkUnavailable` condition of every node to True (reason `ClusterDNSBroken`, the
//! resolver's complaint as message) until lookups work again (reason `ClusterDNSResolving`).

use std::path::PathBuf;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::dns::{self, Probe};
use crate::apiserver::Api;
use crate::apiserver::registry::ResKey;
use crate::apiserver::util::meta_str;
use crate::controllers::set_node_condition;

/// Node condition the check reports on.
pub const CONDITION: &str = "NetworkUnavailable";
/// Reason while lookups fail.
pub const BROKEN: &str = "ClusterDNSBroken";
/// Reason while lookups work.
pub const RESOLVING: &str = "ClusterDNSResolving";

/// Feeds the checker the names to probe after each rewrite; only the newest set is checked.
#[derive(Debug)]
pub struct DnsHealth {
    probes: watch::Sender<Vec<Probe>>,
    max_hostents: usize,
    /// Whether the last rewrite had more keys than the table holds (logged once per crossing).
    over_limit: std::sync::atomic::AtomicBool,
}

impl DnsHealth {
    /// Starts the checker for `hosts`; without nss_wrapper there is nothing to check.
    pub fn spawn(
        api: Api,
        nss_wrapper: Option<PathBuf>,
        hosts: PathBuf,
        max_hostents: usize,
        stop: watch::Receiver<bool>,
    ) -> (Self, Option<JoinHandle<()>>) {
        let (probes, rx) = watch::channel(Vec::new());
        let task = nss_wrapper.map(|lib| tokio::spawn(run(api, lib, hosts, max_hostents, rx, stop)));
        (Self { probes, max_hostents, over_limit: Default::default() }, task)
    }

    /// The hosts file was rewritten with `entries`.
    pub fn rewritten(&self, entries: &[(String, Vec<String>)]) {
        let keys = dns::table_keys(entries);
        tracing::debug!(entries = entries.len(), keys, limit = self.max_hostents, "hosts file rewritten");
        let over = keys > self.max_hostents;
        if over && !self.over_limit.swap(over, std::sync::atomic::Ordering::Relaxed) {
            tracing::error!(
                keys,
                limit = self.max_hostents,
                "the hosts file has more names and addresses than nss_wrapper's table holds; lookups in pods will fail"
            );
        }
        self.over_limit.store(over, std::sync::atomic::Ordering::Relaxed);
        self.probes.send_replace(dns::probes(entries));
    }
}

async fn run(
    api: Api,
    nss_wrapper: PathBuf,
    hosts: PathBuf,
    max_hostents: usize,
    mut probes: watch::Receiver<Vec<Probe>>,
    mut stop: watch::Receiver<bool>,
) {
    // None until the first check: the first outcome is always reported on the nodes.
    let mut healthy: Option<bool> = None;
    loop {
        tokio::select! {
            changed = probes.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        let current = probes.borrow_and_update().clone();
        if current.is_empty() {
            continue;
        }
        let outcome = dns::check(&nss_wrapper, &hosts, max_hostents, &current).await;
        let ok = outcome.is_ok();
        match &outcome {
            Err(why) => {
                tracing::error!(hosts = %hosts.display(), error = %why, "cluster DNS is broken: pods cannot resolve names")
            }
            Ok(()) if healthy == Some(false) => tracing::info!("cluster DNS resolves names again"),
            Ok(()) => tracing::debug!(probes = current.len(), "cluster DNS check passed"),
        }
        if healthy != Some(ok) {
            let (reason, message) = match &outcome {
                Ok(()) => (RESOLVING, "pods resolve cluster names".to_string()),
                Err(why) => (BROKEN, why.clone()),
            };
            report(&api, !ok, reason, &message);
            healthy = Some(ok);
        }
    }
}

/// Sets the condition on every node (one kubelet and one hosts file serve them all).
fn report(api: &Api, unavailable: bool, reason: &str, message: &str) {
    let nodes: Vec<Value> = api.store.read(|s| s.list(&ResKey::new("", "nodes"), None).cloned().collect());
    for name in nodes.iter().filter_map(|n| meta_str(n, "name")) {
        if let Err(e) = set_node_condition(api, name, CONDITION, unavailable, reason, message) {
            tracing::warn!(node = name, error = %e, "recording the cluster DNS condition failed");
        }
    }
}
