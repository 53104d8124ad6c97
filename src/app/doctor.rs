// Over 400 lines: one function per check, each with its fix, in the order the doctor prints them.

//! `acp doctor`'s checks: the health of everything a user depends on, each
//! with what to do about it. The front door prints them.

use serde::Serialize;

use crate::backup::{Catalog, Repo};
use crate::config::Config;
use crate::coords::{Coordinates, Severity};
use crate::store::Store;

mod channels;
mod cluster;
mod discord;

pub use cluster::cluster_checks;
pub use discord::discord_checks;

/// One check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
pub struct Check {
    #[serde(rename = "check")]
    pub name: &'static str,
    pub level: Level,
    pub detail: String,
    /// What to do, when it is not ok.
    pub fix: Option<String>,
}

fn ok(check: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name: check,
        level: Level::Ok,
        detail: detail.into(),
        fix: None,
    }
}

fn bad(
    check: &'static str,
    level: Level,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    Check {
        name: check,
        level,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

/// Free space below this (or 5%) is a warning.
const LOW_SPACE: u64 = 1 << 30;

fn disk(check: &'static str, path: &std::path::Path) -> Check {
    let probe = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(std::path::Path::new("/"));
    match rustix::fs::statvfs(probe) {
        Ok(s) => {
            let free = s.f_bavail.saturating_mul(s.f_frsize);
            let total = s.f_blocks.saturating_mul(s.f_frsize).max(1);
            let text = format!(
                "{} free of {} at {}",
                indicatif::HumanBytes(free),
                indicatif::HumanBytes(total),
                probe.display()
            );
            if free == 0 {
                bad(
                    check,
                    Level::Fail,
                    text,
                    "free space now: with none left, messages cannot be stored and backups fail",
                )
            } else if free < LOW_SPACE || free.saturating_mul(20) < total {
                bad(
                    check,
                    Level::Warn,
                    text,
                    "free some space: the store, inboxes and backups need room to grow",
                )
            } else {
                ok(check, text)
            }
        }
        // The probe exists (it is the nearest existing ancestor): what
        // failed is reading it.
        Err(e) => bad(
            check,
            Level::Warn,
            format!("cannot read free space of {}: {e}", probe.display()),
            format!(
                "check that this user may reach {} (`ls -ld` it and each folder above)",
                probe.display()
            ),
        ),
    }
}

fn coordinates(config: &Config) -> Check {
    match Coordinates::load(&config.coords_path()) {
        Ok(coords) => {
            let errors: Vec<String> = coords
                .validate(&config.agents, config.coords.near_radius_px)
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .map(ToString::to_string)
                .collect();
            if errors.is_empty() {
                ok(
                    "coordinates",
                    format!("{} agent point(s) valid", coords.agents.len()),
                )
            } else {
                let mut detail = errors
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ");
                if errors.len() > 3 {
                    use std::fmt::Write as _;
                    let _ = write!(detail, "; and {} more", errors.len() - 3);
                }
                bad(
                    "coordinates",
                    Level::Fail,
                    detail,
                    "fix config/coordinates.json (`acp coords validate` explains each finding)",
                )
            }
        }
        Err(e) => coordinates_unread(config, &e),
    }
}

/// `config/coordinates.json` cannot be read: what that means depends on
/// why, and on whether any agent is delivered to by keyboard and mouse.
fn coordinates_unread(config: &Config, e: &crate::coords::CoordsError) -> Check {
    use crate::coords::CoordsError;
    const CHECK: &str = "coordinates";
    let gui: Vec<String> = config
        .agents
        .all()
        .iter()
        .filter(|a| a.delivery.contains(&crate::model::MethodName::Gui))
        .map(|a| a.id.to_string())
        .collect();
    let missing = matches!(e, CoordsError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
    if gui.is_empty() {
        return ok(
            CHECK,
            if missing {
                "no config/coordinates.json: no agent is delivered to by keyboard and mouse (gui)"
                    .to_owned()
            } else {
                format!("{e} (no agent is delivered to by keyboard and mouse, so it is not read)")
            },
        );
    }
    let who = gui.join(", ");
    let first = gui.first().map_or("Agent-1", String::as_str);
    let fix = match e {
        CoordsError::Read { .. } if missing => format!(
            "capture each gui agent's chat input, its window in front: `acp coords capture \
             {first} --save` (for {who})"
        ),
        CoordsError::Read { file, .. } => {
            format!("make {file} readable by this user (`ls -l` it), or capture it again")
        }
        CoordsError::Parse { .. } => format!(
            "correct the file as the error says, or capture it again: `acp coords capture \
             {first} --save` (for {who})"
        ),
    };
    bad(
        CHECK,
        Level::Warn,
        format!("{e}: gui delivery to {who} fails until then (other methods still try)"),
        fix,
    )
}

fn inboxes(config: &Config) -> Check {
    let mut linked = Vec::new();
    let mut unwritable = Vec::new();
    let mut missing = 0;
    for agent in config.agents.all() {
        let dir = agent.inbox_dir();
        // The workspace, the inbox and where Discord files go: a link at
        // any of them would take acp's writes elsewhere.
        let link = [agent.workspace.clone(), dir.clone(), dir.join("files")]
            .into_iter()
            .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()));
        match std::fs::symlink_metadata(&dir) {
            _ if link.is_some() => {
                let link = link.unwrap_or_default();
                linked.push(format!("{} ({})", agent.id, link.display()));
            }
            Ok(_) => {
                let writable = tempfile::Builder::new()
                    .prefix(".acp-doctor-")
                    .tempfile_in(&dir)
                    .is_ok();
                if !writable {
                    unwritable.push(format!("{} ({})", agent.id, dir.display()));
                }
            }
            // Delivery creates it (and its parents) on the first message.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing += 1,
            Err(e) => unwritable.push(format!("{} ({}: {e})", agent.id, dir.display())),
        }
    }
    if !linked.is_empty() {
        return bad(
            "inboxes",
            Level::Fail,
            format!(
                "symbolic links, which acp refuses to write through: {}",
                linked.join(", ")
            ),
            "make each a real directory (move what the link points to in its place); backups \
             would hold only the link",
        );
    }
    if !unwritable.is_empty() {
        return bad(
            "inboxes",
            Level::Fail,
            format!("not writable: {}", unwritable.join(", ")),
            "fix the directory's permissions, or move what is in the way",
        );
    }
    let total = config.agents.all().len();
    let created = if missing == 0 {
        String::new()
    } else {
        format!(" ({missing} not created yet: the first delivery creates them)")
    };
    ok("inboxes", format!("{total} inbox(es) writable{created}"))
}

fn devlogs(config: &Config) -> Check {
    let dir = config.root.join("devlogs");
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.file_type().is_symlink() => bad(
            "devlogs",
            Level::Fail,
            format!(
                "{} is a symbolic link (to {}): acp posts no devlog from it",
                dir.display(),
                std::fs::read_link(&dir).map_or_else(|_| "?".into(), |t| t.display().to_string())
            ),
            "make devlogs/ a real directory in the root (move what the link points to in its \
             place)",
        ),
        Ok(m) if !m.is_dir() => bad(
            "devlogs",
            Level::Fail,
            format!("{} is not a folder", dir.display()),
            "move it away: acp run creates devlogs/",
        ),
        Ok(_) => ok(
            "devlogs",
            "a folder of the root; links in it are not followed",
        ),
        Err(_) => ok("devlogs", "not created yet (acp run creates it)"),
    }
}

