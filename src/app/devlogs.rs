//! Devlogs: markdown files under `devlogs/`, posted to Discord once per
//! content version.
//!
//! The agent is the first folder (`devlogs/Agent-3/2026-12-01.md`), or the
//! `agent:` line of the file's front matter. While `acp run` runs, the
//! folder is watched (file events, debounced, wake a scan; a rescan every
//! 30 s is the safety net). A scan posts each settled file whose content
//! the ledger does not know for its agent: a new file is a new devlog, a
//! changed one an update (a Discord reply to the version before), a rename
//! or a touch posts nothing. The ledger row and the post's message are
//! stored in one transaction, so no restart or duplicate event can post
//! the same content twice.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{App, AppError, Refused, blocking};
use crate::model::{AgentId, Destination, Draft, Kind, MessageId, Priority, Recipient, Via};
use crate::store::Submission;
use crate::store::devlogs::DevlogVersion;

/// The largest devlog posted, in bytes.
pub const DEVLOG_MAX_BYTES: usize = 1 << 20;
/// How often the folder is scanned without any file event.
const RESCAN: Duration = Duration::from_secs(30);
/// File events closer together than this are one.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// What happened to one devlog file asked to be posted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DevlogPost {
    /// The file, relative to `devlogs/`.
    pub path: String,
    pub agent: Option<AgentId>,
    /// The message that posts this content (new, or from before).
    pub message_id: Option<MessageId>,
    /// Whether this call stored it (false: this content was posted before).
    pub new: bool,
    /// Whether it updates an earlier version of the same file.
    pub update: bool,
}

/// One devlog file as read.
struct Devlog {
    rel: String,
    agent: Option<AgentId>,
    content: String,
    hash: String,
}

/// `agent: NAME` from a leading `---` front-matter block.
fn front_matter_agent(content: &str) -> Option<&str> {
    let rest = content.strip_prefix("---\n")?;
    let end = rest.find("\n---")?;
    rest[..end].lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "agent").then(|| value.trim().trim_matches('"'))
    })
}

/// Whether a name is a devlog: `*.md`, not hidden, not an editor's
/// temporary file.
fn is_devlog(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.')
        && !name.starts_with('#')
        && Path::new(name)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("md"))
}

impl App {
    /// The devlog folder.
    #[must_use]
    pub fn devlogs_dir(&self) -> PathBuf {
        self.config.root.join("devlogs")
    }

