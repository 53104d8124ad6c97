// Over 400 lines: the message, its ids and every check on its fields, with their tests.

//! The `UnifiedMessage`: the one shape every front door (the CLI, Discord,
//! the service) turns a request into before it enters the pipeline.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::agent::AgentId;
use super::person::{PERSON_PREFIX, PersonName};

/// Default limit on a message body, in bytes (16 KiB). Configurable as
/// `limits.max_body_bytes`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest sender name accepted, in characters.
pub const MAX_SENDER_CHARS: usize = 64;
/// Most tags on one message, and longest tag.
pub const MAX_TAGS: usize = 16;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 32;

/// Why a message was refused before it entered the pipeline. Every variant is
/// bad input: the caller can fix it and try again.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("the message body is empty: write something to send")]
    EmptyBody,
    #[error(
        "the message body is {len} bytes, over the limit of {max} bytes: shorten it, send it as \
         several messages, or raise limits.max_body_bytes in config/acp.toml"
    )]
    BodyTooLarge { len: usize, max: usize },
    #[error(
        "the message body contains the control character U+{code:04X} at byte {at}: only newline \
         and tab are allowed (is this a binary file?)"
    )]
    ControlCharacter { code: u32, at: usize },
    #[error(
        "sender {0:?} is not valid: use 1 to 64 printable characters (for example Agent-1, or \
         person:alice for a person)"
    )]
    BadSender(String),
    #[error("tag {0:?} is not valid: use 1 to 32 letters, digits, '-', '_' or '.'")]
    BadTag(String),
    #[error("a message carries at most 16 tags")]
    TooManyTags,
    #[error(
        "{0:?} is not a message id: ids are 26-character ULIDs such as 01JDQ3Z5X8J6Y4F2K9M0N1P2Q3"
    )]
    BadId(String),
    #[error("unknown priority {0:?}: use normal, urgent or critical")]
    BadPriority(String),
    #[error(
        "unknown kind {0:?}: use agent_to_agent, system, broadcast, onboarding, human, report or \
         devlog"
    )]
    BadKind(String),
}

/// A message id: a ULID, so ids sort by creation time as strings and as values.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(ulid::Ulid);

static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());

impl MessageId {
    /// A new id, strictly greater than every id made before it in this process.
    #[must_use]
    pub fn generate() -> Self {
        let mut generator = GENERATOR
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = match generator.generate() {
            Ok(id) => id,
            Err(overflow) => overflow.commit_overflow_increment(),
        };
        Self(id)
    }

    /// Milliseconds since the Unix epoch at which the id was made.
    #[must_use]
    pub fn timestamp_ms(self) -> u64 {
        self.0.timestamp_ms()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; ulid::ULID_LEN];
        f.write_str(self.0.array_to_str(&mut buf))
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

impl FromStr for MessageId {
    type Err = MessageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Accept lower case too: people retype ids from a phone.
        let upper = s.trim().to_ascii_uppercase();
        // Ids that do not encode back to themselves (a first character past
        // 7 overflows 128 bits) are refused rather than silently changed.
        ulid::Ulid::from_string(&upper)
            .ok()
            .filter(|id| id.to_string() == upper)
            .map(Self)
            .ok_or_else(|| MessageError::BadId(s.chars().take(64).collect()))
    }
}

impl Serialize for MessageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "RecipientWire", try_from = "RecipientWire")]
pub enum Recipient {
    /// One agent.
    Agent(AgentId),
    /// Every registered agent (one delivery each).
    Broadcast,
    /// The people on Discord: a reply goes where the message it answers
    /// came from, anything else to the agent's thread or the swarm channel.
    Discord,
    /// One person's inbox (an answer to a message they sent).
    Person(PersonName),
}

impl Recipient {
    /// How the recipient is written in the store and in headers: an agent
    /// id, `*` for everyone, `@discord` (no agent id can start with `@`),
    /// `person:NAME` (no agent id holds a `:`).
    #[must_use]
    pub fn as_text(&self) -> String {
        match self {
            Self::Agent(id) => id.as_str().to_owned(),
            Self::Broadcast => "*".to_owned(),
            Self::Discord => super::delivery::DISCORD.to_owned(),
            Self::Person(name) => name.sender(),
        }
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_text())
    }
}

/// A recipient in JSON: `{"type": "agent", "agent": "Agent-1"}`,
/// `{"type": "broadcast"}`, `{"type": "discord"}` or `{"type": "person",
/// "person": "alice"}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipientWire {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent: Option<AgentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    person: Option<PersonName>,
}