fn store(config: &Config) -> Check {
    use crate::store::Integrity;
    let db = config.db_path();
    let restore = "stop acp run and restore the store: `acp backup restore latest --in-place`";
    if !db.exists() {
        if db.with_extension("db-wal").exists() {
            return bad(
                "store",
                Level::Fail,
                format!(
                    "{} is gone but its write-ahead log is still there: it was deleted while \
                     in use",
                    db.display()
                ),
                format!("{restore} (starting an empty store would lose the log)"),
            );
        }
        return ok("store", "not created yet (the first message creates it)");
    }
    match Store::integrity(&db) {
        Integrity::Ok => ok(
            "store",
            format!("{} passes PRAGMA integrity_check", db.display()),
        ),
        Integrity::Damaged(why) => bad("store", Level::Fail, format!("damaged: {why}"), restore),
        Integrity::Busy(why) => bad(
            "store",
            Level::Warn,
            format!("{} is locked: {why}", db.display()),
            "run `acp doctor` again in a moment; if it stays locked, `fuser -v` on the file \
             names the process holding it",
        ),
        Integrity::Unreadable(why) => bad(
            "store",
            Level::Fail,
            format!("cannot read {}: {why}", db.display()),
            format!(
                "run acp as the user who owns {} and its folder (`ls -l` them), or give that \
                 user read and write access",
                db.display()
            ),
        ),
    }
}

