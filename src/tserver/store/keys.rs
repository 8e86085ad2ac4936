//! Every RocksDB column family, key prefix and key encoding of a tablet server, in one place.
//!
//! One database holds the server's own records (`meta`, `replicas`) and every tablet replica
//! it hosts. Per-tablet column families key everything under the tablet's
//! [`group_prefix`], so one tablet's keys form one contiguous range
//! (`[prefix, prefix_end(prefix))`) that no other tablet's keys enter:
//!
//! | column family | key | value |
//! |---|---|---|
//! | `meta` | `uuid` | the server's uuid (UTF-8) |
//! | `meta` | `cluster_id` | the id of the cluster the server joined (UTF-8) |
//! | `replicas` | tablet id | `ReplicaMeta` (JSON) |
//! | `tablet_sm_meta` | prefix + `last_applied` | applied `LogId` (JSON) |
//! | `tablet_sm_meta` | prefix + `membership` | applied `StoredMembership` (JSON) |
//! | `tablet_rows` | prefix + encoded primary key | row value (`tablet::row` encoding) |
//! | `tablet_records` | prefix + `s` | the schema record (JSON `TabletRecord`) |
//! | `tablet_records` | prefix + `c` + client id | a result-tracker record (JSON `TabletRecord`) |

use crate::raft::GroupPrefix;
use crate::tablet::{Mutation, TabletRecord};

/// Column family of the server's own records (its uuid), shared with the Raft groups' meta
/// records: `uuid` is shorter than 118 bytes, so no group prefix (length byte `u`) starts it.
pub const CF_META: &str = crate::raft::keys::CF_META;
/// Column family of the replicas the server hosts, keyed by tablet id.
pub const CF_REPLICAS: &str = "replicas";
/// Column family of each tablet's state machine metadata: last applied log id, membership.
pub const CF_TABLET_SM_META: &str = "tablet_sm_meta";
/// Column family of each tablet's rows.
pub const CF_TABLET_ROWS: &str = "tablet_rows";
/// Column family of each tablet's schema and result-tracker records.
pub const CF_TABLET_RECORDS: &str = "tablet_records";

/// The column families holding a tablet's state machine; all keyed by [`group_prefix`].
pub const TABLET_SM_CFS: [&str; 3] = [CF_TABLET_SM_META, CF_TABLET_ROWS, CF_TABLET_RECORDS];

/// The column families the database is opened with besides the Raft ones
/// ([`crate::raft::keys::RAFT_CFS`], whose `meta` also holds the server's uuid).
pub const SERVER_CFS: [&str; 4] = [CF_REPLICAS, CF_TABLET_SM_META, CF_TABLET_ROWS, CF_TABLET_RECORDS];

/// Key of the server's uuid in [`CF_META`].
pub const META_UUID: &[u8] = b"uuid";
/// Key of the id of the cluster the server joined in [`CF_META`] (shorter than 100 bytes, so
/// no group prefix, whose length byte would be `c`, starts it).
pub const META_CLUSTER_ID: &[u8] = b"cluster_id";

/// Suffix of the last applied log id in [`CF_TABLET_SM_META`].
pub const SM_LAST_APPLIED: &[u8] = b"last_applied";
/// Suffix of the applied membership in [`CF_TABLET_SM_META`].
pub const SM_MEMBERSHIP: &[u8] = b"membership";

const RECORD_SCHEMA: &[u8] = b"s";
const RECORD_CLIENT: u8 = b'c';

/// A tablet id cannot be turned into a key prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    TooLong(#[from] crate::raft::KeyError),
    #[error("a tablet id cannot be empty")]
    EmptyTabletId,
}

/// The prefix of every key of one tablet Raft group, in every per-group column family (the
/// state machine's here and the Raft log store's): the tablet's [`GroupPrefix`], one length
/// byte and the id's bytes, so no tablet's prefix is a prefix of another's.
pub fn group_prefix(tablet_id: &str) -> Result<Vec<u8>, KeyError> {
    if tablet_id.is_empty() {
        return Err(KeyError::EmptyTabletId);
    }
    Ok(GroupPrefix::new(tablet_id)?.as_bytes().to_vec())
}

