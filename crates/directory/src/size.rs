//! Message and quota sizes (`25MB`, `100KB`, `1GB`, `512B`, a plain number of
//! bytes), 1024-based. Owns the syntax only.

use std::fmt;
use std::str::FromStr;

use crate::error::{ValueError, shown};

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Size(pub u64);

const UNITS: [(&str, u64); 4] = [
    ("TB", 1 << 40),
    ("GB", 1 << 30),
    ("MB", 1 << 20),
    ("KB", 1 << 10),
];

impl Size {
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for Size {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(digits_end);
        if digits.is_empty() {
            return Err(ValueError::new(format!(
                "{s} is not a size: write a number and a unit, e.g. 25MB, 100KB, 512B",
                s = shown(s)
            )));
        }
        let unit = unit.trim().to_ascii_uppercase();
        let multiplier = match unit.as_str() {
            "" | "B" => 1,
            "K" | "KB" => 1 << 10,
            "M" | "MB" => 1 << 20,
            "G" | "GB" => 1 << 30,
            "T" | "TB" => 1 << 40,
            _ => {
                return Err(ValueError::new(format!(
                    "unknown size unit {unit:?}: use B, KB, MB, GB or TB"
                )));
            }
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier))
            .map(Size)
            .ok_or_else(|| ValueError::new(format!("size {s} is too large", s = shown(s))))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        match UNITS.iter().find(|(_, m)| n != 0 && n.is_multiple_of(*m)) {
            Some((unit, m)) => write!(f, "{}{unit}", n / m),
            None => write!(f, "{n}B"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forms() {
        let cases = [
            ("25MB", 25 << 20),
            ("100KB", 100 << 10),
            ("1GB", 1 << 30),
            ("512B", 512),
            ("512", 512),
            ("10 mb", 10 << 20),
            ("2k", 2048),
            ("0", 0),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<Size>().unwrap(), Size(bytes), "{text}");
        }
        assert_eq!(Size(25 << 20).to_string(), "25MB");
        assert_eq!(Size(1000).to_string(), "1000B");
        assert_eq!(Size(0).to_string(), "0B");
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "MB",
            "1.5MB",
            "10 parsecs",
            "-1",
            "99999999999999999999",
            "20000000TB",
        ] {
            assert!(bad.parse::<Size>().is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn round_trips(n in any::<u64>()) {
            prop_assert_eq!(Size(n).to_string().parse::<Size>().unwrap(), Size(n));
        }

        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = s.parse::<Size>();
        }
    }
}
