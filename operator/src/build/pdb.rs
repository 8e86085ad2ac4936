//! PodDisruptionBudgets: voluntary disruptions (drains) take one pod of a role at a time,
//! so a drain never costs the masters their quorum.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::{self, Role};
use super::owned_meta;
use crate::validate::ValidatedSpec;

/// At most one unavailable pod of `role`.
pub fn pod_disruption_budget(spec: &ValidatedSpec, role: Role) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: owned_meta(spec, names::pdb_name(&spec.name, role), Some(role)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(names::selector_labels(&spec.name, role)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::spec;

    #[test]
    fn masters_allow_one_unavailable() {
        let spec = spec("image: kudu:1\n");
        let pdb = pod_disruption_budget(&spec, Role::Master);
        let s = pdb.spec.unwrap();
        assert_eq!(s.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(s.min_available, None);
        assert_eq!(s.selector.unwrap().match_labels.unwrap()[names::LABEL_COMPONENT], "master");
    }
}
