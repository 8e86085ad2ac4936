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
