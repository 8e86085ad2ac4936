//! A userspace kube-proxy: every ClusterIP Service gets an address from the cluster range
//! (written to `spec.clusterIP`) and a TCP listener per port that forwards each connection
//! to one of the ready endpoints, round-robin.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::ipam::Ipam;
use crate::apiserver::Api;
use crate::apiserver::ops::{Subresource, WriteOptions};
use crate::apiserver::util::{meta_mut, meta_str};

type Backends = Arc<Mutex<Vec<SocketAddr>>>;

struct Listener {
    backends: Backends,
    task: JoinHandle<()>,
}

/// Listeners of all proxied services, by (namespace, name, ip, port).
#[derive(Default)]
pub struct ServiceProxy {
    listeners: HashMap<(String, String, String, u16), Listener>,
}

fn is_proxied(svc: &Value) -> bool {
    let ty = svc.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP");
    ty != "ExternalName" && svc.pointer("/spec/clusterIP").and_then(Value::as_str) != Some("None")
}

/// Ready backends for service port `port` from the Endpoints object.
fn backends_for(endpoints: Option<&Value>, port: &Value, single: bool) -> Vec<SocketAddr> {
    let name = port.get("name").and_then(Value::as_str).unwrap_or("");
    let mut out = Vec::new();
    for subset in endpoints.and_then(|e| e.get("subsets")).and_then(Value::as_array).into_iter().flatten() {
        let target = subset
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| single || p.get("name").and_then(Value::as_str).unwrap_or("") == name)
            .and_then(|p| p.get("port").and_then(Value::as_u64))
            .and_then(|p| u16::try_from(p).ok());
        let Some(target) = target else { continue };
        for a in subset.get("addresses").and_then(Value::as_array).into_iter().flatten() {
            if let Some(ip) = a.get("ip").and_then(Value::as_str).and_then(|ip| ip.parse().ok()) {
                out.push(SocketAddr::new(ip, target));
            }
        }
    }
    out
}

async fn serve(listen: SocketAddr, backends: Backends) {
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, %listen, "service proxy cannot listen");
            return;
        }
    };
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else { continue };
        let candidates = backends.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if candidates.is_empty() {
            continue;
        }
        let target = candidates[next.fetch_add(1, Ordering::Relaxed) % candidates.len()];
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

impl ServiceProxy {
    /// Allocates cluster IPs and reconciles listeners with the current services/endpoints.
    pub fn sync(&mut self, api: &Api, ipam: &Mutex<Ipam>, services: &[Value], endpoints: &[Value]) {
        let mut wanted = Vec::new();
        for svc in services.iter().filter(|s| is_proxied(s)) {
            let (ns, name) =
                (meta_str(svc, "namespace").unwrap_or("").to_string(), meta_str(svc, "name").unwrap_or("").to_string());
            let key = format!("svc/{ns}/{name}");
            let current = svc.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or("");
            let ip = {
                let mut ipam = ipam.lock().unwrap_or_else(|e| e.into_inner());
                if !current.is_empty() && !ipam.owns(current) {
                    continue; // an address we cannot serve (set by the user)
                }
                match ipam.assign_service(&key) {
                    Ok(ip) => ip,
                    Err(e) => {
                        tracing::warn!(error = %e, service = name, "no service address left");
                        continue;
                    }
                }
            };
            if current != ip {
                let Ok(rt) = api.resource("", "services") else { continue };
                let mut body = svc.clone();
                meta_mut(&mut body).remove("resourceVersion");
                body["spec"]["clusterIP"] = json!(ip);
                body["spec"]["clusterIPs"] = json!([ip]);
                if let Err(e) =
                    api.update(&rt, "v1", Some(&ns), &name, body, Subresource::Main, &WriteOptions::default())
                {
                    tracing::debug!(error = %e, service = name, "assigning cluster IP failed");
                }
                continue; // the update triggers another pass
            }
            let ep = endpoints
                .iter()
                .find(|e| meta_str(e, "namespace") == Some(ns.as_str()) && meta_str(e, "name") == Some(name.as_str()));
            let ports: Vec<Value> = svc.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default();
            for port in &ports {
                let Some(p) = port.get("port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok()) else {
                    continue;
                };
                let id = (ns.clone(), name.clone(), ip.clone(), p);
                let backends = backends_for(ep, port, ports.len() == 1);
                let listener = self.listeners.entry(id.clone()).or_insert_with(|| {
                    let shared: Backends = Arc::default();
                    let listen = SocketAddr::new(ip.parse().unwrap_or([127, 0, 0, 1].into()), p);
                    Listener { backends: shared.clone(), task: tokio::spawn(serve(listen, shared)) }
                });
                *listener.backends.lock().unwrap_or_else(|e| e.into_inner()) = backends;
                wanted.push(id);
            }
        }
        let stale: Vec<_> = self.listeners.keys().filter(|k| !wanted.contains(k)).cloned().collect();
        for k in stale {
            if let Some(l) = self.listeners.remove(&k) {
                l.task.abort();
            }
            let still_used = self.listeners.keys().any(|o| o.0 == k.0 && o.1 == k.1);
            if !still_used {
                ipam.lock().unwrap_or_else(|e| e.into_inner()).release(&format!("svc/{}/{}", k.0, k.1));
            }
        }
    }

    /// Stops every listener.
    pub fn shutdown(&mut self) {
        for (_, l) in self.listeners.drain() {
            l.task.abort();
        }
    }
}
