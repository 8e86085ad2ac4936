//! The master and tablet server StatefulSets.
//!
//! Each pod gets a stable DNS name (`<pod>.<headless service>.<namespace>.svc...`), which
//! is also its advertised RPC address, and one PersistentVolumeClaim. Pods start in
//! parallel: masters started together with the same address list bootstrap one Raft group,
//! and a master is not ready before there is a group, so ordered start would deadlock.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapKeySelector, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    ExecAction, HTTPGetAction, Lifecycle, LifecycleHandler, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretVolumeSource,
    SecurityContext, TopologySpreadConstraint, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::{self, Role};
use super::owned_meta;
use crate::tls;
use crate::validate::{RoleSpec, ValidatedSpec};

/// Topology keys the pods of a role are spread over by default.
pub const SPREAD_TOPOLOGY_KEYS: [&str; 2] = ["topology.kubernetes.io/zone", "kubernetes.io/hostname"];
/// Update strategy of both StatefulSets: pods change only when the operator deletes them.
pub const UPDATE_STRATEGY: &str = "OnDelete";
/// Seconds a master gets to hand over leadership and stop.
pub const MASTER_TERMINATION_GRACE_SECONDS: i64 = 60;
/// The master's preStop hook: hand over leadership if this master leads. A shell expands
/// the pod's own address (Kubernetes does not expand `$(VAR)` in hooks); the CLI reads the
/// master addresses from `KUDU_MASTERS`.
/// Its transport security comes from the environment (`KUDU_CERTS_DIR`, the mounted admin
/// certificate, or `KUDU_INSECURE`).
pub const MASTER_PRE_STOP: [&str; 3] = ["sh", "-c", "exec kudu master step-down --if-leader \"$KUDU_ADVERTISED_ADDR\""];

/// The master StatefulSet with `replicas` pods (see [`super::BuildInputs`]), spread over
/// zones softly.
pub fn master_statefulset(spec: &ValidatedSpec, replicas: i32) -> StatefulSet {
    master_statefulset_spread(spec, replicas, false)
}

/// The master StatefulSet with `replicas` pods; with `hard_zone_spread` no two masters may
/// be scheduled in one zone (the zone constraint becomes `DoNotSchedule`; with at least as
/// many zones as masters, a skew of 1 allows one master per zone only).
pub fn master_statefulset_spread(spec: &ValidatedSpec, replicas: i32, hard_zone_spread: bool) -> StatefulSet {
    let mut sts = master_statefulset_soft(spec, replicas);
    if hard_zone_spread {
        let constraints = sts
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .and_then(|p| p.topology_spread_constraints.as_mut());
        for c in constraints.into_iter().flatten().filter(|c| c.topology_key == crate::zones::ZONE_LABEL) {
            c.when_unsatisfiable = "DoNotSchedule".to_owned();
        }
    }
    sts
}

/// Remove the location mapping command from `sts`'s container (the masters cannot read
/// nodes when the operator has no cluster-scoped permissions to grant them).
pub fn drop_location_mapping(sts: &mut StatefulSet) {
    let prefix = "--location-mapping-cmd";
    let containers = sts.spec.as_mut().and_then(|s| s.template.spec.as_mut()).map(|p| &mut p.containers);
    for container in containers.into_iter().flatten() {
        if let Some(args) = container.args.as_mut() {
            args.retain(|a| a != prefix && !a.starts_with(&format!("{prefix}=")));
        }
    }
}

