//! The `local-cluster up` binary: prints `KUBECONFIG=<path>` once serving, serves kubectl,
//! and on SIGTERM stops every pod process before exiting.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::eventually;
use tokio::io::{AsyncBufReadExt, BufReader};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: solo}
spec:
  containers:
  - name: kv
    image: e2e-kv
    args: ["--listen", "$(POD_IP):7000", "--data-dir", "$(HOME)/data"]
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
"#;

async fn kubectl(kubeconfig: &str, dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn()?;
    if let Some(input) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().context("stdin")?;
        pipe.write_all(input.as_bytes()).await?;
    }
    let out = tokio::time::timeout(common::COMMAND_TIMEOUT, child.wait_with_output()).await??;
    if !out.status.success() {
        bail!("kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_until_sigterm_and_stops_pods() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bin = env!("CARGO_BIN_EXE_local-cluster");
    let kv_dir = std::path::Path::new(env!("CARGO_BIN_EXE_e2e-kv")).parent().context("bin dir")?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .args(["up", "--nodes", "2", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("--bin-dir")
        .arg(kv_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await??.context("no output")?;
    let kubeconfig =
        line.strip_prefix("KUBECONFIG=").with_context(|| format!("unexpected first line {line:?}"))?.to_string();
    let startup = started.elapsed();
    eprintln!("local-cluster up was serving after {startup:?}");

    let nodes = kubectl(&kubeconfig, dir.path(), &["get", "nodes", "-o", "name"], None).await?;
    ensure!(nodes.lines().count() == 2, "expected two nodes: {nodes}");
    kubectl(&kubeconfig, dir.path(), &["apply", "-f", "-"], Some(POD)).await?;
    kubectl(&kubeconfig, dir.path(), &["wait", "--for=condition=Ready", "pod/solo", "--timeout=60s"], None).await?;
    let ip = kubectl(&kubeconfig, dir.path(), &["get", "pod", "solo", "-o", "jsonpath={.status.podIP}"], None).await?;
    ensure!(tokio::net::TcpStream::connect((ip.as_str(), 7000)).await.is_ok(), "pod not serving");

    let pid = i32::try_from(child.id().context("pid")?)?;
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await??;
    ensure!(status.success(), "local-cluster exited with {status}");
    eventually(Duration::from_secs(10), "the pod process to be gone", || async {
        Ok(tokio::net::TcpStream::connect((ip.as_str(), 7000)).await.is_err().then_some(()))
    })
    .await?;
    Ok(())
}
