//! The cluster ConfigMap: master addresses and topology label keys, read by the pods
//! through environment variables at start.
//!
//! Pods read it only when they start, so resizing the master group never restarts the
//! masters already running; a new master starts with the full desired address list.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::names::{self, CONFIG_LOCATION_LABELS, CONFIG_MASTER_ADDRESSES};
use super::owned_meta;
use crate::validate::ValidatedSpec;

/// The cluster ConfigMap.
pub fn config_map(spec: &ValidatedSpec) -> ConfigMap {
    ConfigMap {
        metadata: owned_meta(spec, names::config_map_name(&spec.name), None),
        data: Some(BTreeMap::from([
            (CONFIG_MASTER_ADDRESSES.to_owned(), names::master_addresses(spec, spec.masters.replicas)),
            (CONFIG_LOCATION_LABELS.to_owned(), spec.location_labels.join(",")),
        ])),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::spec;

    #[test]
    fn lists_desired_masters_and_location_labels() {
        let spec = spec("image: kudu:1\nmasters: {replicas: 3}\ntopology: {locationLabels: [rack]}\n");
        let data = config_map(&spec).data.unwrap();
        assert_eq!(
            data[CONFIG_MASTER_ADDRESSES],
            "demo-master-0.demo-masters.db.svc.cluster.local:7051,\
             demo-master-1.demo-masters.db.svc.cluster.local:7051,\
             demo-master-2.demo-masters.db.svc.cluster.local:7051"
        );
        assert_eq!(data[CONFIG_LOCATION_LABELS], "rack");
    }

    #[test]
    fn default_location_labels_are_region_then_zone() {
        let data = config_map(&spec("image: kudu:1\n")).data.unwrap();
        assert_eq!(data[CONFIG_LOCATION_LABELS], "topology.kubernetes.io/region,topology.kubernetes.io/zone");
    }
}
