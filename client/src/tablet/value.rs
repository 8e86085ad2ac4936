//! Typed cell values and their JSON form.
//!
//! JSON input rules, per column type:
//! - `int8`/`int16`/`int32`/`int64`: a JSON integer within the type's range.
//! - `float`/`double`: a JSON number (integers accepted), or one of the strings `"NaN"`,
//!   `"Infinity"`, `"-Infinity"`: Kudu stores non-finite floats, JSON numbers cannot spell
//!   them. A finite number too large for `float` is out of range (never silently infinite).
//!   NaN is stored as the canonical quiet NaN. [`Value::to_json`] prints non-finite values
//!   with the same strings, so output can be fed back as input.
//! - `bool`: `true` or `false`.
//! - `string`: a JSON string.
//! - `binary`: a standard base64 string (RFC 4648 alphabet, padded).
//! - `unixtime_micros`: a JSON integer (microseconds since the Unix epoch).
//!
//! JSON `null` is SQL NULL: `Ok(None)`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::catalog::ColumnType;

/// One non-null cell. NULL is `Option<Value>::None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float(f32),
    Double(f64),
    Bool(bool),
    String(String),
    Binary(Vec<u8>),
    UnixtimeMicros(i64),
}

/// Why a JSON value does not fit a column type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ValueError {
    #[error("expected {expected}, found {found}")]
    WrongType { expected: ColumnType, found: String },
    #[error("{value} is out of range for {data_type}")]
    OutOfRange { data_type: ColumnType, value: String },
    #[error("invalid base64 for binary: {reason}")]
    InvalidBase64 { reason: String },
}

const NAN: &str = "NaN";
const INFINITY: &str = "Infinity";
const NEG_INFINITY: &str = "-Infinity";

impl Value {
    /// The column type this value belongs to.
    pub fn data_type(&self) -> ColumnType {
        match self {
            Value::Int8(_) => ColumnType::Int8,
            Value::Int16(_) => ColumnType::Int16,
            Value::Int32(_) => ColumnType::Int32,
            Value::Int64(_) => ColumnType::Int64,
            Value::Float(_) => ColumnType::Float,
            Value::Double(_) => ColumnType::Double,
            Value::Bool(_) => ColumnType::Bool,
            Value::String(_) => ColumnType::String,
            Value::Binary(_) => ColumnType::Binary,
            Value::UnixtimeMicros(_) => ColumnType::UnixtimeMicros,
        }
    }

    /// Converts JSON to a value of `data_type` (rules in the module docs); `null` is `None`.
    pub fn from_json(json: &serde_json::Value, data_type: ColumnType) -> Result<Option<Value>, ValueError> {
        if json.is_null() {
            return Ok(None);
        }
        let wrong = || ValueError::WrongType { expected: data_type, found: describe(json) };
        let out_of_range = || ValueError::OutOfRange { data_type, value: json.to_string() };
        let value = match data_type {
            ColumnType::Int8 => {
                Value::Int8(i8::try_from(integer(json).ok_or_else(wrong)?).map_err(|_| out_of_range())?)
            }
            ColumnType::Int16 => {
                Value::Int16(i16::try_from(integer(json).ok_or_else(wrong)?).map_err(|_| out_of_range())?)
            }
            ColumnType::Int32 => {
                Value::Int32(i32::try_from(integer(json).ok_or_else(wrong)?).map_err(|_| out_of_range())?)
            }
            ColumnType::Int64 => {
                Value::Int64(i64::try_from(integer(json).ok_or_else(wrong)?).map_err(|_| out_of_range())?)
            }
            ColumnType::UnixtimeMicros => {
                Value::UnixtimeMicros(i64::try_from(integer(json).ok_or_else(wrong)?).map_err(|_| out_of_range())?)
            }
            ColumnType::Double => Value::Double(float(json).ok_or_else(wrong)?),
            ColumnType::Float => {
                let wide = float(json).ok_or_else(wrong)?;
                #[allow(clippy::cast_possible_truncation)] // range checked right below
                let narrow = wide as f32;
                if wide.is_finite() && !narrow.is_finite() {
                    return Err(out_of_range());
                }
                Value::Float(if narrow.is_nan() { f32::NAN } else { narrow })
            }
            ColumnType::Bool => Value::Bool(json.as_bool().ok_or_else(wrong)?),
            ColumnType::String => Value::String(json.as_str().ok_or_else(wrong)?.to_string()),
            ColumnType::Binary => {
                let text = json.as_str().ok_or_else(wrong)?;
                Value::Binary(BASE64.decode(text).map_err(|e| ValueError::InvalidBase64 { reason: e.to_string() })?)
            }
        };
        Ok(Some(value))
    }

    /// The JSON form of this value (inverse of [`Value::from_json`]).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Int8(v) => J::from(*v),
            Value::Int16(v) => J::from(*v),
            Value::Int32(v) => J::from(*v),
            Value::Int64(v) | Value::UnixtimeMicros(v) => J::from(*v),
            // Through the shortest decimal that reads back as the same f32: 0.1, not
            // 0.10000000149011612.
            Value::Float(v) => float_json(v.to_string().parse().unwrap_or(f64::from(*v))),
            Value::Double(v) => float_json(*v),
            Value::Bool(v) => J::from(*v),
            Value::String(v) => J::from(v.as_str()),
            Value::Binary(v) => J::from(BASE64.encode(v)),
        }
    }
}

/// JSON for an optional cell: `null` for `None`.
pub fn cell_to_json(cell: Option<&Value>) -> serde_json::Value {
    cell.map_or(serde_json::Value::Null, Value::to_json)
}

