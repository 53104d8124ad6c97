// Over 400 lines: every backup action through the core, each audited and announced the same way.

//! Backups through the core, whichever door asks (the CLI, Discord, the
//! schedule): every create, verify, restore, prune and drill leaves an
//! audit row naming who asked, and publishes an event.
//!
//! A [`Backups`] comes with the [`App`](super::App) of a root. On a new
//! machine (restoring from the repository alone) and for an in-place
//! restore (which replaces the store), [`Backups::without_store`] runs the
//! same operations; the in-place restore audits into the restored store.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{AppError, ServiceLock};
use crate::backup::{
    self, BackupError, Catalog, Created, Drill, InPlace, Kind, Progress, PruneReport,
    RestoreReport, Scope, Summary, VerifyReport, Which,
};
use crate::config::Config;
use crate::events::{Event, EventBus};
use crate::model::AuditOutcome;
use crate::store::Store;

/// Which backup a restore takes.
#[derive(Debug, Clone)]
pub enum Pick {
    /// An id, a unique prefix of one, or `latest`.
    Id(String),
    /// The newest backup taken at or before this time.
    At(jiff::Timestamp),
}

/// Every backup, as `acp backup list` and `/backup list` show it.
#[derive(Debug)]
pub struct Listing {
    pub catalog: Catalog,
    pub repository: PathBuf,
    pub repository_bytes: u64,
}

/// A progress reporter that can cross into a blocking task.
pub type Reporter = Arc<dyn Progress + Send>;

/// Backups for one root; cheap to clone.
#[derive(Clone)]
pub struct Backups {
    scope: Arc<Scope>,
    events: EventBus,
    /// Where audit rows go; `None` without a root.
    store: Option<Arc<Store>>,
    /// Each manifest's summary by file name (the name holds the file's
    /// hash, so an entry never goes stale), `None` for a damaged one: the
    /// schedule and `/status` read each manifest once, never whole.
    summaries: Arc<Mutex<BTreeMap<String, Option<Summary>>>>,
    /// This machine's name in a swarm, which a child process is told
    /// (`acp run --node` is a flag, not in the environment it inherits).
    node: Option<String>,
}

impl Backups {
    pub(super) fn new(config: &Config, events: EventBus, store: Arc<Store>) -> Self {
        Self {
            scope: Arc::new(scope(config)),
            events,
            store: Some(store),
            summaries: Arc::default(),
            node: config.cluster.as_ref().map(|c| c.node.to_string()),
        }
    }

    /// Backups with no store open: for a machine that has only the
    /// repository, and for an in-place restore. Nothing is audited except
    /// the in-place restore, into the store it puts back.
    #[must_use]
    pub fn without_store(config: &Config) -> Self {
        Self {
            scope: Arc::new(scope(config)),
            events: EventBus::default(),
            store: None,
            summaries: Arc::default(),
            node: config.cluster.as_ref().map(|c| c.node.to_string()),
        }
    }

    /// Where the repository is.
    #[must_use]
    pub fn repository(&self) -> &std::path::Path {
        &self.scope.settings.repository
    }

    /// Takes a backup now; `by` is who asked (`schedule` for the schedule).
    ///
    /// # Errors
    /// [`AppError::Backup`].
    pub async fn create(
        &self,
        kind: Kind,
        by: &str,
        progress: Reporter,
    ) -> Result<Created, AppError> {
        let scope = Arc::clone(&self.scope);
        let result = run(move || backup::create(&scope, kind, &*progress)).await;
        self.events.publish(match &result {
            Ok(c) => Event::BackupTaken {
                id: c.manifest.id.clone(),
                kind: c.manifest.kind.to_string(),
                files: c.manifest.stats.total_files,
                bytes: c.manifest.stats.total_bytes,
                duration_ms: c.manifest.stats.duration_ms,
            },
            Err(e) => Event::BackupFailed {
                kind: kind.to_string(),
                error: e.to_string(),
            },
        });
        if let (Ok(c), Some(store)) = (&result, &self.store) {
            // So no door ever reads this manifest whole for its summary.
            let (store, file) = (Arc::clone(store), c.file.clone());
            let summary = serde_json::to_string(&Summary::from(&c.manifest)).unwrap_or_default();
            let recorded =
                tokio::task::spawn_blocking(move || store.record_backup_summary(&file, &summary))
                    .await;
            if !matches!(recorded, Ok(Ok(()))) {
                tracing::warn!("cannot record the backup's summary; it is read from its manifest");
            }
        }
        let id = result.as_ref().ok().map(|c| c.manifest.id.clone());
        self.audit(by, "backup.create", id, &result, None).await;
        result
    }

