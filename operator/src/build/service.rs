//! Services: one headless Service per role (the pods' stable DNS names) and a client
//! Service in front of the masters.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::{self, HTTP_PORT_NAME, RPC_PORT_NAME, Role};
use super::owned_meta;
use crate::validate::ValidatedSpec;

fn ports(role: Role) -> Vec<ServicePort> {
    [(RPC_PORT_NAME, role.rpc_port()), (HTTP_PORT_NAME, role.http_port())]
        .into_iter()
        .map(|(name, port)| ServicePort {
            name: Some(name.to_owned()),
            port,
            target_port: Some(IntOrString::String(name.to_owned())),
            protocol: Some("TCP".to_owned()),
            ..ServicePort::default()
        })
        .collect()
}

/// Annotations telling Prometheus (the common `kubernetes-service-endpoints` scrape
/// configuration) to scrape `/metrics` on the HTTP port of every pod behind a headless
/// Service: plain HTTP, read-only, whether gRPC runs over mutual TLS or not.
pub fn scrape_annotations(role: Role) -> std::collections::BTreeMap<String, String> {
    [
        ("prometheus.io/scrape", "true".to_owned()),
        ("prometheus.io/scheme", "http".to_owned()),
        ("prometheus.io/path", "/metrics".to_owned()),
        ("prometheus.io/port", role.http_port().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Headless Service of `role`. The masters' publishes not-ready addresses: a master must
/// resolve its peers' names before any of them is ready, or the group cannot form.
pub fn headless_service(spec: &ValidatedSpec, role: Role) -> Service {
    let mut metadata = owned_meta(spec, names::headless_service_name(&spec.name, role), Some(role));
    metadata.annotations = Some(scrape_annotations(role));
    Service {
        metadata,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(names::selector_labels(&spec.name, role)),
            ports: Some(ports(role)),
            publish_not_ready_addresses: Some(role == Role::Master),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// ClusterIP Service reaching any ready master, a convenient first address for clients
/// (which then find the leader themselves).
pub fn client_service(spec: &ValidatedSpec) -> Service {
    Service {
        metadata: owned_meta(spec, names::client_service_name(&spec.name), Some(Role::Master)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(names::selector_labels(&spec.name, Role::Master)),
            ports: Some(ports(Role::Master)),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::spec;

    #[test]
    fn headless_services_tell_prometheus_the_plain_metrics_port() {
        let spec = spec("image: kudu:1\n");
        for (role, port) in [(Role::Master, "8051"), (Role::TServer, "8050")] {
            let service = headless_service(&spec, role);
            let annotations = service.metadata.annotations.unwrap();
            assert_eq!(annotations["prometheus.io/port"], port);
            assert_eq!(annotations["prometheus.io/scheme"], "http");
            assert_eq!(annotations["prometheus.io/path"], "/metrics");
        }
    }

    fn port_numbers(service: &Service) -> Vec<(String, i32)> {
        service
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| (p.name.clone().unwrap(), p.port))
            .collect()
    }

    #[test]
    fn master_headless_service_publishes_not_ready_addresses() {
        let spec = spec("image: kudu:1\n");
        let svc = headless_service(&spec, Role::Master);
        let s = svc.spec.as_ref().unwrap();
        assert_eq!(s.cluster_ip.as_deref(), Some("None"));
        assert_eq!(s.publish_not_ready_addresses, Some(true));
        assert_eq!(s.selector.as_ref().unwrap()[names::LABEL_COMPONENT], "master");
        assert_eq!(port_numbers(&svc), vec![("rpc".to_owned(), 7051), ("http".to_owned(), 8051)]);
    }

    #[test]
    fn tserver_headless_service_selects_tservers() {
        let spec = spec("image: kudu:1\n");
        let svc = headless_service(&spec, Role::TServer);
        let s = svc.spec.as_ref().unwrap();
        assert_eq!(svc.metadata.name.as_deref(), Some("demo-tservers"));
        assert_eq!(s.cluster_ip.as_deref(), Some("None"));
        assert_eq!(s.publish_not_ready_addresses, Some(false));
        assert_eq!(s.selector.as_ref().unwrap()[names::LABEL_COMPONENT], "tserver");
        assert_eq!(port_numbers(&svc), vec![("rpc".to_owned(), 7050), ("http".to_owned(), 8050)]);
    }

    #[test]
    fn client_service_is_cluster_ip_over_masters() {
        let spec = spec("image: kudu:1\n");
        let svc = client_service(&spec);
        let s = svc.spec.as_ref().unwrap();
        assert_eq!(s.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(s.cluster_ip, None);
        assert_eq!(s.selector.as_ref(), Some(&names::selector_labels("demo", Role::Master)));
    }
}
