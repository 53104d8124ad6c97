//! `[discover]`: what `acp discover` takes for an agent program besides
//! the ones it knows, and where tmux keeps its sockets (`TMUX_TMPDIR`).

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Env, Source};

/// The keys of `[discover]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscover {
    programs: Option<Vec<String>>,
}

/// A program name `acp discover` takes for an agent: a regular expression
/// that must match the whole name (`my-agent`, `llm-.*`).
#[derive(Debug, Clone)]
pub struct ProgramPattern {
    text: String,
    regex: regex::Regex,
}

impl ProgramPattern {
    /// Whether `name` (a program's name, without a path) matches whole.
    #[must_use]
    pub fn is_match(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }

    /// As written in the file.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// How `acp discover` looks for agents.
#[derive(Debug, Clone, Default)]
pub struct DiscoverConfig {
    /// Agent programs besides the known ones (Claude Code, Codex CLI,
    /// Gemini CLI, aider, `OpenCode`...).
    pub programs: Vec<ProgramPattern>,
    /// `TMUX_TMPDIR`: the directory holding tmux's `tmux-UID` socket
    /// folder (`/tmp` when unset), as tmux itself reads it.
    pub tmux_tmpdir: Option<PathBuf>,
}

/// Checks `[discover]`.
pub(super) fn apply_discover(
    src: &Source<'_>,
    raw: RawDiscover,
    out: &mut DiscoverConfig,
) -> Result<(), ConfigError> {
    let Some(programs) = raw.programs else {
        return Ok(());
    };
    let mut patterns = Vec::with_capacity(programs.len());
    for (i, text) in programs.into_iter().enumerate() {
        let key = format!("discover.programs[{i}]");
        if text.trim().is_empty() || text.len() > 200 {
            return Err(src.invalid(
                &key,
                "name a program (my-agent) or a pattern for its whole name (llm-.*), up to 200 \
                 characters",
            ));
        }
        let regex = regex::Regex::new(&format!("^(?:{text})$"))
            .map_err(|e| src.invalid(&key, format!("not a valid regular expression: {e}")))?;
        if let Some(shell) = crate::model::tmux::SHELLS
            .iter()
            .find(|shell| regex.is_match(shell))
        {
            return Err(src.invalid(
                &key,
                format!(
                    "{text:?} matches the shell {shell:?}: a shell is never an agent (a message \
                     pasted there would run as commands); name the agent's own program"
                ),
            ));
        }
        patterns.push(ProgramPattern { text, regex });
    }
    out.programs = patterns;
    Ok(())
}

/// `TMUX_TMPDIR` from the environment.
pub(super) fn apply_discover_env(env: &Env, out: &mut DiscoverConfig) {
    out.tmux_tmpdir = env
        .get("TMUX_TMPDIR")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(list: &[&str]) -> Result<DiscoverConfig, ConfigError> {
        let raw = RawDiscover {
            programs: Some(list.iter().map(|s| (*s).to_owned()).collect()),
        };
        let mut out = DiscoverConfig::default();
        apply_discover(&Source { file: "test" }, raw, &mut out).map(|()| out)
    }

    #[test]
    fn a_program_pattern_matches_whole_names_and_never_a_shell() {
        let config = load(&["my-agent", "llm-.*"]).unwrap();
        let matches = |name: &str| config.programs.iter().any(|p| p.is_match(name));
        assert!(matches("my-agent"));
        assert!(matches("llm-chat"));
        assert!(!matches("my-agent2"), "whole names only");
        assert!(!matches("not-my-agent"));
        let e = load(&["b.*"]).unwrap_err().to_string();
        assert!(
            e.contains("discover.programs[0]") && e.contains("bash"),
            "{e}"
        );
        let e = load(&["("]).unwrap_err().to_string();
        assert!(e.contains("not a valid regular expression"), "{e}");
        assert!(load(&[" "]).is_err());
    }
}
