//! Cluster DNS through nss_wrapper: a hosts file (rewritten atomically whenever it changes)
//! that pod processes resolve with `LD_PRELOAD=libnss_wrapper.so NSS_WRAPPER_HOSTS=…`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::apiserver::util::meta_str;
use crate::controllers::pod_ready;

/// Where Debian installs libnss-wrapper.
pub const NSS_WRAPPER_LIB: &str = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so";

/// The cluster domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Size of nss_wrapper's host table, handed to pods as `NSS_WRAPPER_MAX_HOSTENTS`.
///
/// nss_wrapper keeps every name and every address of the hosts file as a key of one
/// fixed-size glibc `hcreate` table, 100 keys unless this variable says otherwise. Once the
/// table is full the whole file fails to load ("Hash table is full") and every lookup in
/// the pod fails. A pod adds about five keys (its address and four forms of its name) and a
/// Service four, so the default broke at about a dozen pods. 65 536 keys hold more than
/// 10 000 pods; the table is 24 bytes a key, allocated zeroed (untouched pages cost no
/// memory) and rebuilt on every reload of the file.
pub const MAX_HOSTENTS: usize = 65_536;

/// Environment variable nss_wrapper reads [`MAX_HOSTENTS`] from.
pub const MAX_HOSTENTS_ENV: &str = "NSS_WRAPPER_MAX_HOSTENTS";

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
    // As the endpoints controller does, a Service publishing not-ready addresses keeps its
    // terminating pods (a stopping member can still be reached, and reach itself, by name).
    let publishes_not_ready = |ns: &str, name: &str| {
        services.iter().any(|svc| {
            meta_str(svc, "namespace") == Some(ns)
                && meta_str(svc, "name") == Some(name)
                && svc.pointer("/spec/publishNotReadyAddresses").and_then(Value::as_bool) == Some(true)
        })
    };
    for pod in pods {
        let (Some(ip), Some(ns)) = (ip_of(pod), meta_str(pod, "namespace")) else {
            continue;
        };
        let hostname = pod.pointer("/spec/hostname").and_then(Value::as_str);
        let subdomain = pod.pointer("/spec/subdomain").and_then(Value::as_str);
        if meta_str(pod, "deletionTimestamp").is_some() && !subdomain.is_some_and(|s| publishes_not_ready(ns, s)) {
            continue;
        }
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
        for pod in pods
            .iter()
            .filter(|p| meta_str(p, "namespace") == Some(ns) && (all || meta_str(p, "deletionTimestamp").is_none()))
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

/// How many keys nss_wrapper's table needs for `entries`: every distinct name (it
/// lower-cases them) and every distinct address.
pub fn table_keys(entries: &[(String, Vec<String>)]) -> usize {
    let mut keys = std::collections::HashSet::new();
    for (ip, names) in entries {
        keys.insert(ip.clone());
        keys.extend(names.iter().map(|n| n.to_ascii_lowercase()));
    }
    keys.len()
}

/// A name and the one address it must resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Name to look up.
    pub name: String,
    /// Expected address.
    pub ip: String,
}

/// Names to look up after a rewrite: the longest and the shortest name of up to three
/// entries (first, middle, last) whose names belong to that entry alone.
pub fn probes(entries: &[(String, Vec<String>)]) -> Vec<Probe> {
    let mut owners: HashMap<&str, usize> = HashMap::new();
    for (_, names) in entries {
        for n in names {
            *owners.entry(n.as_str()).or_default() += 1;
        }
    }
    let unique: Vec<&(String, Vec<String>)> = entries
        .iter()
        .filter(|(_, names)| !names.is_empty() && names.iter().all(|n| owners[n.as_str()] == 1))
        .collect();
    let mut picks: Vec<usize> = Vec::new();
    if !unique.is_empty() {
        picks = vec![0, unique.len() / 2, unique.len() - 1];
        picks.dedup();
    }
    let mut out = Vec::new();
    for i in picks {
        let (ip, names) = unique[i];
        let longest = names.iter().max_by_key(|n| n.len());
        let shortest = names.iter().min_by_key(|n| n.len());
        for name in longest.into_iter().chain(shortest) {
            let probe = Probe { name: name.clone(), ip: ip.clone() };
            if !out.contains(&probe) {
                out.push(probe);
            }
        }
    }
    out
}

