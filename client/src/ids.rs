//! Identifier newtypes shared by masters, tablet servers and clients.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Raft node id of a master: random, persisted in its data directory, never reused.
pub type MasterId = u64;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// A fresh random id (32 hex digits, as Kudu prints them).
            pub fn random() -> Self {
                Self(uuid::Uuid::new_v4().simple().to_string())
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }
    };
}

string_id!(
    /// Id of a table; stable across renames.
    TableId
);
string_id!(
    /// Id of a tablet (one partition of a table).
    TabletId
);
string_id!(
    /// Persistent uuid of a tablet server.
    TServerId
);

/// Generates a random, non-zero master node id.
pub fn random_master_id() -> MasterId {
    loop {
        let id: u64 = rand::random();
        // Keep ids positive in signed representations (JSON consumers, Prometheus labels).
        let id = id >> 1;
        if id != 0 {
            return id;
        }
    }
}

impl TServerId {
    /// The Raft node id that tablet Raft groups use for the replica on this tablet server.
    ///
    /// Deterministic (every process derives the same id from the uuid, across versions and
    /// platforms: FNV-1a over the uuid's bytes, then a SplitMix64 finalizer), non-zero, and
    /// below 2^63 so it stays positive as an `i64`. Ids are 63-bit hashes: two tablet servers
    /// collide with probability about n²/2^64 for n servers (about 5·10⁻¹⁴ for 1,000
    /// servers), and only a collision inside one tablet's replica set would matter.
    pub fn raft_node_id(&self) -> u64 {
        const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = self.0.bytes().fold(FNV_OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME));
        hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        hash ^= hash >> 31;
        match hash >> 1 {
            0 => 1,
            id => id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_node_ids_are_stable_positive_and_distinct() {
        let a = TServerId::from("8b0e3c4f9a2d4c51b7e6f1a2b3c4d5e6");
        assert_eq!(a.raft_node_id(), a.clone().raft_node_id());
        // Pinned: a change of the function would rename every replica of existing clusters.
        assert_eq!(TServerId::from("").raft_node_id(), 0x7a95_0af4_d4da_f44d);
        assert_eq!(TServerId::from("ts-1").raft_node_id(), 0x5fa8_dc71_e2b1_285a);
        let ids: std::collections::BTreeSet<u64> =
            (0..10_000).map(|_| TServerId::random().raft_node_id()).inspect(|id| assert!(*id != 0)).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| i64::try_from(*id).is_ok()));
        assert_ne!(TServerId::from("ts-1").raft_node_id(), TServerId::from("ts-2").raft_node_id());
    }
}
