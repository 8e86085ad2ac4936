//! A whole local cluster: API server, controllers, nodes and a kubeconfig on disk.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::apiserver::ops::{Subresource, WriteOptions};
use crate::apiserver::{Api, ApiError, ApiServer, ServerError};
use crate::controllers;
use crate::kubelet::{self, KubeletConfig};

/// Topology labels put on nodes.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
/// Zone label.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Hostname label.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// Region of every node.
pub const REGION: &str = "local-1";
/// Zones nodes are spread over (round-robin).
pub const ZONES: &[&str] = &["local-1a", "local-1b", "local-1c"];

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Number of nodes (spread over three zones).
    pub nodes: usize,
    /// Directory for the kubeconfig and pod data.
    pub state_dir: PathBuf,
    /// Listen address; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Directories searched (before the PATH) for binaries that container images name.
    pub bin_dirs: Vec<PathBuf>,
    /// Size of the pods' nss_wrapper host table (see [`kubelet::dns::MAX_HOSTENTS`]); tests
    /// lower it to see a broken resolver reported.
    pub nss_max_hostents: usize,
}

/// Colon-separated directories searched first for the binaries images name (e.g. another
/// cargo target dir's `debug/`).
pub const BIN_DIRS_ENV: &str = "KUDU_E2E_BIN_DIRS";

/// The cargo target directory holding the running executable (`target/debug` also for test
/// binaries in `target/debug/deps`): where workspace binaries such as `kudu`,
/// `kudu-operator` and `e2e-kv` are built.
pub fn workspace_bin_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    Some(if dir.file_name().is_some_and(|n| n == "deps") { dir.parent()?.to_path_buf() } else { dir.to_path_buf() })
}

impl ClusterConfig {
    /// Defaults: six nodes, a free port on 127.0.0.1, binaries from `KUDU_E2E_BIN_DIRS`, then
    /// the workspace target dir.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            nodes: 6,
            state_dir: state_dir.into(),
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            bin_dirs: std::env::var_os(BIN_DIRS_ENV)
                .map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .chain(workspace_bin_dir())
                .collect(),
            nss_max_hostents: kubelet::dns::MAX_HOSTENTS,
        }
    }
}

/// Failure to start a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The API server did not start.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// Registering nodes failed.
    #[error("registering nodes: {0}")]
    Api(#[from] ApiError),
    /// No loopback range for pod addresses was free.
    #[error(transparent)]
    Addresses(#[from] kubelet::ipam::IpamError),
    /// Writing the state directory failed.
    #[error("writing {path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// A running local cluster.
#[derive(Debug)]
pub struct LocalCluster {
    server: ApiServer,
    kubeconfig: PathBuf,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Name of node `i`.
pub fn node_name(i: usize) -> String {
    format!("node-{i}")
}

impl LocalCluster {
    /// Starts the API server and controllers, registers nodes and writes the kubeconfig.
    pub async fn start(config: ClusterConfig) -> Result<Self, ClusterError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ClusterError::Io { path, source }
        };
        std::fs::create_dir_all(&config.state_dir).map_err(io(&config.state_dir))?;
        let addresses = kubelet::ipam::Ipam::claim()?;
        let mut api = Api::new();
        api.graceful_pods = true;
        api.pods_dir = Some(kubelet::pods_dir(&config.state_dir));
        let exec = std::sync::Arc::new(kubelet::exec::ExecRegistry::new(config.bin_dirs.clone()));
        api.exec = Some(exec.clone());
        let server = ApiServer::start(api.clone(), config.bind).await?;
        register_nodes(&api, config.nodes)?;
        let kubeconfig = config.state_dir.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&server.url())).map_err(io(&kubeconfig))?;

        let (stop, stop_rx) = watch::channel(false);
        let resync = Duration::from_secs(2);
        let state_dir = config.state_dir.clone();
        let mut tasks = vec![
            tokio::spawn(controllers::gc::run(api.clone(), stop_rx.clone())),
            tokio::spawn(controllers::run_loop(
                api.clone(),
                stop_rx.clone(),
                resync,
                controllers::scheduler::schedule_once,
            )),
            tokio::spawn(controllers::run_loop(
                api.clone(),
                stop_rx.clone(),
                resync,
                controllers::statefulset::sync_once,
            )),
            tokio::spawn(controllers::run_loop(
                api.clone(),
                stop_rx.clone(),
                resync,
                controllers::deployment::sync_once,
            )),
            tokio::spawn(controllers::run_loop(
                api.clone(),
                stop_rx.clone(),
                resync,
                controllers::disruption::sync_once,
            )),
            tokio::spawn(controllers::run_loop(
                api.clone(),
                stop_rx.clone(),
                resync,
                controllers::replicaset::sync_once,
            )),
            tokio::spawn(controllers::run_loop(
                api.clone(),
                stop_rx.clone(),
                resync,
                controllers::endpoints::sync_once,
            )),
            tokio::spawn(controllers::run_loop(api.clone(), stop_rx.clone(), resync, move |api: &Api| {
                controllers::pvc::sync_once(api, &state_dir)
            })),
        ];
        let kubelet_config = KubeletConfig {
            state_dir: config.state_dir.clone(),
            bin_dirs: config.bin_dirs.clone(),
            kubeconfig: kubeconfig.clone(),
            nss_max_hostents: config.nss_max_hostents,
        };
        let kubelet_api = api.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = kubelet::run(kubelet_api, kubelet_config, exec, addresses, stop_rx).await {
                tracing::error!(error = %e, "kubelet failed");
            }
        }));
        Ok(Self { server, kubeconfig, stop, tasks })
    }

    /// Path of the kubeconfig pointing at this cluster.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The in-process API.
    pub fn api(&self) -> &Api {
        self.server.api()
    }

    /// Marks node `name` Ready or NotReady (its pods' processes stop while NotReady).
    pub fn set_node_ready(&self, name: &str, ready: bool) -> Result<(), ApiError> {
        let reason = if ready { "KubeletReady" } else { "NodeStatusUnknown" };
        controllers::set_node_condition(self.api(), name, "Ready", ready, reason, "set by the local cluster")
    }

    /// Stops controllers, the kubelet (and every pod process) and the API server.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.server.shutdown().await;
    }
}

fn register_nodes(api: &Api, count: usize) -> Result<(), ApiError> {
    let rt = api.resource("", "nodes")?;
    let opts = WriteOptions::default();
    for i in 0..count {
        let name = node_name(i);
        let zone = ZONES[i % ZONES.len()];
        let node = json!({
            "metadata": {"name": name, "labels": {
                REGION_LABEL: REGION, ZONE_LABEL: zone, HOSTNAME_LABEL: name,
                "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            }},
            "spec": {},
        });
        api.create(&rt, "v1", None, node, &opts)?;
        let status = json!({"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "local kubelet is ready", "lastHeartbeatTime": crate::apiserver::util::now_rfc3339(), "lastTransitionTime": crate::apiserver::util::now_rfc3339()}],
            "addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": "127.0.0.1"}],
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "nodeInfo": {"kubeletVersion": "v1.32.0-kudu-e2e", "operatingSystem": "linux", "architecture": "amd64", "containerRuntimeVersion": "local-process://1"},
        }});
        api.update(&rt, "v1", None, &name, status, Subresource::Status, &opts)?;
    }
    Ok(())
}

/// A kubeconfig for `server` with a dummy token.
pub fn kubeconfig_yaml(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\nusers:\n- name: local\n  user:\n    token: local-cluster\ncontexts:\n- name: local\n  context:\n    cluster: local\n    user: local\n    namespace: default\ncurrent-context: local\n"
    )
}