/// The store file (with its write-ahead log) against `[store]
/// warn_size_mb`.
fn store_size(config: &Config) -> Check {
    let db = config.db_path();
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let bytes = size(&db) + size(&db.with_extension("db-wal"));
    let human = indicatif::HumanBytes(bytes);
    let limit = config.store.warn_bytes;
    if bytes <= limit {
        return ok(
            "store size",
            format!("{human}, under {}", indicatif::HumanBytes(limit)),
        );
    }
    let keep = config.store.keep.map_or_else(
        || "messages are kept for ever ([store] keep_days = 0)".to_owned(),
        |k| format!("[store] keep_days = {}", k.as_secs() / 86_400),
    );
    bad(
        "store size",
        Level::Warn,
        format!(
            "{human}, past [store] warn_size_mb ({}); {keep}",
            indicatif::HumanBytes(limit)
        ),
        "see what takes the space with `acp store stats`; lower [store] keep_days, then          `acp store prune` (and `acp store compact` once if stats says so)",
    )
}

/// What stops backups before the repository is even read: a path that
/// is a file, a key that is not one.
fn backup_setup(config: &Config) -> Option<Check> {
    let repo = &config.backup.repository;
    if repo.exists() && !repo.is_dir() {
        return Some(bad(
            "backups",
            Level::Fail,
            format!("the repository path {} is not a directory", repo.display()),
            "set backup.repository (or ACP_BACKUP_REPOSITORY) to a directory, or move the file \
             away",
        ));
    }
    if let Some(key) = &config.backup.key
        && let Err(why) = crate::backup::Cipher::from_key(key.expose())
    {
        return Some(bad(
            "backups",
            Level::Fail,
            format!("ACP_BACKUP_KEY is not a usable key: {why}"),
            "put the key `acp backup keygen` printed in .env \
             (ACP_BACKUP_KEY=AGE-SECRET-KEY-1...), or unset it",
        ));
    }
    None
}

fn backups(config: &Config) -> Check {
    if let Some(check) = backup_setup(config) {
        return check;
    }
    let repo = &config.backup.repository;
    if !repo.join("acp-backup.json").exists() {
        return bad(
            "backups",
            Level::Warn,
            format!("no backups yet (no repository at {})", repo.display()),
            "run `acp backup create --kind full`, and keep `acp run` running for the schedule",
        );
    }
    let (repo, catalog) =
        match Repo::open(&config.backup).and_then(|r| Catalog::read(&r).map(|c| (r, c))) {
            Ok(found) => found,
            Err(e) => return repository_unread(&e),
        };
    let Some((m, t)) = catalog
        .manifests
        .last()
        .and_then(|m| m.time().ok().map(|t| (m, t)))
    else {
        return bad(
            "backups",
            Level::Warn,
            "no backups yet",
            "run `acp backup create --kind full`",
        );
    };
    // The newest backup's files must all be there (a full re-hash is
    // `acp backup verify`).
    let missing = catalog
        .state(&m.id)
        .and_then(|state| crate::backup::missing_files(&repo, &state));
    match missing {
        Ok(0) => {}
        Ok(n) => {
            return bad(
                "backups",
                Level::Fail,
                format!(
                    "the newest backup {} is damaged: {n} file(s) have no data in the repository",
                    m.id
                ),
                "take a new backup now (`acp backup create --kind full`), then `acp backup \
                 verify --all`",
            );
        }
        Err(e) => {
            return bad(
                "backups",
                Level::Fail,
                format!("the newest backup {} cannot be restored: {e}", m.id),
                "take a new backup now (`acp backup create --kind full`), then `acp backup \
                 verify --all`",
            );
        }
    }
    let objective = config.backup.rpo;
    let age = jiff::Timestamp::now() - t;
    let text = format!(
        "newest backup {} ({}) is {:#} old; RPO {} min",
        m.id,
        m.kind,
        jiff::SignedDuration::from_secs(age.as_secs()),
        objective.as_secs() / 60
    );
    if !catalog.damaged.is_empty() {
        bad(
            "backups",
            Level::Warn,
            format!("{text}; {} damaged manifest(s)", catalog.damaged.len()),
            "run `acp backup verify --all`",
        )
    } else if u64::try_from(age.as_secs()).unwrap_or(0) > objective.as_secs() {
        bad(
            "backups",
            Level::Warn,
            text,
            "take one now (`acp backup create`) and keep `acp run` running for its schedule",
        )
    } else {
        ok("backups", text)
    }
}

