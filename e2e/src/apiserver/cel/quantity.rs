//! Kubernetes resource quantities (`10Gi`, `500m`, `1e3`) as the API server parses and
//! compares them, and the CEL quantity library of Kubernetes (`quantity()`,
//! `isQuantity()`, `isGreaterThan()`, ...) on top of them.
//!
//! A quantity is kept exactly as `mantissa * 10^exponent`; binary suffixes are exact
//! powers of two, so `1Gi == 1073741824` and `1.5Gi > 1536Mi - 1`. Values beyond `i128`
//! precision fall back to an `f64` comparison.

use std::cmp::Ordering;
use std::fmt;

/// A parsed quantity: `mantissa * 10^exponent`, normalized (no trailing zeros in the
/// mantissa, zero has exponent 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exponent: i32,
}

/// Why a string is not a quantity (the API server's `ErrFormatWrong` / `ErrSuffix`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The number part is malformed.
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format,
    /// The suffix is not one of the known ones.
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The value does not fit the exact representation.
    #[error("quantity out of range")]
    Range,
}

/// The smallest unit a quantity keeps (`1n`, 10^-9).
const NANO: i32 = -9;

/// Multiplier of a suffix: `10^decimal * 2^binary`.
fn suffix_multiplier(suffix: &str) -> Result<(i32, u32), QuantityError> {
    Ok(match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..].parse().map_err(|_| QuantityError::Suffix)?;
            (exp, 0)
        }
        _ => return Err(QuantityError::Suffix),
    })
}

