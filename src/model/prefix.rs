//! Ids given by a unique prefix (`acp inbox read 01JDQ3Z5X8`): one
//! resolver for messages, prompts and backups. Ids are ULIDs, so they sort
//! as text; every id that starts with a prefix lies in one range of that
//! order ([`IdPrefix::range`]), which the store reads from its primary key
//! and a backup catalog from its sorted list: never a scan of everything.
//!
//! Ids start with their time, so a short prefix names a stretch of time
//! rather than one id (8 characters are about one second): a prefix under
//! the minimum is refused, saying so, even when it happens to match one id.

use std::fmt;

/// The fewest characters of a message or prompt id taken as a prefix.
pub const MIN_ID_PREFIX: usize = 8;
/// How many candidates an ambiguous prefix lists.
pub const LISTED: usize = 10;
/// A ULID's length: a prefix this long is a whole id.
pub const ID_LEN: usize = 26;

/// What kind of id is asked for, for the texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdKind {
    /// "message", "prompt", "backup".
    pub name: &'static str,
    /// Where the ids are shown ("`acp inbox list` shows them").
    pub hint: &'static str,
    /// The fewest characters taken.
    pub min: usize,
}

/// A message id, as people give it.
pub const MESSAGE: IdKind = IdKind {
    name: "message",
    hint: "`acp inbox list --agent AGENT` and `acp status` show them",
    min: MIN_ID_PREFIX,
};

/// A prompt id, as people give it.
pub const PROMPT: IdKind = IdKind {
    name: "prompt",
    hint: "`acp prompts` lists them",
    min: MIN_ID_PREFIX,
};

/// A checked prefix: upper case, only the characters ids are made of
/// (Crockford's base 32), at least the kind's minimum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPrefix {
    text: String,
    kind: IdKind,
}

/// Why a prefix names no one id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error(
        "{given:?} is too short to name a {}: give at least {} characters of the id ({})",
        kind.name, kind.min, kind.hint
    )]
    TooShort { given: String, kind: IdKind },
    #[error(
        "{given:?} is not a {} id: ids are 26 letters and digits such as \
         01JDQ3Z5X8J6Y4F2K9M0N1P2Q3, and a prefix of one is taken too ({})",
        kind.name, kind.hint
    )]
    NotAnId { given: String, kind: IdKind },
    #[error("no {} id starts with {given:?} ({})", kind.name, kind.hint)]
    NotFound { given: String, kind: IdKind },
    #[error(
        "{} {} ids start with {given:?}: give more of the id ({}{})",
        if *more { format!("more than {}", candidates.len()) } else { candidates.len().to_string() },
        kind.name,
        candidates.join(", "),
        if *more { ", ..." } else { "" }
    )]
    Ambiguous {
        given: String,
        kind: IdKind,
        /// The first [`LISTED`] of them, in order.
        candidates: Vec<String>,
        /// Whether there are more than those.
        more: bool,
    },
}

impl PrefixError {
    /// Whether no id matched (a 404 over HTTP), rather than the prefix
    /// being unusable.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// Whether `c` is a character of Crockford's base 32, as ids are written.
fn id_char(c: char) -> bool {
    c.is_ascii_digit() || (c.is_ascii_uppercase() && !matches!(c, 'I' | 'L' | 'O' | 'U'))
}

impl IdPrefix {
    /// Reads a prefix (any case, spaces around ignored).
    ///
    /// # Errors
    /// [`PrefixError::NotAnId`] for characters no id has or a text longer
    /// than an id, [`PrefixError::TooShort`] under `kind.min`.
    pub fn parse(text: &str, kind: IdKind) -> Result<Self, PrefixError> {
        let given: String = text.trim().chars().take(64).collect();
        let upper = given.to_ascii_uppercase();
        if upper.is_empty() || upper.len() > ID_LEN || !upper.chars().all(id_char) {
            return Err(PrefixError::NotAnId { given, kind });
        }
        if upper.len() < kind.min {
            return Err(PrefixError::TooShort { given, kind });
        }
        Ok(Self { text: upper, kind })
    }

