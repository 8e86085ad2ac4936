//! Spreading masters across zones (pure): hard when the cluster has at least as many
//! zones (node label `topology.kubernetes.io/zone`) as masters, so no two masters share a
//! zone; soft otherwise, so the masters can still all be scheduled. A majority of masters
//! in one zone is reported as a condition: losing that zone loses the master quorum.

use std::collections::BTreeMap;

/// The node label naming a node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Whether no two of `masters` masters may share a zone, given `zones` zones with Ready
/// nodes.
pub fn hard_master_spread(zones: usize, masters: i32) -> bool {
    usize::try_from(masters).is_ok_and(|m| m > 0 && zones >= m)
}

/// The zone holding a majority of the `masters` masters, and how many it holds, given
/// the zone of each scheduled master pod (`None`: its node has no zone label). Only for
/// more than one master: a single master is always alone.
pub fn majority_zone<'a>(
    master_zones: impl IntoIterator<Item = Option<&'a str>>,
    masters: i32,
) -> Option<(&'a str, usize)> {
    let masters = usize::try_from(masters).ok().filter(|m| *m > 1)?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for zone in master_zones.into_iter().flatten() {
        *counts.entry(zone).or_default() += 1;
    }
    counts.into_iter().find(|(_, count)| *count * 2 > masters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_only_with_a_zone_per_master() {
        assert!(hard_master_spread(3, 3));
        assert!(hard_master_spread(5, 3));
        assert!(!hard_master_spread(2, 3));
        assert!(!hard_master_spread(0, 1));
        assert!(hard_master_spread(1, 1));
    }

    #[test]
    fn a_majority_in_one_zone_is_found() {
        assert_eq!(majority_zone([Some("a"), Some("a"), Some("b")], 3), Some(("a", 2)));
        assert_eq!(majority_zone([Some("a"), Some("b"), Some("c")], 3), None);
        assert_eq!(majority_zone([Some("a"), Some("a"), Some("b"), Some("b"), Some("c")], 5), None);
        assert_eq!(majority_zone([Some("a"), None, None], 3), None);
        assert_eq!(majority_zone([Some("a")], 1), None);
    }
}
