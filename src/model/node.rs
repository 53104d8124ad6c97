//! Machines of a swarm: node names, as config, subjects and receipts write
//! them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest node (or swarm) name accepted.
pub const MAX_NODE_NAME_LEN: usize = 32;

/// A node name that is not valid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0:?} is not a valid node name: use a letter followed by up to 31 letters, digits, '-' or \
     '_' (for example desk-2)"
)]
pub struct InvalidNodeName(pub String);

/// Whether `s` is a letter followed by letters, digits, `-` or `_`, at most
/// 32 characters: safe in a NATS subject token, a stream or bucket name, a
/// file name and a log line.
#[must_use]
pub fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= MAX_NODE_NAME_LEN
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The name of one machine of a swarm (`desk-2`): it runs `acp run --node
/// NAME` and delivers to the agents configured with that node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct NodeName(String);

impl NodeName {
    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeName {
    type Err = InvalidNodeName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if valid_name(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidNodeName(s.chars().take(64).collect()))
        }
    }
}

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_a_subject_are_refused() {
        for bad in [
            "", "desk.2", "desk*", "desk>", "desk 2", "2desk", "-desk", "dësk", "a/b", "desk\n",
        ] {
            assert!(bad.parse::<NodeName>().is_err(), "{bad:?} was accepted");
        }
        for good in ["desk-1", "laptop", "cloud_box3"] {
            assert_eq!(good.parse::<NodeName>().unwrap().as_str(), good);
        }
        assert!("a".repeat(33).parse::<NodeName>().is_err());
    }
}