/// The repository cannot be opened or its catalog read: the fix for
/// each cause.
fn repository_unread(e: &crate::backup::BackupError) -> Check {
    use crate::backup::BackupError;
    let (level, fix) = match e {
        // These say what to do themselves (a key that does not fit).
        BackupError::Usage(_) => (
            Level::Fail,
            "do as the line above says: until then backups can be neither taken nor restored"
                .to_owned(),
        ),
        BackupError::Io { path, .. } => (
            Level::Fail,
            format!("run acp as the user who owns {path}, or give that user read and write access"),
        ),
        BackupError::Busy(_) => (
            Level::Warn,
            "run `acp doctor` again when it has finished".to_owned(),
        ),
        BackupError::Corrupt(_) | BackupError::Damaged { .. } | BackupError::Store(_) => (
            Level::Fail,
            "start a new repository: set backup.repository to an empty folder and run `acp \
             backup create --kind full`; keep the damaged one until you have looked at it"
                .to_owned(),
        ),
    };
    bad("backups", level, e.to_string(), fix)
}

/// Files that hold secrets or every message, readable by others.
fn permissions(config: &Config) -> Check {
    use std::os::unix::fs::PermissionsExt;
    let store = config.db_path();
    let candidates = [
        (
            config.root.join(".env"),
            "holds DISCORD_TOKEN and ACP_BACKUP_KEY",
        ),
        (store.clone(), "holds every message"),
        (store.with_extension("db-wal"), "holds recent messages"),
    ];
    let open: Vec<String> = candidates
        .iter()
        .filter_map(|(path, why)| {
            let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
            (mode & 0o077 != 0).then(|| format!("{} is {mode:o} ({why})", path.display()))
        })
        .collect();
    if open.is_empty() {
        ok(
            "permissions",
            ".env and the store are readable by their owner only",
        )
    } else {
        bad(
            "permissions",
            Level::Warn,
            open.join("; "),
            "chmod 600 each file named (and chmod 700 its directory): other users on this \
             machine can read it",
        )
    }
}

fn restores(config: &Config) -> Check {
    let leftovers: Vec<String> = std::fs::read_dir(&config.root)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".acp-restore-"))
                .collect()
        })
        .unwrap_or_default();
    if leftovers.is_empty() {
        ok("restores", "no interrupted in-place restore")
    } else {
        bad(
            "restores",
            Level::Warn,
            format!(
                "left by an interrupted in-place restore: {}",
                leftovers.join(", ")
            ),
            "run the restore again, then delete the directory",
        )
    }
}

/// The HTTP API's tokens and what each may do; a token with no scopes
/// written may only read.
fn api_tokens(config: &Config) -> Check {
    const CHECK: &str = "api tokens";
    let tokens = &config.http.tokens;
    if tokens.is_empty() {
        return ok(
            CHECK,
            "none set: the API refuses every call (set ACP_API_TOKENS in .env to use it)",
        );
    }
    let list: Vec<String> = tokens
        .iter()
        .map(|t| {
            let unwritten = if t.scopes_written {
                ""
            } else {
                " (no scopes written: read only)"
            };
            format!("{} may {}{unwritten}", t.name, t.grants())
        })
        .collect();
    let detail = list.join("; ");
    if let Some(t) = tokens.iter().find(|t| {
        t.agent
            .as_ref()
            .is_some_and(|a| config.agents.lookup(a.as_str()).is_err())
    }) {
        return bad(
            CHECK,
            Level::Fail,
            format!(
                "{detail}. The token {} is bound to an agent that is not configured",
                t.name
            ),
            "fix its @AGENT in ACP_API_TOKENS in .env (acp run refuses to start)",
        );
    }
    let unwritten: Vec<&str> = tokens
        .iter()
        .filter(|t| !t.scopes_written)
        .map(|t| t.name.as_str())
        .collect();
    if unwritten.is_empty() {
        ok(CHECK, detail)
    } else {
        bad(
            CHECK,
            Level::Warn,
            detail,
            format!(
                "{} may only read until you write scopes: NAME:read+send=SECRET (or admin, or \
                 @AGENT to bind one to an agent) in ACP_API_TOKENS in .env",
                unwritten.join(", ")
            ),
        )
    }
}

