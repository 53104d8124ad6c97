// Over 400 lines: one function per check, each with its fix, in the order the doctor prints them.

//! `acp doctor`'s checks: the health of everything a user depends on, each
//! with what to do about it. The front door prints them.

use serde::Serialize;

use crate::backup::{Catalog, Repo};
use crate::config::Config;
use crate::coords::{Coordinates, Severity};
use crate::store::Store;

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
        Err(e) => bad(
            check,
            Level::Warn,
            format!("cannot read free space of {}: {e}", probe.display()),
            "check the path exists",
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
        Err(e) => bad(
            "coordinates",
            Level::Warn,
            e.to_string(),
            "only needed for gui delivery: `acp coords capture Agent-N --save`",
        ),
    }
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
    let db = config.db_path();
    if !db.exists() {
        return ok("store", "not created yet (the first message creates it)");
    }
    let fix = "stop acp run and restore the store: `acp backup restore latest --in-place`";
    match Store::integrity(&db) {
        Ok(v) if v == "ok" => ok(
            "store",
            format!("{} passes PRAGMA integrity_check", db.display()),
        ),
        Ok(v) => bad("store", Level::Fail, format!("integrity_check: {v}"), fix),
        Err(e) => bad("store", Level::Fail, e.to_string(), fix),
    }
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
            Err(e) => {
                return bad(
                    "backups",
                    Level::Fail,
                    e.to_string(),
                    "backups cannot be taken or restored until this is fixed (`acp backup verify \
                 --all` says more)",
                );
            }
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
    let missing = catalog.state(&m.id).map(|state| {
        state
            .values()
            .filter(|n| matches!(n, crate::backup::Node::File { blake3, .. } if !repo.has_object(blake3)))
            .count()
    });
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

/// Which server the bot takes commands from, when it runs at all.
fn discord_server(config: &Config) -> Option<Check> {
    let d = &config.discord;
    d.token.as_ref()?;
    Some(match d.guild_id {
        Some(guild) => ok(
            "discord server",
            format!("commands are taken only in server {guild} (discord.guild_id)"),
        ),
        None => bad(
            "discord server",
            Level::Warn,
            "no discord.guild_id: slash commands are registered globally and taken from every \
             server the bot is in, so anyone who adds the bot to theirs can run them",
            "set guild_id in [discord] in config/acp.toml to your server's id: in Discord turn \
             on Developer Mode (User Settings → Advanced), right-click the server's icon and \
             Copy Server ID; then restart acp run",
        ),
    })
}

/// Whom a prompt left waiting pings, when the bot runs and reminders are
/// on: nobody to ping is a warning.
fn reminders(config: &Config) -> Option<Check> {
    const CHECK: &str = "reminders";
    config.discord.token.as_ref()?;
    let after = config.attention.mention_after?;
    let to = &config.attention.mentions;
    let waited =
        crate::model::attention::waited(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
    Some(if to.is_empty() {
        bad(
            CHECK,
            Level::Warn,
            format!("a prompt waiting {waited} would ping nobody: no role or user to mention"),
            "set discord.operator_roles (pinged by default) or attention.mention_roles / \
             attention.mention_users in config/acp.toml; or attention.mention_after_secs = 0 \
             for no reminder",
        )
    } else {
        ok(
            CHECK,
            format!(
                "a prompt waiting {waited} pings {} role(s) and {} user(s) once \
                 (attention.mention_roles, attention.mention_users)",
                to.roles.len(),
                to.users.len()
            ),
        )
    })
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

/// Every check, in the order `acp doctor` prints them.
#[must_use]
pub fn checks(config: &Config) -> Vec<Check> {
    let d = &config.discord;
    let discord = if d.token.is_some() && d.swarm_channel.is_none() && d.devlog_channel.is_none() {
        bad(
            "discord",
            Level::Warn,
            "DISCORD_TOKEN is set, but agents have nowhere to post (`acp send --to discord`, \
             devlogs)",
            "set discord.swarm_channel (and discord.devlog_channel) to channel ids in \
             config/acp.toml",
        )
    } else if d.token.is_some() {
        ok("discord", "DISCORD_TOKEN is set")
    } else {
        bad(
            "discord",
            Level::Warn,
            "no DISCORD_TOKEN: acp run works without the Discord bot",
            "put DISCORD_TOKEN=... in .env in the root (see .env.example)",
        )
    };
    let mut all = vec![
        config_check(config),
        coordinates(config),
        inboxes(config),
        devlogs(config),
        store(config),
        discord,
        api_tokens(config),
    ];
    all.extend(discord_server(config));
    all.extend(reminders(config));
    all.extend([
        backups(config),
        disk("disk (root)", &config.root),
        disk("disk (backups)", &config.backup.repository),
        permissions(config),
        restores(config),
    ]);
    all
}

/// The swarm's checks (`[cluster]`): NATS reachable with these
/// credentials, the streams there, and how far behind each reader is.
/// None on a single machine.
pub async fn cluster_checks(config: &Config) -> Vec<Check> {
    let Some(cluster) = &config.cluster else {
        return Vec::new();
    };
    let link = match crate::cluster::Link::connect(std::sync::Arc::new(cluster.clone())).await {
        Ok(link) => link,
        Err(e) => {
            return vec![bad(
                "nats",
                Level::Fail,
                e.to_string(),
                "start nats-server with JetStream (nats-server -js), and check ACP_NATS_URL and \
                 the credentials in .env",
            )];
        }
    };
    let mut out = vec![ok(
        "nats",
        format!(
            "connected to {} as node {} ({})",
            cluster.nats.url,
            cluster.node,
            if cluster.is_hub() {
                "the hub"
            } else {
                "a node"
            }
        ),
    )];
    if !cluster.is_hub() {
        out.push(match crate::cluster::node::check(&link).await {
            Ok(waiting) => ok(
                "streams",
                format!("this node's consumer is there; {waiting} message(s) wait for it"),
            ),
            Err(e) => bad("streams", Level::Fail, e.to_string(), "see the error above"),
        });
        link.close().await;
        return out;
    }
    let nodes = crate::cluster::hub::nodes(&config.agents, &cluster.hub);
    match crate::cluster::hub::lag(&link, &nodes).await {
        Ok(lags) => {
            out.push(ok(
                "streams",
                "the node and hub streams and every consumer are there",
            ));
            let behind: Vec<String> = lags
                .iter()
                .filter(|l| l.pending + l.unacked > 0)
                .map(|l| {
                    format!(
                        "{}: {} waiting, {} unacknowledged{}",
                        l.reader,
                        l.pending,
                        l.unacked,
                        if l.reading { "" } else { " (nobody reading)" }
                    )
                })
                .collect();
            out.push(if behind.is_empty() {
                ok("consumer lag", "every machine has taken all its work")
            } else {
                bad(
                    "consumer lag",
                    Level::Warn,
                    behind.join("; "),
                    "start acp run on the machines named (acp run --node NAME); their work waits \
                     in JetStream until then",
                )
            });
        }
        Err(e) => out.push(bad(
            "streams",
            Level::Fail,
            e.to_string(),
            "start the hub's acp run once: it creates the streams and consumers",
        )),
    }
    link.close().await;
    out
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
    match state.pickup(&digest) {
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
    bad(
        "config",
        Level::Fail,
        error.to_string(),
        "fix the key named above (config/acp.example.toml documents every key), then run `acp \
         doctor` again",
    )
}

#[cfg(test)]
mod tests {
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
