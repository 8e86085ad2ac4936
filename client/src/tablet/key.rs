//! Order-preserving ("memcomparable") primary-key encoding: comparing two encoded keys as
//! bytes gives the same order as comparing their key values column by column.
//!
//! Each key column, in primary-key order:
//! - `int8/16/32/64`, `unixtime_micros`: big-endian two's complement with the sign bit
//!   flipped (1, 2, 4, 8, 8 bytes).
//! - `float`/`double`: IEEE bits, big-endian; negative values have all bits inverted,
//!   others only the sign bit set (IEEE total order). `-0.0` is stored as `0.0` and every
//!   NaN as the canonical NaN, which sorts after `+Infinity`.
//! - `bool`: one byte, 0 or 1.
//! - `string`/`binary`: as the last key column, the raw bytes. Elsewhere each `0x00` becomes
//!   `0x00 0x01` and the value ends with `0x00 0x00`, so `"a"` < `"a\0"` < `"ab"` holds and
//!   the next column cannot bleed into the comparison.

use serde::{Deserialize, Serialize};

use super::value::Value;
use crate::catalog::ColumnType;

/// Why bytes are not a valid encoded key for the given key column types.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum KeyError {
    #[error("encoded key ends inside key column {column}")]
    Truncated { column: usize },
    #[error("encoded key has an invalid bool byte {byte:#04x} in key column {column}")]
    InvalidBool { column: usize, byte: u8 },
    #[error("encoded key has an invalid escape 0x00 {byte:#04x} in key column {column}")]
    InvalidEscape { column: usize, byte: u8 },
    #[error("encoded key column {column} is not valid UTF-8")]
    InvalidUtf8 { column: usize },
    #[error("encoded key has {extra} bytes after its last column")]
    TrailingBytes { extra: usize },
}

/// Encodes a full primary key (values in primary-key order).
pub fn encode_key(values: &[Value]) -> Vec<u8> {
    encode_key_prefix(values, values.len())
}

/// Encodes the first `values.len()` columns of a key that has `num_key_columns` columns.
/// Every full key whose leading columns equal `values` starts with the result, and sorts
/// at or after it; keys with smaller leading columns sort before it.
pub fn encode_key_prefix(values: &[Value], num_key_columns: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 8);
    for (i, value) in values.iter().enumerate() {
        encode_column(&mut out, value, i + 1 == num_key_columns);
    }
    out
}

