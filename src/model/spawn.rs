//! Agents started by acp in a project (`acp spawn`), as the store keeps
//! them: where each runs, and whether it still does.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{AgentId, NodeName};

/// Whether a started agent still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpawnState {
    /// Its window is being made; not an agent yet.
    Starting,
    /// An agent: in the registry, delivered to.
    Running,
    /// Stopped and retired: its history stays, nothing is delivered to it.
    Stopped,
}

impl SpawnState {
    /// The word stored and shown.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopped => "stopped",
        }
    }

    /// The state a stored word names.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "starting" => Some(Self::Starting),
            "running" => Some(Self::Running),
            "stopped" => Some(Self::Stopped),
            _ => None,
        }
    }
}

/// One agent acp started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spawned {
    pub id: AgentId,
    pub project: String,
    /// Where it works: the project's folder or its worktree.
    pub dir: PathBuf,
    /// Its git worktree, when the project gives each agent one.
    pub worktree: Option<PathBuf>,
    /// The worktree's branch (`acp/<agent>`).
    pub branch: Option<String>,
    /// Its tmux pane (a pane id such as `%12`).
    pub target: String,
    /// The named tmux server, if not the default one.
    pub socket: Option<String>,
    /// The program tmux must see in the pane.
    pub guard: String,
    pub profile: Option<String>,
    /// The machine it runs on, in a swarm.
    pub node: Option<NodeName>,
    pub state: SpawnState,
    /// The task it was started with.
    pub task: Option<String>,
    #[serde(with = "super::time::ms")]
    pub spawned_at: i64,
    pub spawned_by: String,
    #[serde(with = "super::time::opt_ms")]
    pub stopped_at: Option<i64>,
    pub stopped_by: Option<String>,
}