    /// The prefix, upper case.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it is a whole id rather than a part of one.
    #[must_use]
    pub fn is_whole(&self) -> bool {
        self.text.len() == ID_LEN
    }

    /// `(from, to)`: the ids starting with the prefix are exactly those in
    /// `from <= id < to` (ids hold only digits and capitals, all below `~`).
    #[must_use]
    pub fn range(&self) -> (String, String) {
        (self.text.clone(), format!("{}~", self.text))
    }

    /// The one id among `found` (the ids in [`IdPrefix::range`], in order,
    /// at most [`LISTED`] + 1 of them).
    ///
    /// # Errors
    /// [`PrefixError::NotFound`] for none, [`PrefixError::Ambiguous`]
    /// listing them for several.
    pub fn pick<T: fmt::Display>(&self, mut found: Vec<T>) -> Result<T, PrefixError> {
        if found.len() == 1 {
            return Ok(found.remove(0));
        }
        if found.is_empty() {
            return Err(PrefixError::NotFound {
                given: self.text.clone(),
                kind: self.kind,
            });
        }
        let more = found.len() > LISTED;
        Err(PrefixError::Ambiguous {
            given: self.text.clone(),
            kind: self.kind,
            candidates: found.iter().take(LISTED).map(ToString::to_string).collect(),
            more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked_and_ranges_hold_exactly_their_ids() {
        let p = IdPrefix::parse(" 01jdq3z5 ", MESSAGE).unwrap();
        assert_eq!(p.as_str(), "01JDQ3Z5");
        assert!(!p.is_whole());
        let (from, to) = p.range();
        for id in [
            "01JDQ3Z5",
            "01JDQ3Z50000000000000000000",
            "01JDQ3Z5ZZZZZZZZZZZZZZZZZZ",
        ] {
            assert!(from.as_str() <= id && id < to.as_str(), "{id}");
        }
        for id in ["01JDQ3Z4ZZZZZZZZZZZZZZZZZZ", "01JDQ3Z600000000000000000"] {
            assert!(!(from.as_str() <= id && id < to.as_str()), "{id}");
        }
        let short = IdPrefix::parse("01JDQ3", MESSAGE).unwrap_err();
        assert!(
            short.to_string().contains("too short") && short.to_string().contains("at least 8"),
            "{short}"
        );
        for bad in ["", "hello-world", "01JDQ3Z5!", "01JDQ3ZL", &"0".repeat(27)] {
            assert!(
                matches!(
                    IdPrefix::parse(bad, MESSAGE),
                    Err(PrefixError::NotAnId { .. })
                ),
                "{bad}"
            );
        }
        assert!(
            IdPrefix::parse("01JDQ3Z5X8J6Y4F2K9M0N1P2Q3", MESSAGE)
                .unwrap()
                .is_whole()
        );
    }

    #[test]
    fn one_match_is_taken_none_or_several_are_said() {
        let p = IdPrefix::parse("01JDQ3Z5", PROMPT).unwrap();
        assert_eq!(p.pick(vec!["A"]).unwrap(), "A");
        let none = p.pick(Vec::<String>::new()).unwrap_err();
        assert!(none.is_not_found());
        assert!(
            none.to_string().contains("no prompt id starts with"),
            "{none}"
        );
        let two = p.pick(vec!["01JDQ3Z5A", "01JDQ3Z5B"]).unwrap_err();
        assert_eq!(
            two.to_string(),
            "2 prompt ids start with \"01JDQ3Z5\": give more of the id (01JDQ3Z5A, 01JDQ3Z5B)"
        );
        let many: Vec<String> = (0..=LISTED).map(|i| format!("01JDQ3Z5{i:02}")).collect();
        let err = p.pick(many).unwrap_err().to_string();
        assert!(
            err.contains("more than 10") && err.ends_with(", ...)"),
            "{err}"
        );
        assert!(!err.contains("01JDQ3Z510"), "{err}");
    }
}
