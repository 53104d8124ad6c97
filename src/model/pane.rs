//! Reading a terminal agent's pane: per-program profiles (as data) of what
//! its screen shows when it works, waits for input, asks permission (with
//! its choices and the key that picks each) or asks a question; and the
//! reading of a screen by one.

use regex::Regex;
use serde::Serialize;

use super::attention::AgentState;

/// One choice of a dialog: the key that picks it and its label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Choice {
    /// As tmux names it (`1`, `y`, `Escape`).
    pub key: String,
    pub label: String,
}

/// What a choice's label means, by the profile's patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    Allow,
    AllowSession,
    Deny,
}

/// A program's screen, as patterns.
#[derive(Debug, Clone)]
pub struct PaneProfile {
    pub name: String,
    /// The pane programs (`#{pane_current_command}`) it is for, when an
    /// agent's table names no profile.
    pub commands: Vec<Regex>,
    /// Any of these on the screen's last lines: waiting for input.
    pub idle: Vec<Regex>,
    /// Any of these: at work.
    pub working: Vec<Regex>,
    /// A line matching one of these opens a permission dialog.
    pub dialog: Vec<Regex>,
    /// Any of these with choices on screen: a question.
    pub question: Vec<Regex>,
    /// A choice line: groups `n` (its number) and `label`, and `key` when
    /// the program names the key itself (`(y)`).
    pub choice: Regex,
    pub allow: Regex,
    pub allow_session: Regex,
    pub deny: Regex,
    /// Enter after the key (a prompt that reads a line).
    pub confirm_enter: bool,
}

/// Every profile known: the built-in ones and `[profiles.NAME]` tables.
#[derive(Debug, Clone, Default)]
pub struct Profiles(pub std::sync::Arc<Vec<PaneProfile>>);

impl PartialEq for Profiles {
    fn eq(&self, other: &Self) -> bool {
        let names = |p: &Self| p.0.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        names(self) == names(other)
    }
}

impl Eq for Profiles {}

impl Profiles {
    /// The profile called `name`.
    #[must_use]
    pub fn named(&self, name: &str) -> Option<&PaneProfile> {
        self.0.iter().find(|p| p.name == name)
    }

    /// The profile for a pane: the one named, else the first whose
    /// programs match `command`, else `generic`.
    #[must_use]
    pub fn for_pane(&self, name: Option<&str>, command: &str) -> Option<&PaneProfile> {
        name.and_then(|n| self.named(n))
            .or_else(|| {
                self.0
                    .iter()
                    .find(|p| p.commands.iter().any(|c| c.is_match(command)))
            })
            .or_else(|| self.named("generic"))
    }
}

/// What a screen shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    Working,
    Idle,
    /// A permission dialog: what it asks (the lines above its question and
    /// the question), its choices, and a fingerprint of its text.
    Dialog {
        summary: String,
        detail: String,
        choices: Vec<Choice>,
        fingerprint: String,
    },
    /// A question with choices.
    Question {
        text: String,
        choices: Vec<Choice>,
    },
    /// Nothing the profile knows.
    Unknown,
}

impl Screen {
    /// The agent state this screen shows.
    #[must_use]
    pub fn state(&self) -> AgentState {
        match self {
            Self::Working => AgentState::Working,
            Self::Idle => AgentState::Idle,
            Self::Dialog { .. } => AgentState::NeedsApproval,
            Self::Question { .. } => AgentState::Asking,
            Self::Unknown => AgentState::Unknown,
        }
    }

    /// Whether a message pasted now would answer something instead.
    #[must_use]
    pub fn takes_answers(&self) -> bool {
        matches!(self, Self::Dialog { .. } | Self::Question { .. })
    }
}

/// How many lines above a dialog's question belong to it (the command).
const CONTEXT_LINES: usize = 6;
/// How many of the screen's last lines tell idle or working.
const TAIL: usize = 6;

impl PaneProfile {
    /// The choices in `lines`, in order.
    fn choices(&self, lines: &[&str]) -> Vec<Choice> {
        lines
            .iter()
            .flat_map(|line| self.choice.captures_iter(line))
            .filter_map(|c| {
                let label = c.name("label")?.as_str().trim().to_owned();
                let key = c
                    .name("key")
                    .map(|k| k.as_str().to_owned())
                    .filter(|k| !k.is_empty())
                    .or_else(|| c.name("n").map(|n| n.as_str().to_owned()))?;
                let key = if key.eq_ignore_ascii_case("esc") {
                    "Escape".to_owned()
                } else {
                    key
                };
                Some(Choice { key, label })
            })
            .collect()
    }

    /// What a choice's label means.
    #[must_use]
    pub fn meaning(&self, label: &str) -> Option<Meaning> {
        if self.allow_session.is_match(label) {
            Some(Meaning::AllowSession)
        } else if self.deny.is_match(label) {
            Some(Meaning::Deny)
        } else if self.allow.is_match(label) {
            Some(Meaning::Allow)
        } else {
            None
        }
    }

    /// Reads a screen (`capture-pane -p`, trailing spaces dropped).
    #[must_use]
    pub fn read(&self, screen: &str) -> Screen {
        let lines: Vec<&str> = screen
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect();
        if let Some(at) = lines
            .iter()
            .rposition(|l| self.dialog.iter().any(|d| d.is_match(l)))
        {
            let choices = self.choices(&lines[at..]);
            if choices.len() >= 2 {
                let from = at.saturating_sub(CONTEXT_LINES);
                let context: Vec<&str> = lines[from..at]
                    .iter()
                    .map(|l| l.trim_matches(|c: char| c == '│' || c.is_whitespace()))
                    .filter(|l| !l.chars().all(|c| "─╭╮╰╯│ ".contains(c)))
                    .collect();
                let question = lines[at].trim_matches(|c: char| c == '│' || c.is_whitespace());
                let what = context
                    .iter()
                    .rev()
                    .find(|l| !l.is_empty())
                    .copied()
                    .unwrap_or("");
                let summary = if what.is_empty() {
                    question.to_owned()
                } else {
                    format!("{question} {what}")
                };
                let detail = context.join("\n");
                let region = lines[from..].join("\n");
                return Screen::Dialog {
                    summary,
                    detail,
                    choices,
                    fingerprint: blake3::hash(region.as_bytes()).to_hex()[..32].to_owned(),
                };
            }
        }
        let tail = &lines[lines.len().saturating_sub(TAIL)..];
        if tail
            .iter()
            .any(|l| self.question.iter().any(|q| q.is_match(l)))
        {
            let choices = self.choices(&lines);
            if choices.len() >= 2 {
                let text = lines
                    .iter()
                    .rev()
                    .find(|l| l.trim_end().ends_with('?'))
                    .map_or_else(String::new, |l| l.trim().to_owned());
                return Screen::Question { text, choices };
            }
        }
        if tail
            .iter()
            .any(|l| self.working.iter().any(|w| w.is_match(l)))
        {
            return Screen::Working;
        }
        if tail.iter().any(|l| self.idle.iter().any(|i| i.is_match(l))) {
            return Screen::Idle;
        }
        Screen::Unknown
    }
}
