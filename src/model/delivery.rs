// Over 400 lines: the whole delivery vocabulary, each word with its names, parsing and how an
// I/O failure is classed, beside their tests.

//! The delivery vocabulary: method names, what a sender allows (`--via`),
//! and how an attempt failed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::agent::{Agent, AgentId};
use super::person::{PERSON_PREFIX, PersonName};

/// How the Discord destination is written in the store: no agent id can
/// start with `@`.
pub const DISCORD: &str = "@discord";

/// Where one delivery goes: an agent, the people on Discord (the
/// outbox), or one person's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    Agent(AgentId),
    Discord,
    Person(PersonName),
}

impl Destination {
    /// The destination as stored: the agent id, `@discord`, or
    /// `person:NAME`.
    #[must_use]
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Self::Agent(id) => id.as_str().into(),
            Self::Discord => DISCORD.into(),
            Self::Person(name) => name.sender().into(),
        }
    }

    /// The agent, if it is one.
    #[must_use]
    pub fn agent(&self) -> Option<&AgentId> {
        match self {
            Self::Agent(id) => Some(id),
            Self::Discord | Self::Person(_) => None,
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.as_str())
    }
}

impl FromStr for Destination {
    type Err = super::agent::AgentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == DISCORD {
            Ok(Self::Discord)
        } else if let Some(name) = s.strip_prefix(PERSON_PREFIX) {
            name.parse()
                .map(Self::Person)
                .map_err(|_| super::agent::AgentError::InvalidId(s.chars().take(64).collect()))
        } else {
            s.parse().map(Self::Agent)
        }
    }
}

impl Serialize for Destination {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

/// The name of a delivery method, as written in config and the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodName {
    /// Keyboard and mouse into the agent's chat window.
    Gui,
    /// A markdown file in the agent's workspace inbox.
    Inbox,
    /// A bracketed paste into the agent's tmux pane.
    Tmux,
    /// A post to Discord (the outbox: replies, reports, devlogs).
    Discord,
    /// Handed to the machine that runs the agent, through NATS JetStream
    /// (`[cluster]`); that machine delivers it with its own methods.
    Cluster,
    /// Into a person's inbox (`data/people/NAME/inbox/`): an agent's
    /// answer to a message that person sent.
    Person,
}

impl MethodName {
    /// The name as text.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gui => "gui",
            Self::Inbox => "inbox",
            Self::Tmux => "tmux",
            Self::Discord => "discord",
            Self::Cluster => "cluster",
            Self::Person => "person",
        }
    }
}

impl fmt::Display for MethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A method name that is not known.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown delivery method {0:?}: use gui, tmux or inbox (discord and person deliver to \
     people, not agents)"
)]
pub struct UnknownMethod(pub String);

impl FromStr for MethodName {
    type Err = UnknownMethod;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gui" => Ok(Self::Gui),
            "inbox" => Ok(Self::Inbox),
            "tmux" => Ok(Self::Tmux),
            "discord" => Ok(Self::Discord),
            "cluster" => Ok(Self::Cluster),
            "person" => Ok(Self::Person),
            other => Err(UnknownMethod(other.chars().take(32).collect())),
        }
    }
}

/// Which methods one message may use, chosen by the sender (`--via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The agent's configured order.
    #[default]
    Auto,
    /// Only this method, no fallback.
    Only(MethodName),
}

impl Via {
    /// The text stored and shown: `auto`, `gui` or `inbox`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Only(m) => m.as_str(),
        }
    }

    /// The methods to try, in order, for this agent.
    #[must_use]
    pub fn methods_for(self, agent: &Agent) -> Vec<MethodName> {
        match self {
            Self::Auto => agent.delivery.clone(),
            Self::Only(m) => vec![m],
        }
    }
}

impl FromStr for Via {
    type Err = UnknownMethod;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            Ok(Self::Auto)
        } else {
            s.parse()
                .map(Self::Only)
                .map_err(|_| UnknownMethod(s.chars().take(32).collect()))
        }
    }
}

/// How an attempt failed, which decides what the dispatcher does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// Might work later (disk full, permission being fixed, window busy):
    /// retried with backoff.
    Transient,
    /// Will not work for this message with this method: not retried.
    Permanent,
    /// The method cannot run here at all (no display, not built in):
    /// the next method is tried, no retry on its account.
    Unavailable,
    /// The recipient is busy (an agent at work in its pane): no other
    /// method is tried, and the delivery waits and tries again, however
    /// long that takes.
    Busy,
    /// The machine is short of something every delivery needs (open
    /// files, disk space, memory): nothing is wrong with the message, so
    /// it is retried at the usual backoff however many attempts that
    /// takes, and never failed on this account.
    Exhausted,
}

impl FailureKind {
    /// The name stored with an attempt.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::Unavailable => "unavailable",
            Self::Busy => "busy",
            Self::Exhausted => "exhausted",
        }
    }
}

/// Why one method could not deliver one message.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{reason}")]
pub struct DeliveryError {
    pub kind: FailureKind,
    pub reason: String,
    /// When the far side said to try again (Discord's `retry_after`),
    /// instead of the usual backoff.
    pub retry_after: Option<std::time::Duration>,
}

