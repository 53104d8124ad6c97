//! `[[projects]]`: where new agents are started and with what command.
//! The command comes from this file only: nothing from Discord or the API
//! ever becomes a command line.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Source};
use crate::model::{AgentId, NodeName};

/// Longest project name: `<project>-<n>` must still be an agent id.
pub const MAX_PROJECT_NAME: usize = 24;

/// One project agents can be started in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// `web`: agents are named `web-1`, `web-2`...
    pub name: String,
    /// The repository or folder the agents work in.
    pub path: PathBuf,
    /// The agent program and its arguments, run directly (no shell).
    pub command: Vec<String>,
    /// Sent to each new agent first, as its onboarding.
    pub first_prompt: Option<String>,
    /// Each agent gets a git worktree of its own on branch `acp/<agent>`.
    pub worktree: bool,
    /// Where the worktrees go (default: `ROOT/worktrees/<project>`).
    pub worktrees: PathBuf,
    /// The tmux session the agents' windows are made in.
    pub session: String,
    /// A named tmux server (`tmux -L`); none: the default one.
    pub socket: Option<String>,
    /// The pane profile for the agent's screen (default: by its program).
    pub profile: Option<String>,
    /// The agent's prompt is ready (its pane's last lines match): the
    /// first messages wait for it (default: the profile's idle lines).
    pub idle_pattern: Option<String>,
    /// The guard: the program tmux must see in the pane (default: the
    /// command's program name).
    pub guard: String,
    /// The machine the agents run on, in a swarm (default: the hub).
    pub node: Option<NodeName>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProject {
    name: String,
    path: PathBuf,
    command: Command,
    first_prompt: Option<String>,
    worktree: Option<bool>,
    worktrees: Option<PathBuf>,
    session: Option<String>,
    socket: Option<String>,
    profile: Option<String>,
    idle_pattern: Option<String>,
    guard: Option<String>,
    node: Option<String>,
}

/// `command = "claude --model x"` (split as a shell splits words, but run
/// without one) or `command = ["claude", "--model", "x"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Command {
    Line(String),
    Words(Vec<String>),
}

