//! `[agents.tmux]`: an agent's tmux pane, for tmux delivery.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Source};
use crate::model::MethodName;
use crate::model::gui::WindowPattern;
use crate::model::pane::{PaneProfile, Profiles};
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
    profile: Option<String>,
}

/// A `[profiles.NAME]` table (and a built-in profile).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    #[serde(default)]
    commands: Vec<String>,
    #[serde(default)]
    idle: Vec<String>,
    #[serde(default)]
    working: Vec<String>,
    #[serde(default)]
    dialog: Vec<String>,
    #[serde(default)]
    question: Vec<String>,
    choice: String,
    allow: String,
    allow_session: String,
    deny: String,
    confirm_enter: Option<bool>,
}

/// The built-in profiles, as data (`src/config/profiles.toml`).
const BUILT_IN: &str = include_str!("profiles.toml");

fn regex(src: &Source<'_>, key: &str, text: &str) -> Result<regex::Regex, ConfigError> {
    regex::Regex::new(text)
        .map_err(|e| src.invalid(key, format!("not a valid regular expression: {e}")))
}

fn profile(src: &Source<'_>, name: &str, raw: &RawProfile) -> Result<PaneProfile, ConfigError> {
    let key = |k: &str| format!("profiles.{name}.{k}");
    let many = |k: &str, list: &[String]| -> Result<Vec<regex::Regex>, ConfigError> {
        list.iter().map(|p| regex(src, &key(k), p)).collect()
    };
    let choice = regex(src, &key("choice"), &raw.choice)?;
    if !choice.capture_names().any(|n| n == Some("label")) {
        return Err(src.invalid(
            &key("choice"),
            "needs a group named label (and n or key): (?P<n>\\d+)\\.\\s+(?P<label>.+)",
        ));
    }
    Ok(PaneProfile {
        name: name.to_owned(),
        commands: many("commands", &raw.commands)?,
        idle: many("idle", &raw.idle)?,
        working: many("working", &raw.working)?,
        dialog: many("dialog", &raw.dialog)?,
        question: many("question", &raw.question)?,
        choice,
        allow: regex(src, &key("allow"), &raw.allow)?,
        allow_session: regex(src, &key("allow_session"), &raw.allow_session)?,
        deny: regex(src, &key("deny"), &raw.deny)?,
        confirm_enter: raw.confirm_enter.unwrap_or(false),
    })
}

/// The built-in profiles, each replaced by a `[profiles.NAME]` table of the
/// same name; new names added.
pub(super) fn profiles(
    src: &Source<'_>,
    configured: BTreeMap<String, RawProfile>,
) -> Result<Profiles, ConfigError> {
    let built_in: BTreeMap<String, RawProfile> =
        toml::from_str(BUILT_IN).map_err(|e| ConfigError::Parse {
            file: "the built-in pane profiles".into(),
            message: e.to_string(),
        })?;
    let built_in_src = Source {
        file: "the built-in pane profiles",
    };
    let mut all = Vec::new();
    for (name, raw) in built_in {
        if !configured.contains_key(&name) {
            all.push(profile(&built_in_src, &name, &raw)?);
        }
    }
    for (name, raw) in configured {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(src.invalid(
                &format!("profiles.{name}"),
                "name profiles with letters, digits, '-' or '_'",
            ));
        }
        all.push(profile(src, &name, &raw)?);
    }
    // Programs named by several profiles: the configured ones first.
    all.sort_by_key(|p| p.name == "generic");
    Ok(Profiles(std::sync::Arc::new(all)))
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
    profiles: &Profiles,
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
    if let Some(p) = &raw.profile
        && profiles.named(p).is_none()
    {
        let names: Vec<&str> = profiles.0.iter().map(|p| p.name.as_str()).collect();
        return Err(src.invalid(
            &key("profile"),
            format!(
                "no profile {p:?}: use one of {}, or add [profiles.{p}]",
                names.join(", ")
            ),
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
        profile: raw.profile,
        profiles: profiles.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pane::{Meaning, Screen};

    fn built_in() -> Profiles {
        profiles(&Source { file: "test" }, BTreeMap::new()).unwrap()
    }

    #[test]
    fn the_built_in_profiles_read_their_programs_screens() {
        let all = built_in();
        let claude = all.for_pane(None, "claude").unwrap();
        assert_eq!(claude.name, "claude");
        assert_eq!(all.for_pane(None, "2.1.34").unwrap().name, "claude");
        assert_eq!(all.for_pane(None, "vim").unwrap().name, "generic");
        let dialog = " Bash command\n   rm -rf build\n   Remove the build\n\n Do you want to \
                      proceed?\n ❯ 1. Yes\n   2. Yes, and don't ask again for rm commands in \
                      /tmp\n   3. No, and tell Claude what to do differently (esc)\n";
        let Screen::Dialog {
            summary, choices, ..
        } = claude.read(dialog)
        else {
            panic!("not a dialog: {:?}", claude.read(dialog));
        };
        assert_eq!(summary, "Do you want to proceed? Remove the build");
        assert_eq!(choices.len(), 3);
        assert_eq!(choices[0].key, "1");
        assert_eq!(claude.meaning(&choices[0].label), Some(Meaning::Allow));
        assert_eq!(
            claude.meaning(&choices[1].label),
            Some(Meaning::AllowSession)
        );
        assert_eq!(claude.meaning(&choices[2].label), Some(Meaning::Deny));
        assert_eq!(
            claude.read("✻ Cogitating… (3s · esc to interrupt)"),
            Screen::Working
        );
        assert_eq!(
            claude.read("──────\n❯\n──────\n  ? for shortcuts"),
            Screen::Idle
        );

        let codex = all.named("codex").unwrap();
        let screen = "  Would you like to run the following command?\n\n  $ echo hello\n\n› 1. \
                      Yes, proceed (y)\n  2. Yes, and don't ask again for commands that start \
                      with `echo` (p)\n  3. No, and tell Codex what to do differently (esc)\n\n  \
                      Press enter to confirm or esc to cancel";
        let Screen::Dialog { choices, .. } = codex.read(screen) else {
            panic!("not a dialog");
        };
        let keys: Vec<&str> = choices.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["y", "p", "Escape"]);

        let aider = all.named("aider").unwrap();
        let Screen::Dialog { choices, .. } =
            aider.read("Run shell command? (Y)es/(N)o/(D)on't ask again [Yes]:")
        else {
            panic!("not a dialog");
        };
        assert_eq!(aider.meaning(&choices[0].label), Some(Meaning::Allow));
        assert_eq!(aider.meaning(&choices[1].label), Some(Meaning::Deny));
        assert_eq!(
            aider.meaning(&choices[2].label),
            Some(Meaning::AllowSession)
        );
    }
}
