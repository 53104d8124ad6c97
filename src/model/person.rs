//! People: the person at the keyboard (the OS user, or `ACP_OPERATOR`)
//! and the holders of API tokens. A person's messages are signed
//! `person:NAME`, a form no agent id (no `:`) and no Discord sender
//! (`discord:`) can take, and answers to them land in that person's inbox.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a person is written as a sender and a destination: `person:alice`.
pub const PERSON_PREFIX: &str = "person:";
/// Longest person name accepted.
pub const MAX_PERSON_NAME_LEN: usize = 32;

/// A person name that is not valid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0:?} is not a valid person name: use 1 to 32 letters, digits, '-', '_' or '.', not \
     starting with '.' or '-' (for example alice)"
)]
pub struct InvalidPersonName(pub String);

/// A person's name (`alice`): ASCII letters, digits, `-`, `_` and `.`,
/// starting with a letter, a digit or `_`, at most 32 characters. Safe as
/// a file name (no `/`, never `.` or `..`) and in a log line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The person as a sender and a destination: `person:NAME`.
    #[must_use]
    pub fn sender(&self) -> String {
        format!("{PERSON_PREFIX}{}", self.0)
    }

    /// The person a `person:NAME` sender names, if it is one.
    #[must_use]
    pub fn from_sender(text: &str) -> Option<Self> {
        text.strip_prefix(PERSON_PREFIX)?.parse().ok()
    }
}

impl FromStr for PersonName {
    type Err = InvalidPersonName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut chars = s.chars();
        let valid = s.len() <= MAX_PERSON_NAME_LEN
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidPersonName(s.chars().take(64).collect()))
        }
    }
}

impl<'de> Deserialize<'de> for PersonName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_as_files_and_senders_round_trip() {
        for bad in [
            "", ".", "..", ".hidden", "-x", "a/b", "a b", "a:b", "é", "a\n",
        ] {
            assert!(bad.parse::<PersonName>().is_err(), "{bad:?} was accepted");
        }
        let long = "a".repeat(33);
        assert!(long.parse::<PersonName>().is_err());
        for good in ["alice", "Bob", "ci", "_svc", "first.last", "a-1", "9lives"] {
            let name: PersonName = good.parse().unwrap();
            assert_eq!(PersonName::from_sender(&name.sender()), Some(name));
        }
        assert_eq!(PersonName::from_sender("alice"), None);
        assert_eq!(PersonName::from_sender("person:../x"), None);
        assert_eq!(PersonName::from_sender("discord:1:alice"), None);
    }
}
