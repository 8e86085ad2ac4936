//! Every column family, key prefix and key encoding of Raft state, in one place.
//!
//! All Raft state of one group lives in two column families shared by all groups of the
//! database: [`CF_LOGS`] holds `prefix ++ index (8 bytes, big endian)`, [`CF_META`] holds
//! `prefix ++ name` for the names in [`GROUP_META_NAMES`].
//!
//! A group's prefix ([`GroupPrefix`]) is one length byte followed by the group id's bytes
//! (1 to 255 bytes). No prefix is a prefix of another (equal lengths force equal ids), so
//! the keys of one group form one contiguous range that holds no other group's key, and
//! range deletes bounded by the prefix never reach a neighbour.
//!
//! The exception is [`DEFAULT_GROUP`](super::DEFAULT_GROUP) (empty id): its prefix is empty
//! so a master's on-disk layout is `index` and `name` as it always was. Such a group must be
//! the only group of its database. Keys of the meta column family that belong to no group
//! (like a master's `node_id`) must be shorter than one plus their first byte, so no group
//! prefix can start them.

use std::ops::Range;

/// Column family of Raft metadata of every group (vote, committed, last purged) and of
/// process-level records such as a master's node id.
pub const CF_META: &str = "meta";
/// Column family of the Raft log entries of every group.
pub const CF_LOGS: &str = "logs";
/// The column families a database holding Raft groups must have.
pub const RAFT_CFS: [&str; 2] = [CF_META, CF_LOGS];

/// Meta name of a group's vote.
pub const META_VOTE: &[u8] = b"vote";
/// Meta name of a group's last purged log id.
pub const META_LAST_PURGED: &[u8] = b"last_purged";
/// Meta name of a group's last known committed log id.
pub const META_COMMITTED: &[u8] = b"committed";
/// Every meta name a group writes.
pub const GROUP_META_NAMES: [&[u8]; 3] = [META_VOTE, META_LAST_PURGED, META_COMMITTED];

/// Length of the index part of a log key.
const INDEX_LEN: usize = 8;

/// A group id that cannot be turned into a key prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("Raft group id {group_id:?} is {len} bytes long; at most 255 fit a key prefix")]
    GroupIdTooLong { group_id: String, len: usize },
}

/// The key prefix of one Raft group's keys; the default value is the default group's
/// (empty) prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupPrefix(Vec<u8>);

impl GroupPrefix {
    /// The prefix of `group_id`: empty for the default group, otherwise a length byte and
    /// the id's bytes.
    pub fn new(group_id: &str) -> Result<Self, KeyError> {
        if group_id.is_empty() {
            return Ok(Self(Vec::new()));
        }
        let len = u8::try_from(group_id.len())
            .map_err(|_| KeyError::GroupIdTooLong { group_id: group_id.to_string(), len: group_id.len() })?;
        let mut prefix = Vec::with_capacity(1 + group_id.len());
        prefix.push(len);
        prefix.extend_from_slice(group_id.as_bytes());
        Ok(Self(prefix))
    }

    /// The prefix bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Key of the log entry at `index`; keys of one group sort by index.
    pub fn log_key(&self, index: u64) -> Vec<u8> {
        [self.0.as_slice(), &index.to_be_bytes()].concat()
    }

    /// Index of a log key of this group, `None` for any other key.
    pub fn log_index(&self, key: &[u8]) -> Option<u64> {
        let index: [u8; INDEX_LEN] = key.strip_prefix(self.0.as_slice())?.try_into().ok()?;
        Some(u64::from_be_bytes(index))
    }

    /// Keys of this group's log entries from index `from` on.
    pub fn log_keys_from(&self, from: u64) -> Range<Vec<u8>> {
        self.log_key(from)..self.log_end()
    }

    /// Keys of this group's log entries with an index below `end`.
    pub fn log_keys_below(&self, end: u64) -> Range<Vec<u8>> {
        self.log_key(0)..self.log_key(end)
    }

    /// A bound above every log key of this group (and below the next group's keys).
    fn log_end(&self) -> Vec<u8> {
        [self.0.as_slice(), &[0xff; INDEX_LEN + 1]].concat()
    }

    /// Key of the meta record `name` of this group.
    pub fn meta_key(&self, name: &[u8]) -> Vec<u8> {
        [self.0.as_slice(), name].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(id: &str) -> GroupPrefix {
        GroupPrefix::new(id).unwrap()
    }

    #[test]
    fn default_group_keeps_the_master_layout() {
        let p = prefix("");
        assert_eq!(p.log_key(42), 42u64.to_be_bytes().to_vec());
        assert_eq!(p.meta_key(META_VOTE), b"vote".to_vec());
        assert_eq!(p.log_index(&p.log_key(42)), Some(42));
        assert_eq!(p.log_index(b"short"), None);
    }

    #[test]
    fn log_keys_sort_by_index_within_their_group() {
        let p = prefix("tablet-a");
        assert!(p.log_key(255) < p.log_key(256));
        assert_eq!(p.log_index(&p.log_key(7)), Some(7));
        assert_eq!(prefix("tablet-b").log_index(&p.log_key(7)), None);
        let all = p.log_keys_from(0);
        assert!(all.contains(&p.log_key(u64::MAX)));
    }

    #[test]
    fn no_prefix_starts_another_groups_keys() {
        // "ab" is a prefix of "abc" as a string, not as a key prefix.
        let (ab, abc) = (prefix("ab"), prefix("abc"));
        assert!(!abc.log_key(1).starts_with(ab.as_bytes()));
        assert!(!ab.log_key(1).starts_with(abc.as_bytes()));
        let range = ab.log_keys_from(0);
        for key in [abc.log_key(0), abc.log_key(u64::MAX), prefix("a").log_key(u64::MAX), prefix("b").log_key(0)] {
            assert!(!range.contains(&key));
        }
        assert!(!abc.meta_key(META_VOTE).starts_with(ab.as_bytes()));
        // A master's node id record is no group's key, even in the group whose length byte is 'n'.
        let id = format!("{:x<110}", "ode_id");
        let n = prefix(&id);
        assert_eq!(n.as_bytes()[0], b'n');
        assert!(!b"node_id".starts_with(n.as_bytes()));
        assert!(!n.log_keys_from(0).contains(&b"node_id".to_vec()));
    }

    #[test]
    fn long_group_ids_are_refused() {
        assert!(GroupPrefix::new(&"x".repeat(255)).is_ok());
        assert!(matches!(GroupPrefix::new(&"x".repeat(256)), Err(KeyError::GroupIdTooLong { len: 256, .. })));
    }
}
