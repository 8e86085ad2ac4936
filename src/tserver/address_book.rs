//! Where the tablet servers hosting peers of this server's replicas are reached: a uuid to
//! RPC address map, fed by the leader master's heartbeat answers (`peer_addresses`) and
//! read by every tablet Raft group before each RPC, so a moved server is followed at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::raft_types::{ReplicaNode, TabletTypeConfig};
use crate::raft::NodeAddress;

/// Addresses of tablet servers by uuid. Cheap to clone (clones share the map).
#[derive(Clone, Default)]
pub struct AddressBook {
    addresses: Arc<RwLock<HashMap<String, String>>>,
}

impl AddressBook {
    /// A book knowing only this server's own address.
    pub fn new(own_uuid: &str, own_address: &str) -> Self {
        let book = Self::default();
        book.set(own_uuid, own_address);
        book
    }

    /// Records (or updates) the address of tablet server `uuid`.
    pub fn set(&self, uuid: &str, address: &str) {
        if uuid.is_empty() || address.is_empty() {
            return;
        }
        let mut map = self.addresses.write().unwrap_or_else(|p| p.into_inner());
        if map.get(uuid).map(String::as_str) != Some(address) {
            tracing::debug!(%uuid, %address, "tablet server address learned");
            map.insert(uuid.to_string(), address.to_string());
        }
    }

    /// The address of tablet server `uuid`, if known.
    pub fn get(&self, uuid: &str) -> Option<String> {
        self.addresses.read().unwrap_or_else(|p| p.into_inner()).get(uuid).cloned()
    }
}

impl NodeAddress<TabletTypeConfig> for AddressBook {
    fn address(&self, _: &u64, node: &ReplicaNode) -> Option<String> {
        self.get(&node.uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_found_by_uuid_and_follow_moves() {
        let book = AddressBook::new("me", "127.0.0.1:1");
        let node = |uuid: &str| ReplicaNode { uuid: uuid.into() };
        assert_eq!(book.address(&1, &node("me")).as_deref(), Some("127.0.0.1:1"));
        assert_eq!(book.address(&2, &node("peer")), None);
        book.set("peer", "127.0.0.2:7");
        book.set("peer", "127.0.0.3:7");
        book.set("", "x:1");
        assert_eq!(book.address(&2, &node("peer")).as_deref(), Some("127.0.0.3:7"));
    }
}
