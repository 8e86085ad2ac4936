//! Hash partitioning of rows over a table's tablets.
//!
//! The partition of a row is `murmur2_64(encoded primary key, seed 0) % num_partitions`,
//! where `murmur2_64` is Austin Appleby's MurmurHash64A (the hash Kudu uses for its hash
//! partitions). Clients, masters and tablet servers of every version must agree on it, so
//! it is written here rather than taken from a library whose output could change (std's
//! `DefaultHasher` is explicitly unstable). Changing it would misroute every existing row;
//! the tests pin known outputs.

const M: u64 = 0xc6a4_a793_5bd1_e995;
const R: u32 = 47;

/// MurmurHash64A of `bytes` (little-endian 8-byte blocks, as on x86-64).
pub fn murmur2_64(bytes: &[u8], seed: u64) -> u64 {
    let len = bytes.len() as u64;
    let mut h = seed ^ len.wrapping_mul(M);
    let mut blocks = bytes.chunks_exact(8);
    for block in &mut blocks {
        let mut word = [0u8; 8];
        word.copy_from_slice(block);
        let mut k = u64::from_le_bytes(word).wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^ (h >> R)
}

/// The partition (`0..num_partitions`) holding the row with this encoded primary key.
/// `num_partitions` of 0 is treated as 1 (tables always have at least one partition).
pub fn partition_of(encoded_key: &[u8], num_partitions: u32) -> u32 {
    let partitions = u64::from(num_partitions.max(1));
    // The remainder is below `num_partitions`, so the conversion cannot fail.
    u32::try_from(murmur2_64(encoded_key, 0) % partitions).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tablet::key::encode_key;
    use crate::tablet::value::Value;

    #[test]
    fn murmur2_matches_published_outputs() {
        // Outputs of other MurmurHash64A implementations (Python `murmurhash.mrmr`, cetech).
        assert_eq!(murmur2_64(b"fransisco", 1), 0x083f_daf4_a6d0_d3d9);
        assert_eq!(murmur2_64(b"aaaa", 0x9747_b28c), 0x41da_53fd_abaf_04c8);
        assert_eq!(murmur2_64(b"hash me", 22), 15_828_218_858_260_124_487);
        // Pinned here: empty input, a tail only, one block plus nothing, two blocks.
        assert_eq!(murmur2_64(b"", 0), 0);
        assert_eq!(murmur2_64(b"a", 0), 0x0717_17d2_d36b_6b11);
        assert_eq!(murmur2_64(b"foobar", 0), 0xd49f_4617_20d7_a196);
        assert_eq!(murmur2_64(b"0123456789abcdef", 0), 0x93a9_2d1a_91a2_4bc7);
    }

    #[test]
    fn partitions_are_pinned() {
        // These must never change: rows already stored live where these say.
        let of = |i: i64| partition_of(&encode_key(&[Value::Int64(i)]), 4);
        assert_eq!((0..8).map(of).collect::<Vec<_>>(), vec![2, 1, 0, 0, 3, 1, 1, 2]);
        // Multiples of the partition count do not all land together.
        assert_eq!((0..8).map(|i| of(4 * i)).collect::<Vec<_>>(), vec![2, 3, 2, 1, 0, 0, 0, 1]);
        assert_eq!(partition_of(b"anything", 1), 0);
        assert_eq!(partition_of(b"anything", 0), 0);
    }

    #[test]
    fn partitions_spread_keys() {
        let mut counts = [0u32; 8];
        for i in 0..8000i64 {
            let p = partition_of(&encode_key(&[Value::Int64(i * 8)]), 8);
            counts[usize::try_from(p).expect("small")] += 1;
        }
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
    }
}