fn tmux_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl super::Config {
    /// The `[[projects]]` tables: names unique, each a valid start of an
    /// agent id.
    pub(super) fn projects_from(
        &self,
        src: &Source<'_>,
        raw: Vec<RawProject>,
    ) -> Result<Vec<Project>, ConfigError> {
        let mut out: Vec<Project> = Vec::new();
        for (i, p) in raw.into_iter().enumerate() {
            let project = self.one_project(src, i, p)?;
            if out
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&project.name))
            {
                return Err(src.invalid(
                    &format!("projects[{i}].name"),
                    format!("{} is configured twice", project.name),
                ));
            }
            out.push(project);
        }
        Ok(out)
    }

    fn one_project(
        &self,
        src: &Source<'_>,
        i: usize,
        p: RawProject,
    ) -> Result<Project, ConfigError> {
        let key = |field: &str| format!("projects[{i}].{field}");
        let sample = format!("{}-1", p.name);
        if p.name.len() > MAX_PROJECT_NAME || sample.parse::<AgentId>().is_err() {
            return Err(src.invalid(
                &key("name"),
                format!(
                    "{:?}: use a letter followed by up to {} letters, digits, '-' or '_' (its \
                     agents are named {}-1, {}-2...)",
                    p.name,
                    MAX_PROJECT_NAME - 1,
                    p.name,
                    p.name
                ),
            ));
        }
        let command = match p.command {
            Command::Line(line) => shlex::split(&line)
                .ok_or_else(|| src.invalid(&key("command"), "has an unclosed quote"))?,
            Command::Words(words) => words,
        };
        let Some(program) = command.first().filter(|w| !w.trim().is_empty()) else {
            return Err(src.invalid(
                &key("command"),
                "is empty: name the agent program, e.g. command = \"claude\"",
            ));
        };
        if command.iter().any(|w| w.contains('\0')) {
            return Err(src.invalid(&key("command"), "contains a NUL byte"));
        }
        let program_name = std::path::Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(idle) = &p.idle_pattern {
            regex::Regex::new(idle)
                .map_err(|e| src.invalid(&key("idle_pattern"), format!("not a pattern: {e}")))?;
        }
        let guard = match p.guard {
            Some(g) => {
                regex::Regex::new(&g)
                    .map_err(|e| src.invalid(&key("guard"), format!("not a pattern: {e}")))?;
                g
            }
            None => format!("^{}$", regex::escape(&program_name)),
        };
        for (field, value) in [
            ("session", p.session.as_deref()),
            ("socket", p.socket.as_deref()),
        ] {
            if let Some(v) = value
                && !tmux_name(v)
            {
                return Err(
                    src.invalid(&key(field), "use letters, digits, '_' or '-' (a tmux name)")
                );
            }
        }
        if let Some(profile) = &p.profile
            && self.profiles.named(profile).is_none()
        {
            return Err(src.invalid(
                &key("profile"),
                format!("no profile {profile:?}: use a built-in one or add [profiles.{profile}]"),
            ));
        }
        let node = match (p.node, &self.cluster) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(src.invalid(
                    &key("node"),
                    "names a machine, but there is no [cluster] table",
                ));
            }
            (Some(n), Some(_)) => Some(n.trim().parse().map_err(
                |e: crate::model::InvalidNodeName| src.invalid(&key("node"), e.to_string()),
            )?),
        };
        let path = super::normalize(&self.root.join(&p.path));
        let worktrees = match p.worktrees {
            Some(w) => super::normalize(&self.root.join(w)),
            None => self.root.join("worktrees").join(&p.name),
        };
        Ok(Project {
            session: p.session.unwrap_or_else(|| format!("acp-{}", p.name)),
            name: p.name,
            path,
            command,
            first_prompt: p.first_prompt.filter(|t| !t.trim().is_empty()),
            worktree: p.worktree.unwrap_or(false),
            worktrees,
            socket: p.socket,
            profile: p.profile,
            idle_pattern: p.idle_pattern,
            guard,
            node,
        })
    }

    /// The project named `name` (any case).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the projects there are.
    pub fn project_named(&self, name: &str) -> Result<&Project, ConfigError> {
        self.projects
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| ConfigError::Invalid {
                file: super::CONFIG_FILE.into(),
                key: "projects".into(),
                reason: if self.projects.is_empty() {
                    format!(
                        "no project {name:?}: there are no [[projects]] tables yet (see \
                         docs/agents.md)"
                    )
                } else {
                    format!(
                        "no project {name:?}: the projects are {}",
                        self.projects
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            })
    }

    /// When a started agent's prompt is ready: its project's
    /// `idle_pattern`, else its profile's idle lines.
    fn started_idle(&self, spawned: &crate::model::Spawned) -> Option<String> {
        let project = self.projects.iter().find(|p| p.name == spawned.project);
        if let Some(idle) = project.and_then(|p| p.idle_pattern.clone()) {
            return Some(idle);
        }
        let profile = self.profiles.named(spawned.profile.as_deref()?)?;
        (!profile.idle.is_empty()).then(|| {
            profile
                .idle
                .iter()
                .map(|r| format!("(?:{})", r.as_str()))
                .collect::<Vec<_>>()
                .join("|")
        })
    }

    /// A started agent as the registry holds it: the tmux pane it was
    /// started in (then the inbox), guarded by its project's program.
    ///
    /// # Errors
    /// [`ConfigError`] when the record no longer fits the configuration
    /// (its profile or machine gone).
    pub fn spawned_agent(
        &self,
        spawned: &crate::model::Spawned,
    ) -> Result<crate::model::Agent, ConfigError> {
        let mut tmux = toml::Table::new();
        tmux.insert("target".into(), spawned.target.clone().into());
        if let Some(socket) = &spawned.socket {
            tmux.insert("socket".into(), socket.clone().into());
        }
        tmux.insert("command".into(), spawned.guard.clone().into());
        if let Some(profile) = &spawned.profile {
            tmux.insert("profile".into(), profile.clone().into());
        }
        if let Some(idle) = self.started_idle(spawned) {
            tmux.insert("idle_pattern".into(), idle.into());
        }
        let mut table = toml::Table::new();
        table.insert("id".into(), spawned.id.to_string().into());
        table.insert(
            "role".into(),
            format!("started in project {}", spawned.project).into(),
        );
        table.insert(
            "delivery".into(),
            toml::Value::Array(vec!["tmux".into(), "inbox".into()]),
        );
        table.insert("tmux".into(), toml::Value::Table(tmux));
        if let (Some(node), Some(_)) = (&spawned.node, &self.cluster) {
            table.insert("node".into(), node.to_string().into());
        }
        let src = Source {
            file: "the store (a started agent)",
        };
        let raw: super::RawAgent = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| src.invalid(spawned.id.as_str(), e.message()))?;
        self.agent(&src, 0, raw)
    }
}
