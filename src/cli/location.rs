//! `kudu location HOST`: the built-in location mapping command. Run inside the cluster by
//! the leader master: finds the pod by IP or DNS name, reads its node's topology labels and
//! prints them as a location such as `/eu-west-1/eu-west-1a`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{Context, bail};
use clap::Args;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kudu::location::location_from_labels;

/// Label keys used when none are configured.
pub const DEFAULT_LABELS: [&str; 2] = ["topology.kubernetes.io/region", "topology.kubernetes.io/zone"];

#[derive(Args, Debug)]
pub struct LocationArgs {
    /// IP address or DNS name of the tablet server (`pod.service.namespace.svc.cluster.local`,
    /// or just the pod name).
    host: String,
    /// Namespace of the pod (default: from the DNS name, then POD_NAMESPACE, then the
    /// client's default namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,
    /// Node label keys forming the location, outermost first.
    #[arg(long, env = "KUDU_LOCATION_LABELS", value_delimiter = ',')]
    labels: Vec<String>,
}

/// Which pod a host names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Ip(IpAddr),
    Pod { name: String, namespace: Option<String> },
}

fn parse_host(host: &str) -> anyhow::Result<Target> {
    let host = host.trim().trim_end_matches('.');
    if host.is_empty() {
        bail!("empty host");
    }
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(Target::Ip(ip));
    }
    let labels: Vec<&str> = host.split('.').collect();
    // <pod>.<service>.<namespace>.svc.<cluster domain>
    let namespace = (labels.len() >= 4 && labels[3] == "svc").then(|| labels[2].to_string());
    Ok(Target::Pod { name: labels[0].to_string(), namespace })
}

async fn find_pod(client: &kube::Client, target: &Target, namespace: &str) -> anyhow::Result<Pod> {
    match target {
        Target::Ip(ip) => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let found = pods
                .list(&ListParams::default().fields(&format!("status.podIP={ip}")))
                .await
                .with_context(|| format!("cannot list pods in namespace {namespace}"))?;
            if found.items.len() > 1 {
                bail!("{} pods with IP {ip} in namespace {namespace}", found.items.len());
            }
            found.items.into_iter().next().with_context(|| format!("no pod with IP {ip} in namespace {namespace}"))
        }
        Target::Pod { name, namespace: from_dns } => {
            let ns = from_dns.as_deref().unwrap_or(namespace);
            Api::<Pod>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await
                .with_context(|| format!("cannot read pod {ns}/{name}"))?
                .with_context(|| format!("no pod {name} in namespace {ns}"))
        }
    }
}

pub async fn run(args: LocationArgs) -> anyhow::Result<()> {
    let target = parse_host(&args.host)?;
    let keys: Vec<String> = if args.labels.iter().all(|l| l.trim().is_empty()) {
        DEFAULT_LABELS.iter().map(|k| k.to_string()).collect()
    } else {
        args.labels.iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
    };
    let client = kube::Client::try_default().await.context("cannot reach the Kubernetes API")?;
    let namespace = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let pod = find_pod(&client, &target, &namespace).await?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .with_context(|| format!("pod {pod_name} is not scheduled on a node yet"))?;
    let node = Api::<Node>::all(client)
        .get(&node_name)
        .await
        .with_context(|| format!("cannot read node {node_name} of pod {pod_name}"))?;
    let labels: BTreeMap<String, String> = node.metadata.labels.unwrap_or_default();
    let location =
        location_from_labels(&labels, &keys).with_context(|| format!("node {node_name} of pod {pod_name}"))?;
    println!("{location}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ips_and_dns_names() {
        assert_eq!(parse_host("10.1.2.3").ok(), Some(Target::Ip("10.1.2.3".parse().expect("ip"))));
        assert_eq!(parse_host("[::1]").ok(), Some(Target::Ip("::1".parse().expect("ip"))));
        assert_eq!(
            parse_host("demo-tserver-1.demo-tservers.kudu.svc.cluster.local").ok(),
            Some(Target::Pod { name: "demo-tserver-1".into(), namespace: Some("kudu".into()) })
        );
        assert_eq!(
            parse_host("demo-tserver-1.demo-tservers").ok(),
            Some(Target::Pod { name: "demo-tserver-1".into(), namespace: None })
        );
        assert!(parse_host(" ").is_err());
    }
}