    /// Every backup and the damaged manifests. Reading is audited only
    /// when `by` is given (a person asking from outside the machine).
    ///
    /// # Errors
    /// [`AppError::Backup`].
    pub async fn list(&self, by: Option<&str>) -> Result<Listing, AppError> {
        let scope = Arc::clone(&self.scope);
        let result = run(move || {
            let repo = backup::Repo::open(&scope.settings)?;
            Ok(Listing {
                catalog: Catalog::read(&repo)?,
                repository: repo.path().to_owned(),
                repository_bytes: repo.size(),
            })
        })
        .await;
        if let Some(by) = by {
            self.audit(by, "backup.list", None, &result, None).await;
        }
        result
    }

    /// Re-reads and re-hashes one backup or all.
    ///
    /// # Errors
    /// [`AppError::Backup`].
    pub async fn verify(
        &self,
        which: Which,
        by: &str,
        progress: Reporter,
    ) -> Result<VerifyReport, AppError> {
        let scope = Arc::clone(&self.scope);
        let target = match &which {
            Which::All => None,
            Which::One(id) => Some(id.clone()),
        };
        let result =
            run(move || backup::verify(&backup::Repo::open(&scope.settings)?, &which, &*progress))
                .await;
        self.audit(by, "backup.verify", target, &result, None).await;
        result
    }

    /// Restores a backup into a new or empty directory (never over the
    /// live state: see [`Backups::restore_in_place`]).
    ///
    /// # Errors
    /// [`AppError::Backup`].
    pub async fn restore_to(
        &self,
        pick: Pick,
        dest: PathBuf,
        partial: bool,
        by: &str,
        progress: Reporter,
    ) -> Result<RestoreReport, AppError> {
        let scope = Arc::clone(&self.scope);
        let result = run(move || {
            let repo = backup::Repo::open(&scope.settings)?;
            let catalog = Catalog::read(&repo)?;
            let id = choose(&catalog, &pick)?;
            backup::restore_to(&repo, &catalog, &id, &dest, partial, &*progress)
        })
        .await;
        let id = result.as_ref().ok().map(|r| r.id.clone());
        self.audit(by, "backup.restore", id, &result, None).await;
        result
    }