/// The checks of this machine's files and settings, in the order `acp
/// doctor` prints them (then [`discord_checks`] and [`cluster_checks`]).
#[must_use]
pub fn checks(config: &Config) -> Vec<Check> {
    vec![
        config_check(config),
        coordinates(config),
        inboxes(config),
        devlogs(config),
        store(config),
        store_size(config),
        api_tokens(config),
        backups(config),
        disk("disk (root)", &config.root),
        disk("disk (backups)", &config.backup.repository),
        permissions(config),
        restores(config),
    ]
}

/// The config loads; and what the running `acp run` made of it: refused
/// (it keeps the one before), or parts of it waiting for a restart.
fn config_check(config: &Config) -> Check {
    let valid = format!(
        "{} valid, {} agent(s)",
        crate::config::CONFIG_FILE,
        config.agents.all().len()
    );
    let Some(state) = super::reload::read_state(&config.root) else {
        return ok("config", valid);
    };
    let digest = super::reload::config_digest(&config.root);
    match state.pickup(&digest, &state.agents) {
        super::Pickup::Refused { error } => bad(
            "config",
            Level::Fail,
            format!(
                "{valid}, but the running acp run refused the files on disk and keeps the ones \
                 it loaded before: {error}"
            ),
            "fix what the error names; acp run reads the files again when they are saved",
        ),
        super::Pickup::Loaded { restart_needed } if !restart_needed.is_empty() => bad(
            "config",
            Level::Warn,
            format!(
                "{valid}; the running acp run waits for a restart to apply: {}",
                restart_needed.join("; ")
            ),
            "restart acp run (systemctl --user restart, or stop it and start it again)",
        ),
        super::Pickup::Loaded { .. } => ok(
            "config",
            format!("{valid}, the one the running acp run uses"),
        ),
        super::Pickup::NotYet | super::Pickup::NotRunning => ok(
            "config",
            format!("{valid}; the running acp run has not read this version yet"),
        ),
    }
}

/// The finding when the config cannot be loaded: nothing else can be
/// checked until it is fixed.
#[must_use]
pub fn config_failed(error: &crate::config::ConfigError) -> Check {
    use crate::config::ConfigError;
    let fix = match error {
        ConfigError::Missing { .. } => {
            "create the root with `acp init`, or point --root (or ACP_ROOT) at an existing one"
                .to_owned()
        }
        ConfigError::Read { file, .. } => {
            format!("make {file} readable by this user (`ls -l` it), then run `acp doctor` again")
        }
        ConfigError::Parse { .. } => "correct the TOML at the line and column named above \
             (config/acp.example.toml shows every key), then run `acp doctor` again"
            .to_owned(),
        ConfigError::Invalid { file, .. } if file == "environment" => {
            "fix that variable in .env or the environment, then run `acp doctor` again".to_owned()
        }
        ConfigError::Invalid { file, .. } if file == "command line" => {
            "fix that flag (`acp --help` lists them)".to_owned()
        }
        ConfigError::Invalid { .. } => "fix the key named above (config/acp.example.toml \
             documents every key), then run `acp doctor` again"
            .to_owned(),
    };
    bad("config", Level::Fail, error.to_string(), fix)
}

#[cfg(test)]
mod tests {
    use super::discord::reminders;
    use super::*;
    use crate::config::Env;

    fn reminder_check(toml: &str) -> Option<Check> {
        let mut env = Env::new();
        env.insert("DISCORD_TOKEN".into(), "t".into());
        reminders(&Config::from_toml(std::path::Path::new("/r"), toml, &env).unwrap())
    }

    #[test]
    fn reminders_that_would_ping_nobody_are_a_warning() {
        let nobody = reminder_check("").unwrap();
        assert_eq!(nobody.level, Level::Warn);
        assert!(
            nobody.detail.contains("5 min would ping nobody"),
            "{}",
            nobody.detail
        );
        let operators = reminder_check("[discord]\noperator_roles = [5]\n").unwrap();
        assert_eq!(operators.level, Level::Ok);
        assert!(
            operators.detail.contains("1 role(s) and 0 user(s)"),
            "{}",
            operators.detail
        );
        assert!(reminder_check("[attention]\nmention_after_secs = 0\n").is_none());
        let c = Config::from_toml(std::path::Path::new("/r"), "", &Env::new()).unwrap();
        assert!(reminders(&c).is_none(), "no bot, no reminders");
    }
}