fn master_statefulset_soft(spec: &ValidatedSpec, replicas: i32) -> StatefulSet {
    let role = Role::Master;
    let mut container = base_container(spec, role, &spec.masters);
    container.readiness_probe = Some(Probe {
        http_get: Some(HTTPGetAction {
            path: Some(names::HEALTHZ_PATH.to_owned()),
            port: IntOrString::String(names::HTTP_PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(5),
        failure_threshold: Some(3),
        ..Probe::default()
    });
    container.lifecycle = Some(Lifecycle {
        pre_stop: Some(LifecycleHandler {
            exec: Some(ExecAction { command: Some(MASTER_PRE_STOP.iter().map(|s| (*s).to_owned()).collect()) }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    });
    if let Some(env) = container.env.as_mut() {
        env.push(config_env(spec, names::ENV_CLI_MASTERS, names::CONFIG_MASTER_ADDRESSES));
        env.push(field_env(names::ENV_POD_NAMESPACE, "metadata.namespace"));
        env.push(config_env(spec, names::ENV_LOCATION_LABELS, names::CONFIG_LOCATION_LABELS));
    }
    let mut pod_spec = base_pod_spec(spec, role, &spec.masters, container);
    pod_spec.service_account_name = Some(names::service_account_name(&spec.name));
    pod_spec.termination_grace_period_seconds = Some(MASTER_TERMINATION_GRACE_SECONDS);
    statefulset(
        spec,
        role,
        replicas,
        pod_spec,
        StatefulSetPersistentVolumeClaimRetentionPolicy {
            // A master scaled away has left the Raft group; its data must not come back.
            when_scaled: Some("Delete".to_owned()),
            when_deleted: Some("Retain".to_owned()),
        },
    )
}

/// The tablet server StatefulSet with the spec's replicas.
pub fn tserver_statefulset(spec: &ValidatedSpec) -> StatefulSet {
    tserver_statefulset_with(spec, spec.tservers.replicas)
}

/// The tablet server StatefulSet with `replicas` pods (see [`super::BuildInputs`]).
pub fn tserver_statefulset_with(spec: &ValidatedSpec, replicas: i32) -> StatefulSet {
    let role = Role::TServer;
    let mut container = base_container(spec, role, &spec.tservers);
    // `/ready` answers once the server is registered with the leader master and every
    // replica it hosts caught up as its tablet leader sees it: what a rolling restart waits for.
    container.readiness_probe = Some(Probe {
        http_get: Some(HTTPGetAction {
            path: Some(names::READY_PATH.to_owned()),
            port: IntOrString::String(names::HTTP_PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(5),
        failure_threshold: Some(3),
        ..Probe::default()
    });
    let mut pod_spec = base_pod_spec(spec, role, &spec.tservers, container);
    // Tablet servers never talk to the Kubernetes API.
    pod_spec.automount_service_account_token = Some(false);
    statefulset(
        spec,
        role,
        replicas,
        pod_spec,
        StatefulSetPersistentVolumeClaimRetentionPolicy {
            when_scaled: Some("Retain".to_owned()),
            when_deleted: Some("Retain".to_owned()),
        },
    )
}

fn statefulset(
    spec: &ValidatedSpec,
    role: Role,
    replicas: i32,
    pod_spec: PodSpec,
    retention: StatefulSetPersistentVolumeClaimRetentionPolicy,
) -> StatefulSet {
    let selector = names::selector_labels(&spec.name, role);
    let overrides = &role_spec(spec, role).pod_overrides;
    let mut pod_labels = names::object_labels(&spec.name, Some(role));
    pod_labels.extend(selector.clone());
    let mut annotations = overrides.annotations.clone();
    // `kubectl.kubernetes.io/restartedAt` on the KuduCluster changes the template, so the
    // operator's rollout restarts every pod.
    if let Some(at) = &spec.restarted_at {
        annotations.insert(names::RESTARTED_AT_ANNOTATION.to_owned(), at.clone());
    }
    StatefulSet {
        metadata: owned_meta(spec, names::statefulset_name(&spec.name, role), Some(role)),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(names::headless_service_name(&spec.name, role)),
            pod_management_policy: Some("Parallel".to_owned()),
            // The operator restarts outdated pods itself, one at a time and only when the
            // cluster can take it (`crate::rolling`).
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some(UPDATE_STRATEGY.to_owned()),
                ..StatefulSetUpdateStrategy::default()
            }),
            selector: LabelSelector { match_labels: Some(selector.clone()), ..LabelSelector::default() },
            persistent_volume_claim_retention_policy: Some(retention),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: non_empty_map(&annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec),
            },
            volume_claim_templates: Some(vec![volume_claim_template(spec, role, selector)]),
            ..StatefulSetSpec::default()
        }),
        ..Default::default()
    }
}

fn role_spec(spec: &ValidatedSpec, role: Role) -> &RoleSpec {
    match role {
        Role::Master => &spec.masters,
        Role::TServer => &spec.tservers,
    }
}

fn volume_claim_template(spec: &ValidatedSpec, role: Role, labels: BTreeMap<String, String>) -> PersistentVolumeClaim {
    let role_spec = role_spec(spec, role);
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(names::DATA_VOLUME.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: role_spec.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), role_spec.storage_size.clone())])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// Container parts shared by both roles: image, ports, data mount, addresses, flags.
fn base_container(spec: &ValidatedSpec, role: Role, role_spec: &RoleSpec) -> Container {
    let own_address = format!(
        "$({}).{}.{}.svc.{}:{}",
        names::ENV_POD_NAME,
        names::headless_service_name(&spec.name, role),
        spec.namespace,
        names::CLUSTER_DOMAIN,
        role.rpc_port(),
    );
    // Servers bind to the pod IP and advertise the stable DNS name, which is what Raft
    // membership and the address lists use.
    let mut args = vec![
        role.component().to_owned(),
        "run".to_owned(),
        format!("--data-dir={}", names::DATA_DIR),
        format!("--rpc-addr=$({}):{}", names::ENV_POD_IP, role.rpc_port()),
        format!("--advertised-addr=$({})", names::ENV_ADVERTISED_ADDR),
        format!("--master-addresses=$({})", names::ENV_MASTER_ADDRESSES),
        // Mutual TLS with the mounted certificates, or plaintext (`tls.mode: Disabled`).
        if spec.tls.enabled() { format!("--certs-dir={}", tls::CERTS_DIR) } else { "--insecure".to_owned() },
    ];
    args.push(format!("--http-addr=$({}):{}", names::ENV_POD_IP, role.http_port()));
    if role == Role::Master {
        args.push(format!("--location-mapping-cmd={}", names::LOCATION_MAPPING_CMD));
    }
    args.extend(role_spec.flags.iter().cloned());
    Container {
        name: names::CONTAINER_NAME.to_owned(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(spec.image_pull_policy.as_str().to_owned()),
        command: Some(vec![names::KUDU_BINARY.to_owned()]),
        args: Some(args),
        env: Some(vec![
            field_env(names::ENV_POD_NAME, "metadata.name"),
            field_env(names::ENV_POD_IP, "status.podIP"),
            EnvVar { name: names::ENV_ADVERTISED_ADDR.to_owned(), value: Some(own_address), ..EnvVar::default() },
            config_env(spec, names::ENV_MASTER_ADDRESSES, names::CONFIG_MASTER_ADDRESSES),
            cli_security_env(spec, role),
            EnvVar { name: "TMPDIR".to_owned(), value: Some(names::TMP_DIR.to_owned()), ..EnvVar::default() },
        ]),
        ports: Some(vec![
            container_port(names::RPC_PORT_NAME, role.rpc_port()),
            container_port(names::HTTP_PORT_NAME, role.http_port()),
        ]),
        resources: role_spec.resources.clone(),
        volume_mounts: Some(
            [
                vec![
                    VolumeMount {
                        name: names::DATA_VOLUME.to_owned(),
                        mount_path: names::DATA_DIR.to_owned(),
                        ..VolumeMount::default()
                    },
                    VolumeMount {
                        name: names::TMP_VOLUME.to_owned(),
                        mount_path: names::TMP_DIR.to_owned(),
                        ..VolumeMount::default()
                    },
                ],
                cert_mounts(spec, role),
            ]
            .concat(),
        ),
        security_context: Some(container_security_context()),
        ..Container::default()
    }
}

/// How the `kudu` CLI in a pod (preStop, `kubectl exec`) secures its calls: in master pods
/// with the mounted `admin` certificate (a master can already do anything to the catalog),
/// in tablet server pods with the server's own; plaintext when TLS is disabled.
fn cli_security_env(spec: &ValidatedSpec, role: Role) -> EnvVar {
    let (name, value) = match (spec.tls.enabled(), role) {
        (false, _) => (names::ENV_INSECURE, "1"),
        (true, Role::Master) => (tls::ENV_CERTS_DIR, tls::ADMIN_CERTS_DIR),
        (true, Role::TServer) => (tls::ENV_CERTS_DIR, tls::CERTS_DIR),
    };
    EnvVar { name: name.to_owned(), value: Some(value.to_owned()), ..EnvVar::default() }
}

/// The certificate mounts of a role's container (none without TLS).
fn cert_mounts(spec: &ValidatedSpec, role: Role) -> Vec<VolumeMount> {
    if !spec.tls.enabled() {
        return Vec::new();
    }
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    let mut mounts = vec![mount(tls::CERTS_VOLUME, tls::CERTS_DIR)];
    if role == Role::Master {
        mounts.push(mount(tls::ADMIN_CERTS_VOLUME, tls::ADMIN_CERTS_DIR));
    }
    mounts
}

/// The certificate volumes of a role's pods: Secrets the operator keeps current (the
/// kubelet updates the files, the servers reload them).
fn cert_volumes(spec: &ValidatedSpec, role: Role) -> Vec<Volume> {
    if !spec.tls.enabled() {
        return Vec::new();
    }
    let volume = |name: &str, secret: String| Volume {
        name: name.to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            // Readable by the pod's group (fsGroup) only: it holds a private key.
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    };
    let mut volumes = vec![volume(tls::CERTS_VOLUME, tls::role_secret_name(&spec.name, role))];
    if role == Role::Master {
        volumes.push(volume(tls::ADMIN_CERTS_VOLUME, tls::admin_secret_name(&spec.name)));
    }
    volumes
}

/// The hardened container: no privilege escalation, no capabilities, a read-only root
/// filesystem (the processes write only to the data volume and [`names::TMP_DIR`]), the
/// runtime's default seccomp profile, and the image's non-root user.
pub fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), ..Capabilities::default() }),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(names::KUDU_UID),
        run_as_group: Some(names::KUDU_GID),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile { type_: "RuntimeDefault".to_owned(), ..SeccompProfile::default() }
}

