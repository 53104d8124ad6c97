//! `[agents.tmux]`: an agent's tmux pane, for tmux delivery.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Source};
use crate::model::MethodName;
use crate::model::gui::WindowPattern;
use crate::model::tmux::{TmuxSettings, WhenBusy, valid_socket, valid_target};

/// The keys of an agent's `tmux` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTmux {
    target: String,
    socket: Option<String>,
    command: Option<String>,
    idle_pattern: Option<String>,
    busy_max_wait_ms: Option<i64>,
    when_busy: Option<String>,
    pre_submit_delay_ms: Option<i64>,
    submit_key: Option<String>,
    paste_into_shell_runs_messages: Option<bool>,
}

fn pattern(src: &Source<'_>, key: &str, text: &str) -> Result<WindowPattern, ConfigError> {
    WindowPattern::new(text)
        .map_err(|e| src.invalid(key, format!("not a valid regular expression: {e}")))
}

/// Checks an agent's tmux table; one is required when its delivery order
/// names tmux.
pub(super) fn agent_tmux(
    src: &Source<'_>,
    prefix: &str,
    raw: Option<RawTmux>,
    delivery: &[MethodName],
) -> Result<Option<TmuxSettings>, ConfigError> {
    let key = |k: &str| format!("{prefix}.tmux.{k}");
    let Some(raw) = raw else {
        if delivery.contains(&MethodName::Tmux) {
            return Err(src.invalid(
                &format!("{prefix}.delivery"),
                "names tmux, but the agent has no tmux table: add [agents.tmux] with target = \
                 \"session:window.pane\" (or run `acp tmux attach AGENT PANE`)",
            ));
        }
        return Ok(None);
    };
    if !valid_target(&raw.target) {
        return Err(src.invalid(
            &key("target"),
            "use session:window.pane or a pane id such as %3 (letters, digits, _-.:%@$)",
        ));
    }
    if let Some(s) = &raw.socket
        && !valid_socket(s)
    {
        return Err(src.invalid(
            &key("socket"),
            "use a tmux socket name (tmux -L NAME): letters, digits, '_' or '-'",
        ));
    }
    let submit_key = raw.submit_key.unwrap_or_else(|| "Enter".into());
    if submit_key.is_empty()
        || submit_key.len() > 16
        || !submit_key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(src.invalid(
            &key("submit_key"),
            "use a tmux key name such as Enter or C-m",
        ));
    }
    Ok(Some(TmuxSettings {
        target: raw.target,
        socket: raw.socket,
        command: raw
            .command
            .as_deref()
            .map(|p| pattern(src, &key("command"), p))
            .transpose()?,
        idle_pattern: raw
            .idle_pattern
            .as_deref()
            .map(|p| pattern(src, &key("idle_pattern"), p))
            .transpose()?,
        busy_max_wait: Duration::from_millis(
            raw.busy_max_wait_ms
                .map(|v| src.int_in(&key("busy_max_wait_ms"), v, 0, 3_600_000))
                .transpose()?
                .unwrap_or(60_000),
        ),
        when_busy: match raw.when_busy.as_deref() {
            None | Some("wait") => WhenBusy::Wait,
            Some("deliver") => WhenBusy::Deliver,
            Some(other) => {
                return Err(src.invalid(
                    &key("when_busy"),
                    format!("{other:?}: use wait (keep it queued) or deliver"),
                ));
            }
        },
        pre_submit_delay: Duration::from_millis(
            raw.pre_submit_delay_ms
                .map(|v| src.int_in(&key("pre_submit_delay_ms"), v, 0, 60_000))
                .transpose()?
                .unwrap_or(200),
        ),
        submit_key,
        paste_into_shell: raw.paste_into_shell_runs_messages.unwrap_or(false),
    }))
}
