//! `[pulse]`: the nudge an agent gets when it has been quiet too long.

use std::time::Duration;

use jiff::civil::Time;
use serde::Deserialize;

use super::{ConfigError, Source};
use crate::model::{AgentId, Priority};

/// The nudge's text when the file gives none; `{quiet}` becomes how long
/// the agent has been quiet ("42 min").
pub const DEFAULT_TEXT: &str = "You have been quiet for {quiet}. If you are blocked, say what you \
                                need; otherwise continue with your task.";

/// The longest quiet spell `after_minutes` may name: a week.
const MAX_MINUTES: f64 = 7.0 * 24.0 * 60.0;
/// The shortest: under a second is no spell at all.
const MIN_MINUTES: f64 = 0.01;

/// When the pulse nudges nobody: a span of the day, from `start` up to
/// `end`, past midnight when `end` comes first (`22:00-07:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: Time,
    pub end: Time,
}

impl QuietHours {
    /// Parses `HH:MM-HH:MM`.
    ///
    /// # Errors
    /// What is wrong with it, in words.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (a, b) = text
            .split_once('-')
            .ok_or_else(|| format!("{text:?} is not two times: write it as \"22:00-07:00\""))?;
        let time = |t: &str| {
            let t = t.trim();
            t.parse::<Time>()
                .map_err(|_| format!("{t:?} is not a time of day: write it as HH:MM, e.g. 07:00"))
        };
        let (start, end) = (time(a)?, time(b)?);
        if start == end {
            return Err(format!(
                "{text:?} starts and ends at the same time: give two different times, or leave \
                 quiet_hours out for none"
            ));
        }
        Ok(Self { start, end })
    }

    /// Whether `at` (a time of day) falls in them.
    #[must_use]
    pub fn contains(&self, at: Time) -> bool {
        if self.start < self.end {
            self.start <= at && at < self.end
        } else {
            at >= self.start || at < self.end
        }
    }
}

impl std::fmt::Display for QuietHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.strftime("%H:%M"),
            self.end.strftime("%H:%M")
        )
    }
}

/// The pulse's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulseConfig {
    /// An agent quiet this long gets the nudge; `None`: no pulse.
    pub after: Option<Duration>,
    /// The nudge (`{quiet}`: how long it has been quiet).
    pub text: String,
    pub priority: Priority,
    /// When nobody is nudged, in `[schedules] time_zone` (or the
    /// machine's zone).
    pub quiet_hours: Option<QuietHours>,
    /// The agents it watches; `None`: every agent.
    pub agents: Option<Vec<AgentId>>,
}

impl Default for PulseConfig {
    fn default() -> Self {
        Self {
            after: None,
            text: DEFAULT_TEXT.to_owned(),
            priority: Priority::Normal,
            quiet_hours: None,
            agents: None,
        }
    }
}

