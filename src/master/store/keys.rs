//! Every RocksDB column family and key of a master beyond the Raft log and vote (whose keys
//! [`crate::raft::keys`] owns: the master group is the default group, without prefix).

/// Column family of state machine metadata: last applied log id and membership.
pub const CF_SM_META: &str = "sm_meta";
/// Column family of catalog records.
pub const CF_SM_DATA: &str = "sm_data";
/// The column families of the catalog state machine (the Raft ones come from `crate::raft`).
pub const SM_CFS: [&str; 2] = [CF_SM_META, CF_SM_DATA];

/// Key of this master's node id in the Raft meta column family (shorter than one plus its
/// first byte, so no group prefix can start it).
pub const META_NODE_ID: &[u8] = b"node_id";

pub const SM_LAST_APPLIED: &[u8] = b"last_applied";
pub const SM_MEMBERSHIP: &[u8] = b"membership";

/// Key of the cluster id record.
pub const CLUSTER_ID_KEY: &[u8] = b"c/cluster_id";

pub fn table_key(table_id: &str) -> Vec<u8> {
    [b"t/".as_slice(), table_id.as_bytes()].concat()
}

pub fn tablet_key(tablet_id: &str) -> Vec<u8> {
    [b"b/".as_slice(), tablet_id.as_bytes()].concat()
}

/// Key of a tablet server's decommissioning mark.
pub fn decommissioning_key(uuid: &str) -> Vec<u8> {
    [b"d/".as_slice(), uuid.as_bytes()].concat()
}

pub fn request_key(request_id: &str) -> Vec<u8> {
    [b"r/".as_slice(), request_id.as_bytes()].concat()
}
