//! What an agent is doing and what it asks of a person: its state, the
//! prompts it raises (a permission, a question) and the decisions on them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::agent::AgentId;

/// An agent's state, from the evidence acp has (its hooks, its pane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// At work on something.
    Working,
    /// Waiting for input.
    Idle,
    /// Stopped at a permission (or plan) prompt.
    NeedsApproval,
    /// Stopped at a question with choices.
    Asking,
    /// Went idle after work (with its last words, when known).
    Done,
    /// The agent program is gone (its session ended, a shell in its pane).
    Exited,
    /// Nothing known yet.
    Unknown,
}

impl AgentState {
    pub const ALL: [AgentState; 7] = [
        Self::Working,
        Self::Idle,
        Self::NeedsApproval,
        Self::Asking,
        Self::Done,
        Self::Exited,
        Self::Unknown,
    ];

    /// The name in the store, the CLI and JSON.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Working => "working",
            Self::Idle => "idle",
            Self::NeedsApproval => "needs_approval",
            Self::Asking => "asking",
            Self::Done => "done",
            Self::Exited => "exited",
            Self::Unknown => "unknown",
        }
    }

    /// Whether a person is wanted: a prompt, a finished task, a gone agent.
    #[must_use]
    pub fn wants_a_person(self) -> bool {
        matches!(
            self,
            Self::NeedsApproval | Self::Asking | Self::Done | Self::Exited
        )
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A name that is no state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown agent state {0:?}")]
pub struct UnknownName(pub String);

impl FromStr for AgentState {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownName(s.chars().take(40).collect()))
    }
}

/// A prompt's id: a ULID, sortable by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PromptId(ulid::Ulid);

impl PromptId {
    #[must_use]
    pub fn generate() -> Self {
        Self(ulid::Ulid::generate())
    }
}

impl fmt::Display for PromptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Text that is no prompt id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a prompt id (26 letters and digits, as `acp prompts` shows)")]
pub struct BadPromptId(pub String);

impl FromStr for PromptId {
    type Err = BadPromptId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ulid::Ulid::from_string(s.trim())
            .map(Self)
            .map_err(|_| BadPromptId(s.chars().take(40).collect()))
    }
}

impl Serialize for PromptId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PromptId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a prompt came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptSource {
    /// An `acp hook` process that waits for the decision.
    Hook,
    /// The agent's pane, read by its profile.
    Pane,
}

impl PromptSource {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hook => "hook",
            Self::Pane => "pane",
        }
    }
}

impl FromStr for PromptSource {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hook" => Ok(Self::Hook),
            "pane" => Ok(Self::Pane),
            _ => Err(UnknownName(s.chars().take(40).collect())),
        }
    }
}

/// What a person decided on a prompt, or how it ended without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    /// Allow, and do not ask again for this in this session.
    AllowSession,
    Deny,
    /// Answered at the agent's own terminal before anyone here did.
    AtTerminal,
    /// Nobody answered in time: the agent's own dialog stays up.
    Expired,
}

impl Decision {
    pub const ALL: [Decision; 5] = [
        Self::Allow,
        Self::AllowSession,
        Self::Deny,
        Self::AtTerminal,
        Self::Expired,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::AllowSession => "allow_session",
            Self::Deny => "deny",
            Self::AtTerminal => "at_terminal",
            Self::Expired => "expired",
        }
    }

    /// How it reads after "the prompt was ...".
    #[must_use]
    pub fn said(self) -> &'static str {
        match self {
            Self::Allow => "allowed",
            Self::AllowSession => "allowed for the session",
            Self::Deny => "denied",
            Self::AtTerminal => "answered at the terminal",
            Self::Expired => "left unanswered (timed out)",
        }
    }
}

impl FromStr for Decision {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownName(s.chars().take(40).collect()))
    }
}

/// What a button on a prompt's post does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    Decide(Decision),
    /// Show the whole command or input, to the presser alone.
    More,
}

impl PromptId {
    /// The `custom_id` of one of this prompt's buttons (at most 100
    /// characters, as Discord requires: this is 45 at most).
    #[must_use]
    pub fn button(self, press: Press) -> String {
        let what = match press {
            Press::Decide(Decision::Allow) => "allow",
            Press::Decide(Decision::AllowSession) => "session",
            Press::Decide(Decision::Deny) => "deny",
            Press::Decide(Decision::AtTerminal | Decision::Expired) | Press::More => "more",
        };
        format!("acp:prompt:{self}:{what}")
    }