impl From<Recipient> for RecipientWire {
    fn from(r: Recipient) -> Self {
        let (kind, agent, person) = match r {
            Recipient::Agent(id) => ("agent", Some(id), None),
            Recipient::Broadcast => ("broadcast", None, None),
            Recipient::Discord => ("discord", None, None),
            Recipient::Person(name) => ("person", None, Some(name)),
        };
        Self {
            kind: kind.to_owned(),
            agent,
            person,
        }
    }
}

impl TryFrom<RecipientWire> for Recipient {
    type Error = String;
    fn try_from(w: RecipientWire) -> Result<Self, Self::Error> {
        match (w.kind.as_str(), w.agent, w.person) {
            ("agent", Some(id), None) => Ok(Self::Agent(id)),
            ("broadcast", None, None) => Ok(Self::Broadcast),
            ("discord", None, None) => Ok(Self::Discord),
            ("person", None, Some(name)) => Ok(Self::Person(name)),
            (kind, ..) => Err(format!(
                "recipient of type {kind:?} is not agent (with \"agent\"), broadcast, discord or \
                 person (with \"person\")"
            )),
        }
    }
}

/// What kind of message this is; agents and renderers treat kinds differently
/// (onboarding uses the onboarding input point, for example).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    AgentToAgent,
    System,
    Broadcast,
    Onboarding,
    Human,
    /// An agent's message to the people on Discord: a reply, a report.
    Report,
    /// An agent's devlog, posted to Discord.
    Devlog,
}

impl Kind {
    /// Every kind, in documentation order.
    pub const ALL: [Kind; 7] = [
        Kind::AgentToAgent,
        Kind::System,
        Kind::Broadcast,
        Kind::Onboarding,
        Kind::Human,
        Kind::Report,
        Kind::Devlog,
    ];

    /// The name used in config, the CLI, the store and inbox headers.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentToAgent => "agent_to_agent",
            Self::System => "system",
            Self::Broadcast => "broadcast",
            Self::Onboarding => "onboarding",
            Self::Human => "human",
            Self::Report => "report",
            Self::Devlog => "devlog",
        }
    }
}

impl FromStr for Kind {
    type Err = MessageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s.replace('-', "_"))
            .ok_or_else(|| MessageError::BadKind(s.chars().take(32).collect()))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Delivery priority: critical before urgent before normal; oldest first
/// within one priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Normal,
    Urgent,
    Critical,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 3] = [Priority::Normal, Priority::Urgent, Priority::Critical];

    /// The name used in config, the CLI and inbox headers.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Urgent => "urgent",
            Self::Critical => "critical",
        }
    }

    /// The rank stored in SQLite; higher is delivered first.
    #[must_use]
    pub fn rank(self) -> i64 {
        match self {
            Self::Normal => 0,
            Self::Urgent => 1,
            Self::Critical => 2,
        }
    }

    /// The priority for a stored rank.
    #[must_use]
    pub fn from_rank(rank: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.rank() == rank)
    }
}

impl FromStr for Priority {
    type Err = MessageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| MessageError::BadPriority(s.chars().take(32).collect()))
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The message every front door produces and every delivery method consumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnifiedMessage {
    pub id: MessageId,
    /// Who sent it: an agent id, `discord:<user>`, or `person:NAME` (the
    /// person at the keyboard, an API token's holder).
    pub from: String,
    pub to: Recipient,
    pub kind: Kind,
    pub priority: Priority,
    pub body: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Milliseconds since the Unix epoch.
    #[serde(with = "crate::model::time::ms")]
    pub created_at: i64,
    #[serde(default)]
    pub reply_to: Option<MessageId>,
}

impl UnifiedMessage {
    /// Whether `agent` may see this message: it was sent to the agent or
    /// to every agent, or the agent sent it. Anything else is another
    /// agent's business.
    #[must_use]
    pub fn concerns(&self, agent: &AgentId) -> bool {
        self.from == agent.as_str()
            || match &self.to {
                Recipient::Agent(to) => to == agent,
                Recipient::Broadcast => true,
                Recipient::Discord | Recipient::Person(_) => false,
            }
    }
}

/// What a caller supplies; [`Draft::build`] checks it and gives it an id.
#[derive(Debug, Clone)]
pub struct Draft {
    pub from: String,
    pub to: Recipient,
    pub kind: Kind,
    pub priority: Priority,
    pub body: String,
    pub tags: Vec<String>,
    pub reply_to: Option<MessageId>,
}

