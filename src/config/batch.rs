//! The push limits of a mirror's host (`push_batch_refs`, `push_batch_bytes`): plain values
//! with their parsing; the splitting they ask for is `mirror::plan`'s.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size written for humans: `500000`, `800k`, `100MiB`, `2G` (binary units: k = 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

const UNITS: [(&str, u32); 4] = [("", 0), ("k", 10), ("m", 20), ("g", 30)];

impl Bytes {
    pub fn parse(s: &str) -> Result<Bytes, String> {
        let t = s.trim();
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        let (num, unit) = t.split_at(digits);
        let unit = unit.trim().to_ascii_lowercase();
        let unit = unit
            .strip_suffix("ib")
            .or_else(|| unit.strip_suffix('b'))
            .unwrap_or(&unit);
        let shift = UNITS.iter().find(|(u, _)| *u == unit).map(|(_, s)| *s);
        match (num.parse::<u64>(), shift) {
            (Ok(n), Some(shift)) => n
                .checked_mul(1 << shift)
                .filter(|b| *b > 0)
                .map(Bytes)
                .ok_or_else(|| format!("size `{t}` must be between 1 byte and 16 EiB")),
            _ => Err(format!(
                "invalid size `{t}` (use e.g. 500000, 800k, 100MiB, 2GiB)"
            )),
        }
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, shift) in UNITS.iter().rev() {
            if *shift > 0 && self.0 >= 1 << shift && self.0.is_multiple_of(1 << shift) {
                return write!(f, "{}{}iB", self.0 >> shift, unit.to_ascii_uppercase());
            }
        }
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let v = NumOrText::deserialize(d)?;
        Bytes::parse(&v.0).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A count of ref updates per push (at least 1), written as a number (`set` passes it as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefCount(pub usize);

impl<'de> Deserialize<'de> for RefCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RefCount, D::Error> {
        let v = NumOrText::deserialize(d)?;
        match v.0.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(RefCount(n)),
            _ => Err(serde::de::Error::custom(format!(
                "invalid ref count `{}` (a whole number of ref updates per push, at least 1)",
                v.0
            ))),
        }
    }
}

impl Serialize for RefCount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0 as u64)
    }
}

/// A YAML scalar read as its text, whether written as a number or a string.
struct NumOrText(String);

impl<'de> Deserialize<'de> for NumOrText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NumOrText, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum V {
            N(u64),
            S(String),
        }
        Ok(NumOrText(match V::deserialize(d)? {
            V::N(n) => n.to_string(),
            V::S(s) => s,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (text, bytes, shown) in [
            ("500000", 500_000, "500000"),
            ("800k", 800 << 10, "800KiB"),
            ("800 KiB", 800 << 10, "800KiB"),
            ("100MiB", 100 << 20, "100MiB"),
            ("100mb", 100 << 20, "100MiB"),
            ("2G", 2 << 30, "2GiB"),
            ("1536m", 1536 << 20, "1536MiB"),
            ("1024", 1024, "1KiB"),
        ] {
            let b = Bytes::parse(text).unwrap();
            assert_eq!(b.0, bytes, "{text}");
            assert_eq!(b.to_string(), shown, "{text}");
            assert_eq!(Bytes::parse(shown), Ok(b), "{shown}");
        }
        for bad in [
            "",
            "k",
            "0",
            "-1",
            "1.5G",
            "2T",
            "2 gigs",
            "99999999999999999999",
        ] {
            assert!(Bytes::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn yaml_numbers_and_text() {
        #[derive(Deserialize)]
        struct T {
            b: Bytes,
            n: RefCount,
        }
        let t: T = serde_yaml::from_str("b: 2GiB\nn: 500\n").unwrap();
        assert_eq!((t.b.0, t.n.0), (2 << 30, 500));
        let t: T = serde_yaml::from_str("b: 1000\nn: '5'\n").unwrap();
        assert_eq!((t.b.0, t.n.0), (1000, 5));
        assert!(serde_yaml::from_str::<T>("b: 1k\nn: 0\n").is_err());
        assert!(serde_yaml::from_str::<T>("b: 1k\nn: many\n").is_err());
    }
}
