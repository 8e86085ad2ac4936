//! `kubectl exec` over WebSocket (`v5.channel.k8s.io` / `v4.channel.k8s.io`): channel 0 is
//! stdin, 1 stdout, 2 stderr, 3 the final Status, 255 closes a channel (v5). SPDY is not
//! supported. The command is started by a [`PodExec`] provider (the kubelet).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::ops::Api;
use super::util::Query;

/// Starts commands inside running pod containers.
pub trait PodExec: Send + Sync + std::fmt::Debug {
    /// Starts `argv` in `container` of the pod with UID `pod_uid`, stdio piped.
    fn spawn(&self, pod_uid: &str, container: &str, argv: &[String]) -> Result<Child, String>;
}

const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

fn status_failure(message: &str, reason: &str, exit_code: Option<i32>) -> Value {
    let mut v = json!({"metadata": {}, "status": "Failure", "message": message, "reason": reason});
    if let Some(code) = exit_code {
        v["details"] = json!({"causes": [{"reason": "ExitCode", "message": code.to_string()}]});
    }
    v
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut buf = Vec::with_capacity(data.len() + 1);
    buf.push(channel);
    buf.extend_from_slice(data);
    Message::Binary(buf.into())
}

fn normal_close() -> Message {
    Message::Close(Some(CloseFrame { code: close_code::NORMAL, reason: "".into() }))
}

async fn pump(mut reader: impl AsyncRead + Unpin, channel: u8, tx: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 || tx.send(frame(channel, &buf[..n])).await.is_err() {
            return;
        }
    }
}

async fn session(socket: WebSocket, child: Result<Child, String>, want_stdin: bool) {
    let (mut sink, mut incoming) = socket.split();
    let mut child = match child {
        Ok(c) => c,
        Err(msg) => {
            let st = status_failure(&msg, "InternalError", None);
            let _ = sink.send(frame(3, st.to_string().as_bytes())).await;
            let _ = sink.send(normal_close()).await;
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel::<Message>(64);
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, 1, tx.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, 2, tx.clone())));
    }
    drop(tx);
    let mut stdin = child.stdin.take().filter(|_| want_stdin);
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = incoming.next().await {
            match msg {
                Message::Binary(data) if data.first() == Some(&0) => {
                    if let Some(pipe) = stdin.as_mut()
                        && pipe.write_all(&data[1..]).await.is_err()
                    {
                        stdin = None;
                    }
                }
                // v5: close a channel; closing stdin delivers EOF to the command.
                Message::Binary(data) if data.first() == Some(&255) && data.get(1) == Some(&0) => stdin = None,
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    while let Some(m) = rx.recv().await {
        if sink.send(m).await.is_err() {
            break;
        }
    }
    for p in pumps {
        let _ = p.await;
    }
    let st = match child.wait().await {
        Ok(s) if s.success() => json!({"metadata": {}, "status": "Success"}),
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            let code = s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(255);
            status_failure(
                &format!("command terminated with non-zero exit code: exit status {code}"),
                "NonZeroExitCode",
                Some(code),
            )
        }
        Err(e) => status_failure(&e.to_string(), "InternalError", None),
    };
    let _ = sink.send(frame(3, st.to_string().as_bytes())).await;
    let _ = sink.send(normal_close()).await;
    reader.abort();
}

/// Handles `pods/{name}/exec` (the request must be a WebSocket upgrade).
pub async fn handle(api: &Api, mut parts: Parts, ns: &str, name: &str) -> Result<Response, ApiError> {
    let query = Query::parse(parts.uri.query());
    let rt = api.resource("", "pods")?;
    let pod = api.get(&rt, "v1", Some(ns), name)?;
    let command: Vec<String> = query.get_all("command").into_iter().map(String::from).collect();
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let first_container = pod.pointer("/spec/containers/0/name").and_then(Value::as_str).unwrap_or("").to_string();
    let container = query.get("container").map(String::from).unwrap_or(first_container);
    let provider: Arc<dyn PodExec> =
        api.exec.clone().ok_or_else(|| ApiError::bad_request("this server runs no kubelet"))?;
    let uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_string();
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &()).await.map_err(|e| {
        ApiError::bad_request(format!("exec needs a WebSocket upgrade ({PROTOCOLS:?}); SPDY is not supported: {e}"))
    })?;
    let requested = parts.headers.get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if !PROTOCOLS.iter().any(|p| requested.split(',').any(|r| r.trim() == *p)) {
        return Err(ApiError::bad_request(format!(
            "unsupported exec subprotocols {requested:?}; supported: {PROTOCOLS:?}"
        )));
    }
    let want_stdin = query.flag("stdin");
    let child = provider.spawn(&uid, &container, &command);
    let response = ws.protocols(PROTOCOLS).on_upgrade(move |socket| session(socket, child, want_stdin));
    Ok(response.into_response())
}

/// Whether `path` is `/api/v1/namespaces/{ns}/pods/{name}/exec`; returns (ns, name).
pub fn exec_target(path: &str) -> Option<(String, String)> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, "exec"] => Some((ns.to_string(), name.to_string())),
        _ => None,
    }
}