impl Quantity {
    /// Parses `s` with the grammar of Kubernetes' `resource.ParseQuantity`: an optional
    /// sign, digits with an optional fraction, then a decimal SI, binary SI or exponent
    /// suffix.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::Format);
        }
        let b = s.as_bytes();
        let mut pos = 0;
        let negative = match b[0] {
            b'-' => {
                pos = 1;
                true
            }
            b'+' => {
                pos = 1;
                false
            }
            _ => false,
        };
        let digits_from = |start: usize| start + b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        let int_end = digits_from(pos);
        let int_part = &s[pos..int_end];
        pos = int_end;
        let mut frac_part = "";
        if pos < b.len() && b[pos] == b'.' {
            let frac_end = digits_from(pos + 1);
            frac_part = &s[pos + 1..frac_end];
            pos = frac_end;
        }
        // The suffix: letters of the SI/exponent alphabet, an optional sign, then digits only.
        let suffix_start = pos;
        while pos < b.len() && b"eEinumkKMGTP".contains(&b[pos]) {
            pos += 1;
        }
        if pos < b.len() && (b[pos] == b'-' || b[pos] == b'+') {
            pos += 1;
        }
        pos = digits_from(pos);
        if pos != b.len() {
            return Err(QuantityError::Format);
        }
        let (dec, bin) = suffix_multiplier(&s[suffix_start..])?;
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        let digits = if digits.is_empty() { "0" } else { digits };
        let mut mantissa: i128 = digits.parse().map_err(|_| QuantityError::Range)?;
        let frac_len = i32::try_from(frac_part.len()).map_err(|_| QuantityError::Range)?;
        mantissa = mantissa.checked_mul(1i128 << bin).ok_or(QuantityError::Range)?;
        let mut exponent = dec.checked_sub(frac_len).ok_or(QuantityError::Range)?;
        // Like the API server, a non-zero value is rounded up (away from zero) to a whole
        // number of nano units: asking for some of a resource gives at least `1n`.
        if exponent < NANO {
            let shift = u32::try_from(NANO - exponent).map_err(|_| QuantityError::Range)?;
            let divisor = 10i128.checked_pow(shift);
            mantissa = match divisor {
                Some(d) => mantissa / d + i128::from(mantissa % d != 0),
                None => i128::from(mantissa != 0),
            };
            exponent = NANO;
        }
        if negative {
            mantissa = -mantissa;
        }
        Ok(Self::normalized(mantissa, exponent))
    }

    fn normalized(mut mantissa: i128, mut exponent: i32) -> Self {
        if mantissa == 0 {
            return Self { mantissa: 0, exponent: 0 };
        }
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exponent += 1;
        }
        Self { mantissa, exponent }
    }

    /// An integer quantity.
    pub fn from_int(v: i64) -> Self {
        Self::normalized(i128::from(v), 0)
    }

    /// Both mantissas scaled to the smaller exponent, if that fits.
    fn aligned(self, other: Self) -> Option<(i128, i128, i32)> {
        let e = self.exponent.min(other.exponent);
        let scale = |q: Self| -> Option<i128> {
            let shift = u32::try_from(q.exponent - e).ok()?;
            q.mantissa.checked_mul(10i128.checked_pow(shift)?)
        };
        Some((scale(self)?, scale(other)?, e))
    }

    /// Exact comparison (an `f64` one for values beyond `i128` precision).
    pub fn compare(self, other: Self) -> Ordering {
        match self.aligned(other) {
            Some((a, b, _)) => a.cmp(&b),
            None => {
                let (s1, s2) = (self.mantissa.signum(), other.mantissa.signum());
                if s1 != s2 {
                    return s1.cmp(&s2);
                }
                self.as_f64().partial_cmp(&other.as_f64()).unwrap_or(Ordering::Equal)
            }
        }
    }

    /// `self + other`.
    pub fn checked_add(self, other: Self) -> Result<Self, QuantityError> {
        let (a, b, e) = self.aligned(other).ok_or(QuantityError::Range)?;
        Ok(Self::normalized(a.checked_add(b).ok_or(QuantityError::Range)?, e))
    }

    /// `self - other`.
    pub fn checked_sub(self, other: Self) -> Result<Self, QuantityError> {
        self.checked_add(Self { mantissa: -other.mantissa, exponent: other.exponent })
    }

    /// -1, 0 or 1.
    pub fn sign(self) -> i64 {
        self.mantissa.signum() as i64
    }

    /// The value as an `i64`, if it is an integer in range.
    pub fn as_i64(self) -> Option<i64> {
        if self.exponent < 0 {
            return None;
        }
        let v = self.mantissa.checked_mul(10i128.checked_pow(u32::try_from(self.exponent).ok()?)?)?;
        i64::try_from(v).ok()
    }

    /// The value as a float (approximate).
    pub fn as_f64(self) -> f64 {
        self.mantissa as f64 * 10f64.powi(self.exponent)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exponent == 0 {
            write!(f, "{}", self.mantissa)
        } else {
            write!(f, "{}e{}", self.mantissa, self.exponent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_what_the_api_server_parses() {
        for ok in [
            "0", "1", "10Gi", "500m", "1.5", ".5", "1.", "+1", "-1", "1e3", "1E-3", "12n", "3Ei", "0.1k", "007", ".",
            "Gi",
        ] {
            assert!(Quantity::parse(ok).is_ok(), "{ok} should parse");
        }
        for bad in ["", "1Z", "1 Gi", "1.2.3", "abc", "1Gb", "1e", "--1", "1e3.5", "1KiB"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn compares_exactly_across_suffixes() {
        assert_eq!(q("1Gi").compare(q("1073741824")), Ordering::Equal);
        assert_eq!(q("1Gi").compare(q("1024Mi")), Ordering::Equal);
        assert_eq!(q("1G").compare(q("1Gi")), Ordering::Less);
        assert_eq!(q("1.5Gi").compare(q("1536Mi")), Ordering::Equal);
        assert_eq!(q("500m").compare(q("0.5")), Ordering::Equal);
        assert_eq!(q("1n").compare(q("0")), Ordering::Greater);
        assert_eq!(q("-1").compare(q("0")), Ordering::Less);
        assert_eq!(q("0Gi").compare(q("0")), Ordering::Equal);
        assert_eq!(q("1e3").compare(q("1k")), Ordering::Equal);
        assert_eq!(q("1e300").compare(q("1")), Ordering::Greater);
        // Below a nano unit, values round up to 1n like the API server's.
        assert_eq!(q("0.1n").compare(q("1n")), Ordering::Equal);
        assert_eq!(q("-1e-12").compare(q("-1n")), Ordering::Equal);
        assert_eq!(q("0e-12").compare(q("0")), Ordering::Equal);
    }

    #[test]
    fn arithmetic_and_conversions() {
        assert_eq!(q("1Gi").checked_add(q("1Gi")).map(|x| x.as_i64()), Ok(Some(2 << 30)));
        assert_eq!(q("1").checked_sub(q("500m")).map(|x| x.compare(q("0.5"))), Ok(Ordering::Equal));
        assert_eq!(q("1.5").as_i64(), None);
        assert_eq!(q("2k").as_i64(), Some(2000));
        assert_eq!(q("-3").sign(), -1);
        assert_eq!(q("0").sign(), 0);
        assert!((q("250m").as_f64() - 0.25).abs() < 1e-12);
    }
}