impl Draft {
    /// Checks the draft against the limits and makes it a message with a new id.
    ///
    /// # Errors
    /// Any [`MessageError`] describing what to change.
    pub fn build(mut self, max_body_bytes: usize) -> Result<UnifiedMessage, MessageError> {
        // Windows line endings are line endings: CRLF becomes LF. A lone CR
        // is still refused by the body check.
        if self.body.contains("\r\n") {
            self.body = self.body.replace("\r\n", "\n");
        }
        check_body(&self.body, max_body_bytes)?;
        check_sender(&self.from)?;
        check_tags(&self.tags)?;
        let id = MessageId::generate();
        Ok(UnifiedMessage {
            created_at: i64::try_from(id.timestamp_ms()).unwrap_or(i64::MAX),
            id,
            from: self.from,
            to: self.to,
            kind: self.kind,
            priority: self.priority,
            body: self.body,
            tags: self.tags,
            reply_to: self.reply_to,
        })
    }
}

/// Checks a body: not empty, within the limit, no control characters other
/// than newline and tab (a carriage return would submit a chat box early).
///
/// # Errors
/// [`MessageError::EmptyBody`], [`MessageError::BodyTooLarge`] or
/// [`MessageError::ControlCharacter`].
pub fn check_body(body: &str, max_body_bytes: usize) -> Result<(), MessageError> {
    if body.len() > max_body_bytes {
        return Err(MessageError::BodyTooLarge {
            len: body.len(),
            max: max_body_bytes,
        });
    }
    if body.trim().is_empty() {
        return Err(MessageError::EmptyBody);
    }
    if let Some((at, c)) = body
        .char_indices()
        .find(|&(_, c)| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(MessageError::ControlCharacter {
            code: u32::from(c),
            at,
        });
    }
    Ok(())
}

/// How many characters of a body [`preview`] keeps.
pub const PREVIEW_CHARS: usize = 80;

/// The start of a body as one line: every run of whitespace (newlines,
/// tabs) and control characters becomes one space, and the text is cut to
/// `max` characters, marked with `…` when cut. `more` says the body goes
/// on past `start` (when only its start was read).
#[must_use]
pub fn preview(start: &str, max: usize, more: bool) -> String {
    let mut out = String::new();
    let mut chars = 0;
    let mut space = false;
    for c in start.trim().chars() {
        if c.is_whitespace() || c.is_control() {
            space = true;
            continue;
        }
        let needed = usize::from(space) + 1;
        if chars + needed > max {
            out.push('…');
            return out;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
        chars += needed;
    }
    if more {
        out.push('…');
    }
    out
}

impl UnifiedMessage {
    /// Checks a message that arrived whole (from another machine) against
    /// the rules every door applies to a draft: body, sender, tags.
    ///
    /// # Errors
    /// The first [`MessageError`] found.
    pub fn check(&self, max_body_bytes: usize) -> Result<(), MessageError> {
        check_body(&self.body, max_body_bytes)?;
        check_sender(&self.from)?;
        check_tags(&self.tags)
    }
}

fn check_tags(tags: &[String]) -> Result<(), MessageError> {
    if tags.len() > MAX_TAGS {
        return Err(MessageError::TooManyTags);
    }
    for tag in tags {
        let ok = !tag.is_empty()
            && tag.chars().count() <= MAX_TAG_CHARS
            && tag
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(MessageError::BadTag(tag.chars().take(40).collect()));
        }
    }
    Ok(())
}

