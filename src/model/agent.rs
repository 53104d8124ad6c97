//! The agent registry: who the agents are, where their workspaces live and how
//! each one is reached.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::delivery::MethodName;
use super::gui::GuiSettings;

/// Longest agent id accepted.
pub const MAX_AGENT_ID_LEN: usize = 32;

/// Why an agent id or lookup was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AgentError {
    #[error(
        "{0:?} is not a valid agent id: use a letter followed by up to 31 letters, digits, '-' \
         or '_' (for example Agent-3)"
    )]
    InvalidId(String),
    #[error("unknown agent {id}: known agents are {known} (see `acp agents`)")]
    Unknown { id: String, known: String },
}

/// An agent id such as `Agent-3`. The pattern is strict (ASCII letter, then
/// letters, digits, `-`, `_`) so that an id can never name a path outside its
/// workspace: no `/`, `.`, `..`, NUL, spaces or empty ids.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AgentId(String);

impl AgentId {
    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AgentId {
    type Err = AgentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut chars = s.chars();
        let valid = s.len() <= MAX_AGENT_ID_LEN
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(AgentError::InvalidId(s.chars().take(64).collect()))
        }
    }
}

impl<'de> Deserialize<'de> for AgentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// One agent as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    pub id: AgentId,
    /// A name for people ("Captain", "DB agent"); defaults to the id.
    pub name: String,
    /// The role from config; a role set with `acp roles set` overrides it.
    pub role: String,
    /// Absolute path of the agent's workspace.
    pub workspace: PathBuf,
    /// Delivery methods, tried in this order.
    pub delivery: Vec<MethodName>,
    /// How keyboard-and-mouse delivery reaches this agent.
    pub gui: GuiSettings,
    /// Its tmux pane, for tmux delivery.
    pub tmux: Option<super::tmux::TmuxSettings>,
    /// The machine it runs on, in a swarm of several (`[cluster]`); `None`
    /// on a single machine.
    pub node: Option<super::node::NodeName>,
}

impl Agent {
    /// The directory inbox delivery writes into.
    #[must_use]
    pub fn inbox_dir(&self) -> PathBuf {
        self.workspace.join("inbox")
    }
}

/// Every configured agent, in configuration order.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    agents: Vec<Agent>,
}

impl Registry {
    /// A registry over these agents (already validated by the config loader).
    #[must_use]
    pub fn new(agents: Vec<Agent>) -> Self {
        Self { agents }
    }

    /// All agents, in configuration order.
    #[must_use]
    pub fn all(&self) -> &[Agent] {
        &self.agents
    }

    /// Finds an agent by id.
    ///
    /// # Errors
    /// [`AgentError::Unknown`], listing the known ids.
    pub fn get(&self, id: &AgentId) -> Result<&Agent, AgentError> {
        self.agents
            .iter()
            .find(|a| &a.id == id)
            .ok_or_else(|| AgentError::Unknown {
                id: id.to_string(),
                known: self.known_ids(),
            })
    }

    /// Parses and finds an agent id in one step, for text from users.
    ///
    /// # Errors
    /// [`AgentError::InvalidId`] or [`AgentError::Unknown`].
    pub fn lookup(&self, text: &str) -> Result<&Agent, AgentError> {
        let id: AgentId = text.trim().parse()?;
        // People type "agent-3" on phones; ids differing only in case are
        // one agent to them.
        self.get(&id).or_else(|e| {
            self.agents
                .iter()
                .find(|a| a.id.as_str().eq_ignore_ascii_case(id.as_str()))
                .ok_or(e)
        })
    }

    fn known_ids(&self) -> String {
        if self.agents.is_empty() {
            return "none (add [[agents]] to config/acp.toml)".into();
        }
        self.agents
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The default workspace of an agent under a root.
    #[must_use]
    pub fn default_workspace(root: &Path, id: &AgentId) -> PathBuf {
        root.join("agent_workspaces").join(id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_ids_are_refused() {
        for bad in [
            "",
            "..",
            "../Agent-1",
            "Agent/1",
            "Agent\\1",
            "Agent\0",
            "Agent 1",
            "1Agent",
            "-Agent",
            ".hidden",
            "Agent.1",
            "Agent-1\n",
            "Ägent",
            "A23456789012345678901234567890123",
        ] {
            assert!(bad.parse::<AgentId>().is_err(), "{bad:?} was accepted");
        }
        for good in [
            "Agent-1",
            "a",
            "Captain_2",
            "A2345678901234567890123456789012",
        ] {
            assert!(good.parse::<AgentId>().is_ok(), "{good:?} was refused");
        }
    }

    #[test]
    fn unknown_agents_name_the_known_ones() {
        let reg = Registry::new(vec![Agent {
            id: "Agent-1".parse().unwrap(),
            name: "Agent-1".into(),
            role: String::new(),
            workspace: PathBuf::from("/tmp/w"),
            delivery: vec![MethodName::Inbox],
            gui: GuiSettings::default(),
            tmux: None,
            node: None,
        }]);
        let err = reg.lookup("Agent-9").unwrap_err().to_string();
        assert!(err.contains("Agent-9") && err.contains("Agent-1"), "{err}");
        assert!(matches!(reg.lookup("../x"), Err(AgentError::InvalidId(_))));
        assert_eq!(reg.lookup("agent-1").unwrap().id.as_str(), "Agent-1");
    }
}