impl DeliveryError {
    /// A failure worth retrying.
    #[must_use]
    pub fn transient(reason: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Transient,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// A failure not worth retrying with this method.
    #[must_use]
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Permanent,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// The recipient is busy: wait, and try again.
    #[must_use]
    pub fn busy(reason: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Busy,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// The same failure, as [`FailureKind::Exhausted`] when the I/O error
    /// behind it says the machine ran out of open files, disk space or
    /// memory (that passes; the message is not to blame).
    #[must_use]
    pub fn or_exhausted(mut self, error: &std::io::Error) -> Self {
        if resource_exhausted(error) {
            self.kind = FailureKind::Exhausted;
        }
        self
    }

    /// The method cannot run here.
    #[must_use]
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Unavailable,
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// Whether an I/O error says the machine is short of a resource rather
/// than that something is wrong: too many open files (in the process or
/// the system), no space or quota left, no memory or buffers.
fn resource_exhausted(error: &std::io::Error) -> bool {
    use rustix::io::Errno;
    use std::io::ErrorKind;
    let short = |e: &std::io::Error| {
        matches!(
            e.kind(),
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::OutOfMemory
        ) || Errno::from_io_error(e).is_some_and(|e| {
            [
                Errno::MFILE,
                Errno::NFILE,
                Errno::NOSPC,
                Errno::DQUOT,
                Errno::NOMEM,
                Errno::NOBUFS,
            ]
            .contains(&e)
        })
    };
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>().is_some_and(short) {
            return true;
        }
        next = e.source();
    }
    // A wrapper that adds the path (tempfile's) keeps only the OS error's
    // text, which ends in "(os error N)".
    let text = error.to_string();
    text.rsplit_once("(os error ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(code, _)| code.parse::<i32>().ok())
        .is_some_and(|code| short(&std::io::Error::from_raw_os_error(code)))
}

/// Where one delivery (one message to one agent) stands. Ordered by name,
/// the order in which listings show states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// A method put it in front of the agent.
    Delivered,
    /// A dispatcher holds it and is trying a method.
    Delivering,
    /// Given up: every method failed for good, or attempts ran out.
    Failed,
    /// Waiting for a dispatcher (new, or retrying after a failure).
    Queued,
}

impl DeliveryState {
    /// Every state, by name.
    pub const ALL: [Self; 4] = [
        Self::Delivered,
        Self::Delivering,
        Self::Failed,
        Self::Queued,
    ];

    /// The name as stored and shown.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Delivering => "delivering",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Whether nothing more will happen to it (delivered or failed).
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Failed)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A state name that is not known.
#[derive(Debug, thiserror::Error)]
#[error("unknown delivery state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for DeliveryState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.chars().take(32).collect()))
    }
}

/// How one method's attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    /// It delivered.
    Ok,
    /// It failed, and this is how.
    #[serde(untagged)]
    Failed(FailureKind),
}

impl AttemptOutcome {
    /// The name as stored: `ok`, `transient`, `permanent` or `unavailable`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed(kind) => kind.as_str(),
        }
    }
}

impl FromStr for AttemptOutcome {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ok" => Ok(Self::Ok),
            "transient" => Ok(Self::Failed(FailureKind::Transient)),
            "permanent" => Ok(Self::Failed(FailureKind::Permanent)),
            "unavailable" => Ok(Self::Failed(FailureKind::Unavailable)),
            "busy" => Ok(Self::Failed(FailureKind::Busy)),
            "exhausted" => Ok(Self::Failed(FailureKind::Exhausted)),
            other => Err(UnknownState(other.chars().take(32).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_outcomes_round_trip_through_their_names() {
        for state in DeliveryState::ALL {
            assert_eq!(state.as_str().parse::<DeliveryState>().unwrap(), state);
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.as_str())
            );
        }
        assert!("Delivered".parse::<DeliveryState>().is_err());
        for name in [
            "ok",
            "transient",
            "permanent",
            "unavailable",
            "busy",
            "exhausted",
        ] {
            let outcome: AttemptOutcome = name.parse().unwrap();
            assert_eq!(outcome.as_str(), name);
            assert_eq!(
                serde_json::to_value(outcome).unwrap(),
                serde_json::json!(name)
            );
        }
    }

    #[derive(Debug)]
    struct WithPath(std::io::Error);

    impl fmt::Display for WithPath {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{} at /some/path", self.0)
        }
    }

    impl std::error::Error for WithPath {}

    #[test]
    fn a_machine_short_of_files_or_space_is_waited_out() {
        for errno in [24, 23, 28] {
            // EMFILE, ENFILE, ENOSPC on Linux.
            let e = std::io::Error::from_raw_os_error(errno);
            let failure = DeliveryError::transient("x").or_exhausted(&e);
            assert_eq!(failure.kind, FailureKind::Exhausted, "{e}");
        }
        // As tempfile reports it: the OS error's text, with the path.
        let wrapped = std::io::Error::other(WithPath(std::io::Error::from_raw_os_error(24)));
        let failure = DeliveryError::transient("x").or_exhausted(&wrapped);
        assert_eq!(failure.kind, FailureKind::Exhausted);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let failure = DeliveryError::transient("x").or_exhausted(&denied);
        assert_eq!(failure.kind, FailureKind::Transient);
    }
}
