//! The kubelet: runs the containers of pods bound to this cluster's nodes as local
//! processes, each pod on its own loopback address, and reports pod status. Pods on a node
//! that is not Ready are stopped until it is Ready again.

pub mod bindshim;
pub mod container;
pub mod dns;
pub mod dns_health;
pub mod env;
pub mod exec;
pub mod hooks;
pub mod ipam;
pub mod probe;
pub mod process;
pub mod proxy;
pub mod status;
pub mod volumes;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::apiserver::Api;
use crate::apiserver::ops::DeleteOptions;
use crate::apiserver::registry::ResKey;
use crate::apiserver::util::{meta_str, now_rfc3339};
use crate::controllers::{condition_true, write_status};
use container::{ContainerState, PodShared, Supervised};
use process::{ProcessSpec, Unstartable, image_binary, resolve_program};

/// Kubelet settings.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// Root for pod and volume directories and the hosts file.
    pub state_dir: PathBuf,
    /// Directories searched first for container binaries.
    pub bin_dirs: Vec<PathBuf>,
    /// Kubeconfig handed to pod processes (`KUBECONFIG`).
    pub kubeconfig: PathBuf,
    /// Size of the pods' nss_wrapper host table (`NSS_WRAPPER_MAX_HOSTENTS`).
    pub nss_max_hostents: usize,
}

