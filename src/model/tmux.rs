//! What tmux delivery needs to know about an agent: its pane, the command
//! that must be running there, and how to tell it is waiting for input.

use std::time::Duration;

use serde::Serialize;

use super::gui::WindowPattern;

/// What to do when the agent stays busy past `busy_max_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenBusy {
    /// Deliver anyway.
    Deliver,
    /// Keep the message queued and try again later.
    Wait,
}

/// An agent's tmux pane and how to deliver into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TmuxSettings {
    /// `session:window.pane`, or a pane id such as `%3`.
    pub target: String,
    /// A named tmux server (`tmux -L NAME`); none: the default one.
    pub socket: Option<String>,
    /// The pane's running command (`#{pane_current_command}`) must match
    /// this, or nothing is typed.
    #[serde(skip)]
    pub command: Option<WindowPattern>,
    /// Matched against the last lines of the pane: the agent waits for
    /// input.
    #[serde(skip)]
    pub idle_pattern: Option<WindowPattern>,
    /// How long a busy agent is waited for.
    pub busy_max_wait: Duration,
    pub when_busy: WhenBusy,
    /// Between the paste and the submit key.
    pub pre_submit_delay: Duration,
    /// The key that submits, as tmux names it (`Enter`, `C-m`).
    pub submit_key: String,
    /// The pane profile the agent's table names (default: by the program
    /// in the pane).
    pub profile: Option<String>,
    /// Every profile known, to read the pane with.
    #[serde(skip)]
    pub profiles: super::pane::Profiles,
    /// `paste_into_shell_runs_messages = true`: the person accepts that a
    /// shell in this pane runs every message as commands. Without it a
    /// pane whose program is a shell is never pasted into.
    pub paste_into_shell: bool,
}

/// Programs that run what is typed into them as commands. A message pasted
/// into one of these is executed, so tmux delivery never pastes into them
/// unless the agent's table says `paste_into_shell_runs_messages = true`.
pub const SHELLS: &[&str] = &[
    "sh",
    "ash",
    "bash",
    "dash",
    "zsh",
    "fish",
    "ksh",
    "mksh",
    "oksh",
    "pdksh",
    "loksh",
    "csh",
    "tcsh",
    "yash",
    "nu",
    "nush",
    "pwsh",
    "powershell",
    "elvish",
    "xonsh",
    "ion",
    "rc",
    "es",
    "oil",
    "osh",
    "ysh",
    "murex",
    "busybox",
];

/// The guard `acp init --tmux` writes, and `acp tmux attach` offers where
/// it sees no agent yet: the terminal coding agents' own programs.
pub const AGENT_PROGRAMS: &str =
    "^(claude|codex|gemini|aider|cursor-agent|opencode|goose|amp|qwen|crush)$";

/// Whether a pane's program (`#{pane_current_command}`) is a shell: its
/// name without a path, a login `-` or a version suffix (`bash5.2`).
#[must_use]
pub fn is_shell(command: &str) -> bool {
    is_shell_name(command)
}

impl TmuxSettings {
    /// The profile to read this agent's pane with, given the program
    /// running there.
    #[must_use]
    pub fn profile_for(&self, command: &str) -> Option<&super::pane::PaneProfile> {
        self.profiles.for_pane(self.profile.as_deref(), command)
    }
}

fn is_shell_name(command: &str) -> bool {
    let name = command.trim().trim_start_matches('-');
    let name = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    let name = name.strip_suffix(".exe").unwrap_or(&name);
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    SHELLS.contains(&name) || SHELLS.contains(&base)
}

/// Whether `target` is a tmux target acp accepts: `session:window.pane`
/// or `%N`, made of letters, digits and `_-.:%@$`.
#[must_use]
pub fn valid_target(target: &str) -> bool {
    !target.is_empty()
        && target.len() <= 100
        && !target.starts_with('-')
        && target
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:%@$".contains(c))
}

/// Whether `name` is a tmux socket name acp accepts.
#[must_use]
pub fn valid_socket(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells_are_known_by_any_name() {
        for shell in [
            "bash", "-bash", "/bin/zsh", "sh", "dash", "fish", "bash5.2", "PWSH.EXE", "nu",
        ] {
            assert!(is_shell(shell), "{shell}");
        }
        for agent in [
            "claude",
            "codex",
            "python3",
            "node",
            "aider",
            "vim",
            "shellcheck",
        ] {
            assert!(!is_shell(agent), "{agent}");
        }
    }
}
