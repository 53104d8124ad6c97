//! `[backup]`: where backups go, what they hold, when `acp run` takes them
//! and what `acp backup prune` keeps.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Env, Secret, Source};

/// Backup settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupConfig {
    /// The repository directory (absolute).
    pub repository: PathBuf,
    /// Extra root-relative paths to back up, beyond config/, devlogs/, the
    /// store and every agent inbox.
    pub include: Vec<String>,
    /// Root-relative paths left out (with everything under them).
    pub exclude: Vec<String>,
    /// zstd level, 1 (fastest) to 19.
    pub zstd_level: i32,
    /// `acp run` takes a full backup this often (`None` = never).
    pub full_every: Option<Duration>,
    /// ... a differential backup this often.
    pub differential_every: Option<Duration>,
    /// ... an incremental backup this often.
    pub incremental_every: Option<Duration>,
    /// Retention: the newest N backups.
    pub keep_last: u32,
    /// Retention: the newest backup of each of the last N days with backups.
    pub keep_daily: u32,
    /// Retention: the newest backup of each of the last N weeks with backups.
    pub keep_weekly: u32,
    /// `acp doctor` warns when the newest backup is older than this.
    pub rpo: Duration,
    /// The age secret key (`ACP_BACKUP_KEY`): set, new repositories are
    /// encrypted and encrypted ones can be read.
    pub key: Option<Secret>,
}

impl BackupConfig {
    /// Defaults for a root.
    #[must_use]
    pub fn defaults(root: &Path) -> Self {
        Self {
            repository: root.join("backups"),
            include: Vec::new(),
            exclude: Vec::new(),
            zstd_level: 3,
            full_every: Some(Duration::from_secs(24 * 3600)),
            differential_every: None,
            incremental_every: Some(Duration::from_secs(3600)),
            keep_last: 24,
            keep_daily: 7,
            keep_weekly: 4,
            rpo: Duration::from_secs(2 * 3600),
            key: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackup {
    repository: Option<PathBuf>,
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    zstd_level: Option<i64>,
    full_every_hours: Option<i64>,
    differential_every_hours: Option<i64>,
    incremental_every_minutes: Option<i64>,
    keep_last: Option<i64>,
    keep_daily: Option<i64>,
    keep_weekly: Option<i64>,
    rpo_minutes: Option<i64>,
}

/// A root-relative path in plain components (no `..`, not absolute), with
/// `/` separators.
fn relative(src: &Source<'_>, key: &str, value: &str) -> Result<String, ConfigError> {
    let path = Path::new(value.trim());
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().unwrap_or_default().to_owned()),
            Component::CurDir => {}
            _ => {
                return Err(src.invalid(
                    key,
                    format!("{value:?} must be a path inside the root, without `..`"),
                ));
            }
        }
    }
    if parts.is_empty() || parts.iter().any(String::is_empty) {
        return Err(src.invalid(key, format!("{value:?} is not a path inside the root")));
    }
    Ok(parts.join("/"))
}

pub(super) fn apply_backup(
    src: &Source<'_>,
    root: &Path,
    raw: RawBackup,
    out: &mut BackupConfig,
) -> Result<(), ConfigError> {
    if let Some(repo) = raw.repository {
        if repo.as_os_str().is_empty() {
            return Err(src.invalid("backup.repository", "is empty: give a directory"));
        }
        out.repository = if repo.is_absolute() {
            repo
        } else {
            root.join(repo)
        };
    }
    let list = |key: &str, v: Option<Vec<String>>| -> Result<Vec<String>, ConfigError> {
        v.unwrap_or_default()
            .iter()
            .map(|p| relative(src, key, p))
            .collect()
    };
    out.include = list("backup.include", raw.include)?;
    out.exclude = list("backup.exclude", raw.exclude)?;
    if let Some(v) = raw.zstd_level {
        out.zstd_level = i32::try_from(src.int_in("backup.zstd_level", v, 1, 19)?).unwrap_or(3);
    }
    let every = |key: &str, v: Option<i64>, unit: u64, current: Option<Duration>| match v {
        None => Ok(current),
        Some(0) => Ok(None),
        Some(v) => src
            .int_in(key, v, 1, 100_000)
            .map(|n| Some(Duration::from_secs(n * unit))),
    };
    out.full_every = every(
        "backup.full_every_hours",
        raw.full_every_hours,
        3600,
        out.full_every,
    )?;
    out.differential_every = every(
        "backup.differential_every_hours",
        raw.differential_every_hours,
        3600,
        out.differential_every,
    )?;
    out.incremental_every = every(
        "backup.incremental_every_minutes",
        raw.incremental_every_minutes,
        60,
        out.incremental_every,
    )?;
    let keep = |key: &str, v: Option<i64>, current: u32| -> Result<u32, ConfigError> {
        v.map_or(Ok(current), |v| {
            src.int_in(key, v, 0, 100_000)
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        })
    };
    out.keep_last = keep("backup.keep_last", raw.keep_last, out.keep_last)?;
    out.keep_daily = keep("backup.keep_daily", raw.keep_daily, out.keep_daily)?;
    out.keep_weekly = keep("backup.keep_weekly", raw.keep_weekly, out.keep_weekly)?;
    if out.keep_last + out.keep_daily + out.keep_weekly == 0 {
        return Err(src.invalid(
            "backup.keep_last",
            "keep_last, keep_daily and keep_weekly are all 0: prune would delete every backup; \
             keep at least one",
        ));
    }
    if let Some(v) = raw.rpo_minutes {
        out.rpo = Duration::from_secs(src.int_in("backup.rpo_minutes", v, 1, 525_600)? * 60);
    }
    Ok(())
}

pub(super) fn apply_backup_env(root: &Path, env: &Env, out: &mut BackupConfig) {
    if let Some(key) = env.get("ACP_BACKUP_KEY").filter(|v| !v.trim().is_empty()) {
        out.key = Some(Secret(key.trim().to_owned()));
    }
    if let Some(repo) = env
        .get("ACP_BACKUP_REPOSITORY")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    {
        let repo = PathBuf::from(repo);
        out.repository = if repo.is_absolute() {
            repo
        } else {
            root.join(repo)
        };
    }
}
