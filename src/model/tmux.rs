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