/// The kubelet could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// A file or directory of the state directory could not be prepared.
    #[error("preparing {path}: {source}")]
    Prepare {
        /// The file or directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

struct PodRuntime {
    ip: String,
    /// The first `init_count` containers in `shared` are init containers.
    init_count: usize,
    start_time: String,
    shared: Arc<PodShared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl PodRuntime {
    async fn stop(self) {
        self.stop.send_replace(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

struct Kubelet {
    api: Api,
    config: KubeletConfig,
    ipam: Arc<Mutex<ipam::Ipam>>,
    hosts: dns::HostsFile,
    dns_health: dns_health::DnsHealth,
    runtimes: HashMap<String, PodRuntime>,
    terminating: HashSet<String>,
    kick: Arc<Notify>,
    isolate: bool,
    nss_wrapper: Option<PathBuf>,
    bind_shim: Option<&'static Path>,
    proxy: proxy::ServiceProxy,
    exec: Arc<exec::ExecRegistry>,
    /// When the Secret and ConfigMap volumes of running pods were last brought up to date.
    volumes_refreshed: std::time::Instant,
}

/// How often running pods' Secret and ConfigMap volumes are updated from their objects (a
/// real kubelet takes up to about a minute).
const VOLUME_REFRESH: Duration = Duration::from_secs(2);

/// The kubelet's pods directory under the cluster state directory.
pub fn pods_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("pods")
}

fn pod_dir(state_dir: &Path, pod: &Value) -> PathBuf {
    crate::apiserver::ops::pod_dir(&pods_dir(state_dir), pod)
}

fn grace(pod: &Value) -> Duration {
    let secs = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .or_else(|| pod.pointer("/spec/terminationGracePeriodSeconds"))
        .and_then(Value::as_u64)
        .unwrap_or(30);
    Duration::from_secs(secs)
}

impl Kubelet {
    fn new(
        api: Api,
        config: KubeletConfig,
        exec: Arc<exec::ExecRegistry>,
        ipam: ipam::Ipam,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Self, Option<JoinHandle<()>>), KubeletError> {
        let hosts_path = config.state_dir.join("hosts");
        let hosts = dns::HostsFile::create(&hosts_path)
            .map_err(|source| KubeletError::Prepare { path: hosts_path.clone(), source })?;
        let nss = PathBuf::from(dns::NSS_WRAPPER_LIB);
        let nss_wrapper = nss.is_file().then_some(nss);
        if nss_wrapper.is_none() {
            tracing::warn!(
                lib = dns::NSS_WRAPPER_LIB,
                "libnss_wrapper not found; cluster DNS names will not resolve in pods"
            );
        }
        let (dns_health, dns_task) = dns_health::DnsHealth::spawn(
            api.clone(),
            nss_wrapper.clone(),
            hosts_path.clone(),
            config.nss_max_hostents,
            shutdown,
        );
        let isolate = process::can_isolate();
        if !isolate {
            tracing::warn!(
                "not running as root: volumes are not mounted at their mountPath and pods keep the host name"
            );
        }
        let kubelet = Self {
            api,
            config,
            ipam: Arc::new(Mutex::new(ipam)),
            hosts,
            dns_health,
            runtimes: HashMap::new(),
            terminating: HashSet::new(),
            kick: Arc::new(Notify::new()),
            isolate,
            nss_wrapper,
            bind_shim: bindshim::library(),
            proxy: proxy::ServiceProxy::default(),
            exec,
            volumes_refreshed: std::time::Instant::now(),
        };
        Ok((kubelet, dns_task))
    }

    /// `PATH` in pods: the image binaries' directories first (a real image has its binaries
    /// on its PATH, so processes can run e.g. `kudu location`), then the host's PATH.
    fn pod_path(&self) -> String {
        let host = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        let dirs = self.config.bin_dirs.iter().cloned().chain(std::env::split_paths(&host));
        std::env::join_paths(dirs)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| host.to_string_lossy().into_owned())
    }

    fn base_env(&self, hostname: &str, dir: &Path, ip: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".to_string(), self.pod_path()),
            ("HOME".to_string(), dir.display().to_string()),
            ("HOSTNAME".to_string(), hostname.to_string()),
            ("KUBECONFIG".to_string(), self.config.kubeconfig.display().to_string()),
            ("NSS_WRAPPER_HOSTS".to_string(), self.hosts.path().display().to_string()),
            (dns::MAX_HOSTENTS_ENV.to_string(), self.config.nss_max_hostents.to_string()),
            (bindshim::POD_IP_ENV.to_string(), ip.to_string()),
        ];
        // The shim first: its resolver lock wraps nss_wrapper's functions.
        let preload: Vec<String> = self
            .bind_shim
            .into_iter()
            .chain(self.nss_wrapper.iter().map(|p| p.as_path()))
            .map(|p| p.display().to_string())
            .collect();
        if !preload.is_empty() {
            env.push(("LD_PRELOAD".to_string(), preload.join(":")));
        }
        if let Ok(v) = std::env::var("RUST_LOG") {
            env.push(("RUST_LOG".to_string(), v));
        }
        env
    }

    /// How to run container `c` of `pod` (`Err` says why it cannot run).
    fn process_spec(
        &self,
        pod: &Value,
        c: &Value,
        base: &[(String, String)],
        vols: &HashMap<String, PathBuf>,
        hostname: &str,
        dir: &Path,
    ) -> Result<ProcessSpec, Unstartable> {
        let env = env::resolve(&self.api, pod, c, base);
        let strings = |k: &str| -> Vec<String> {
            c.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(|s| env::expand(s, &env)).collect())
                .unwrap_or_default()
        };
        let (command, args) = (strings("command"), strings("args"));
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let (program, mut argv) = match command.split_first() {
            Some((first, rest)) => (first.clone(), rest.to_vec()),
            None => (image_binary(image).to_string(), Vec::new()),
        };
        argv.extend(args);
        let workdir = c
            .get("workingDir")
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(|| dir.to_path_buf());
        let log = dir.join(format!("{}.log", c.get("name").and_then(Value::as_str).unwrap_or("container")));
        if process::unpullable(image) {
            return Err(Unstartable {
                reason: "ImagePullBackOff",
                message: format!("Back-off pulling image \"{image}\": its registry cannot be reached"),
            });
        }
        let program_path = resolve_program(&program, &self.config.bin_dirs).ok_or_else(|| Unstartable {
            reason: "ErrImageNeverPull",
            message: process::ProcessError::NotFound(program.clone()).to_string(),
        })?;
        Ok(ProcessSpec {
            program: program_path,
            args: argv,
            env: env.clone(),
            mounts: volumes::mounts(c, vols),
            hostname: Some(hostname.to_string()),
            workdir,
            log,
            isolate: self.isolate,
        })
    }

    /// Starts every container of `pod`.
    fn start(&mut self, pod: &Value) -> Result<(), String> {
        let uid = meta_str(pod, "uid").unwrap_or("").to_string();
        let dir = pod_dir(&self.config.state_dir, pod);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let vols = volumes::prepare(&self.api, &self.config.state_dir, pod, &dir).map_err(|e| e.to_string())?;
        let ip = self.ipam.lock().unwrap_or_else(|e| e.into_inner()).assign(&uid).map_err(|e| e.to_string())?;
        let mut pod_with_ip = pod.clone();
        pod_with_ip["status"]["podIP"] = json!(ip);
        pod_with_ip["status"]["hostIP"] = json!("127.0.0.1");
        let name = meta_str(pod, "name").unwrap_or("");
        let hostname = pod.pointer("/spec/hostname").and_then(Value::as_str).unwrap_or(name).to_string();
        let base = self.base_env(&hostname, &dir, &ip);
        let restart_policy = pod.pointer("/spec/restartPolicy").and_then(Value::as_str).unwrap_or("Always").to_string();
        let list = |key: &str| pod.pointer(key).and_then(Value::as_array).cloned().unwrap_or_default();
        let (inits, mains) = (list("/spec/initContainers"), list("/spec/containers"));
        let shared = Arc::new(PodShared {
            containers: Mutex::new(
                inits
                    .iter()
                    .chain(mains.iter())
                    .map(|c| {
                        ContainerState::new(
                            c.get("name").and_then(Value::as_str).unwrap_or(""),
                            c.get("image").and_then(Value::as_str).unwrap_or(""),
                            c.get("readinessProbe").is_some(),
                        )
                    })
                    .collect(),
            ),
            kick: self.kick.clone(),
        });
        let init_policy = if restart_policy == "Never" { "Never" } else { "OnFailure" };
        let mut plan = Vec::new();
        for (i, c) in inits.iter().chain(mains.iter()).enumerate() {
            let spec = self.process_spec(&pod_with_ip, c, &base, &vols, &hostname, &dir);
            let policy = if i < inits.len() { init_policy.to_string() } else { restart_policy.clone() };
            plan.push((Supervised { index: i, spec, restart_policy: policy, grace: grace(pod) }, c.clone()));
        }
        let mains_plan = plan.split_off(inits.len());
        for (sup, c) in &mains_plan {
            if let (Ok(spec), Some(cname)) = (&sup.spec, c.get("name").and_then(Value::as_str)) {
                self.exec.register(&uid, cname, spec.clone());
            }
        }
        let (stop, stop_rx) = watch::channel(false);
        let runner =
            run_containers(plan, mains_plan, ip.clone(), self.config.bin_dirs.clone(), shared.clone(), stop_rx);
        let tasks = vec![tokio::spawn(runner)];
        tracing::info!(pod = name, %ip, "pod started");
        let msg = format!(
            "Started pod with address {ip} on {}",
            pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("")
        );
        crate::controllers::events::record(
            &self.api,
            pod,
            crate::controllers::events::Kind::Normal,
            "Started",
            &msg,
            "kubelet",
        );
        self.runtimes
            .insert(uid, PodRuntime { ip, start_time: now_rfc3339(), shared, stop, tasks, init_count: inits.len() });
        Ok(())
    }

    fn stop_pod(&mut self, uid: &str) -> Option<JoinHandle<()>> {
        self.stop_pod_after_hooks(uid, Vec::new(), Duration::ZERO)
    }

    /// Stops the containers of pod `uid` after running `hooks` (its preStop handlers) for
    /// at most `grace`.
    fn stop_pod_after_hooks(
        &mut self,
        uid: &str,
        hooks: Vec<hooks::PreStop>,
        grace: Duration,
    ) -> Option<JoinHandle<()>> {
        self.exec.forget_pod(uid);
        let rt = self.runtimes.remove(uid)?;
        let ipam = self.ipam.clone();
        let uid = uid.to_string();
        Some(tokio::spawn(async move {
            if !hooks.is_empty() {
                hooks::run_pre_stop(hooks, grace).await;
            }
            rt.stop().await;
            ipam.lock().unwrap_or_else(|e| e.into_inner()).release(&uid);
        }))
    }

    fn sync(&mut self) {
        let (pods, nodes, services) = self.api.store.read(|s| {
            (
                s.list(&ResKey::new("", "pods"), None).cloned().collect::<Vec<_>>(),
                s.list(&ResKey::new("", "nodes"), None).cloned().collect::<Vec<_>>(),
                s.list(&ResKey::new("", "services"), None).cloned().collect::<Vec<_>>(),
            )
        });
        let ready: HashMap<&str, bool> =
            nodes.iter().filter_map(|n| Some((meta_str(n, "name")?, condition_true(n, "Ready")))).collect();
        let mut seen = HashSet::new();
        for pod in &pods {
            let Some(node) = pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| ready.contains_key(n))
            else {
                continue;
            };
            let uid = meta_str(pod, "uid").unwrap_or("").to_string();
            seen.insert(uid.clone());
            let node_ready = ready.get(node).copied().unwrap_or(false);
            if meta_str(pod, "deletionTimestamp").is_some() {
                // The kubelet of a NotReady node is unreachable: like a real cluster, a
                // graceful delete stays pending there until someone force-deletes the pod.
                if !node_ready {
                    continue;
                }
                if self.terminating.insert(uid.clone()) {
                    if self.runtimes.contains_key(&uid) {
                        crate::controllers::events::record(
                            &self.api,
                            pod,
                            crate::controllers::events::Kind::Normal,
                            "Killing",
                            "Stopping the pod's containers",
                            "kubelet",
                        );
                    }
                    // A graceful delete runs the preStop hooks first (not a forced one).
                    let hooks = match grace(pod) {
                        Duration::ZERO => Vec::new(),
                        _ => hooks::pre_stop_hooks(pod, &uid, &self.exec, &self.config.bin_dirs),
                    };
                    let stopping = self.stop_pod_after_hooks(&uid, hooks, grace(pod));
                    let api = self.api.clone();
                    let (ns, name) = (
                        meta_str(pod, "namespace").unwrap_or("").to_string(),
                        meta_str(pod, "name").unwrap_or("").to_string(),
                    );
                    tokio::spawn(async move {
                        if let Some(s) = stopping {
                            let _ = s.await;
                        }
                        if let Ok(rt) = api.resource("", "pods") {
                            let opts = DeleteOptions { grace_period: Some(0), ..Default::default() };
                            if let Err(e) = api.delete(&rt, "v1", Some(&ns), &name, &opts) {
                                tracing::debug!(error = %e, pod = name, "final pod delete failed");
                            }
                        }
                    });
                }
                continue;
            }
            let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending");
            let mut problem = None;
            if !node_ready {
                if self.runtimes.contains_key(&uid) {
                    tracing::info!(pod = meta_str(pod, "name"), node, "node not ready; stopping pod");
                    self.stop_pod(&uid);
                }
            } else if !self.runtimes.contains_key(&uid)
                && !matches!(phase, "Succeeded" | "Failed")
                && let Err(e) = self.start(pod)
            {
                tracing::debug!(error = %e, pod = meta_str(pod, "name"), "pod cannot start yet");
                problem = Some(e);
            }
            if matches!(phase, "Succeeded" | "Failed") && !self.runtimes.contains_key(&uid) {
                continue;
            }
            let running = self.runtimes.get(&uid).map(|r| status::Running {
                ip: &r.ip,
                start_time: &r.start_time,
                init_count: r.init_count,
                containers: r.shared.snapshot(),
            });
            let status = status::pod_status(pod, running, node_ready, problem.as_deref());
            if pod.get("status") != Some(&status)
                && let Err(e) = write_status(&self.api, "", "pods", pod, status)
            {
                tracing::debug!(error = %e, "pod status update failed");
            }
        }
        if self.volumes_refreshed.elapsed() >= VOLUME_REFRESH {
            self.volumes_refreshed = std::time::Instant::now();
            for pod in pods.iter().filter(|p| self.runtimes.contains_key(meta_str(p, "uid").unwrap_or(""))) {
                if let Err(e) = volumes::refresh(&self.api, pod, &pod_dir(&self.config.state_dir, pod)) {
                    tracing::debug!(error = %e, pod = meta_str(pod, "name"), "volume refresh failed");
                }
            }
        }
        let gone: Vec<String> = self.runtimes.keys().filter(|u| !seen.contains(*u)).cloned().collect();
        for uid in gone {
            self.stop_pod(&uid);
        }
        self.terminating.retain(|u| seen.contains(u));
        let endpoints: Vec<Value> =
            self.api.store.read(|s| s.list(&ResKey::new("", "endpoints"), None).cloned().collect());
        self.proxy.sync(&self.api, &self.ipam, &services, &endpoints);
        let entries = dns::entries(&pods, &services);
        match self.hosts.write(&dns::render(&entries)) {
            Ok(true) => self.dns_health.rewritten(&entries),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "writing the hosts file; pods keep resolving the previous one"),
        }
    }

    async fn shutdown(mut self) {
        self.proxy.shutdown();
        let uids: Vec<String> = self.runtimes.keys().cloned().collect();
        let stopping: Vec<JoinHandle<()>> = uids.iter().filter_map(|u| self.stop_pod(u)).collect();
        for s in stopping {
            let _ = s.await;
        }
    }
}

