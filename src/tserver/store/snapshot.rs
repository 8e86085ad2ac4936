//! A tablet snapshot's data format and its file on disk.
//!
//! # Data format (version 1)
//!
//! What openraft ships to a follower as the snapshot's data (the snapshot meta travels
//! beside it):
//!
//! 1. A header line: JSON `{"format":"kudu-tablet-snapshot","version":1,"tablet_id":"…"}`
//!    and `\n`. Install refuses another format, version or tablet.
//! 2. Entries, each a tag byte and length-prefixed fields (lengths are big-endian `u32`):
//!    - `R` key-length key value-length value: a stored row (the encoded primary key,
//!      without the group prefix, and the row value), in key order;
//!    - `T` length json: a [`TabletRecord`] (schema, result-tracker client) as JSON.
//! 3. A trailer `E` rows records (both big-endian `u64`): the entry counts. Nothing may
//!    follow it; a missing trailer or wrong counts mean a truncated snapshot.
//!
//! # File
//!
//! The current snapshot of tablet `T` is `<data dir>/snapshots/T/current`, kept by the shared
//! [`crate::raft::SnapshotFile`] (unique temporary names, newest wins, fsync'd).

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::raft::rocks::{decode, encode};
use crate::tablet::TabletRecord;

const FORMAT: &str = "kudu-tablet-snapshot";
const VERSION: u32 = 1;
const TAG_ROW: u8 = b'R';
const TAG_RECORD: u8 = b'T';
const TAG_END: u8 = b'E';

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    tablet_id: String,
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Builds snapshot data entry by entry.
pub(super) struct SnapshotWriter {
    out: Vec<u8>,
    rows: u64,
    records: u64,
}

impl SnapshotWriter {
    pub(super) fn new(tablet_id: &str) -> Result<SnapshotWriter, io::Error> {
        let header = Header { format: FORMAT.into(), version: VERSION, tablet_id: tablet_id.into() };
        let mut out = encode(&header)?;
        out.push(b'\n');
        Ok(SnapshotWriter { out, rows: 0, records: 0 })
    }

    fn put_field(&mut self, bytes: &[u8]) -> Result<(), io::Error> {
        let len =
            u32::try_from(bytes.len()).map_err(|_| invalid(format!("snapshot field of {} bytes", bytes.len())))?;
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// Adds a stored row (key without the group prefix).
    pub(super) fn row(&mut self, key: &[u8], value: &[u8]) -> Result<(), io::Error> {
        self.out.push(TAG_ROW);
        self.put_field(key)?;
        self.put_field(value)?;
        self.rows += 1;
        Ok(())
    }

    /// Adds a record, given as its stored JSON.
    pub(super) fn record_json(&mut self, json: &[u8]) -> Result<(), io::Error> {
        self.out.push(TAG_RECORD);
        self.put_field(json)?;
        self.records += 1;
        Ok(())
    }

    /// Appends the trailer and returns the data.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.out.push(TAG_END);
        self.out.extend_from_slice(&self.rows.to_be_bytes());
        self.out.extend_from_slice(&self.records.to_be_bytes());
        self.out
    }
}

/// The decoded contents of snapshot data.
#[derive(Debug, Default, PartialEq)]
pub(super) struct SnapshotContents {
    /// Stored rows (keys without the group prefix), in key order.
    pub rows: Vec<(Vec<u8>, Vec<u8>)>,
    pub records: Vec<TabletRecord>,
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], io::Error> {
        if self.data.len() < n {
            return Err(invalid("snapshot data is truncated"));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, io::Error> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, io::Error> {
        let bytes: [u8; 4] = self.take(4)?.try_into().map_err(|_| invalid("short u32"))?;
        Ok(u32::from_be_bytes(bytes))
    }

    fn u64(&mut self) -> Result<u64, io::Error> {
        let bytes: [u8; 8] = self.take(8)?.try_into().map_err(|_| invalid("short u64"))?;
        Ok(u64::from_be_bytes(bytes))
    }

    fn field(&mut self) -> Result<&'a [u8], io::Error> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

/// Decodes snapshot data of `tablet_id` (see the module docs).
pub(super) fn decode_snapshot(tablet_id: &str, data: &[u8]) -> Result<SnapshotContents, io::Error> {
    let split = data.iter().position(|&b| b == b'\n').ok_or_else(|| invalid("snapshot data has no header line"))?;
    let header: Header = decode(&data[..split])?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(invalid(format!(
            "snapshot format {} version {} is not {FORMAT} version {VERSION}",
            header.format, header.version
        )));
    }
    if header.tablet_id != tablet_id {
        return Err(invalid(format!("snapshot of tablet {} offered to tablet {tablet_id}", header.tablet_id)));
    }
    let mut reader = Reader { data: &data[split + 1..] };
    let mut contents = SnapshotContents::default();
    loop {
        match reader.u8()? {
            TAG_ROW => {
                let key = reader.field()?.to_vec();
                let value = reader.field()?.to_vec();
                contents.rows.push((key, value));
            }
            TAG_RECORD => contents.records.push(decode(reader.field()?)?),
            TAG_END => {
                let (rows, records) = (reader.u64()?, reader.u64()?);
                if rows != contents.rows.len() as u64 || records != contents.records.len() as u64 {
                    return Err(invalid(format!(
                        "snapshot trailer counts {rows} rows and {records} records, the data holds {} and {}",
                        contents.rows.len(),
                        contents.records.len()
                    )));
                }
                if !reader.data.is_empty() {
                    return Err(invalid("snapshot data continues after its trailer"));
                }
                return Ok(contents);
            }
            tag => return Err(invalid(format!("unknown snapshot entry tag {tag:#04x}"))),
        }
    }
}

/// The directory of a tablet's snapshots.
pub(super) fn snapshot_dir(data_dir: &Path, tablet_id: &str) -> PathBuf {
    data_dir.join("snapshots").join(tablet_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tablet::SchemaRecord;
    use crate::tablet::test_support::catalog_schema;

    fn sample() -> Vec<u8> {
        let mut w = SnapshotWriter::new("t1").expect("header");
        w.row(&[1, 2], b"v1").expect("row");
        w.row(&[3], b"").expect("row");
        let record = TabletRecord::Schema(SchemaRecord { schema: catalog_schema(), version: 3 });
        w.record_json(&encode(&record).expect("json")).expect("record");
        w.finish()
    }

    #[test]
    fn data_round_trips_and_damage_is_detected() {
        let data = sample();
        let contents = decode_snapshot("t1", &data).expect("decodes");
        assert_eq!(contents.rows, vec![(vec![1, 2], b"v1".to_vec()), (vec![3], vec![])]);
        assert!(matches!(contents.records.as_slice(), [TabletRecord::Schema(s)] if s.version == 3));
        let err = decode_snapshot("t2", &data).unwrap_err();
        assert!(err.to_string().contains("snapshot of tablet t1 offered to tablet t2"), "{err}");
        for cut in [data.len() - 1, data.len() - 17, 40] {
            assert!(decode_snapshot("t1", &data[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = data.clone();
        extra.push(0);
        assert!(decode_snapshot("t1", &extra).is_err());
        let mut miscount = data.clone();
        let n = miscount.len();
        miscount[n - 9] = 9; // rows count 2 -> 9
        assert!(decode_snapshot("t1", &miscount).unwrap_err().to_string().contains("trailer counts 9 rows"));
    }
}