/// The smallest key above every key that starts with `prefix` (exclusive end of the
/// prefix's range); `None` if no such key exists (the prefix is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// `prefix` followed by `suffix`.
pub fn prefixed(prefix: &[u8], suffix: &[u8]) -> Vec<u8> {
    [prefix, suffix].concat()
}

/// Key of a stored row: the group prefix, then the encoded primary key.
pub fn row_key(prefix: &[u8], encoded_key: &[u8]) -> Vec<u8> {
    prefixed(prefix, encoded_key)
}

/// Key of the tablet's schema record.
pub fn schema_record_key(prefix: &[u8]) -> Vec<u8> {
    prefixed(prefix, RECORD_SCHEMA)
}

/// Key of a client's result-tracker record.
pub fn client_record_key(prefix: &[u8], client_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 1 + client_id.len());
    key.extend_from_slice(prefix);
    key.push(RECORD_CLIENT);
    key.extend_from_slice(client_id.as_bytes());
    key
}

/// Key of a tablet record in [`CF_TABLET_RECORDS`].
pub fn record_key(prefix: &[u8], record: &TabletRecord) -> Vec<u8> {
    match record {
        TabletRecord::Schema(_) => schema_record_key(prefix),
        TabletRecord::Client(client) => client_record_key(prefix, &client.client_id),
    }
}

/// Where a mutation goes: its column family and key.
pub fn mutation_target(prefix: &[u8], mutation: &Mutation) -> (&'static str, Vec<u8>) {
    match mutation {
        Mutation::PutRow { key, .. } | Mutation::DeleteRow { key } => (CF_TABLET_ROWS, row_key(prefix, key)),
        Mutation::PutSchema(_) => (CF_TABLET_RECORDS, schema_record_key(prefix)),
        Mutation::PutClient(client) => (CF_TABLET_RECORDS, client_record_key(prefix, &client.client_id)),
        Mutation::DeleteClient { client_id } => (CF_TABLET_RECORDS, client_record_key(prefix, client_id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_prefixes_never_prefix_each_other() {
        assert_eq!(group_prefix(""), Err(KeyError::EmptyTabletId));
        let ids = ["a", "ab", "b", "abc", "a\u{1}"];
        for x in ids {
            for y in ids {
                let (px, py) = (group_prefix(x).expect("short"), group_prefix(y).expect("short"));
                if x != y {
                    assert!(!py.starts_with(&px), "{x:?} / {y:?}");
                }
            }
        }
        assert_eq!(group_prefix("ab").expect("short"), b"\x02ab");
        let long = "x".repeat(256);
        assert!(matches!(group_prefix(&long), Err(KeyError::TooLong(_))));
        assert!(group_prefix(&long[..255]).is_ok());
    }

    #[test]
    fn prefix_end_bounds_exactly_the_prefix_range() {
        assert_eq!(prefix_end(b"\x02ab"), Some(b"\x02ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        let prefix = group_prefix("ab").expect("short");
        let end = prefix_end(&prefix).expect("bounded");
        let inside = row_key(&prefix, &[0xff, 0xff, 0xff]);
        assert!(prefix.as_slice() <= inside.as_slice() && inside < end);
        let other = group_prefix("ab\u{0}").expect("short");
        assert!(other >= end || other < prefix, "another tablet's keys are outside the range");
    }

    #[test]
    fn record_keys_do_not_collide() {
        let prefix = group_prefix("t").expect("short");
        assert_ne!(schema_record_key(&prefix), client_record_key(&prefix, ""));
        assert_ne!(client_record_key(&prefix, "s"), schema_record_key(&prefix));
        assert_eq!(
            mutation_target(&prefix, &Mutation::DeleteRow { key: vec![9] }),
            (CF_TABLET_ROWS, b"\x01t\x09".to_vec())
        );
    }
}