/// Runs init containers one after another to completion, then the main containers and
/// their probes, until `stop`.
async fn run_containers(
    inits: Vec<(Supervised, Value)>,
    mains: Vec<(Supervised, Value)>,
    ip: String,
    bin_dirs: Vec<PathBuf>,
    shared: Arc<PodShared>,
    stop: watch::Receiver<bool>,
) {
    for (sup, _) in inits {
        let i = sup.index;
        container::supervise(sup, shared.clone(), stop.clone(), Arc::new(Notify::new())).await;
        if !shared.snapshot().get(i).is_some_and(|c| c.done && c.exit_code == Some(0)) {
            return;
        }
    }
    let mut tasks = Vec::new();
    for (sup, c) in mains {
        let restart = Arc::new(Notify::new());
        let (i, spec) = (sup.index, sup.spec.clone());
        tasks.push(tokio::spawn(container::supervise(sup, shared.clone(), stop.clone(), restart.clone())));
        let Ok(exec_base) = spec else { continue };
        for (kind, key) in [(probe::Kind::Readiness, "readinessProbe"), (probe::Kind::Liveness, "livenessProbe")] {
            if let Some(p) = c.get(key) {
                let probe = probe::run(
                    kind,
                    p.clone(),
                    i,
                    ip.clone(),
                    c.clone(),
                    exec_base.clone(),
                    bin_dirs.clone(),
                    shared.clone(),
                    restart.clone(),
                    stop.clone(),
                );
                tasks.push(tokio::spawn(probe));
            }
        }
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Runs the kubelet, giving pods addresses from `addresses`, until `shutdown`; then stops
/// every pod process.
pub async fn run(
    api: Api,
    config: KubeletConfig,
    exec: Arc<exec::ExecRegistry>,
    addresses: ipam::Ipam,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), KubeletError> {
    let (mut kubelet, dns_task) = Kubelet::new(api.clone(), config, exec, addresses, shutdown.clone())?;
    let mut changed = api.store.subscribe();
    let kick = kubelet.kick.clone();
    loop {
        changed.borrow_and_update();
        kubelet.sync();
        tokio::select! {
            res = changed.changed() => if res.is_err() { break },
            _ = kick.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    kubelet.shutdown().await;
    if let Some(task) = dns_task {
        let _ = task.await;
    }
    Ok(())
}