/// The pod's scratch volume: an `emptyDir` of bounded size.
fn tmp_volume() -> Volume {
    Volume {
        name: names::TMP_VOLUME.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity(names::TMP_SIZE_LIMIT.to_owned())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn base_pod_spec(spec: &ValidatedSpec, role: Role, role_spec: &RoleSpec, container: Container) -> PodSpec {
    let overrides = &role_spec.pod_overrides;
    PodSpec {
        containers: vec![container],
        node_selector: non_empty_map(&overrides.node_selector),
        tolerations: (!overrides.tolerations.is_empty()).then(|| overrides.tolerations.clone()),
        affinity: overrides.affinity.clone(),
        security_context: Some(PodSecurityContext {
            fs_group: Some(names::KUDU_GID),
            run_as_non_root: Some(true),
            run_as_user: Some(names::KUDU_UID),
            run_as_group: Some(names::KUDU_GID),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..PodSecurityContext::default()
        }),
        volumes: Some([vec![tmp_volume()], cert_volumes(spec, role)].concat()),
        topology_spread_constraints: Some(
            SPREAD_TOPOLOGY_KEYS
                .iter()
                .map(|key| TopologySpreadConstraint {
                    max_skew: 1,
                    topology_key: (*key).to_owned(),
                    when_unsatisfiable: "ScheduleAnyway".to_owned(),
                    label_selector: Some(LabelSelector {
                        match_labels: Some(names::selector_labels(&spec.name, role)),
                        ..LabelSelector::default()
                    }),
                    ..TopologySpreadConstraint::default()
                })
                .collect(),
        ),
        ..PodSpec::default()
    }
}

fn non_empty_map(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then(|| map.clone())
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: port,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn config_env(spec: &ValidatedSpec, name: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: names::config_map_name(&spec.name),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::spec;
    use crate::build::{BuildInputs, Object, build_all};

    fn pod_spec(sts: &StatefulSet) -> &PodSpec {
        sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    fn container(sts: &StatefulSet) -> &Container {
        &pod_spec(sts).containers[0]
    }

    fn env_value<'a>(c: &'a Container, name: &str) -> &'a EnvVar {
        c.env.as_ref().unwrap().iter().find(|e| e.name == name).unwrap()
    }

    #[test]
    fn master_statefulset_key_fields() {
        let spec = spec(
            "image: kudu:1\nimagePullPolicy: Always\nmasters:\n  replicas: 3\n  storage: {size: 5Gi, storageClassName: fast}\n  flags: [--raft-heartbeat-ms=500]\n",
        );
        let sts = master_statefulset(&spec, 3);
        let s = sts.spec.as_ref().unwrap();
        assert_eq!(sts.metadata.name.as_deref(), Some("demo-master"));
        assert_eq!(s.replicas, Some(3));
        assert_eq!(s.service_name.as_deref(), Some("demo-masters"));
        assert_eq!(s.pod_management_policy.as_deref(), Some("Parallel"));
        let retention = s.persistent_volume_claim_retention_policy.as_ref().unwrap();
        assert_eq!(retention.when_scaled.as_deref(), Some("Delete"));
        assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));

        let c = container(&sts);
        assert_eq!(c.image.as_deref(), Some("kudu:1"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(c.command.as_deref(), Some(&["kudu".to_owned()][..]));
        assert_eq!(
            c.args.as_ref().unwrap(),
            &[
                "master",
                "run",
                "--data-dir=/var/lib/kudu",
                "--rpc-addr=$(POD_IP):7051",
                "--advertised-addr=$(KUDU_ADVERTISED_ADDR)",
                "--master-addresses=$(KUDU_MASTER_ADDRESSES)",
                "--certs-dir=/etc/kudu/certs",
                "--http-addr=$(POD_IP):8051",
                "--location-mapping-cmd=kudu location",
                "--raft-heartbeat-ms=500",
            ]
        );
        assert_eq!(
            env_value(c, "KUDU_ADVERTISED_ADDR").value.as_deref(),
            Some("$(POD_NAME).demo-masters.db.svc.cluster.local:7051")
        );
        // Variables must precede the ones that reference them.
        let env_names: Vec<_> = c.env.as_ref().unwrap().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            env_names,
            [
                "POD_NAME",
                "POD_IP",
                "KUDU_ADVERTISED_ADDR",
                "KUDU_MASTER_ADDRESSES",
                "KUDU_CERTS_DIR",
                "TMPDIR",
                "KUDU_MASTERS",
                "POD_NAMESPACE",
                "KUDU_LOCATION_LABELS"
            ]
        );
        let addresses = env_value(c, "KUDU_MASTER_ADDRESSES").value_from.as_ref().unwrap();
        let key_ref = addresses.config_map_key_ref.as_ref().unwrap();
        assert_eq!((key_ref.name.as_str(), key_ref.key.as_str()), ("demo-config", "master-addresses"));

        let probe = c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(probe.path.as_deref(), Some("/healthz"));
        assert_eq!(probe.port, IntOrString::String("http".to_owned()));
        let pre_stop = c.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
        assert_eq!(
            pre_stop.exec.as_ref().unwrap().command.as_ref().unwrap(),
            &["sh", "-c", "exec kudu master step-down --if-leader \"$KUDU_ADVERTISED_ADDR\""]
        );
        // The CLI in master pods is an administrator; the server presents its own certificate.
        assert_eq!(env_value(c, "KUDU_CERTS_DIR").value.as_deref(), Some("/etc/kudu/admin"));
        assert_eq!(pod_spec(&sts).service_account_name.as_deref(), Some("demo-master"));
        // The image runs as non-root user 10001; the volume must be writable for its group.
        let security = pod_spec(&sts).security_context.as_ref().unwrap();
        assert_eq!((security.fs_group, security.run_as_non_root), (Some(10001), Some(true)));

        let claims = s.volume_claim_templates.as_ref().unwrap();
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
        let claim = claims[0].spec.as_ref().unwrap();
        assert_eq!(claim.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(claim.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0, "5Gi");
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].name, "data");
        let mounts: Vec<_> =
            c.volume_mounts.as_ref().unwrap().iter().map(|m| (m.name.as_str(), m.mount_path.as_str())).collect();
        assert_eq!(
            mounts,
            [
                ("data", "/var/lib/kudu"),
                ("tmp", "/var/tmp/kudu"),
                ("certs", "/etc/kudu/certs"),
                ("admin-certs", "/etc/kudu/admin")
            ]
        );
        let secrets: Vec<_> = pod_spec(&sts)
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .filter_map(|v| v.secret.as_ref()?.secret_name.as_deref())
            .collect();
        assert_eq!(secrets, ["demo-master-tls", "demo-admin-tls"]);
    }

    #[test]
    fn tls_disabled_runs_plaintext_without_certificates() {
        let spec = spec(
            "image: kudu:1
tls: {mode: Disabled}
",
        );
        for sts in [master_statefulset(&spec, 3), tserver_statefulset(&spec)] {
            let c = container(&sts);
            assert!(c.args.as_ref().unwrap().contains(&"--insecure".to_owned()));
            assert!(!c.args.as_ref().unwrap().iter().any(|a| a.starts_with("--certs-dir")));
            assert_eq!(env_value(c, "KUDU_INSECURE").value.as_deref(), Some("1"));
            let mounts: Vec<_> = c.volume_mounts.as_ref().unwrap().iter().map(|m| m.name.as_str()).collect();
            assert_eq!(mounts, ["data", "tmp"]);
            assert!(pod_spec(&sts).volumes.as_ref().unwrap().iter().all(|v| v.secret.is_none()));
        }
    }

    #[test]
    fn tablet_servers_mount_their_own_certificate_only() {
        let spec = spec(
            "image: kudu:1
",
        );
        let sts = tserver_statefulset(&spec);
        let c = container(&sts);
        assert!(c.args.as_ref().unwrap().contains(&"--certs-dir=/etc/kudu/certs".to_owned()));
        assert_eq!(env_value(c, "KUDU_CERTS_DIR").value.as_deref(), Some("/etc/kudu/certs"));
        let secrets: Vec<_> =
            pod_spec(&sts).volumes.as_ref().unwrap().iter().filter_map(|v| v.secret.as_ref()).collect();
        assert_eq!(secrets.len(), 1);
        let secret = secrets[0];
        assert_eq!((secret.secret_name.as_deref(), secret.default_mode), (Some("demo-tserver-tls"), Some(0o440)));
    }

    #[test]
    fn pods_of_both_roles_are_hardened() {
        let spec = spec("image: kudu:1\n");
        for sts in [master_statefulset(&spec, 3), tserver_statefulset(&spec)] {
            let c = container(&sts);
            let sc = c.security_context.as_ref().unwrap();
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            assert_eq!(sc.privileged, Some(false));
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            assert_eq!(sc.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_owned()][..]));
            assert_eq!(sc.capabilities.as_ref().unwrap().add, None);
            assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
            assert_eq!((sc.run_as_non_root, sc.run_as_user, sc.run_as_group), (Some(true), Some(10001), Some(10001)));
            let pod = pod_spec(&sts);
            let psc = pod.security_context.as_ref().unwrap();
            assert_eq!(psc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
            assert_eq!((psc.run_as_user, psc.run_as_group, psc.fs_group), (Some(10001), Some(10001), Some(10001)));
            // The read-only root leaves the data volume and a bounded scratch directory,
            // which TMPDIR names, as the only writable places.
            let mounts: Vec<_> = c
                .volume_mounts
                .as_ref()
                .unwrap()
                .iter()
                .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
                .collect();
            // Besides the read-only certificate mounts.
            let writable: Vec<_> = mounts.iter().filter(|m| m.2 != Some(true)).cloned().collect();
            assert_eq!(writable, [("data", "/var/lib/kudu", None), ("tmp", "/var/tmp/kudu", None)]);
            let volumes = pod.volumes.as_ref().unwrap();
            let empty_dirs: Vec<_> = volumes.iter().filter(|v| v.empty_dir.is_some()).collect();
            assert_eq!(empty_dirs.len(), 1);
            let empty_dir = empty_dirs[0].empty_dir.as_ref().unwrap();
            assert_eq!(
                (empty_dirs[0].name.as_str(), empty_dir.size_limit.as_ref().unwrap().0.as_str()),
                ("tmp", "64Mi")
            );
            assert!(volumes.iter().all(|v| v.empty_dir.is_some() || v.secret.is_some()));
            assert_eq!(env_value(c, "TMPDIR").value.as_deref(), Some("/var/tmp/kudu"));
        }
    }

    #[test]
    fn replicas_come_from_the_input_not_the_spec() {
        let spec = spec("image: kudu:1\nmasters: {replicas: 5}\n");
        let sts = master_statefulset(&spec, 3);
        assert_eq!(sts.spec.unwrap().replicas, Some(3));
    }

    #[test]
    fn selector_matches_template_labels() {
        let spec = spec("image: kudu:1\n");
        for sts in [master_statefulset(&spec, 3), tserver_statefulset(&spec)] {
            let s = sts.spec.as_ref().unwrap();
            let selector = s.selector.match_labels.as_ref().unwrap();
            let labels = s.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
            for (k, v) in selector {
                assert_eq!(labels.get(k), Some(v), "{k}");
            }
        }
    }

    #[test]
    fn default_spread_over_zones_and_hosts() {
        let spec = spec("image: kudu:1\n");
        let sts = master_statefulset(&spec, 3);
        let spread = pod_spec(&sts).topology_spread_constraints.as_ref().unwrap();
        let keys: Vec<_> = spread.iter().map(|c| c.topology_key.as_str()).collect();
        assert_eq!(keys, ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]);
        for c in spread {
            assert_eq!(c.max_skew, 1);
            assert_eq!(
                c.label_selector.as_ref().unwrap().match_labels.as_ref(),
                Some(&names::selector_labels("demo", Role::Master))
            );
        }
    }

    #[test]
    fn masters_spread_over_zones_hard_only_when_asked() {
        let spec = spec("image: kudu:1\n");
        let when = |sts: &StatefulSet, key: &str| {
            let spread = pod_spec(sts).topology_spread_constraints.clone().unwrap();
            spread.into_iter().find(|c| c.topology_key == key).unwrap().when_unsatisfiable
        };
        let soft = master_statefulset_spread(&spec, 3, false);
        assert_eq!(when(&soft, "topology.kubernetes.io/zone"), "ScheduleAnyway");
        let hard = master_statefulset_spread(&spec, 3, true);
        assert_eq!(when(&hard, "topology.kubernetes.io/zone"), "DoNotSchedule");
        // Hosts stay soft; tablet servers are never forced.
        assert_eq!(when(&hard, "kubernetes.io/hostname"), "ScheduleAnyway");
        assert_eq!(when(&tserver_statefulset(&spec), "topology.kubernetes.io/zone"), "ScheduleAnyway");
        // Through the build inputs.
        let inputs = BuildInputs { hard_master_zone_spread: true, ..BuildInputs::initial(&spec) };
        let built = build_all(&spec, inputs).unwrap();
        let masters = built
            .iter()
            .find_map(|o| match o {
                Object::StatefulSet(s) if s.metadata.name.as_deref() == Some("demo-master") => Some(s),
                _ => None,
            })
            .unwrap();
        assert_eq!(when(masters, "topology.kubernetes.io/zone"), "DoNotSchedule");
    }

    #[test]
    fn tserver_replicas_come_from_the_build_inputs() {
        let spec = spec("image: kudu:1\ntservers: {replicas: 3}\n");
        let inputs = BuildInputs { tserver_statefulset_replicas: 5, ..BuildInputs::initial(&spec) };
        let built = build_all(&spec, inputs).unwrap();
        let replicas = built.iter().find_map(|o| match o {
            Object::StatefulSet(s) if s.metadata.name.as_deref() == Some("demo-tserver") => s.spec.as_ref()?.replicas,
            _ => None,
        });
        assert_eq!(replicas, Some(5), "a scale-down waiting for the drain keeps the size");
    }

    #[test]
    fn pod_overrides_reach_the_pod_template() {
        let spec = spec(
            "image: kudu:1\ntservers:\n  podOverrides:\n    nodeSelector: {disk: ssd}\n    annotations: {a: b}\n    tolerations: [{key: dedicated, operator: Exists}]\n",
        );
        let sts = tserver_statefulset(&spec);
        let template = &sts.spec.as_ref().unwrap().template;
        let pod = template.spec.as_ref().unwrap();
        assert_eq!(pod.node_selector.as_ref().unwrap()["disk"], "ssd");
        assert_eq!(pod.tolerations.as_ref().unwrap()[0].key.as_deref(), Some("dedicated"));
        assert_eq!(template.metadata.as_ref().unwrap().annotations.as_ref().unwrap()["a"], "b");
        // The masters did not get the tablet servers' overrides.
        let masters = master_statefulset(&spec, 3);
        assert_eq!(pod_spec(&masters).node_selector, None);
    }

    #[test]
    fn tserver_statefulset_key_fields() {
        let spec = spec("image: kudu:1\ntservers: {replicas: 4}\n");
        let sts = tserver_statefulset(&spec);
        let s = sts.spec.as_ref().unwrap();
        assert_eq!(sts.metadata.name.as_deref(), Some("demo-tserver"));
        assert_eq!(s.replicas, Some(4));
        assert_eq!(s.service_name.as_deref(), Some("demo-tservers"));
        let retention = s.persistent_volume_claim_retention_policy.as_ref().unwrap();
        assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
        let c = container(&sts);
        let args = c.args.as_ref().unwrap();
        assert_eq!(&args[..2], ["tserver", "run"]);
        assert!(args.contains(&"--master-addresses=$(KUDU_MASTER_ADDRESSES)".to_owned()));
        assert!(!args.iter().any(|a| a.starts_with("--location-mapping-cmd")));
        assert_eq!(
            env_value(c, "KUDU_ADVERTISED_ADDR").value.as_deref(),
            Some("$(POD_NAME).demo-tservers.db.svc.cluster.local:7050")
        );
        assert!(c.lifecycle.is_none());
        assert_eq!(pod_spec(&sts).automount_service_account_token, Some(false));
        assert_eq!(pod_spec(&sts).service_account_name, None);
    }
}
