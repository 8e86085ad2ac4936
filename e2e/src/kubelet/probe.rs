//! Readiness and liveness probes: exec, httpGet and tcpSocket.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

use super::container::PodShared;
use super::process::{ProcessSpec, resolve_program, spawn};

fn secs(p: &Value, key: &str, default: u64) -> Duration {
    Duration::from_secs(p.get(key).and_then(Value::as_u64).unwrap_or(default))
}

/// Resolves a probe port (number or named container port).
fn port(p: &Value, container: &Value) -> Option<u16> {
    match p.get("port")? {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok().or_else(|| {
            container
                .get("ports")?
                .as_array()?
                .iter()
                .find(|cp| cp.get("name").and_then(Value::as_str) == Some(s))?
                .get("containerPort")?
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
        }),
        _ => None,
    }
}

async fn http_get(host: &str, port: u16, path: &str) -> std::io::Result<bool> {
    let mut s = TcpStream::connect((host, port)).await?;
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.32\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let mut buf = vec![0u8; 64];
    let n = s.read(&mut buf).await?;
    let line = String::from_utf8_lossy(&buf[..n]);
    let code: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((200..400).contains(&code))
}

/// Runs one probe once.
pub async fn check(
    p: &Value,
    pod_ip: &str,
    container: &Value,
    exec_base: &ProcessSpec,
    bin_dirs: &[std::path::PathBuf],
) -> bool {
    let timeout = secs(p, "timeoutSeconds", 1);
    let fut = async {
        if let Some(tcp) = p.get("tcpSocket") {
            let host = tcp.get("host").and_then(Value::as_str).unwrap_or(pod_ip);
            let Some(port) = port(tcp, container) else {
                return false;
            };
            return TcpStream::connect((host, port)).await.is_ok();
        }
        if let Some(http) = p.get("httpGet") {
            let host = http.get("host").and_then(Value::as_str).unwrap_or(pod_ip);
            let Some(port) = port(http, container) else {
                return false;
            };
            let path = http.get("path").and_then(Value::as_str).unwrap_or("/");
            return http_get(host, port, path).await.unwrap_or(false);
        }
        if let Some(cmd) = p.pointer("/exec/command").and_then(Value::as_array) {
            let argv: Vec<String> = cmd.iter().filter_map(Value::as_str).map(String::from).collect();
            let Some((first, rest)) = argv.split_first() else {
                return false;
            };
            let Some(program) = resolve_program(first, bin_dirs) else {
                return false;
            };
            let mut spec = exec_base.clone();
            spec.program = program;
            spec.args = rest.to_vec();
            return match spawn(&spec) {
                Ok(mut child) => child.wait().await.is_ok_and(|s| s.success()),
                Err(_) => false,
            };
        }
        false
    };
    tokio::time::timeout(timeout, fut).await.unwrap_or(false)
}

/// Which probe a loop runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Sets readiness.
    Readiness,
    /// Restarts the container after `failureThreshold` failures.
    Liveness,
}

/// Probes container `index` until `stop`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    kind: Kind,
    probe: Value,
    index: usize,
    pod_ip: String,
    container: Value,
    exec_base: ProcessSpec,
    bin_dirs: Vec<std::path::PathBuf>,
    shared: Arc<PodShared>,
    restart: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let period = secs(&probe, "periodSeconds", 10).max(Duration::from_millis(200));
    let failure_threshold = probe.get("failureThreshold").and_then(Value::as_u64).unwrap_or(3);
    let success_threshold = probe.get("successThreshold").and_then(Value::as_u64).unwrap_or(1);
    let initial = secs(&probe, "initialDelaySeconds", 0);
    tokio::select! {
        _ = tokio::time::sleep(initial) => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    let (mut fails, mut oks) = (0u64, 0u64);
    loop {
        let running = shared.snapshot().get(index).is_some_and(|c| c.running());
        if running {
            let ok = check(&probe, &pod_ip, &container, &exec_base, &bin_dirs).await;
            if ok {
                oks += 1;
                fails = 0;
            } else {
                fails += 1;
                oks = 0;
            }
            match kind {
                Kind::Readiness => {
                    if ok && oks >= success_threshold {
                        shared.update(index, |c| c.ready = c.running());
                    } else if !ok && fails >= failure_threshold {
                        shared.update(index, |c| c.ready = false);
                    }
                }
                Kind::Liveness => {
                    if fails >= failure_threshold {
                        tracing::info!(container = index, "liveness probe failed; restarting container");
                        restart.notify_one();
                        fails = 0;
                    }
                }
            }
        } else {
            oks = 0;
            fails = 0;
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
