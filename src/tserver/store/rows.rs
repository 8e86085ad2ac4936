//! A tablet's stored rows in RocksDB: point reads for applying (through the domain's
//! [`RowStore`]) and key-ordered range reads for scans and snapshots.

use std::collections::BTreeMap;

use rocksdb::{ColumnFamily, DB, IteratorMode, ReadOptions};

use super::keys;
use crate::tablet::{KeyRange, RowStore};

/// A stored row as a scan reads it: the encoded primary key and the row value.
pub type StoredRow = (Vec<u8>, Vec<u8>);

/// Rows written by earlier entries of the current apply call and not yet in RocksDB, by
/// encoded key (`None`: deleted).
pub(super) type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The committed rows of one tablet in RocksDB, seen through the pending writes of the
/// current apply call.
pub(super) struct OverlayRows<'a> {
    pub db: &'a DB,
    pub cf: &'a ColumnFamily,
    pub prefix: &'a [u8],
    pub overlay: &'a Overlay,
}

impl RowStore for OverlayRows<'_> {
    type Error = rocksdb::Error;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, rocksdb::Error> {
        if let Some(pending) = self.overlay.get(key) {
            return Ok(pending.clone());
        }
        self.db.get_cf(self.cf, keys::row_key(self.prefix, key))
    }
}

/// Read options bounding an iterator to the rows of the tablet with `prefix` inside
/// `range` (lower inclusive, upper exclusive).
pub(super) fn range_read_options(prefix: &[u8], range: &KeyRange) -> ReadOptions {
    let mut opts = ReadOptions::default();
    let lower = keys::row_key(prefix, range.lower.as_deref().unwrap_or_default());
    opts.set_iterate_lower_bound(lower);
    let upper = match &range.upper {
        Some(upper) => Some(keys::row_key(prefix, upper)),
        None => keys::prefix_end(prefix),
    };
    if let Some(upper) = upper {
        opts.set_iterate_upper_bound(upper);
    }
    opts
}

/// Iterates `(encoded key, row value)` of the tablet with `prefix` inside `range`, in key
/// order, from the database's latest committed state.
pub(super) fn iter_range<'a>(
    db: &'a DB,
    cf: &'a ColumnFamily,
    prefix: &'a [u8],
    range: &KeyRange,
) -> impl Iterator<Item = Result<StoredRow, rocksdb::Error>> + 'a {
    let opts = range_read_options(prefix, range);
    db.iterator_cf_opt(cf, opts, IteratorMode::Start).map(move |item| {
        let (key, value) = item?;
        Ok((key.get(prefix.len()..).unwrap_or_default().to_vec(), value.into_vec()))
    })
}