/// An integral JSON number as i128 (so every u64 and i64 fits), `None` for anything else.
fn integer(json: &serde_json::Value) -> Option<i128> {
    let n = json.as_number()?;
    n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
}

fn float(json: &serde_json::Value) -> Option<f64> {
    match json {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => match s.as_str() {
            NAN => Some(f64::NAN),
            INFINITY => Some(f64::INFINITY),
            NEG_INFINITY => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn float_json(v: f64) -> serde_json::Value {
    if v.is_nan() {
        NAN.into()
    } else if v == f64::INFINITY {
        INFINITY.into()
    } else if v == f64::NEG_INFINITY {
        NEG_INFINITY.into()
    } else {
        serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// A short description of a JSON value for error messages: its kind and (truncated) text.
fn describe(json: &serde_json::Value) -> String {
    let kind = match json {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(n) if n.is_f64() => "a fractional number",
        serde_json::Value::Number(_) => "an integer",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    };
    let mut text = json.to_string();
    if text.len() > 40 {
        let cut = (0..=37).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.truncate(cut);
        text.push_str("...");
    }
    format!("{kind} {text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conv(j: serde_json::Value, t: ColumnType) -> Result<Option<Value>, ValueError> {
        Value::from_json(&j, t)
    }

    #[test]
    fn every_type_round_trips_through_json() {
        let cases = [
            (json!(-128), ColumnType::Int8, Value::Int8(-128)),
            (json!(32767), ColumnType::Int16, Value::Int16(32767)),
            (json!(-2147483648i64), ColumnType::Int32, Value::Int32(i32::MIN)),
            (json!(i64::MAX), ColumnType::Int64, Value::Int64(i64::MAX)),
            (json!(1.5), ColumnType::Float, Value::Float(1.5)),
            (json!(-2.25), ColumnType::Double, Value::Double(-2.25)),
            (json!(true), ColumnType::Bool, Value::Bool(true)),
            (json!("héllo"), ColumnType::String, Value::String("héllo".into())),
            (json!("AAEC/w=="), ColumnType::Binary, Value::Binary(vec![0, 1, 2, 255])),
            (json!(-1), ColumnType::UnixtimeMicros, Value::UnixtimeMicros(-1)),
            (json!("Infinity"), ColumnType::Double, Value::Double(f64::INFINITY)),
            (json!("-Infinity"), ColumnType::Float, Value::Float(f32::NEG_INFINITY)),
        ];
        for (j, t, v) in cases {
            assert_eq!(conv(j.clone(), t), Ok(Some(v.clone())), "{j} as {t}");
            assert_eq!(v.data_type(), t);
            assert_eq!(v.to_json(), j, "{v:?} back to JSON");
        }
    }

    #[test]
    fn nulls_and_nan() {
        assert_eq!(conv(json!(null), ColumnType::Int8), Ok(None));
        assert_eq!(cell_to_json(None), json!(null));
        let Ok(Some(Value::Double(nan))) = conv(json!("NaN"), ColumnType::Double) else { panic!("NaN rejected") };
        assert!(nan.is_nan());
        assert_eq!(Value::Double(nan).to_json(), json!("NaN"));
        assert_eq!(Value::Float(f32::NAN).to_json(), json!("NaN"));
        assert_eq!(Value::Float(0.1).to_json(), json!(0.1));
        assert_eq!(conv(json!(0.1), ColumnType::Float), Ok(Some(Value::Float(0.1))));
        // Integers are fine for floating columns.
        assert_eq!(conv(json!(3), ColumnType::Double), Ok(Some(Value::Double(3.0))));
    }

    #[test]
    fn integers_out_of_range_are_refused() {
        for (j, t) in [
            (json!(128), ColumnType::Int8),
            (json!(-129), ColumnType::Int8),
            (json!(40000), ColumnType::Int16),
            (json!(2147483648i64), ColumnType::Int32),
            (json!(u64::MAX), ColumnType::Int64),
            (json!(u64::MAX), ColumnType::UnixtimeMicros),
        ] {
            assert_eq!(
                conv(j.clone(), t),
                Err(ValueError::OutOfRange { data_type: t, value: j.to_string() }),
                "{j} as {t}"
            );
        }
        let err = conv(json!(1e300), ColumnType::Float).unwrap_err();
        assert_eq!(err.to_string(), "1e+300 is out of range for float");
    }

    #[test]
    fn wrong_types_name_what_was_found() {
        let err = conv(json!("12"), ColumnType::Int32).unwrap_err();
        assert_eq!(err.to_string(), "expected int32, found a string \"12\"");
        let err = conv(json!(1.5), ColumnType::Int64).unwrap_err();
        assert_eq!(err.to_string(), "expected int64, found a fractional number 1.5");
        assert!(matches!(conv(json!(1), ColumnType::Bool), Err(ValueError::WrongType { .. })));
        assert!(matches!(conv(json!(1), ColumnType::String), Err(ValueError::WrongType { .. })));
        assert!(matches!(conv(json!([1]), ColumnType::Binary), Err(ValueError::WrongType { .. })));
        assert!(matches!(conv(json!("inf"), ColumnType::Double), Err(ValueError::WrongType { .. })));
        assert!(matches!(conv(json!(1.0), ColumnType::UnixtimeMicros), Err(ValueError::WrongType { .. })));
        let long = conv(json!("x".repeat(100)), ColumnType::Int8).unwrap_err().to_string();
        assert!(long.ends_with("...") && long.len() < 80, "{long}");
    }

    #[test]
    fn bad_base64_is_refused() {
        assert!(matches!(conv(json!("not base64!"), ColumnType::Binary), Err(ValueError::InvalidBase64 { .. })));
    }
}