    /// `path` as a devlog: inside `devlogs/` (relative paths are taken
    /// from there first), a regular markdown file, not a link out.
    fn devlog_path(&self, path: &Path) -> Result<(PathBuf, String), AppError> {
        let dir = self.devlogs_dir();
        let candidate = if path.is_absolute() || path.exists() {
            path.to_path_buf()
        } else {
            dir.join(path)
        };
        // Named from the root, so a reply on Discord shows no local paths.
        let shown = candidate
            .strip_prefix(&self.config.root)
            .unwrap_or(path)
            .display()
            .to_string();
        let refuse = |why: &str| {
            AppError::from(Refused(format!(
                "{shown} {why}: a devlog is a .md file under devlogs/"
            )))
        };
        let file = candidate
            .canonicalize()
            .map_err(|e| refuse(&format!("cannot be read ({e})")))?;
        let base = dir
            .canonicalize()
            .map_err(|e| refuse(&format!("has no devlogs folder to be in ({e})")))?;
        let rel = file
            .strip_prefix(&base)
            .map_err(|_| refuse("is outside devlogs/"))?;
        if !file.is_file() || !is_devlog(&file) {
            return Err(refuse("is not a markdown file"));
        }
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(refuse("is not a plain path"));
        }
        let rel = rel.to_string_lossy().replace('\\', "/");
        Ok((file, rel))
    }

    fn read_devlog(&self, file: &Path, rel: String) -> Result<Devlog, AppError> {
        let refuse = |why: String| AppError::from(Refused(format!("devlogs/{rel}: {why}")));
        let bytes = std::fs::read(file).map_err(|e| refuse(format!("cannot be read: {e}")))?;
        if bytes.len() > DEVLOG_MAX_BYTES {
            return Err(refuse(format!(
                "is {} bytes, over the {DEVLOG_MAX_BYTES}-byte limit for a devlog: split it",
                bytes.len()
            )));
        }
        let content = String::from_utf8(bytes)
            .map_err(|_| refuse("is not UTF-8 text".into()))?
            .replace("\r\n", "\n");
        let folder = rel.split('/').next().filter(|_| rel.contains('/'));
        let named = folder.or_else(|| front_matter_agent(&content));
        let agent = named.and_then(|n| self.registry.lookup(n).ok().map(|a| a.id.clone()));
        Ok(Devlog {
            hash: blake3::hash(content.as_bytes()).to_hex().to_string(),
            rel,
            agent,
            content,
        })
    }

    /// Stores the post of one devlog version unless the ledger knows it.
    async fn store_devlog(&self, log: Devlog) -> Result<DevlogPost, AppError> {
        let store = Arc::clone(&self.store);
        let rel = log.rel.clone();
        let previous = blocking(move || store.devlog_latest(&rel)).await?;
        let title = if previous.is_some() {
            format!("📝 devlog `{}` (updated)", log.rel)
        } else {
            format!("📝 devlog `{}`", log.rel)
        };
        let message = Draft {
            from: log
                .agent
                .as_ref()
                .map_or_else(|| "devlogs".to_owned(), ToString::to_string),
            to: Recipient::Discord,
            kind: Kind::Devlog,
            priority: Priority::Normal,
            body: format!("{title}\n\n{}", log.content.trim_end()),
            tags: Vec::new(),
            reply_to: previous,
        }
        .build(DEVLOG_MAX_BYTES + 1024)?;
        self.check_discord_route(&message).await?;
        let submission = Submission {
            message,
            via: Via::Auto,
            to: vec![Destination::Discord],
            audit: None,
        };
        let agent = log
            .agent
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let (store, sub, hash, rel) = (
            Arc::clone(&self.store),
            submission.clone(),
            log.hash.clone(),
            log.rel.clone(),
        );
        let new = blocking(move || store.accept_devlog(&sub, &agent, &hash, &rel)).await?;
        let message = submission.message;
        if new {
            self.accepted(&message, 1);
        }
        Ok(DevlogPost {
            path: log.rel,
            agent: log.agent,
            message_id: new.then_some(message.id),
            new,
            update: previous.is_some(),
        })
    }

    /// Posts the devlog at `path` (under `devlogs/`) now, unless this
    /// content was posted before.
    ///
    /// # Errors
    /// [`AppError`] saying what to fix: a path outside `devlogs/`, a file
    /// too big or not text, Discord not set up.
    pub async fn post_devlog(&self, path: &Path) -> Result<DevlogPost, AppError> {
        let (file, rel) = self.devlog_path(path)?;
        let log = self.read_devlog(&file, rel)?;
        self.store_devlog(log).await
    }

    /// Every devlog file, with whether it has settled (unchanged for
    /// `settle`) and, if not, how long until it has.
    fn devlog_files(&self, settle: Duration) -> (Vec<(PathBuf, String)>, Option<Duration>) {
        let dir = self.devlogs_dir();
        let mut settled = Vec::new();
        let mut soonest: Option<Duration> = None;
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                // Links are not followed: a devlog is a file in the folder.
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() && !entry.file_name().to_string_lossy().starts_with('.') {
                    stack.push(path);
                } else if meta.is_file() && is_devlog(&path) {
                    let age = meta
                        .modified()
                        .ok()
                        .and_then(|m| SystemTime::now().duration_since(m).ok())
                        .unwrap_or(settle);
                    if age < settle {
                        let wait = settle.saturating_sub(age);
                        soonest = Some(soonest.map_or(wait, |s| s.min(wait)));
                    } else if let Ok(rel) = path.strip_prefix(&dir) {
                        let rel = rel.to_string_lossy().replace('\\', "/");
                        settled.push((path, rel));
                    }
                }
            }
        }
        settled.sort_by(|a, b| a.1.cmp(&b.1));
        (settled, soonest)
    }

    /// One scan: posts every settled devlog version the ledger does not
    /// know. Returns how many were stored, and when an unsettled file is
    /// due for another look.
    ///
    /// # Errors
    /// [`AppError::Store`]; a file that cannot be posted is logged and
    /// skipped.
    pub async fn scan_devlogs(&self) -> Result<(usize, Option<Duration>), AppError> {
        let (files, soonest) = self.devlog_files(self.config.discord.devlog_settle);
        let mut stored = 0;
        for (file, rel) in files {
            let log = match self.read_devlog(&file, rel.clone()) {
                // An empty file is a devlog being started, not one to post.
                Ok(log) if log.content.trim().is_empty() => continue,
                Ok(log) => log,
                Err(e) => {
                    tracing::warn!(devlog = %rel, error = %e, "devlog not posted");
                    continue;
                }
            };
            let store = Arc::clone(&self.store);
            let (agent, hash) = (
                log.agent
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                log.hash.clone(),
            );
            if blocking(move || store.devlog_known(&agent, &hash)).await? {
                continue;
            }
            match self.store_devlog(log).await {
                Ok(post) if post.new => {
                    stored += 1;
                    tracing::info!(devlog = %rel, message = ?post.message_id, update = post.update, "devlog queued for Discord");
                }
                Ok(_) => {}
                Err(AppError::Store(e)) => return Err(AppError::Store(e)),
                Err(e) => tracing::warn!(devlog = %rel, error = %e, "devlog not posted"),
            }
        }
        Ok((stored, soonest))
    }

    /// The first time devlogs are watched for this root, the devlogs
    /// already there are recorded as seen, not posted (a first start must
    /// not flood the channel with old files); `acp devlog post` posts one.
    async fn devlogs_baseline(&self) -> Result<(), AppError> {
        let store = Arc::clone(&self.store);
        if blocking(move || store.devlogs_started()).await? {
            return Ok(());
        }
        let (files, _) = self.devlog_files(Duration::ZERO);
        let mut versions = Vec::new();
        for (file, rel) in files {
            if let Ok(log) = self.read_devlog(&file, rel) {
                let agent = log.agent.map(|a| a.to_string()).unwrap_or_default();
                versions.push((agent, log.hash, log.rel));
            }
        }
        let store = Arc::clone(&self.store);
        let seen = blocking(move || {
            let seen = store.devlogs_seen(&versions)?;
            store.devlogs_start("acp run")?;
            Ok(seen)
        })
        .await?;
        if seen > 0 {
            tracing::info!(
                seen,
                "devlogs already in devlogs/ are recorded, not posted; post one with `acp devlog \
                 post FILE`"
            );
        }
        Ok(())
    }

    /// Watches `devlogs/` and posts new versions until `cancel`: file
    /// events (debounced) wake a scan, and a rescan runs every 30 s.
    pub async fn watch_devlogs(self: Arc<Self>, cancel: CancellationToken) {
        let dir = self.devlogs_dir();
        if let Err(e) = crate::app::init::private_dir(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create the devlogs folder");
        }
        if let Err(e) = self.devlogs_baseline().await {
            tracing::error!(error = %e, "cannot read the devlog ledger; devlogs are not posted");
            return;
        }
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let debouncer = notify_debouncer_mini::new_debouncer(
            DEBOUNCE,
            move |_: notify_debouncer_mini::DebounceEventResult| {
                let _ = tx.send(());
            },
        );
        let _debouncer = match debouncer {
            Ok(mut d) => match d.watcher().watch(&dir, notify::RecursiveMode::Recursive) {
                Ok(()) => Some(d),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch devlogs/; scanning it every 30 s");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch devlogs/; scanning it every 30 s");
                None
            }
        };
        tracing::info!(dir = %dir.display(), "watching devlogs");
        loop {
            let pause = match self.scan_devlogs().await {
                Ok((_, soonest)) => soonest.map_or(RESCAN, |s| s.min(RESCAN)),
                Err(e) => {
                    tracing::error!(error = %e, "devlog scan failed; trying again");
                    RESCAN
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = events.recv() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// The newest devlog versions and where each was posted.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn devlog_versions(&self, limit: usize) -> Result<Vec<DevlogVersion>, AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.devlog_versions(limit)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_comes_from_front_matter() {
        assert_eq!(
            front_matter_agent("---\nagent: Agent-3\ntitle: x\n---\nbody"),
            Some("Agent-3")
        );
        assert_eq!(front_matter_agent("no front matter\nagent: Agent-3"), None);
        assert!(is_devlog(Path::new("devlogs/a.md")));
        assert!(!is_devlog(Path::new("devlogs/.a.md.swp")));
        assert!(!is_devlog(Path::new("devlogs/a.txt")));
    }
}
