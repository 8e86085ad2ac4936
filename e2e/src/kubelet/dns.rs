//! Cluster DNS through nss_wrapper: a hosts file (rewritten atomically whenever it changes)
//! that pod processes resolve with `LD_PRELOAD=libnss_wrapper.so NSS_WRAPPER_HOSTS=…`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::apiserver::util::meta_str;
use crate::controllers::pod_ready;

/// Where Debian installs libnss-wrapper.
pub const NSS_WRAPPER_LIB: &str = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so";

/// The cluster domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

fn names(base: &str, ns: &str) -> Vec<String> {
    vec![format!("{base}.{ns}.svc.{CLUSTER_DOMAIN}"), format!("{base}.{ns}.svc"), format!("{base}.{ns}")]
}

/// Names of a Service: the qualified forms plus the bare name (what the search domain of a
/// pod in the same namespace would give; with several namespaces the first entry wins).
fn service_names(name: &str, ns: &str) -> Vec<String> {
    let mut n = names(name, ns);
    n.push(name.to_string());
    n
}

/// Host entries (ip, names) for pods and services. Pods with hostname and subdomain get
/// `host.sub.ns.svc.cluster.local` (and shorter forms); a Service name maps to the IPs of
/// its ready pods (all pods with `publishNotReadyAddresses`).
pub fn entries(pods: &[Value], services: &[Value]) -> Vec<(String, Vec<String>)> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let ip_of =
        |p: &Value| p.pointer("/status/podIP").and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
    for pod in pods.iter().filter(|p| meta_str(p, "deletionTimestamp").is_none()) {
        let (Some(ip), Some(ns)) = (ip_of(pod), meta_str(pod, "namespace")) else {
            continue;
        };
        let hostname = pod.pointer("/spec/hostname").and_then(Value::as_str);
        let subdomain = pod.pointer("/spec/subdomain").and_then(Value::as_str);
        if let (Some(h), Some(s)) = (hostname, subdomain) {
            let mut n = names(&format!("{h}.{s}"), ns);
            n.push(format!("{h}.{s}"));
            out.entry((ip.clone(), format!("pod/{ns}/{h}"))).or_default().extend(n);
        }
    }
    for svc in services {
        let (Some(ns), Some(name)) = (meta_str(svc, "namespace"), meta_str(svc, "name")) else { continue };
        // A ClusterIP Service served by the proxy resolves to its cluster IP.
        if let Some(ip) = svc.pointer("/spec/clusterIP").and_then(Value::as_str).filter(|ip| ip.starts_with("127.")) {
            out.entry((ip.to_string(), format!("svc/{ns}/{name}"))).or_default().extend(service_names(name, ns));
            continue;
        }
        let Some(sel) = svc.pointer("/spec/selector").and_then(Value::as_object).filter(|s| !s.is_empty()) else {
            continue;
        };
        let all = svc.pointer("/spec/publishNotReadyAddresses").and_then(Value::as_bool) == Some(true);
        for pod in
            pods.iter().filter(|p| meta_str(p, "namespace") == Some(ns) && meta_str(p, "deletionTimestamp").is_none())
        {
            let labels = pod.pointer("/metadata/labels");
            if !sel.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v)) || !(all || pod_ready(pod)) {
                continue;
            }
            if let Some(ip) = ip_of(pod) {
                out.entry((ip, format!("svc/{ns}/{name}"))).or_default().extend(service_names(name, ns));
            }
        }
    }
    out.into_iter().map(|((ip, _), n)| (ip, n)).collect()
}

/// Renders a hosts file (nss_wrapper accepts no comment lines).
pub fn render(entries: &[(String, Vec<String>)]) -> String {
    let mut s = String::new();
    for (ip, names) in entries {
        s.push_str(&format!("{ip} {}\n", names.join(" ")));
    }
    s
}

/// The hosts file, rewritten only when its content changes.
#[derive(Debug)]
pub struct HostsFile {
    path: PathBuf,
    last: String,
}

impl HostsFile {
    /// A hosts file at `path` (created empty now).
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let mut f = Self { path: path.to_path_buf(), last: String::new() };
        f.write(&render(&[]))?;
        Ok(f)
    }

    /// Path for `NSS_WRAPPER_HOSTS`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Atomically replaces the content if it changed.
    pub fn write(&mut self, content: &str) -> std::io::Result<()> {
        if content == self.last {
            return Ok(());
        }
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, content)?;
        std::fs::rename(&tmp, &self.path)?;
        self.last = content.to_string();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statefulset_pod_and_headless_service_names() {
        let pod = json!({"metadata": {"name": "web-0", "namespace": "ns", "labels": {"app": "web"}}, "spec": {"hostname": "web-0", "subdomain": "web"},
                         "status": {"podIP": "127.9.9.2", "conditions": [{"type": "Ready", "status": "True"}]}});
        let svc = json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": {"selector": {"app": "web"}, "clusterIP": "None"}});
        let text = render(&entries(&[pod], &[svc]));
        assert!(
            text.contains("127.9.9.2 web-0.web.ns.svc.cluster.local web-0.web.ns.svc web-0.web.ns web-0.web\n"),
            "{text}"
        );
        assert!(text.contains("127.9.9.2 web.ns.svc.cluster.local web.ns.svc web.ns web\n"), "{text}");
    }
}
