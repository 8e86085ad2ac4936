//! What complies with the placement policy: no location holds a majority of a tablet's
//! replicas. Pure arithmetic on per-location replica counts.
//!
//! The policy applies to clusters whose tablet servers span at least two locations. In a
//! single location (in particular a cluster without a mapping command, where every server
//! shares [`Location::default_location`]) no placement can spread replicas, so none is a
//! violation.

use std::collections::BTreeMap;

use crate::location::Location;

/// Most replicas of a tablet with `replication_factor` replicas that one location may hold
/// without holding a majority: 1 of 3, 2 of 5. A single replica is always a majority of
/// one, so with replication factor 1 the policy cannot apply and one replica is allowed.
pub fn max_per_location(replication_factor: usize) -> usize {
    match replication_factor {
        0 | 1 => replication_factor,
        n => n / 2,
    }
}

/// Whether the policy applies to a cluster whose servers are in `locations`: at least two
/// distinct locations.
pub fn applies<'a>(locations: impl IntoIterator<Item = &'a Location>) -> bool {
    let mut locations = locations.into_iter();
    let Some(first) = locations.next() else { return false };
    locations.any(|l| l != first)
}

/// Whether one more replica fits in a location already holding `count` of the tablet's
/// replicas.
pub fn has_room(count: usize, replication_factor: usize) -> bool {
    count < max_per_location(replication_factor)
}

/// Whether per-location replica counts of a tablet comply with the policy.
pub fn complies(counts: impl IntoIterator<Item = usize>, replication_factor: usize) -> bool {
    let max = max_per_location(replication_factor);
    counts.into_iter().all(|count| count <= max)
}

/// How many of a tablet's replicas each location holds.
pub fn counts_by_location<'a>(locations: impl IntoIterator<Item = &'a Location>) -> BTreeMap<&'a Location, usize> {
    let mut counts = BTreeMap::new();
    for location in locations {
        *counts.entry(location).or_default() += 1;
    }
    counts
}

/// The location holding a majority of a tablet's replicas (given their locations), if any:
/// a policy violation.
pub fn majority_location<'a>(
    locations: impl IntoIterator<Item = &'a Location>,
    replication_factor: usize,
) -> Option<&'a Location> {
    let max = max_per_location(replication_factor);
    counts_by_location(locations).into_iter().find(|(_, count)| *count > max).map(|(location, _)| location)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(s: &str) -> Location {
        s.parse().expect("location")
    }

    #[test]
    fn caps_are_below_a_majority() {
        assert_eq!([1, 2, 3, 4, 5, 7].map(max_per_location), [1, 1, 1, 2, 2, 3]);
        assert!(has_room(0, 3) && !has_room(1, 3));
        assert!(has_room(1, 5) && !has_room(2, 5));
        assert!(has_room(0, 1), "a single replica goes anywhere");
    }

    #[test]
    fn majorities_are_found() {
        let (l0, l1, l2) = (loc("/L0"), loc("/L1"), loc("/L2"));
        assert_eq!(majority_location([&l0, &l1, &l2], 3), None);
        assert_eq!(majority_location([&l0, &l0, &l1], 3), Some(&l0));
        assert_eq!(majority_location([&l0, &l0, &l1, &l1, &l2], 5), None);
        assert_eq!(majority_location([&l1, &l0, &l1, &l2, &l1], 5), Some(&l1));
        assert_eq!(majority_location([&l0], 1), None);
        assert!(complies([1, 1, 1], 3) && !complies([2, 1], 3));
    }

    #[test]
    fn the_policy_needs_two_locations() {
        let (l0, l1, default) = (loc("/L0"), loc("/L1"), Location::default_location());
        assert!(!applies([]));
        assert!(!applies([&default, &default, &default]));
        assert!(!applies([&l0, &l0]));
        assert!(applies([&l0, &l0, &l1]));
    }
}
