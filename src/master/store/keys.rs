//! Every RocksDB column family, key prefix and key encoding of a master, in one place.

/// Column family of Raft metadata: vote, last purged log id, node identity.
pub const CF_META: &str = "meta";
/// Column family of Raft log entries, keyed by big-endian index.
pub const CF_LOGS: &str = "logs";
/// Column family of state machine metadata: last applied log id and membership.
pub const CF_SM_META: &str = "sm_meta";
/// Column family of catalog records.
pub const CF_SM_DATA: &str = "sm_data";

pub const ALL_CFS: [&str; 4] = [CF_META, CF_LOGS, CF_SM_META, CF_SM_DATA];

pub const META_VOTE: &[u8] = b"vote";
pub const META_LAST_PURGED: &[u8] = b"last_purged";
pub const META_NODE_ID: &[u8] = b"node_id";
pub const META_COMMITTED: &[u8] = b"committed";

pub const SM_LAST_APPLIED: &[u8] = b"last_applied";
pub const SM_MEMBERSHIP: &[u8] = b"membership";

/// Key of a log entry: the index in big endian, so keys sort by index.
pub fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Index of a log key written by [`log_key`].
pub fn log_index(key: &[u8]) -> Option<u64> {
    key.try_into().ok().map(u64::from_be_bytes)
}

pub fn table_key(table_id: &str) -> Vec<u8> {
    [b"t/".as_slice(), table_id.as_bytes()].concat()
}

pub fn tablet_key(tablet_id: &str) -> Vec<u8> {
    [b"b/".as_slice(), tablet_id.as_bytes()].concat()
}

pub fn request_key(request_id: &str) -> Vec<u8> {
    [b"r/".as_slice(), request_id.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_index() {
        assert!(log_key(255) < log_key(256));
        assert_eq!(log_index(&log_key(42)), Some(42));
        assert_eq!(log_index(b"short"), None);
    }
}
