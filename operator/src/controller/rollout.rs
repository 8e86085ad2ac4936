//! Ordered rollout: the tablet servers' StatefulSet changes only after the masters'
//! rollout finished, so an upgrade never restarts both roles at once (pure).

use k8s_openapi::api::apps::v1::StatefulSet;

/// Whether `statefulset` finished rolling out its current spec: the controller saw the
/// latest generation and every replica is updated and ready. With the `OnDelete` strategy
/// Kubernetes never advances `currentRevision`, so the updated count is what tells.
pub fn rolled_out(statefulset: &StatefulSet) -> bool {
    let desired = statefulset.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = statefulset.status.as_ref() else {
        return false;
    };
    let observed_latest = match (statefulset.metadata.generation, status.observed_generation) {
        (Some(generation), Some(observed)) => observed >= generation,
        (None, _) => true,
        (Some(_), None) => false,
    };
    observed_latest && status.updated_replicas.unwrap_or(0) >= desired && status.ready_replicas.unwrap_or(0) >= desired
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{StatefulSetSpec, StatefulSetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn sts(generation: i64, status: StatefulSetStatus) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta { generation: Some(generation), ..ObjectMeta::default() },
            spec: Some(StatefulSetSpec { replicas: Some(3), ..StatefulSetSpec::default() }),
            status: Some(status),
        }
    }

    fn done() -> StatefulSetStatus {
        StatefulSetStatus {
            observed_generation: Some(2),
            replicas: 3,
            ready_replicas: Some(3),
            updated_replicas: Some(3),
            current_revision: Some("r2".to_owned()),
            update_revision: Some("r2".to_owned()),
            ..StatefulSetStatus::default()
        }
    }

    #[test]
    fn finished_rollout() {
        assert!(rolled_out(&sts(2, done())));
    }

    #[test]
    fn unobserved_generation_is_not_rolled_out() {
        assert!(!rolled_out(&sts(3, done())));
    }

    #[test]
    fn pending_revision_or_unready_pods_are_not_rolled_out() {
        let mut status = done();
        status.update_revision = Some("r3".to_owned());
        status.updated_replicas = Some(2);
        assert!(!rolled_out(&sts(2, status)));
        // OnDelete: `currentRevision` stays behind, every pod is updated.
        let mut status = done();
        status.current_revision = Some("r1".to_owned());
        assert!(rolled_out(&sts(2, status)));
        let mut status = done();
        status.ready_replicas = Some(2);
        assert!(!rolled_out(&sts(2, status)));
        let mut status = done();
        status.updated_replicas = Some(1);
        assert!(!rolled_out(&sts(2, status)));
    }

    #[test]
    fn no_status_yet_is_not_rolled_out() {
        let mut s = sts(1, done());
        s.status = None;
        assert!(!rolled_out(&s));
    }
}
