//! The read-only view of stored rows that applying and scanning need; the tablet server
//! supplies it from RocksDB, tests from a map.

use std::collections::BTreeMap;
use std::convert::Infallible;

use super::row::RowDecodeError;

/// Point reads of stored rows by encoded key.
pub trait RowStore {
    type Error: std::error::Error + Send + Sync + 'static;

    /// The row value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error>;
}

impl RowStore for BTreeMap<Vec<u8>, Vec<u8>> {
    type Error = Infallible;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(BTreeMap::get(self, key).cloned())
    }
}

/// Reading stored rows failed. Not a replicated outcome: the caller must stop applying
/// (retrying later or failing the replica), never skip the entry.
#[derive(Debug, thiserror::Error)]
pub enum StoreError<E> {
    #[error("reading stored rows: {0}")]
    Store(#[source] E),
    #[error("stored row with key {key} is corrupt: {source}")]
    CorruptRow { key: String, source: RowDecodeError },
}

impl<E> StoreError<E> {
    /// A corrupt-row error naming the key in hex.
    pub fn corrupt(key: &[u8], source: RowDecodeError) -> Self {
        StoreError::CorruptRow { key: key.iter().map(|b| format!("{b:02x}")).collect(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_store_reads_and_errors_name_the_key() {
        let mut map = BTreeMap::new();
        map.insert(vec![1], vec![2]);
        assert_eq!(RowStore::get(&map, &[1]), Ok(Some(vec![2])));
        assert_eq!(RowStore::get(&map, &[3]), Ok(None));
        let err = StoreError::<Infallible>::corrupt(&[0xab, 1], RowDecodeError::Empty);
        assert_eq!(err.to_string(), "stored row with key ab01 is corrupt: row value is empty");
    }
}
