//! The `[[agents]]` tables `acp discover` proposes, their ids, and writing
//! them at the end of `config/acp.toml`, the rest of the file (comments
//! included) left as it is.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::{DEFAULT_SOCKET, Discovery, FoundPane};
use crate::app::{App, AppError, Refused};
use crate::config::{CONFIG_FILE, Config, Env};
use crate::model::AgentId;

/// What `acp discover --save` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Saved {
    /// The file.
    pub path: PathBuf,
    /// The agents added, in the file's order.
    pub agents: Vec<AgentId>,
}

/// Agent ids in use, compared without case (the config refuses two ids
/// that differ only in case).
pub(super) struct Ids(pub(super) HashSet<String>);

impl Ids {
    fn take(&mut self, id: &str) -> Option<AgentId> {
        let parsed: AgentId = id.parse().ok()?;
        self.0.insert(id.to_ascii_lowercase()).then_some(parsed)
    }

    /// `wanted` if free, else `PREFIX-N` for the first free N.
    pub(super) fn allocate(&mut self, wanted: Option<&str>, prefix: &str) -> AgentId {
        if let Some(id) = wanted.and_then(|w| self.take(w)) {
            return id;
        }
        let mut prefix: String = prefix
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(24)
            .collect();
        if !prefix.starts_with(|c: char| c.is_ascii_alphabetic()) {
            prefix.insert_str(0, "agent-");
        }
        (1..)
            .find_map(|n| self.take(&format!("{prefix}-{n}")))
            .unwrap_or_else(|| unreachable!("ids run out only after every number"))
    }
}

/// A TOML string.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// An agent's display name: up to 64 printable characters.
fn display_name(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(64)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// `node = "..."` on a machine of a swarm that is not the hub (an agent
/// without one runs on the hub).
fn node_line(config: &Config) -> String {
    match &config.cluster {
        Some(c) if !c.is_hub() => format!("node = {}\n", quoted(c.node.as_str())),
        _ => String::new(),
    }
}

/// The table of a terminal agent found in a pane: tmux first, then the
/// inbox; its pane, a guard for the program seen there and its profile.
pub(super) fn pane_table(
    config: &Config,
    agent: &AgentId,
    socket: &str,
    pane: &FoundPane,
) -> String {
    let mut tmux = format!("target = {}", quoted(&pane.target));
    if socket != DEFAULT_SOCKET {
        let _ = write!(tmux, ", socket = {}", quoted(socket));
    }
    let _ = write!(
        tmux,
        ", command = {}, profile = {}",
        quoted(&pane.guard),
        quoted(&pane.profile)
    );
    format!(
        "[[agents]]\nid = {}\nname = {}\n{}delivery = [\"tmux\", \"inbox\"]\ntmux = {{ {tmux} }}\n",
        quoted(agent.as_str()),
        quoted(&display_name(&format!("{} in {}", pane.title, pane.target))),
        node_line(config),
    )
}

/// The table of an agent application's window: the inbox only until its
/// points are captured, with the window guard ready for then.
pub(super) fn window_table(
    config: &Config,
    agent: &AgentId,
    app: &str,
    class: &str,
    title: &str,
) -> String {
    let name = if title.trim().is_empty() {
        format!("{app} window")
    } else {
        format!("{app}: {title}")
    };
    format!(
        "[[agents]]\nid = {id}\nname = {}\n{}# Points unknown: run `acp coords capture {id} --save` \
         with the mouse on its chat input,\n# then put \"gui\" first: delivery = [\"gui\", \
         \"inbox\"].\ndelivery = [\"inbox\"]\nwindow_class = {}\n",
        quoted(&display_name(&name)),
        node_line(config),
        quoted(&format!("^{}$", regex::escape(class))),
        id = quoted(agent.as_str()),
    )
}

impl App {
    /// Appends the tables of `found`'s new agents to `config/acp.toml`,
    /// checked by loading the result first. Nothing else in the file
    /// changes; with nothing new, nothing is written.
    ///
    /// # Errors
    /// [`AppError::Refused`] when the file does not parse or would not
    /// load with the tables (an id added meanwhile, say), or I/O.
    pub fn save_discovered(&self, found: &Discovery) -> Result<Saved, AppError> {
        let path = self.config.root.join(CONFIG_FILE);
        let new = found.new_agents();
        let agents: Vec<AgentId> = new.iter().map(|(id, _)| (*id).clone()).collect();
        if new.is_empty() {
            return Ok(Saved { path, agents });
        }
        let io = |e: std::io::Error| {
            AppError::Init(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            ))
        };
        let text = std::fs::read_to_string(&path).map_err(io)?;
        let mut out = text.clone();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        let now = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC");
        let _ = writeln!(out, "\n# Found running by `acp discover` on {now}.");
        for (_, table) in &new {
            out.push('\n');
            out.push_str(table);
        }
        Config::from_toml(&self.config.root, &out, &Env::new()).map_err(|e| {
            Refused(format!(
                "the tables would not load into {CONFIG_FILE} ({e}): nothing was written; run \
                 acp discover again"
            ))
        })?;
        let dir = path.parent().unwrap_or(&self.config.root);
        let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        temp.write_all(out.as_bytes()).map_err(io)?;
        if let Ok(meta) = std::fs::metadata(&path) {
            std::fs::set_permissions(temp.path(), meta.permissions()).map_err(io)?;
        }
        temp.as_file().sync_all().map_err(io)?;
        temp.persist(&path).map_err(|e| io(e.error))?;
        Ok(Saved { path, agents })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_window_name_when_free_else_numbered_and_never_clash() {
        let mut ids = Ids(["agent-1", "claude-1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect());
        assert_eq!(
            ids.allocate(Some("reviewer"), "claude").as_str(),
            "reviewer"
        );
        // Taken (in any case), or not an id: numbered.
        assert_eq!(
            ids.allocate(Some("Reviewer"), "claude").as_str(),
            "claude-2"
        );
        assert_eq!(ids.allocate(Some("Agent-1"), "claude").as_str(), "claude-3");
        assert_eq!(ids.allocate(Some("my window"), "codex").as_str(), "codex-1");
        assert_eq!(ids.allocate(None, "codex").as_str(), "codex-2");
        // A program whose name is no id's start.
        assert_eq!(ids.allocate(None, "2.0.76").as_str(), "agent-2076-1");
    }
}