    /// Restores a backup over the live state, keeping the replaced state.
    /// Refused while `acp run` runs for the root; the service lock is held
    /// through the swap so none can start meanwhile. The audit row goes
    /// into the restored store.
    ///
    /// # Errors
    /// [`AppError::ServiceRunning`] or [`AppError::Backup`].
    pub async fn restore_in_place(
        &self,
        pick: Pick,
        by: &str,
        progress: Reporter,
    ) -> Result<InPlace, AppError> {
        let scope = Arc::clone(&self.scope);
        let result = tokio::task::spawn_blocking(move || {
            let _service = ServiceLock::acquire(&scope.root).map_err(|e| match e {
                AppError::ServiceRunning { pid } => AppError::InPlaceWhileRunning { pid },
                other => other,
            })?;
            let done = (|| {
                let repo = backup::Repo::open(&scope.settings)?;
                let catalog = Catalog::read(&repo)?;
                let id = choose(&catalog, &pick)?;
                backup::restore_in_place(&scope, &repo, &catalog, &id, &*progress)
            })()?;
            Ok::<_, AppError>((done, Store::open(&scope.store)))
        })
        .await
        .map_err(|_| AppError::BackupTask)?;
        let (done, store) = result?;
        match store {
            Ok(store) => {
                let written = store.audit(
                    by,
                    "backup.restore",
                    Some(&done.restore.id),
                    AuditOutcome::Ok,
                    Some("in place"),
                );
                if let Err(e) = written {
                    tracing::warn!(error = %e, "cannot audit the in-place restore");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot open the restored store to audit"),
        }
        Ok(done)
    }

    /// Applies the retention policy, then deletes unused data.
    ///
    /// # Errors
    /// [`AppError::Backup`].
    pub async fn prune(&self, dry_run: bool, by: &str) -> Result<PruneReport, AppError> {
        let scope = Arc::clone(&self.scope);
        let result = run(move || {
            backup::prune(
                &backup::Repo::open(&scope.settings)?,
                &scope.settings,
                dry_run,
            )
        })
        .await;
        let detail = dry_run.then_some("dry run");
        self.audit(by, "backup.prune", None, &result, detail).await;
        result
    }

    /// A disaster-recovery drill on the latest backup.
    ///
    /// # Errors
    /// [`AppError::Backup`].
    pub async fn drill(&self, by: &str, progress: Reporter) -> Result<Drill, AppError> {
        let scope = Arc::clone(&self.scope);
        let result = run(move || backup::drill(&scope, &*progress)).await;
        let id = result.as_ref().ok().map(|d| d.backup.clone());
        self.audit(by, "backup.drill", id, &result, None).await;
        result
    }

    /// The kind of backup the schedule (`[backup]`, judged from the
    /// repository, so restarts do not reset the clock) says is due now.
    ///
    /// # Errors
    /// [`AppError::Backup`] if the repository cannot be created or read.
    pub async fn due(&self) -> Result<Option<Kind>, AppError> {
        let scope = Arc::clone(&self.scope);
        let cache = Arc::clone(&self.summaries);
        let store = self.store.clone();
        run(move || {
            let repo = backup::Repo::open_or_create(&scope.settings)?;
            let summaries = summaries(&repo, &cache, store.as_deref())?;
            Ok(backup::due(
                &summaries,
                &scope.settings,
                jiff::Timestamp::now(),
            ))
        })
        .await
    }

    /// One look at the schedule: takes the backup that is due, if any,
    /// then prunes. Returns what was taken. `acp run` runs this in a
    /// process of its own ([`Backups::tick_in_child`]).
    ///
    /// # Errors
    /// [`AppError::Backup`].
    pub async fn tick(&self) -> Result<Option<(Created, Option<PruneReport>)>, AppError> {
        let Some(kind) = self.due().await? else {
            return Ok(None);
        };
        let created = self.create(kind, SCHEDULE, Arc::new(backup::Quiet)).await?;
        let pruned = match self.prune(false, SCHEDULE).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "cannot prune backups");
                None
            }
        };
        Ok(Some((created, pruned)))
    }

    /// When a backup is due, takes it (and prunes) in a child process,
    /// `acp backup scheduled`: a backup holds every path of the state in
    /// memory, and a process of its own gives all of it back to the
    /// system when it ends, where the service would keep its heap. The
    /// child audits what it does; this publishes the outcome, and audits
    /// a child that died before it could. Dropping the future (shutdown)
    /// kills the child: a backup cut short is simply not committed.
    ///
    /// # Errors
    /// [`AppError::Backup`] if the repository cannot be read;
    /// [`AppError::ScheduledBackup`] if the child failed.
    pub async fn tick_in_child(&self) -> Result<Option<Scheduled>, AppError> {
        let Some(kind) = self.due().await? else {
            return Ok(None);
        };
        let mut child = tokio::process::Command::new(own_program());
        child
            .arg("--root")
            .arg(&self.scope.root)
            .args(["--json", "backup", "scheduled"])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(node) = &self.node {
            child.env("ACP_NODE", node);
        }
        let output = child.output().await;
        // (what went wrong, whether the child said so itself: then it
        // audited what it did)
        let result = match output {
            Ok(out) if out.status.success() => serde_json::from_slice::<Scheduled>(&out.stdout)
                .map_err(|e| (format!("its report could not be read ({e})"), false)),
            Ok(out) => Err(child_failure(&out)),
            Err(e) => Err((
                format!("cannot start {}: {e}", own_program().display()),
                false,
            )),
        };
        match result {
            Ok(done) => {
                if let Some(m) = &done.taken {
                    self.events.publish(Event::BackupTaken {
                        id: m.id.clone(),
                        kind: m.kind.to_string(),
                        files: m.stats.total_files,
                        bytes: m.stats.total_bytes,
                        duration_ms: m.stats.duration_ms,
                    });
                }
                Ok(Some(done))
            }
            Err((error, said)) => {
                self.events.publish(Event::BackupFailed {
                    kind: kind.to_string(),
                    error: error.clone(),
                });
                let failed: Result<(), AppError> = Err(AppError::ScheduledBackup(error));
                if !said {
                    self.audit(SCHEDULE, "backup.create", None, &failed, None)
                        .await;
                }
                failed.map(|()| None)
            }
        }
    }

    /// The newest intact backup, if the repository exists and has one.
    ///
    /// # Errors
    /// [`AppError::Backup`] if the repository cannot be read.
    pub async fn last(&self) -> Result<Option<Summary>, AppError> {
        let scope = Arc::clone(&self.scope);
        let cache = Arc::clone(&self.summaries);
        let store = self.store.clone();
        run(move || {
            if !scope.settings.repository.join("acp-backup.json").exists() {
                return Ok(None);
            }
            let repo = backup::Repo::open(&scope.settings)?;
            Ok(summaries(&repo, &cache, store.as_deref())?.pop())
        })
        .await
    }

    /// A new encryption key for `ACP_BACKUP_KEY`: (secret, public), and
    /// what to know before using it here: a repository that already holds
    /// plain backups cannot take encrypted ones.
    #[must_use]
    pub fn keygen(&self) -> (String, String, Option<String>) {
        let (secret, public) = backup::Cipher::generate();
        let repo = &self.scope.settings.repository;
        let advice = (backup::repo::is_encrypted(repo) == Some(false)).then(|| {
            format!(
                "the repository at {} already holds plain (unencrypted) backups, and acp refuses \
                 to mix the two: with this key in .env every backup command there would fail. To \
                 encrypt from now on, also set backup.repository (or ACP_BACKUP_REPOSITORY) to a \
                 new directory: new backups go there encrypted, and the plain ones stay readable \
                 where they are, without the key. Or keep backups plain and do not set the key.",
                repo.display()
            )
        });
        (secret, public, advice)
    }

    async fn audit<T>(
        &self,
        by: &str,
        action: &'static str,
        target: Option<String>,
        result: &Result<T, AppError>,
        note: Option<&str>,
    ) {
        let Some(store) = &self.store else {
            return;
        };
        let (outcome, detail) = match result {
            Ok(_) => (AuditOutcome::Ok, note.map(str::to_owned)),
            Err(e) => (AuditOutcome::Error, Some(e.to_string())),
        };
        let (store, by) = (Arc::clone(store), by.to_owned());
        let written = tokio::task::spawn_blocking(move || {
            store.audit(&by, action, target.as_deref(), outcome, detail.as_deref())
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::warn!(action, "cannot write the audit row");
        }
    }
}