fn encode_column(out: &mut Vec<u8>, value: &Value, last: bool) {
    match value {
        Value::Int8(v) => out.push(v.to_be_bytes()[0] ^ 0x80),
        Value::Int16(v) => out.extend_from_slice(&(v ^ i16::MIN).to_be_bytes()),
        Value::Int32(v) => out.extend_from_slice(&(v ^ i32::MIN).to_be_bytes()),
        Value::Int64(v) | Value::UnixtimeMicros(v) => out.extend_from_slice(&(v ^ i64::MIN).to_be_bytes()),
        Value::Float(v) => {
            let bits = canonical_f32(*v).to_bits();
            let ordered = if bits >> 31 == 1 { !bits } else { bits | (1 << 31) };
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        Value::Double(v) => {
            let bits = canonical_f64(*v).to_bits();
            let ordered = if bits >> 63 == 1 { !bits } else { bits | (1 << 63) };
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::String(s) => encode_bytes(out, s.as_bytes(), last),
        Value::Binary(b) => encode_bytes(out, b, last),
    }
}

fn encode_bytes(out: &mut Vec<u8>, bytes: &[u8], last: bool) {
    if last {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(1);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

fn canonical_f32(v: f32) -> f32 {
    if v.is_nan() {
        f32::NAN
    } else if v == 0.0 {
        0.0
    } else {
        v
    }
}

fn canonical_f64(v: f64) -> f64 {
    if v.is_nan() {
        f64::NAN
    } else if v == 0.0 {
        0.0
    } else {
        v
    }
}

/// Decodes a full key given the key columns' types in primary-key order.
pub fn decode_key(key: &[u8], types: &[ColumnType]) -> Result<Vec<Value>, KeyError> {
    let mut rest = key;
    let mut values = Vec::with_capacity(types.len());
    for (column, &data_type) in types.iter().enumerate() {
        let last = column + 1 == types.len();
        values.push(decode_column(&mut rest, data_type, column, last)?);
    }
    if rest.is_empty() { Ok(values) } else { Err(KeyError::TrailingBytes { extra: rest.len() }) }
}

fn take<'a, const N: usize>(rest: &mut &'a [u8], column: usize) -> Result<[u8; N], KeyError> {
    let src: &'a [u8] = rest;
    let (head, tail) = src.split_first_chunk::<N>().ok_or(KeyError::Truncated { column })?;
    *rest = tail;
    Ok(*head)
}

fn decode_column(rest: &mut &[u8], data_type: ColumnType, column: usize, last: bool) -> Result<Value, KeyError> {
    Ok(match data_type {
        ColumnType::Int8 => Value::Int8(i8::from_be_bytes(take::<1>(rest, column)?) ^ i8::MIN),
        ColumnType::Int16 => Value::Int16(i16::from_be_bytes(take(rest, column)?) ^ i16::MIN),
        ColumnType::Int32 => Value::Int32(i32::from_be_bytes(take(rest, column)?) ^ i32::MIN),
        ColumnType::Int64 => Value::Int64(i64::from_be_bytes(take(rest, column)?) ^ i64::MIN),
        ColumnType::UnixtimeMicros => Value::UnixtimeMicros(i64::from_be_bytes(take(rest, column)?) ^ i64::MIN),
        ColumnType::Float => {
            let ordered = u32::from_be_bytes(take(rest, column)?);
            let bits = if ordered >> 31 == 1 { ordered & !(1 << 31) } else { !ordered };
            Value::Float(f32::from_bits(bits))
        }
        ColumnType::Double => {
            let ordered = u64::from_be_bytes(take(rest, column)?);
            let bits = if ordered >> 63 == 1 { ordered & !(1 << 63) } else { !ordered };
            Value::Double(f64::from_bits(bits))
        }
        ColumnType::Bool => match take::<1>(rest, column)? {
            [0] => Value::Bool(false),
            [1] => Value::Bool(true),
            [byte] => return Err(KeyError::InvalidBool { column, byte }),
        },
        ColumnType::String => {
            let bytes = decode_bytes(rest, column, last)?;
            Value::String(String::from_utf8(bytes).map_err(|_| KeyError::InvalidUtf8 { column })?)
        }
        ColumnType::Binary => Value::Binary(decode_bytes(rest, column, last)?),
    })
}

fn decode_bytes<'a>(rest: &mut &'a [u8], column: usize, last: bool) -> Result<Vec<u8>, KeyError> {
    let src: &'a [u8] = rest;
    if last {
        *rest = &[];
        return Ok(src.to_vec());
    }
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        match src.get(i) {
            None => return Err(KeyError::Truncated { column }),
            Some(0) => match src.get(i + 1) {
                Some(0) => break,
                Some(1) => {
                    out.push(0);
                    i += 2;
                }
                Some(&byte) => return Err(KeyError::InvalidEscape { column, byte }),
                None => return Err(KeyError::Truncated { column }),
            },
            Some(&b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    *rest = src.get(i + 2..).unwrap_or_default();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Key order of two values of the same type, written independently of the encoding.
    fn value_cmp(a: &Value, b: &Value) -> Ordering {
        match (a, b) {
            (Value::Int8(a), Value::Int8(b)) => a.cmp(b),
            (Value::Int16(a), Value::Int16(b)) => a.cmp(b),
            (Value::Int32(a), Value::Int32(b)) => a.cmp(b),
            (Value::Int64(a), Value::Int64(b)) | (Value::UnixtimeMicros(a), Value::UnixtimeMicros(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => canonical_f32(*a).total_cmp(&canonical_f32(*b)),
            (Value::Double(a), Value::Double(b)) => canonical_f64(*a).total_cmp(&canonical_f64(*b)),
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::String(a), Value::String(b)) => a.cmp(b),
            (Value::Binary(a), Value::Binary(b)) => a.cmp(b),
            _ => panic!("different types {a:?} {b:?}"),
        }
    }

    fn key_cmp(a: &[Value], b: &[Value]) -> Ordering {
        a.iter().zip(b).map(|(a, b)| value_cmp(a, b)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
    }

    /// A random value of `t`, biased towards edge cases so collisions and zeros happen.
    fn random_value(rng: &mut StdRng, t: ColumnType) -> Value {
        let small = rng.random_bool(0.3);
        match t {
            ColumnType::Int8 => Value::Int8(rng.random()),
            ColumnType::Int16 => Value::Int16(if small { rng.random_range(-2..2) } else { rng.random() }),
            ColumnType::Int32 => Value::Int32(if small { rng.random_range(-2..2) } else { rng.random() }),
            ColumnType::Int64 => Value::Int64(if small { rng.random_range(-2..2) } else { rng.random() }),
            ColumnType::UnixtimeMicros => {
                Value::UnixtimeMicros(if small { rng.random_range(-2..2) } else { rng.random() })
            }
            ColumnType::Float => Value::Float(match rng.random_range(0..8) {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => f32::NEG_INFINITY,
                3 => -0.0,
                4 => 0.0,
                5 => f32::from_bits(rng.random()),
                _ => rng.random_range(-1e6..1e6),
            }),
            ColumnType::Double => Value::Double(match rng.random_range(0..8) {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => f64::NEG_INFINITY,
                3 => -0.0,
                4 => f64::MIN_POSITIVE,
                5 => f64::from_bits(rng.random()),
                _ => rng.random_range(-1e6..1e6),
            }),
            ColumnType::Bool => Value::Bool(rng.random()),
            ColumnType::String => {
                let len = rng.random_range(0..4);
                Value::String((0..len).map(|_| ['\0', '\u{1}', 'a', 'b', 'é'][rng.random_range(0..5)]).collect())
            }
            ColumnType::Binary => {
                let len = rng.random_range(0..4);
                Value::Binary((0..len).map(|_| [0u8, 1, 2, 0xff][rng.random_range(0..4)]).collect())
            }
        }
    }

    fn same(a: &[Value], b: &[Value]) -> bool {
        key_cmp(a, b).is_eq()
    }

    fn check_pairs(types: &[ColumnType], rng: &mut StdRng, rounds: usize) {
        for _ in 0..rounds {
            let a: Vec<Value> = types.iter().map(|t| random_value(rng, *t)).collect();
            let b: Vec<Value> = types.iter().map(|t| random_value(rng, *t)).collect();
            let (ea, eb) = (encode_key(&a), encode_key(&b));
            assert_eq!(ea.cmp(&eb), key_cmp(&a, &b), "{types:?}: {a:?} vs {b:?}");
            let decoded = decode_key(&ea, types).expect("decodes");
            assert!(same(&decoded, &a), "{a:?} decoded as {decoded:?}");
            assert_eq!(encode_key(&decoded), ea);
        }
    }

    #[test]
    fn byte_order_is_value_order_for_every_type() {
        let mut rng = StdRng::seed_from_u64(7);
        for t in ColumnType::ALL {
            check_pairs(&[t], &mut rng, 2000);
        }
    }

    #[test]
    fn byte_order_is_value_order_for_composite_keys() {
        let mut rng = StdRng::seed_from_u64(11);
        for first in ColumnType::ALL {
            for second in ColumnType::ALL {
                check_pairs(&[first, second], &mut rng, 300);
            }
        }
        check_pairs(&[ColumnType::String, ColumnType::Binary, ColumnType::String], &mut rng, 3000);
    }

    #[test]
    fn string_prefixes_sort_like_strings() {
        let s = |x: &str| Value::String(x.into());
        let ordered = ["", "\0", "\0\0", "\0\u{1}", "a", "a\0", "a\0\0", "a\0b", "ab", "b"];
        for pair in ordered.windows(2) {
            for tail in [Value::Int32(i32::MAX), Value::Int32(i32::MIN)] {
                for other_tail in [Value::Int32(i32::MAX), Value::Int32(i32::MIN)] {
                    let lo = encode_key(&[s(pair[0]), tail.clone()]);
                    let hi = encode_key(&[s(pair[1]), other_tail]);
                    assert!(lo < hi, "{:?} !< {:?}", pair[0], pair[1]);
                }
            }
            // Raw encoding in last position keeps the order too.
            assert!(encode_key(&[s(pair[0])]) < encode_key(&[s(pair[1])]));
        }
        assert_eq!(encode_key(&[s("a\0"), Value::Bool(true)]), b"a\0\x01\0\0\x01".to_vec());
    }

    #[test]
    fn floats_are_canonical() {
        assert_eq!(encode_key(&[Value::Double(-0.0)]), encode_key(&[Value::Double(0.0)]));
        let odd_nan = f64::from_bits(f64::NAN.to_bits() | 1);
        assert_eq!(encode_key(&[Value::Double(odd_nan)]), encode_key(&[Value::Double(f64::NAN)]));
        assert!(encode_key(&[Value::Float(f32::INFINITY)]) < encode_key(&[Value::Float(f32::NAN)]));
        assert_eq!(encode_key(&[Value::Int32(0)]), vec![0x80, 0, 0, 0]);
        assert_eq!(encode_key(&[Value::Int8(-1)]), vec![0x7f]);
    }

    #[test]
    fn prefixes_bound_the_keys_they_start() {
        let types = [ColumnType::String, ColumnType::Int64];
        let prefix = encode_key_prefix(&[Value::String("b".into())], types.len());
        let key = |s: &str, i: i64| encode_key(&[Value::String(s.into()), Value::Int64(i)]);
        assert!(key("a", i64::MAX) < prefix);
        assert!(key("b", i64::MIN) >= prefix && key("b", i64::MIN).starts_with(&prefix));
        assert!(key("b\0", i64::MIN) > prefix && !key("b\0", i64::MIN).starts_with(&prefix));
        assert!(key("ba", i64::MIN) > prefix);
    }

    #[test]
    fn malformed_keys_are_refused() {
        let types = [ColumnType::String, ColumnType::Bool];
        assert_eq!(decode_key(b"a\0", &types), Err(KeyError::Truncated { column: 0 }));
        assert_eq!(decode_key(b"a", &types), Err(KeyError::Truncated { column: 0 }));
        assert_eq!(decode_key(b"a\0\x07", &types), Err(KeyError::InvalidEscape { column: 0, byte: 7 }));
        assert_eq!(decode_key(b"a\0\0", &types), Err(KeyError::Truncated { column: 1 }));
        assert_eq!(decode_key(b"a\0\0\x02", &types), Err(KeyError::InvalidBool { column: 1, byte: 2 }));
        assert_eq!(decode_key(b"\xff\0\0\x01", &types), Err(KeyError::InvalidUtf8 { column: 0 }));
        assert_eq!(decode_key(&[0x80, 0], &[ColumnType::Int8]), Err(KeyError::TrailingBytes { extra: 1 }));
        assert_eq!(decode_key(&[0x80], &[ColumnType::Int16]), Err(KeyError::Truncated { column: 0 }));
    }
}
