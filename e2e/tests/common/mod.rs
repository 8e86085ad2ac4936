//! Shared harness: each test runs against its own in-process local cluster on a free port,
//! or, when `KUDU_E2E_KUBECONFIG` names one, against an existing cluster (see
//! `kudu_e2e::target` and the README's "End-to-end tests against a real cluster").

#![allow(dead_code)]

mod diagnose;

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kudu_e2e::cluster::{ClusterConfig, LocalCluster};
use kudu_e2e::target::{Images, Target, external_cleanup};
use tokio::io::AsyncWriteExt;

/// Longest a single client command may take on a loaded machine.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether the test should be skipped because it needs the local control plane to do
/// `needs` and the tests target an external cluster (prints the reason). Call it before
/// starting anything.
pub fn skip_on_external(needs: &str) -> bool {
    let external = matches!(Target::from_env(), Ok(Target::External { .. }));
    if external {
        eprintln!("SKIPPED on an external cluster: this test needs the local control plane to {needs}");
    }
    external
}

/// A cluster for one test plus helpers to run real clients against it.
pub struct TestCluster {
    /// The local control plane, `None` on an external cluster.
    local: Option<LocalCluster>,
    kubeconfig: PathBuf,
    /// The images manifests run; manifests given to [`TestCluster::kubectl_stdin`] and
    /// [`TestCluster::write_file`] name the defaults and get these instead.
    pub images: Images,
    pub dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts a cluster with `nodes` nodes in a fresh temporary directory, or, with
    /// `KUDU_E2E_KUBECONFIG` set, uses that cluster (whatever its node count).
    pub async fn start_with_nodes(nodes: usize) -> Result<Self> {
        let target = Target::from_env()?;
        Self::start_target(target, nodes).await
    }

    /// Like [`TestCluster::start_with_nodes`] for an explicit target.
    pub async fn start_target(target: Target, nodes: usize) -> Result<Self> {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let mut dir = tempfile::tempdir().context("creating temp dir")?;
        // E2E_KEEP_STATE=1 keeps each test's kubeconfig, pod logs and volumes for inspection.
        if std::env::var_os("E2E_KEEP_STATE").is_some_and(|v| v == "1") {
            dir.disable_cleanup(true);
            eprintln!("e2e state kept in {}", dir.path().display());
        }
        match target {
            Target::Local => {
                let mut config = ClusterConfig::new(dir.path().join("state"));
                config.nodes = nodes;
                let cluster = LocalCluster::start(config).await.context("starting local cluster")?;
                let kubeconfig = cluster.kubeconfig().to_path_buf();
                Ok(Self { local: Some(cluster), kubeconfig, images: Images::default(), dir })
            }
            Target::External { kubeconfig, images } => {
                eprintln!("e2e target: the cluster of {} (images {images:?})", kubeconfig.display());
                let tc = Self { local: None, kubeconfig, images, dir };
                let listed =
                    tc.kubectl(&["get", "nodes", "-o", "name"]).await.context("listing the cluster's nodes")?;
                let count = listed.lines().count();
                if count < nodes {
                    eprintln!("note: the test asks for {nodes} nodes; the external cluster has {count}");
                }
                // Leftovers of an interrupted earlier test would make this one fail.
                tc.clean_external().await;
                Ok(tc)
            }
        }
    }

    /// Wraps a local cluster started with a custom configuration.
    pub fn from_local(cluster: LocalCluster, dir: tempfile::TempDir) -> Self {
        let kubeconfig = cluster.kubeconfig().to_path_buf();
        Self { local: Some(cluster), kubeconfig, images: Images::default(), dir }
    }

    /// Starts a cluster with three nodes.
    pub async fn start() -> Result<Self> {
        Self::start_with_nodes(3).await
    }

    /// The local control plane, `None` on an external cluster.
    pub fn local(&self) -> Option<&LocalCluster> {
        self.local.as_ref()
    }

    /// The local control plane for a step that needs its powers (making a node NotReady,
    /// reading volumes on disk); on an external cluster prints why the test is skipped and
    /// returns `None`: the caller then returns `Ok(())`.
    pub fn local_only(&self, needs: &str) -> Option<&LocalCluster> {
        if self.local.is_none() {
            eprintln!("SKIPPED on an external cluster: this test needs the local control plane to {needs}");
        }
        self.local.as_ref()
    }

    /// Whether the tests run against an external cluster.
    pub fn is_external(&self) -> bool {
        self.local.is_none()
    }

    /// Path of the kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.kubeconfig.clone()
    }

    /// Writes `contents` to a file in the test directory and returns its path.
    pub fn write_file(&self, name: &str, contents: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, self.images.apply(contents)).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Runs kubectl with this cluster's kubeconfig and a private cache directory.
    pub async fn kubectl_raw(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawning kubectl (is it on the PATH?)")?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().context("kubectl stdin")?;
            pipe.write_all(input.as_bytes()).await?;
            drop(pipe);
        }
        tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| format!("kubectl {args:?} timed out"))?
            .context("waiting for kubectl")
    }

    /// Runs kubectl and returns stdout, failing with stderr on a non-zero exit.
    pub async fn kubectl(&self, args: &[&str]) -> Result<String> {
        let out = self.kubectl_raw(args, None).await?;
        check(args, out)
    }

    /// Runs kubectl with `input` on stdin (use `-f -`).
    pub async fn kubectl_stdin(&self, args: &[&str], input: &str) -> Result<String> {
        let out = self.kubectl_raw(args, Some(&self.images.apply(input))).await?;
        check(args, out)
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub async fn kubectl_fails(&self, args: &[&str], input: Option<&str>) -> Result<String> {
        let out = self.kubectl_raw(args, input).await?;
        if out.status.success() {
            bail!("kubectl {args:?} unexpectedly succeeded: {}", String::from_utf8_lossy(&out.stdout));
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// `kubectl get <what> -o json`, parsed.
    pub async fn get_json(&self, what: &[&str]) -> Result<serde_json::Value> {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl(&args).await?;
        serde_json::from_str(&out).context("parsing kubectl json output")
    }

    /// A kube-rs client for this cluster (from the kubeconfig file, as a user would).
    pub async fn kube_client(&self) -> Result<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig())?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Stops the local cluster; on an external one, deletes what the tests create.
    pub async fn stop(mut self) {
        match self.local.take() {
            Some(cluster) => cluster.shutdown().await,
            None => self.clean_external().await,
        }
    }

    async fn clean_external(&self) {
        for args in external_cleanup() {
            match self.kubectl_raw(&args, None).await {
                Ok(out) if out.status.success() => {}
                // No KuduCluster CRD installed yet: nothing of that kind to delete.
                Ok(out) if String::from_utf8_lossy(&out.stderr).contains("doesn't have a resource type") => {}
                Ok(out) => eprintln!("cleanup kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr)),
                Err(e) => eprintln!("cleanup kubectl {args:?}: {e:#}"),
            }
        }
    }
}

/// A local cluster dropped without [`TestCluster::stop`] belongs to a test that failed
/// (an error returned early or a panic): print what is needed to find out why.
impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Some(cluster) = &self.local {
            eprintln!("{}", diagnose::report(cluster));
        }
    }
}

fn check(args: &[&str], out: Output) -> Result<String> {
    if !out.status.success() {
        bail!("kubectl {args:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Logs to the test output, filtered by `RUST_LOG`.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Polls `f` until it returns `Some`, or fails after `timeout` with `what` and the last
/// error (the workspace test kit's polling).
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    kudu_testkit::eventually(timeout, what, f).await.map_err(anyhow::Error::msg)
}