/// What backups of this config's root cover: what the backup engine gets
/// instead of the whole config.
#[must_use]
pub fn scope(config: &Config) -> Scope {
    Scope {
        root: config.root.clone(),
        store: config.db_path(),
        inboxes: config
            .agents
            .all()
            .iter()
            .map(|a| (a.id.to_string(), a.inbox_dir()))
            .collect(),
        settings: config.backup.clone(),
    }
}

/// What `acp backup scheduled` did, as it reports it on stdout.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Scheduled {
    /// The backup taken; `None` when none was due after all.
    pub taken: Option<Summary>,
    /// Backups the retention policy removed after it, and the bytes freed.
    pub pruned: usize,
    pub freed: u64,
}

impl Scheduled {
    /// The report of [`Backups::tick`].
    #[must_use]
    pub fn of(ticked: Option<&(Created, Option<PruneReport>)>) -> Self {
        let pruned = ticked.and_then(|(_, p)| p.as_ref());
        Self {
            taken: ticked.map(|(c, _)| Summary::from(&c.manifest)),
            pruned: pruned.map_or(0, |p| p.removed.len()),
            freed: pruned.map_or(0, |p| p.bytes_freed),
        }
    }
}

/// The summaries of the repository's intact manifests, oldest first:
/// from `cache`, else as the process that took the backup recorded it in
/// the store, else read from the manifest (and recorded).
fn summaries(
    repo: &backup::Repo,
    cache: &Mutex<BTreeMap<String, Option<Summary>>>,
    store: Option<&Store>,
) -> Result<Vec<Summary>, BackupError> {
    let names = repo.manifest_names()?;
    let mut known: BTreeMap<String, Option<Summary>> =
        cache.lock().map(|c| c.clone()).unwrap_or_default();
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !known.contains_key(*n))
        .map(String::as_str)
        .collect();
    if let (Some(store), false) = (store, unknown.is_empty()) {
        for (file, json) in store.backup_summaries(&unknown).unwrap_or_default() {
            if let Ok(summary) = serde_json::from_str::<Summary>(&json) {
                known.insert(file, Some(summary));
            }
        }
        // Backups pruned since: their summaries go.
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        let _ = store.forget_backup_summaries(&all);
    }
    let now: BTreeMap<String, Option<Summary>> = names
        .into_iter()
        .map(|name| {
            let summary = known.get(&name).cloned().unwrap_or_else(|| {
                let read = repo.summary(&name).ok();
                if let (Some(store), Some(s)) = (store, &read) {
                    let json = serde_json::to_string(s).unwrap_or_default();
                    let _ = store.record_backup_summary(&name, &json);
                }
                read
            });
            (name, summary)
        })
        .collect();
    let intact = now.values().flatten().cloned().collect();
    if let Ok(mut cached) = cache.lock() {
        *cached = now;
    }
    Ok(intact)
}

