//! Replica placement: which tablet servers get a new tablet's replicas.

use std::collections::HashMap;

use crate::ids::TServerId;

/// A live tablet server as placement sees it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub id: TServerId,
    pub replicas: usize,
}

/// Placement could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("not enough live tablet servers: replication factor {needed} needs {needed}, only {live} live")]
    NotEnoughTabletServers { needed: usize, live: usize },
}

/// Places `replication_factor` replicas of each of `num_tablets` tablets on distinct servers,
/// least loaded first (ties broken by id, so the choice is reproducible).
pub fn place_replicas(
    candidates: &[Candidate],
    num_tablets: usize,
    replication_factor: usize,
) -> Result<Vec<Vec<TServerId>>, PlacementError> {
    if candidates.len() < replication_factor {
        return Err(PlacementError::NotEnoughTabletServers { needed: replication_factor, live: candidates.len() });
    }
    let mut load: HashMap<&TServerId, usize> = candidates.iter().map(|c| (&c.id, c.replicas)).collect();
    let mut placements = Vec::with_capacity(num_tablets);
    for _ in 0..num_tablets {
        let mut order: Vec<&TServerId> = candidates.iter().map(|c| &c.id).collect();
        order.sort_by(|a, b| load[a].cmp(&load[b]).then_with(|| a.cmp(b)));
        let chosen: Vec<TServerId> = order.into_iter().take(replication_factor).cloned().collect();
        for id in &chosen {
            if let Some(n) = load.get_mut(id) {
                *n += 1;
            }
        }
        placements.push(chosen);
    }
    Ok(placements)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(loads: &[usize]) -> Vec<Candidate> {
        loads.iter().enumerate().map(|(i, &r)| Candidate { id: TServerId(format!("ts{i}")), replicas: r }).collect()
    }

    #[test]
    fn spreads_evenly_and_distinct() {
        let placed = place_replicas(&cands(&[0, 0, 0, 0]), 6, 3).expect("placement");
        let mut counts = HashMap::new();
        for replicas in &placed {
            let mut distinct = replicas.clone();
            distinct.dedup();
            assert_eq!(distinct.len(), 3);
            for r in replicas {
                *counts.entry(r.clone()).or_insert(0) += 1;
            }
        }
        // 18 replicas on 4 servers: 4 or 5 each.
        assert!(counts.values().all(|&n| n == 4 || n == 5), "{counts:?}");
    }

    #[test]
    fn prefers_least_loaded() {
        let placed = place_replicas(&cands(&[10, 0, 5]), 1, 1).expect("placement");
        assert_eq!(placed[0], vec![TServerId::from("ts1")]);
    }

    #[test]
    fn too_few_servers_is_an_error() {
        assert_eq!(
            place_replicas(&cands(&[0, 0]), 1, 3),
            Err(PlacementError::NotEnoughTabletServers { needed: 3, live: 2 })
        );
    }
}
