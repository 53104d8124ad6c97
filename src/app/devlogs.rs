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

/// A devlog file as listed (by the link itself, not followed).
struct Listed {
    rel: String,
    len: u64,
    modified: Option<SystemTime>,
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

/// Devlogs refused by a scan, by path, with the size and time they had:
/// each is reported once, and not read again until it changes.
pub(crate) type Refusals = std::collections::HashMap<String, (u64, Option<SystemTime>)>;

/// `rel` (below `devlogs/`) as a devlog path: plain components only, a
/// markdown name.
fn plain_devlog(rel: &Path) -> Option<String> {
    let plain =
        rel.components().count() > 0 && rel.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && is_devlog(rel)).then(|| rel.to_string_lossy().replace('\\', "/"))
}

impl App {
    /// The devlog folder.
    #[must_use]
    pub fn devlogs_dir(&self) -> PathBuf {
        self.config.root.join("devlogs")
    }

    /// `path` as a devlog's name below `devlogs/` (relative paths are taken
    /// from there first). Only the name is worked out here, by its text:
    /// the file is opened later without following any link.
    fn devlog_path(&self, path: &Path) -> Result<String, AppError> {
        let dir = self.devlogs_dir();
        let shown = path.display().to_string();
        let refuse = |why: &str| {
            AppError::from(Refused(format!(
                "{shown} {why}: a devlog is a .md file under devlogs/"
            )))
        };
        let absolute = if path.is_absolute() {
            Some(path.to_path_buf())
        } else if !dir.join(path).exists() && path.exists() {
            std::env::current_dir().ok().map(|cwd| cwd.join(path))
        } else {
            None
        };
        let rel = match absolute {
            None => path.to_path_buf(),
            Some(abs) => {
                let canonical = dir.canonicalize().ok();
                let rel = abs
                    .strip_prefix(&dir)
                    .ok()
                    .or_else(|| canonical.as_ref().and_then(|c| abs.strip_prefix(c).ok()))
                    .ok_or_else(|| refuse("is outside devlogs/"))?;
                rel.to_path_buf()
            }
        };
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(refuse("is outside devlogs/"));
        }
        plain_devlog(&rel).ok_or_else(|| refuse("is not a markdown file"))
    }

    /// Reads the devlog at `rel` below `devlogs/`, off the runtime: opened
    /// without following links, checked as opened, at most
    /// [`DEVLOG_MAX_BYTES`] read. Posted as the agent whose folder it is
    /// in; front matter naming another agent (or any agent, outside an
    /// agent's folder) is refused, so no agent writes as another.
    async fn read_devlog(&self, rel: String) -> Result<Devlog, AppError> {
        let dir = self.devlogs_dir();
        let at = rel.clone();
        let read = tokio::task::spawn_blocking(move || {
            crate::untrusted::read_beneath(&dir, Path::new(&at), DEVLOG_MAX_BYTES)
        })
        .await
        .map_err(|_| AppError::Store(crate::store::StoreError::Interrupted))?;
        let refuse = |why: String| AppError::from(Refused(format!("devlogs/{rel}: {why}")));
        let bytes = read.map_err(|e| match e {
            crate::untrusted::ReadError::TooBig { len, max } => refuse(format!(
                "is {len} bytes or more, over the {max}-byte limit for a devlog: split it"
            )),
            e => refuse(format!(
                "{e}: a devlog is a regular .md file under devlogs/"
            )),
        })?;
        let content = String::from_utf8(bytes)
            .map_err(|_| refuse("is not UTF-8 text".into()))?
            .replace("\r\n", "\n");
        let folder = rel.split_once('/').map(|(f, _)| f);
        let agent = folder.and_then(|f| self.registry.lookup(f).ok().map(|a| a.id.clone()));
        if let Some(claim) = front_matter_agent(&content) {
            let claimed = self.registry.lookup(claim).ok().map(|a| a.id.clone());
            if claimed.is_none() || claimed != agent {
                return Err(refuse(format!(
                    "its front matter says `agent: {claim}`, but a devlog is posted as the agent \
                     whose folder it is in ({}): move it to devlogs/{claim}/ or drop the line",
                    agent
                        .as_ref()
                        .map_or_else(|| "none here".to_owned(), |a| format!("devlogs/{a}/"))
                )));
            }
        }
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
    /// content was posted before. `by`: the agent asking (MCP), which may
    /// post only devlogs in its own folder; none for a person.
    ///
    /// # Errors
    /// [`AppError`] saying what to fix: a path outside `devlogs/`, a link,
    /// a file too big or not text, another agent's devlog, Discord not set
    /// up.
    pub async fn post_devlog(
        &self,
        path: &Path,
        by: Option<&AgentId>,
    ) -> Result<DevlogPost, AppError> {
        let rel = self.devlog_path(path)?;
        let log = self.read_devlog(rel).await?;
        if let Some(by) = by
            && log.agent.as_ref() != Some(by)
        {
            return Err(Refused(format!(
                "devlogs/{} is not {by}'s devlog: an agent posts only its own, from \
                 devlogs/{by}/",
                log.rel
            ))
            .into());
        }
        self.store_devlog(log).await
    }

    /// Every devlog file (its name below `devlogs/`, size and time), with
    /// whether it has settled (unchanged for `settle`) and, if not, how
    /// long until it has. Nothing if `devlogs/` itself is a link.
    fn devlog_files(&self, settle: Duration) -> (Vec<Listed>, Option<Duration>) {
        let dir = self.devlogs_dir();
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| !m.is_dir()) {
            return (Vec::new(), None);
        }
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
                    } else if let Some(rel) = path.strip_prefix(&dir).ok().and_then(plain_devlog) {
                        settled.push(Listed {
                            rel,
                            len: meta.len(),
                            modified: meta.modified().ok(),
                        });
                    }
                }
            }
        }
        settled.sort_by(|a, b| a.rel.cmp(&b.rel));
        (settled, soonest)
    }

    /// One scan: posts every settled devlog version the ledger does not
    /// know. Returns how many were stored, and when an unsettled file is
    /// due for another look. A file refused (too big, a link, not text...)
    /// is reported once in `refused` and not read again until its size or
    /// time changes.
    ///
    /// # Errors
    /// [`AppError::Store`]; a file that cannot be posted is logged and
    /// skipped.
    pub(crate) async fn scan_devlogs(
        &self,
        refused: &mut Refusals,
    ) -> Result<(usize, Option<Duration>), AppError> {
        self.devlogs_folder_is_plain()?;
        let (files, soonest) = self.devlog_files(self.config.discord.devlog_settle);
        refused.retain(|rel, _| files.iter().any(|f| f.rel == *rel));
        let mut stored = 0;
        for file in files {
            let seen = (file.len, file.modified);
            if refused.get(&file.rel) == Some(&seen) {
                continue;
            }
            let read = if file.len > DEVLOG_MAX_BYTES as u64 {
                Err(AppError::from(Refused(format!(
                    "devlogs/{}: is {} bytes, over the {DEVLOG_MAX_BYTES}-byte limit for a \
                     devlog: split it",
                    file.rel, file.len
                ))))
            } else {
                self.read_devlog(file.rel.clone()).await
            };
            let log = match read {
                // An empty file is a devlog being started, not one to post.
                Ok(log) if log.content.trim().is_empty() => continue,
                Ok(log) => log,
                Err(e) => {
                    tracing::warn!(devlog = %file.rel, error = %e, "devlog not posted (said once, until the file changes)");
                    refused.insert(file.rel, seen);
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
                    tracing::info!(devlog = %file.rel, message = ?post.message_id, update = post.update, "devlog queued for Discord");
                }
                Ok(_) => {}
                Err(AppError::Store(e)) => return Err(AppError::Store(e)),
                Err(e) => {
                    tracing::warn!(devlog = %file.rel, error = %e, "devlog not posted (said once, until the file changes)");
                    refused.insert(file.rel, seen);
                }
            }
        }
        Ok((stored, soonest))
    }

    /// `devlogs/` must be a folder of the root, not a link to elsewhere.
    ///
    /// # Errors
    /// [`AppError::Refused`] saying what is there and what to do.
    pub(crate) fn devlogs_folder_is_plain(&self) -> Result<(), AppError> {
        let dir = self.devlogs_dir();
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => Err(Refused(format!(
                "{} is a symbolic link (to {}): acp posts devlogs only from a real folder in \
                 the root; make it a real directory",
                dir.display(),
                std::fs::read_link(&dir).map_or_else(|_| "?".into(), |t| t.display().to_string())
            ))
            .into()),
            Ok(m) if !m.is_dir() => Err(Refused(format!(
                "{} is not a folder: move it away so acp can create devlogs/",
                dir.display()
            ))
            .into()),
            _ => Ok(()),
        }
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
        for file in files {
            if file.len > DEVLOG_MAX_BYTES as u64 {
                continue;
            }
            if let Ok(log) = self.read_devlog(file.rel).await {
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
        let mut watch = match crate::watch::changes(&[(dir.clone(), true)], |_| true) {
            Ok(watch) => Some(watch),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch devlogs/; scanning it every 30 s");
                None
            }
        };
        tracing::info!(dir = %dir.display(), "watching devlogs");
        let mut refused = Refusals::new();
        let mut folder_refused = false;
        loop {
            let scanned = self.scan_devlogs(&mut refused).await;
            if let Err(AppError::Refused(why)) = &scanned {
                if !folder_refused {
                    tracing::error!(error = %why, "devlogs are not posted");
                }
                folder_refused = true;
            } else {
                folder_refused = false;
            }
            let pause = match scanned {
                Ok((_, soonest)) => soonest.map_or(RESCAN, |s| s.min(RESCAN)),
                Err(AppError::Refused(_)) => RESCAN,
                Err(e) => {
                    tracing::error!(error = %e, "devlog scan failed; trying again");
                    RESCAN
                }
            };
            let changed = async {
                match watch.as_mut() {
                    Some((_, wakes)) => {
                        wakes.recv().await;
                        crate::watch::settle(wakes, DEBOUNCE).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = changed => {}
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