impl PulseConfig {
    /// Whether the pulse watches `agent`.
    #[must_use]
    pub fn watches(&self, agent: &AgentId) -> bool {
        self.agents.as_ref().is_none_or(|list| list.contains(agent))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPulse {
    after_minutes: Option<f64>,
    text: Option<String>,
    priority: Option<String>,
    quiet_hours: Option<String>,
    agents: Option<Vec<String>>,
}

/// Applies the file's `[pulse]` (after `[limits]`, which bounds the text).
pub(super) fn apply_pulse(
    src: &Source<'_>,
    raw: RawPulse,
    max_body_bytes: usize,
    out: &mut PulseConfig,
) -> Result<(), ConfigError> {
    if let Some(minutes) = raw.after_minutes {
        if minutes == 0.0 {
            out.after = None;
        } else if (MIN_MINUTES..=MAX_MINUTES).contains(&minutes) {
            out.after = Some(Duration::from_secs_f64(minutes * 60.0));
        } else {
            return Err(src.invalid(
                "pulse.after_minutes",
                format!(
                    "{minutes} is out of range: use {MIN_MINUTES} to {MAX_MINUTES} minutes (30 \
                     is half an hour), or 0 or nothing for no pulse"
                ),
            ));
        }
    }
    if let Some(text) = raw.text {
        crate::model::check_body(&text, max_body_bytes)
            .map_err(|e| src.invalid("pulse.text", format!("{e}")))?;
        out.text = text;
    }
    if let Some(p) = raw.priority {
        out.priority = p.trim().parse().map_err(|_| {
            src.invalid(
                "pulse.priority",
                format!("{p:?} is not a priority: use normal, urgent or critical"),
            )
        })?;
    }
    if let Some(hours) = raw.quiet_hours.filter(|h| !h.trim().is_empty()) {
        out.quiet_hours =
            Some(QuietHours::parse(&hours).map_err(|e| src.invalid("pulse.quiet_hours", e))?);
    }
    if let Some(list) = raw.agents {
        let mut ids = Vec::new();
        for name in list {
            let id: AgentId = name.trim().parse().map_err(|e: crate::model::AgentError| {
                src.invalid(
                    "pulse.agents",
                    format!("{e}: name agents by id, e.g. \"Agent-1\""),
                )
            })?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        out.agents = Some(ids);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, Env};

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(Path::new("/r"), text, &Env::new())
    }

    fn t(s: &str) -> Time {
        s.parse().unwrap()
    }

    #[test]
    fn off_unless_after_minutes_and_fractions_of_a_minute_are_taken() {
        assert_eq!(load("").unwrap().pulse, PulseConfig::default());
        assert_eq!(
            load("[pulse]\nafter_minutes = 0\n").unwrap().pulse.after,
            None
        );
        let c = load(
            "[pulse]\nafter_minutes = 0.05\nagents = [\"Agent-1\"]\npriority = \"urgent\"\n\
             quiet_hours = \"22:00-07:00\"\n",
        )
        .unwrap()
        .pulse;
        assert_eq!(c.after, Some(Duration::from_secs(3)));
        assert!(c.watches(&"Agent-1".parse().unwrap()));
        assert!(!c.watches(&"Agent-2".parse().unwrap()));
        assert_eq!(c.priority, Priority::Urgent);
        assert_eq!(c.quiet_hours.unwrap().to_string(), "22:00-07:00");
        assert!(c.text.contains("{quiet}"));
    }

    #[test]
    fn bad_values_say_which_key_and_what_to_write() {
        for (text, key, says) in [
            ("after_minutes = -5", "pulse.after_minutes", "out of range"),
            (
                "after_minutes = 99999999",
                "pulse.after_minutes",
                "out of range",
            ),
            ("quiet_hours = \"late\"", "pulse.quiet_hours", "22:00-07:00"),
            (
                "quiet_hours = \"25:00-07:00\"",
                "pulse.quiet_hours",
                "HH:MM",
            ),
            (
                "quiet_hours = \"07:00-07:00\"",
                "pulse.quiet_hours",
                "different",
            ),
            ("priority = \"high\"", "pulse.priority", "normal, urgent"),
            ("agents = [\"../x\"]", "pulse.agents", "by id"),
            ("text = \"  \"", "pulse.text", "empty"),
            ("every = 3", "every", "unknown"),
        ] {
            let e = load(&format!("[pulse]\n{text}\n")).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn quiet_hours_may_run_past_midnight() {
        let night = QuietHours::parse("22:00-07:00").unwrap();
        assert!(night.contains(t("23:30")) && night.contains(t("06:59")));
        assert!(night.contains(t("22:00")) && !night.contains(t("07:00")));
        assert!(!night.contains(t("12:00")));
        let lunch = QuietHours::parse(" 12:00 - 13:30 ").unwrap();
        assert!(lunch.contains(t("12:45")) && !lunch.contains(t("13:30")));
        assert!(!lunch.contains(t("11:59")));
    }
}