/// Looks `probes` up the way pods do (nss_wrapper preloaded into `getent`) and returns a
/// description of what failed, if anything.
pub async fn check(nss_wrapper: &Path, hosts: &Path, max_hostents: usize, probes: &[Probe]) -> Result<(), String> {
    if probes.is_empty() {
        return Ok(());
    }
    let mut cmd = tokio::process::Command::new("getent");
    cmd.arg("hosts")
        .args(probes.iter().map(|p| p.name.as_str()))
        .env("LD_PRELOAD", nss_wrapper)
        .env("NSS_WRAPPER_HOSTS", hosts)
        .env(MAX_HOSTENTS_ENV, max_hostents.to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(std::time::Duration::from_secs(10), cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("running getent: {e}")),
        Err(_) => return Err("getent did not answer within 10 s".into()),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let resolved: HashSet<&str> = stdout.lines().filter_map(|l| l.split_whitespace().next()).collect();
    let missing: Vec<String> = probes
        .iter()
        .filter(|p| !resolved.contains(p.ip.as_str()))
        .map(|p| format!("{} -> {}", p.name, p.ip))
        .collect();
    let detail = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("no error output");
    match (out.status.success(), missing.is_empty()) {
        (true, true) => Ok(()),
        (false, true) => Err(format!("getent exited with {}: {detail}", out.status)),
        _ => Err(format!("{} of {} lookups failed ({}): {detail}", missing.len(), probes.len(), missing.join(", "))),
    }
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

    /// Atomically replaces the content if it changed; says whether it did.
    pub fn write(&mut self, content: &str) -> std::io::Result<bool> {
        if content == self.last {
            return Ok(false);
        }
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, content)?;
        std::fs::rename(&tmp, &self.path)?;
        self.last = content.to_string();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `n` StatefulSet pods of one headless Service, as the kubelet would publish them.
    fn many_pods(n: usize) -> Vec<(String, Vec<String>)> {
        let pods: Vec<Value> = (0..n)
            .map(|i| {
                json!({"metadata": {"name": format!("p-{i}"), "namespace": "ns", "labels": {"app": "p"}},
                       "spec": {"hostname": format!("p-{i}"), "subdomain": "p"},
                       "status": {"podIP": format!("127.9.{}.{}", i / 250, 2 + i % 250),
                                  "conditions": [{"type": "Ready", "status": "True"}]}})
            })
            .collect();
        let svc = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"selector": {"app": "p"}, "clusterIP": "None"}});
        entries(&pods, &[svc])
    }

    #[test]
    fn counts_table_keys_and_picks_unique_names_to_probe() {
        let e = many_pods(3);
        // 3 addresses, 3 x 4 pod names, 4 Service names.
        assert_eq!(table_keys(&e), 3 + 12 + 4);
        let p = probes(&e);
        assert!(p.iter().all(|p| !p.name.starts_with("p.")), "Service names resolve to many pods: {p:?}");
        assert!(p.contains(&Probe { name: "p-0.p.ns.svc.cluster.local".into(), ip: "127.9.0.2".into() }), "{p:?}");
        assert!(p.contains(&Probe { name: "p-2.p".into(), ip: "127.9.0.4".into() }), "{p:?}");
        assert!(probes(&[]).is_empty());
    }

    fn nss_wrapper() -> PathBuf {
        let lib = PathBuf::from(NSS_WRAPPER_LIB);
        assert!(lib.is_file(), "{NSS_WRAPPER_LIB} missing: run scripts/setup.sh (Debian package libnss-wrapper)");
        lib
    }

    /// The failure users met: with nss_wrapper's default table (100 keys) a hosts file of 300
    /// pods fails to load and nothing resolves; with [`MAX_HOSTENTS`] everything does.
    #[tokio::test]
    async fn hosts_file_of_300_pods_resolves_only_with_a_large_table() {
        let dir = tempfile::tempdir().expect("temp dir");
        let e = many_pods(300);
        assert!(table_keys(&e) > 1000);
        let mut hosts = HostsFile::create(&dir.path().join("hosts")).expect("hosts file");
        hosts.write(&render(&e)).expect("write");
        let probes = probes(&e);
        assert_eq!(probes.len(), 6);
        check(&nss_wrapper(), hosts.path(), MAX_HOSTENTS, &probes).await.expect("all names resolve");
        let err = check(&nss_wrapper(), hosts.path(), 100, &probes).await.expect_err("the default table overflows");
        assert!(err.contains("6 of 6 lookups failed"), "{err}");
        assert!(err.contains("Hash table is full") || err.contains("NWRAP"), "nss_wrapper's complaint: {err}");
    }

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

    #[test]
    fn terminating_pods_stay_only_behind_services_publishing_not_ready_addresses() {
        let pod = |sub: &str| {
            json!({"metadata": {"name": "m-0", "namespace": "ns", "labels": {"app": sub}, "deletionTimestamp": "2026-01-01T00:00:00Z"},
                   "spec": {"hostname": "m-0", "subdomain": sub},
                   "status": {"podIP": "127.9.9.3", "conditions": [{"type": "Ready", "status": "False"}]}})
        };
        let svc = |name: &str, publish: bool| {
            json!({"metadata": {"name": name, "namespace": "ns"},
                   "spec": {"selector": {"app": name}, "clusterIP": "None", "publishNotReadyAddresses": publish}})
        };
        let text = render(&entries(&[pod("masters")], &[svc("masters", true)]));
        assert!(text.contains("m-0.masters.ns.svc.cluster.local"), "{text}");
        assert!(text.contains(" masters.ns.svc.cluster.local"), "{text}");
        let text = render(&entries(&[pod("web")], &[svc("web", false)]));
        assert!(text.is_empty(), "{text}");
    }
}
