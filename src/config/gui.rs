//! The `[gui]` table and the per-agent keyboard-and-mouse keys, and the
//! settings the keyboard-and-mouse method gets from them.

use std::time::Duration;

use serde::Deserialize;

use crate::model::gui::{GuiSettings, InputMode, WindowPattern};
use crate::model::keys::KeyCombo;

use super::{ConfigError, Source};

/// Settings shared by every agent.
#[derive(Debug, Clone)]
pub struct GuiConfig {
    /// The X display (from `DISPLAY`); `None` means no desktop here.
    pub display: Option<String>,
    /// How long to wait for another acp process to finish typing.
    pub lock_timeout: Duration,
    /// After the click, the longest wait for the window to take the
    /// keyboard focus. Delivery goes on as soon as X says it has it; a
    /// window without it by then is not typed into.
    pub settle: Duration,
    /// In `auto` input mode, single-line bodies up to this many characters
    /// are typed; longer or multi-line ones are pasted.
    pub type_max_chars: usize,
    /// Defaults for agents that do not set their own.
    pub defaults: GuiSettings,
}

impl Default for GuiConfig {
    fn default() -> Self {
        Self {
            display: None,
            lock_timeout: Duration::from_secs(10),
            settle: Duration::from_millis(500),
            type_max_chars: 200,
            defaults: GuiSettings::default(),
        }
    }
}

/// Keys that may stand in `[gui]` (as defaults) and in `[[agents]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGui {
    lock_timeout_ms: Option<i64>,
    settle_ms: Option<i64>,
    type_max_chars: Option<i64>,
    input: Option<String>,
    submit_key: Option<String>,
    paste_key: Option<String>,
    newline_key: Option<String>,
    clear_keys: Option<Vec<String>>,
    onboarding_keys: Option<Vec<String>>,
    pre_submit_delay_ms: Option<i64>,
}

/// The per-agent keys (in `[[agents]]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgentGui {
    pub window_title: Option<String>,
    pub window_class: Option<String>,
    pub input: Option<String>,
    pub submit_key: Option<String>,
    pub paste_key: Option<String>,
    pub newline_key: Option<String>,
    pub clear_keys: Option<Vec<String>>,
    pub onboarding_keys: Option<Vec<String>>,
    pub pre_submit_delay_ms: Option<i64>,
    pub doorbell: Option<bool>,
}

fn key(src: &Source<'_>, name: &str, text: &str) -> Result<KeyCombo, ConfigError> {
    text.parse()
        .map_err(|e: crate::model::keys::BadKey| src.invalid(name, e.to_string()))
}

fn keys(src: &Source<'_>, name: &str, list: &[String]) -> Result<Vec<KeyCombo>, ConfigError> {
    list.iter().map(|k| key(src, name, k)).collect()
}

fn input(src: &Source<'_>, name: &str, text: &str) -> Result<InputMode, ConfigError> {
    match text {
        "auto" => Ok(InputMode::Auto),
        "type" => Ok(InputMode::Type),
        "paste" => Ok(InputMode::Paste),
        other => Err(src.invalid(
            name,
            format!("{other:?} is not an input mode: use auto, type or paste"),
        )),
    }
}

fn pattern(src: &Source<'_>, name: &str, text: &str) -> Result<WindowPattern, ConfigError> {
    WindowPattern::new(text)
        .map_err(|e| src.invalid(name, format!("not a valid regular expression: {e}")))
}

/// Applies `[gui]` to the built-in defaults.
pub(super) fn apply_gui(
    src: &Source<'_>,
    raw: &RawGui,
    gui: &mut GuiConfig,
) -> Result<(), ConfigError> {
    if let Some(v) = raw.lock_timeout_ms {
        gui.lock_timeout =
            Duration::from_millis(src.int_in("gui.lock_timeout_ms", v, 0, 600_000)?);
    }
    if let Some(v) = raw.settle_ms {
        gui.settle = Duration::from_millis(src.int_in("gui.settle_ms", v, 0, 10_000)?);
    }
    if let Some(v) = raw.type_max_chars {
        gui.type_max_chars =
            usize::try_from(src.int_in("gui.type_max_chars", v, 0, 1 << 20)?).unwrap_or(usize::MAX);
    }
    let d = &mut gui.defaults;
    if let Some(v) = &raw.input {
        d.input = input(src, "gui.input", v)?;
    }
    if let Some(v) = &raw.submit_key {
        d.submit_key = key(src, "gui.submit_key", v)?;
    }
    if let Some(v) = &raw.paste_key {
        d.paste_key = key(src, "gui.paste_key", v)?;
    }
    if let Some(v) = &raw.newline_key {
        d.newline_key = key(src, "gui.newline_key", v)?;
    }
    if let Some(v) = &raw.clear_keys {
        d.clear_keys = keys(src, "gui.clear_keys", v)?;
    }
    if let Some(v) = &raw.onboarding_keys {
        d.onboarding_keys = keys(src, "gui.onboarding_keys", v)?;
    }
    if let Some(v) = raw.pre_submit_delay_ms {
        d.pre_submit_delay =
            Duration::from_millis(src.int_in("gui.pre_submit_delay_ms", v, 0, 60_000)?);
    }
    Ok(())
}

/// One agent's settings: the `[gui]` defaults with its own keys on top.
pub(super) fn agent_gui(
    src: &Source<'_>,
    prefix: &str,
    raw: &RawAgentGui,
    base: &GuiSettings,
) -> Result<GuiSettings, ConfigError> {
    let name = |field: &str| format!("{prefix}.{field}");
    let mut s = base.clone();
    if let Some(v) = &raw.window_title {
        s.window_title = Some(pattern(src, &name("window_title"), v)?);
    }
    if let Some(v) = &raw.window_class {
        s.window_class = Some(pattern(src, &name("window_class"), v)?);
    }
    if let Some(v) = &raw.input {
        s.input = input(src, &name("input"), v)?;
    }
    if let Some(v) = &raw.submit_key {
        s.submit_key = key(src, &name("submit_key"), v)?;
    }
    if let Some(v) = &raw.paste_key {
        s.paste_key = key(src, &name("paste_key"), v)?;
    }
    if let Some(v) = &raw.newline_key {
        s.newline_key = key(src, &name("newline_key"), v)?;
    }
    if let Some(v) = &raw.clear_keys {
        s.clear_keys = keys(src, &name("clear_keys"), v)?;
    }
    if let Some(v) = &raw.onboarding_keys {
        s.onboarding_keys = keys(src, &name("onboarding_keys"), v)?;
    }
    if let Some(v) = raw.pre_submit_delay_ms {
        s.pre_submit_delay =
            Duration::from_millis(src.int_in(&name("pre_submit_delay_ms"), v, 0, 60_000)?);
    }
    if let Some(v) = raw.doorbell {
        s.doorbell = v;
    }
    Ok(s)
}
