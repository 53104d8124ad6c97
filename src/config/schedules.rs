//! `[schedules]`: the zone stored schedules' cron expressions are read in.

use serde::Deserialize;

use super::{ConfigError, Source};

/// Stored schedules' settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedulesConfig {
    /// An IANA zone name (`Europe/Berlin`); `None`: this machine's zone.
    pub time_zone: Option<String>,
}

impl SchedulesConfig {
    /// The zone to read cron expressions in.
    #[must_use]
    pub fn zone(&self) -> jiff::tz::TimeZone {
        self.time_zone
            .as_deref()
            .and_then(|name| jiff::tz::TimeZone::get(name).ok())
            .unwrap_or_else(jiff::tz::TimeZone::system)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchedules {
    time_zone: Option<String>,
}

/// Applies the file's `[schedules]`: a zone jiff knows, or none.
pub(super) fn apply_schedules(
    src: &Source<'_>,
    raw: RawSchedules,
    out: &mut SchedulesConfig,
) -> Result<(), ConfigError> {
    if let Some(name) = raw.time_zone.filter(|n| !n.trim().is_empty()) {
        if let Err(e) = jiff::tz::TimeZone::get(name.trim()) {
            return Err(src.invalid(
                "schedules.time_zone",
                format!("{name:?} is not a time zone this machine knows ({e}): use an IANA name such as \"Europe/Berlin\", or leave it out for the machine's zone"),
            ));
        }
        out.time_zone = Some(name.trim().to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Env};

    fn load(text: &str) -> Result<Config, crate::config::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(dir.path().join("config/acp.toml"), text).unwrap();
        Config::load(dir.path(), &Env::new())
    }

    #[test]
    fn a_zone_by_name_or_the_machines() {
        let c = load("[schedules]\ntime_zone = \"Europe/Berlin\"\n").unwrap();
        assert_eq!(c.schedules.zone().iana_name(), Some("Europe/Berlin"));
        let e = load("[schedules]\ntime_zone = \"Mars/Base\"\n").unwrap_err();
        assert!(e.to_string().contains("schedules.time_zone"), "{e}");
    }
}
