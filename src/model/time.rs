//! Times as acp shows them in JSON: RFC 3339 in UTC with milliseconds
//! (`2026-12-01T21:39:40.123Z`), everywhere. The store keeps epoch
//! milliseconds; these helpers turn one into the other at the edge.

use serde::{Deserialize, Deserializer, Serializer};

/// Epoch milliseconds as RFC 3339 (UTC, milliseconds).
#[must_use]
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| format!("{t:.3}"))
}

/// RFC 3339 (or a plain number of epoch milliseconds) as epoch milliseconds.
fn parse(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().or_else(|| {
        text.parse::<jiff::Timestamp>()
            .ok()
            .map(jiff::Timestamp::as_millisecond)
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Either {
    Ms(i64),
    Text(String),
}

/// `#[serde(with = "time::ms")]` on an `i64` of epoch milliseconds.
pub mod ms {
    use super::{Deserialize, Deserializer, Either, Serializer, parse, rfc3339};

    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(*ms))
    }

    /// # Errors
    /// Neither a number nor an RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match Either::deserialize(d)? {
            Either::Ms(ms) => Ok(ms),
            Either::Text(t) => parse(&t).ok_or_else(|| serde::de::Error::custom("not a time")),
        }
    }
}

/// `#[serde(with = "time::opt_ms")]` on an `Option<i64>`.
pub mod opt_ms {
    use super::{Deserialize, Deserializer, Either, Serializer, parse, rfc3339};

    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => s.serialize_str(&rfc3339(*ms)),
            None => s.serialize_none(),
        }
    }

    /// # Errors
    /// Neither a number nor an RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<Either>::deserialize(d)? {
            None => Ok(None),
            Some(Either::Ms(ms)) => Ok(Some(ms)),
            Some(Either::Text(t)) => parse(&t)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("not a time")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_round_trip_through_rfc3339() {
        assert_eq!(rfc3339(1_796_159_618_474), "2026-12-01T21:13:38.474Z");
        assert_eq!(parse("2026-12-01T21:13:38.474Z"), Some(1_796_159_618_474));
        assert_eq!(parse("1796159618474"), Some(1_796_159_618_474));
        assert_eq!(parse("yesterday"), None);
    }
}