fn check_sender(from: &str) -> Result<(), MessageError> {
    let count = from.chars().count();
    // `person:` is kept for people, written one way only.
    let bad_person = from.starts_with(PERSON_PREFIX) && PersonName::from_sender(from).is_none();
    if count == 0 || count > MAX_SENDER_CHARS || from.chars().any(char::is_control) || bad_person {
        return Err(MessageError::BadSender(from.chars().take(80).collect()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_is_one_line_cut_at_its_length_and_marked_when_cut() {
        assert_eq!(preview("  ship it\n\n\tnow  ", 80, false), "ship it now");
        assert_eq!(preview("abc def", 7, false), "abc def");
        assert_eq!(preview("abc defg", 7, false), "abc def…");
        assert_eq!(preview("abc def", 4, false), "abc…");
        assert_eq!(preview("short", 80, true), "short…");
        let word = "é".repeat(10_000);
        let cut = preview(&word, PREVIEW_CHARS, false);
        assert_eq!(cut.chars().count(), PREVIEW_CHARS + 1);
        assert!(cut.ends_with("é…"));
        assert_eq!(preview("a\u{7}\u{1b}[31mb", 80, false), "a [31mb");
    }

    fn draft(body: &str) -> Draft {
        Draft {
            from: "Agent-1".into(),
            to: Recipient::Agent("Agent-2".parse().unwrap()),
            kind: Kind::AgentToAgent,
            priority: Priority::Urgent,
            body: body.into(),
            tags: vec!["db".into()],
            reply_to: None,
        }
    }

    #[test]
    fn a_message_concerns_its_sender_its_recipient_and_everyone_if_broadcast() {
        let id = |s: &str| s.parse::<AgentId>().unwrap();
        let direct = draft("to Agent-2").build(1024).unwrap();
        assert!(direct.concerns(&id("Agent-1")) && direct.concerns(&id("Agent-2")));
        assert!(!direct.concerns(&id("Agent-3")));
        let mut all = draft("to everyone");
        all.to = Recipient::Broadcast;
        assert!(all.build(1024).unwrap().concerns(&id("Agent-3")));
        let mut people = draft("to Discord");
        people.to = Recipient::Discord;
        let people = people.build(1024).unwrap();
        assert!(people.concerns(&id("Agent-1")) && !people.concerns(&id("Agent-2")));
    }

    #[test]
    fn serde_round_trips() {
        let mut msg = draft("hello\nworld\twith tab, é 漢字 🚀")
            .build(1024)
            .unwrap();
        msg.reply_to = Some(MessageId::generate());
        let json = serde_json::to_string(&msg).unwrap();
        let back: UnifiedMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, msg);
        assert!(json.contains(r#""priority":"urgent""#), "{json}");
        assert!(json.contains(r#""kind":"agent_to_agent""#), "{json}");
    }

    #[test]
    fn ids_sort_by_creation() {
        let ids: Vec<MessageId> = (0..1000).map(|_| MessageId::generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        let strings: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let mut sorted_strings = strings.clone();
        sorted_strings.sort();
        assert_eq!(strings, sorted_strings);
        assert_eq!(strings[0].parse::<MessageId>().unwrap(), ids[0]);
        assert_eq!(
            strings[0].to_lowercase().parse::<MessageId>().unwrap(),
            ids[0]
        );
    }

    #[test]
    fn bodies_are_checked() {
        assert_eq!(
            draft("  \n").build(100).unwrap_err(),
            MessageError::EmptyBody
        );
        assert_eq!(
            draft(&"x".repeat(101)).build(100).unwrap_err(),
            MessageError::BodyTooLarge { len: 101, max: 100 }
        );
        assert!(draft(&"x".repeat(100)).build(100).is_ok());
        assert_eq!(
            draft("ok\rthen").build(100).unwrap_err(),
            MessageError::ControlCharacter { code: 0x0D, at: 2 }
        );
        assert_eq!(
            draft("nul\0").build(100).unwrap_err(),
            MessageError::ControlCharacter { code: 0, at: 3 }
        );
        assert!(draft("escape \u{1b}[31m").build(100).is_err());
    }

    #[test]
    fn senders_and_tags_are_checked() {
        let mut d = draft("hi");
        d.from = String::new();
        assert!(matches!(d.build(100), Err(MessageError::BadSender(_))));
        let mut d = draft("hi");
        d.tags = vec!["a b".into()];
        assert!(matches!(d.build(100), Err(MessageError::BadTag(_))));
    }

    #[test]
    fn recipients_read_and_write_as_json_and_person_senders_are_checked() {
        for (to, json) in [
            (
                Recipient::Agent("Agent-2".parse().unwrap()),
                r#"{"type":"agent","agent":"Agent-2"}"#,
            ),
            (Recipient::Broadcast, r#"{"type":"broadcast"}"#),
            (Recipient::Discord, r#"{"type":"discord"}"#),
            (
                Recipient::Person("alice".parse().unwrap()),
                r#"{"type":"person","person":"alice"}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&to).unwrap(), json);
            assert_eq!(serde_json::from_str::<Recipient>(json).unwrap(), to);
        }
        for bad in [
            r#"{"type":"person","agent":"alice"}"#,
            r#"{"type":"agent"}"#,
            r#"{"type":"person","person":"../x"}"#,
        ] {
            assert!(serde_json::from_str::<Recipient>(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Recipient::Person("alice".parse().unwrap()).to_string(),
            "person:alice"
        );
        let mut d = draft("hi");
        d.from = "person:alice".into();
        assert!(d.build(100).is_ok());
        for bad in ["person:", "person:../x", "person:a b"] {
            let mut d = draft("hi");
            d.from = bad.into();
            assert!(
                matches!(d.build(100), Err(MessageError::BadSender(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_ids_are_refused() {
        for bad in [
            "",
            "../etc/passwd",
            "01JDQ3Z5X8J6Y4F2K9M0N1P2Q",
            "ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
        ] {
            assert!(bad.parse::<MessageId>().is_err(), "{bad}");
        }
    }
}
