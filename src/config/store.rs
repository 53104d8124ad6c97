//! `[store]`: how long finished messages are kept, and when the store's
//! size is worth a warning.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Source};

/// Retention and size settings for the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Finished messages older than this are removed; `None`: kept for
    /// ever.
    pub keep: Option<Duration>,
    /// The newest messages kept per recipient, however old.
    pub keep_min: u32,
    /// Audit rows older than this are removed; `None`: kept for ever.
    pub audit_keep: Option<Duration>,
    /// `acp doctor` warns when the store file is larger (bytes).
    pub warn_bytes: u64,
    /// Keep the inbox files of removed messages (else they go with them).
    pub keep_inbox_files: bool,
}

const DAY: f64 = 86_400.0;

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            keep: Some(days(90.0)),
            keep_min: 100,
            audit_keep: Some(days(365.0)),
            warn_bytes: 1024 * 1024 * 1024,
            keep_inbox_files: false,
        }
    }
}

fn days(d: f64) -> Duration {
    Duration::from_secs_f64(d * DAY)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    keep_days: Option<f64>,
    keep_min: Option<u32>,
    audit_keep_days: Option<f64>,
    warn_size_mb: Option<u64>,
    keep_inbox_files: Option<bool>,
}

/// A number of days: 0 is "for ever" (`None`), fractions are allowed.
fn keep(src: &Source<'_>, key: &str, d: f64) -> Result<Option<Duration>, ConfigError> {
    if d == 0.0 {
        Ok(None)
    } else if d.is_finite() && d > 0.0 && d < 1_000_000.0 {
        Ok(Some(days(d)))
    } else {
        Err(src.invalid(
            key,
            format!("{d} is not a number of days: use a positive number (fractions allowed, 0.5 = 12 hours), or 0 to keep everything"),
        ))
    }
}

/// Applies the file's `[store]`.
pub(super) fn apply_store(
    src: &Source<'_>,
    raw: &RawStore,
    out: &mut StoreConfig,
) -> Result<(), ConfigError> {
    if let Some(d) = raw.keep_days {
        out.keep = keep(src, "store.keep_days", d)?;
    }
    if let Some(d) = raw.audit_keep_days {
        out.audit_keep = keep(src, "store.audit_keep_days", d)?;
    }
    if let Some(n) = raw.keep_min {
        out.keep_min = n;
    }
    if let Some(keep) = raw.keep_inbox_files {
        out.keep_inbox_files = keep;
    }
    if let Some(mb) = raw.warn_size_mb {
        if mb == 0 {
            return Err(src.invalid(
                "store.warn_size_mb",
                "0 is not a size: give megabytes, e.g. 1024",
            ));
        }
        out.warn_bytes = mb.saturating_mul(1024 * 1024);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Env};

    fn load(text: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_toml(std::path::Path::new("/r"), text, &Env::new())
    }

    #[test]
    fn days_fractions_and_for_ever() {
        let c = load("[store]\nkeep_days = 0.5\nkeep_min = 3\naudit_keep_days = 0\n").unwrap();
        assert_eq!(c.store.keep, Some(std::time::Duration::from_secs(43_200)));
        assert_eq!(c.store.keep_min, 3);
        assert_eq!(c.store.audit_keep, None);
        let c = load("").unwrap();
        assert_eq!(
            c.store.keep,
            Some(std::time::Duration::from_secs(90 * 86_400))
        );
        let e = load("[store]\nkeep_days = -1\n").unwrap_err();
        assert!(e.to_string().contains("store.keep_days"), "{e}");
        let e = load("[store]\nwarn_size_mb = 0\n").unwrap_err();
        assert!(e.to_string().contains("store.warn_size_mb"), "{e}");
    }
}