    /// The prompt and the press a button's `custom_id` names.
    #[must_use]
    pub fn parse_button(custom_id: &str) -> Option<(Self, Press)> {
        let rest = custom_id.strip_prefix("acp:prompt:")?;
        let (id, what) = rest.split_once(':')?;
        let press = match what {
            "allow" => Press::Decide(Decision::Allow),
            "session" => Press::Decide(Decision::AllowSession),
            "deny" => Press::Decide(Decision::Deny),
            "more" => Press::More,
            _ => return None,
        };
        Some((id.parse().ok()?, press))
    }
}

/// A prompt: what an agent asks a person. It travels between machines as
/// JSON (a node's agent asks; the hub's bot shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub id: PromptId,
    pub agent: AgentId,
    pub source: PromptSource,
    /// The tool asking (`Bash`, `Edit`...), when known.
    pub tool: Option<String>,
    /// One line: what it wants to do.
    pub summary: String,
    /// Everything known: the full command or input (bounded).
    pub detail: String,
    /// Whether "allow for this session" can be given back.
    pub allow_session: bool,
    /// The agent's session, when the hook says (a later event of the same
    /// session means the prompt was answered at the terminal).
    pub session: Option<String>,
    /// A pane's dialog: its choices and a fingerprint of its text (the
    /// answer's key goes only to the same dialog).
    pub choices: Vec<super::pane::Choice>,
    pub fingerprint: Option<String>,
    /// For a pane's dialog, once decided: what was done at the pane (the
    /// key sent, or why none was).
    pub answered: Option<String>,
    #[serde(with = "super::time::ms")]
    pub created_at: i64,
    pub decided: Option<Decided>,
}

/// A decision as the store recorded it: the first one, whoever else tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub decision: Decision,
    /// Who: `discord:ID`, `cli:USER`, `http:TOKEN`, `terminal`, `acp`.
    pub by: String,
    #[serde(with = "super::time::ms")]
    pub at: i64,
    /// A deny's reason, told to the agent.
    pub reason: Option<String>,
}

/// Who a prompt's reminder pings on Discord: role and user ids (Discord
/// takes at most 100 of each in `allowed_mentions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mentions {
    pub roles: Vec<u64>,
    pub users: Vec<u64>,
}

impl Mentions {
    /// Most ids of each kind one post may ping.
    pub const MAX_EACH: usize = 100;

    /// Nobody to ping.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.users.is_empty()
    }

    /// The mentions as Discord writes them: `<@&ROLE> <@USER>`.
    #[must_use]
    pub fn markup(&self) -> String {
        self.roles
            .iter()
            .map(|r| format!("<@&{r}>"))
            .chain(self.users.iter().map(|u| format!("<@{u}>")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A span of time for people: `42 s`, `5 min`, `2 h 5 min`, `3 d 4 h`.
#[must_use]
pub fn waited(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => match (s % 3600) / 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
        _ => match (s % 86_400) / 3600 {
            0 => format!("{} d", s / 86_400),
            h => format!("{} d {h} h", s / 86_400),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in AgentState::ALL {
            assert_eq!(s.as_str().parse::<AgentState>().unwrap(), s);
        }
        for d in Decision::ALL {
            assert_eq!(d.as_str().parse::<Decision>().unwrap(), d);
        }
        let id = PromptId::generate();
        assert_eq!(id.to_string().parse::<PromptId>().unwrap(), id);
        for press in [
            Press::Decide(Decision::Allow),
            Press::Decide(Decision::AllowSession),
            Press::Decide(Decision::Deny),
            Press::More,
        ] {
            let button = id.button(press);
            assert!(button.len() <= 100);
            assert_eq!(PromptId::parse_button(&button), Some((id, press)));
        }
        assert_eq!(PromptId::parse_button("acp:prompt:../x:allow"), None);
        assert!("../x".parse::<PromptId>().is_err());
        assert!(AgentState::NeedsApproval.wants_a_person());
        assert!(!AgentState::Working.wants_a_person());
    }

    #[test]
    fn mentions_and_waits_read_as_discord_and_people_write_them() {
        let m = Mentions {
            roles: vec![7],
            users: vec![8, 9],
        };
        assert_eq!(m.markup(), "<@&7> <@8> <@9>");
        assert!(!m.is_empty() && Mentions::default().is_empty());
        assert_eq!(waited(-5), "0 s");
        assert_eq!(waited(42_999), "42 s");
        assert_eq!(waited(300_000), "5 min");
        assert_eq!(waited(3_600_000), "1 h");
        assert_eq!(waited(7_500_000), "2 h 5 min");
        assert_eq!(waited(86_400_000 * 3 + 3_600_000 * 4), "3 d 4 h");
    }
}
