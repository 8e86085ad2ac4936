//! Race-free first start. Masters started together with the same address list learn each
//! other's persisted node ids; only the master with the lowest address initializes the Raft
//! group, with all of them as voters. A master that finds any peer already initialized never
//! initializes: it waits until the cluster adds it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;

use super::node::MasterNode;
use crate::ids::MasterId;

/// How often an uninitialized master polls its peers.
const POLL_INTERVAL: Duration = Duration::from_millis(300);

/// What a bootstrap round concluded.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// This master initializes the group with these members.
    Initialize(BTreeMap<MasterId, String>),
    /// Another master will (or did) initialize; wait to receive the membership.
    Wait(String),
}

/// Decides from the peers' answers; pure so it is easy to test.
fn decide(
    own_address: &str,
    own_id: MasterId,
    addresses: &[String],
    answers: &[(String, Option<(MasterId, bool)>)],
) -> Decision {
    if let Some((addr, _)) = answers.iter().find(|(_, a)| matches!(a, Some((_, true)))) {
        return Decision::Wait(format!("{addr} already belongs to a cluster; waiting to be added"));
    }
    if !addresses.iter().any(|a| a == own_address) {
        return Decision::Wait(format!(
            "own address {own_address} is not in --master-addresses; waiting to be added to an existing cluster"
        ));
    }
    let unreachable: Vec<&str> = answers.iter().filter(|(_, a)| a.is_none()).map(|(addr, _)| addr.as_str()).collect();
    if !unreachable.is_empty() {
        return Decision::Wait(format!("waiting for masters {} to start", unreachable.join(", ")));
    }
    let lowest = addresses.iter().min().map(String::as_str).unwrap_or(own_address);
    if lowest != own_address {
        return Decision::Wait(format!("waiting for {lowest} to initialize the cluster"));
    }
    let mut members: BTreeMap<MasterId, String> =
        answers.iter().filter_map(|(addr, a)| a.map(|(id, _)| (id, addr.clone()))).collect();
    members.insert(own_id, own_address.to_string());
    Decision::Initialize(members)
}

/// Runs until this master holds a Raft membership.
pub async fn run(node: Arc<MasterNode>) {
    let mut last_reason = String::new();
    loop {
        if node.raft.is_initialized().await.unwrap_or(false) {
            return;
        }
        let peers: Vec<String> = node.config.master_addresses.iter().filter(|a| **a != node.address).cloned().collect();
        let mut answers = Vec::with_capacity(peers.len());
        for peer in peers {
            let answer = match node.fetch_node_info(&peer).await {
                Ok(info) => Some((info.node_id, info.initialized)),
                Err(_) => None,
            };
            answers.push((peer, answer));
        }
        match decide(&node.address, node.id, &node.config.master_addresses, &answers) {
            Decision::Initialize(members) => {
                let nodes: BTreeMap<MasterId, BasicNode> =
                    members.iter().map(|(id, addr)| (*id, BasicNode::new(addr))).collect();
                tracing::info!(?members, "initializing the master Raft group");
                match node.raft.initialize(nodes).await {
                    Ok(()) => return,
                    Err(e) => tracing::warn!(error = %e, "initialize failed; retrying"),
                }
            }
            Decision::Wait(reason) => {
                if reason != last_reason {
                    tracing::info!("{reason}");
                    last_reason = reason;
                }
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lowest_address_initializes_once_all_answer() {
        let all = addrs(&["a:1", "b:1", "c:1"]);
        let answers = vec![("b:1".to_string(), Some((2, false))), ("c:1".to_string(), Some((3, false)))];
        let expected = BTreeMap::from([(1, "a:1".to_string()), (2, "b:1".to_string()), (3, "c:1".to_string())]);
        assert_eq!(decide("a:1", 1, &all, &answers), Decision::Initialize(expected));
        let answers_b = vec![("a:1".to_string(), Some((1, false))), ("c:1".to_string(), Some((3, false)))];
        assert!(matches!(decide("b:1", 2, &all, &answers_b), Decision::Wait(_)));
    }

    #[test]
    fn waits_for_missing_peers_and_existing_clusters() {
        let all = addrs(&["a:1", "b:1"]);
        assert!(matches!(decide("a:1", 1, &all, &[("b:1".into(), None)]), Decision::Wait(r) if r.contains("b:1")));
        assert!(matches!(
            decide("a:1", 1, &all, &[("b:1".into(), Some((2, true)))]),
            Decision::Wait(r) if r.contains("already belongs")
        ));
        // A master not in the list never initializes.
        assert!(matches!(decide("z:1", 9, &all, &[]), Decision::Wait(_)));
    }

    #[test]
    fn single_master_initializes_alone() {
        let all = addrs(&["a:1"]);
        assert_eq!(decide("a:1", 7, &all, &[]), Decision::Initialize(BTreeMap::from([(7, "a:1".to_string())])));
    }
}
