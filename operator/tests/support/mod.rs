//! Helpers shared by the integration tests.

// Each test crate uses a different part of these helpers.
#![allow(dead_code)]

pub mod loopback;
pub mod schema;

use kudu_operator::crd::{KuduCluster, KuduClusterSpec};

/// A `KuduCluster` named `demo` in namespace `db`, with a uid, and the given spec YAML.
pub fn cluster(spec_yaml: &str) -> KuduCluster {
    let spec: KuduClusterSpec = serde_saphyr::from_str(spec_yaml).expect("spec YAML parses");
    let mut cluster = KuduCluster::new("demo", spec);
    cluster.metadata.namespace = Some("db".to_owned());
    cluster.metadata.uid = Some("uid-1".to_owned());
    cluster
}