/// This program, to run a part of itself as a child: on Linux the running
/// binary itself, even after an upgrade replaced the file.
fn own_program() -> PathBuf {
    if cfg!(target_os = "linux") {
        PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe().unwrap_or_else(|_| PathBuf::from("acp"))
    }
}

/// Why a child backup failed, and whether it said so itself: its own
/// error (on stdout with `--json`), else how it ended and the end of what
/// it wrote to stderr.
fn child_failure(out: &std::process::Output) -> (String, bool) {
    use std::os::unix::process::ExitStatusExt;
    if let Some(e) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
    {
        return (e, true);
    }
    let ended = match out.status.signal() {
        Some(sig) => format!("the backup process was killed by signal {sig}"),
        None => format!("the backup process ended with {}", out.status),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => (format!("{ended}: {}", line.trim()), false),
        None => (ended, false),
    }
}

/// Who the schedule's backups are audited as.
const SCHEDULE: &str = "schedule";

/// The backup a pick names.
fn choose(catalog: &Catalog, pick: &Pick) -> Result<String, BackupError> {
    Ok(match pick {
        Pick::Id(key) => catalog.find(key)?.id.clone(),
        Pick::At(at) => catalog.at(*at)?.id.clone(),
    })
}

/// Runs backup work on a blocking thread.
async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, AppError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => Ok(result?),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(AppError::BackupTask),
    }
}
