//! What keyboard-and-mouse delivery needs to know about each agent: plain
//! data, parsed and checked by the config loader.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::keys::KeyCombo;

/// How the body gets into the chat input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputMode {
    /// Type short single-line bodies, paste the rest.
    Auto,
    /// Always type; newlines with `newline_key`.
    Type,
    /// Always paste through the clipboard.
    Paste,
}

/// A regular expression matched against a window's title or class.
#[derive(Clone)]
pub struct WindowPattern(regex::Regex);

impl WindowPattern {
    /// Compiles a pattern.
    ///
    /// # Errors
    /// The regex error, for the config loader to report with the key.
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        regex::Regex::new(pattern).map(Self)
    }

    /// Whether `text` matches.
    #[must_use]
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

impl fmt::Debug for WindowPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.as_str())
    }
}

impl fmt::Display for WindowPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl PartialEq for WindowPattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for WindowPattern {}

impl Serialize for WindowPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

fn serialize_keys<S: serde::Serializer>(keys: &[KeyCombo], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(keys.iter().map(ToString::to_string))
}

fn serialize_key<S: serde::Serializer>(key: &KeyCombo, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(key)
}

/// Per-agent keyboard-and-mouse settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuiSettings {
    /// The window under the agent's point must have a matching title...
    pub window_title: Option<WindowPattern>,
    /// ...and a matching class (`WM_CLASS`, instance or class name).
    pub window_class: Option<WindowPattern>,
    pub input: InputMode,
    #[serde(serialize_with = "serialize_key")]
    pub submit_key: KeyCombo,
    #[serde(serialize_with = "serialize_key")]
    pub paste_key: KeyCombo,
    /// Pressed between lines when typing a multi-line body.
    #[serde(serialize_with = "serialize_key")]
    pub newline_key: KeyCombo,
    /// Pressed after the click, before the body (e.g. ctrl+a, delete).
    #[serde(serialize_with = "serialize_keys")]
    pub clear_keys: Vec<KeyCombo>,
    /// Pressed before an onboarding message (e.g. ctrl+n for a new chat).
    #[serde(serialize_with = "serialize_keys")]
    pub onboarding_keys: Vec<KeyCombo>,
    /// Wait between the body and the submit key.
    pub pre_submit_delay: Duration,
    /// Write the body to the inbox and type only a one-line notice.
    pub doorbell: bool,
}

impl Default for GuiSettings {
    fn default() -> Self {
        let key = |s: &str| {
            s.parse::<KeyCombo>().unwrap_or(KeyCombo {
                modifiers: vec![],
                key: super::keys::KeyName::Enter,
            })
        };
        Self {
            window_title: None,
            window_class: None,
            input: InputMode::Auto,
            submit_key: key("enter"),
            paste_key: key("ctrl+v"),
            newline_key: key("shift+enter"),
            clear_keys: Vec::new(),
            onboarding_keys: Vec::new(),
            pre_submit_delay: Duration::from_millis(200),
            doorbell: false,
        }
    }
}
