//! `acp run`: the long-running service. Today it runs the dispatcher; the
//! Discord bot, devlog poster and backup schedule join it as tasks started
//! here, once, and stopped by the same cancellation.

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{App, AppError};
use crate::delivery::{Methods, inbox};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(
        "acp run is already running for this root (pid {pid}): stop it first, or use another --root"
    )]
    AlreadyRunning { pid: String },
    #[error("cannot use the service lock {path}: {source}")]
    Lock {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    App(#[from] AppError),
}

/// The lock that says "a service runs for this root" (`data/service.lock`,
/// holding its pid). Held for the life of `acp run`.
#[derive(Debug)]
pub struct ServiceLock {
    _file: File,
}

fn lock_path(root: &Path) -> PathBuf {
    root.join("data").join("service.lock")
}

impl ServiceLock {
    /// Takes the lock, or says who holds it.
    ///
    /// # Errors
    /// [`ServiceError::AlreadyRunning`] or an I/O error.
    pub fn acquire(root: &Path) -> Result<Self, ServiceError> {
        let path = lock_path(root);
        let lock_err = |source| ServiceError::Lock {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(lock_err)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(lock_err)?;
        // A CLI checking `is_held` holds a shared lock for an instant.
        let mut tries = 0;
        while file.try_lock().is_err() {
            tries += 1;
            if tries < 20 {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(ServiceError::AlreadyRunning {
                pid: pid.trim().to_owned(),
            });
        }
        file.set_len(0).map_err(lock_err)?;
        file.rewind().map_err(lock_err)?;
        write!(file, "{}", std::process::id()).map_err(lock_err)?;
        Ok(Self { _file: file })
    }

    /// Whether a service currently runs for this root.
    #[must_use]
    pub fn is_held(root: &Path) -> bool {
        match File::open(lock_path(root)) {
            Ok(file) => file.try_lock_shared().is_err(),
            Err(_) => false,
        }
    }
}

/// Runs the service until `shutdown` resolves, then stops taking work,
/// finishes the deliveries in flight (unstarted ones go back to the queue)
/// and returns.
///
/// # Errors
/// [`ServiceError`] if it cannot start.
pub async fn run(
    app: Arc<App>,
    methods: Methods,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServiceError> {
    let _lock = ServiceLock::acquire(&app.config().root)?;
    let mut swept = 0;
    for agent in app.agents().all() {
        swept += inbox::sweep_temp_files(&agent.inbox_dir(), Duration::from_secs(600));
    }
    if swept > 0 {
        tracing::info!(
            swept,
            "removed temporary files left by interrupted inbox writes"
        );
    }
    let dispatcher = Arc::new(app.dispatcher(methods)?);
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(Arc::clone(&dispatcher).run(app.wake(), cancel.clone()));
    if app.config().discord.token.is_some() {
        // Started once, here, not from the Ready event (which fires again
        // on every reconnect).
        let (bot_app, bot_cancel) = (Arc::clone(&app), cancel.clone());
        tasks.spawn(async move {
            if let Err(e) = crate::discord::run(bot_app, bot_cancel).await {
                tracing::error!(error = %e, "the Discord bot stopped; messages are still delivered");
            }
        });
    }
    let schedule = &app.config().backup;
    if schedule.full_every.is_some()
        || schedule.differential_every.is_some()
        || schedule.incremental_every.is_some()
    {
        tasks.spawn(backup_schedule(Arc::clone(&app), cancel.clone()));
    }
    tasks.close();

    tracing::info!(
        root = %app.config().root.display(),
        agents = app.agents().all().len(),
        "acp run: dispatching messages"
    );
    if app.config().discord.token.is_none() {
        tracing::info!("no DISCORD_TOKEN configured: running without the Discord bot");
    }

    shutdown.await;
    tracing::info!("shutting down: finishing deliveries in flight");
    cancel.cancel();
    tasks.wait().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// How often the schedule looks whether a backup is due.
const SCHEDULE_TICK: Duration = Duration::from_secs(30);

/// Takes the backups `[backup]` schedules (judged from the repository, so
/// restarts do not reset the clock) and prunes after each. A backup cut
/// short by shutdown is simply not committed.
async fn backup_schedule(app: Arc<App>, cancel: CancellationToken) {
    loop {
        let config = Arc::clone(&app);
        let due = tokio::task::spawn_blocking(move || {
            let config = config.config();
            let repo = crate::backup::Repo::open_or_create(&config.backup)?;
            let catalog = crate::backup::Catalog::read(&repo)?;
            Ok::<_, crate::backup::BackupError>(crate::backup::due(
                &catalog,
                &config.backup,
                jiff::Timestamp::now(),
            ))
        })
        .await;
        match due {
            Ok(Ok(Some(kind))) => {
                let job = app.backup_create(kind, None, Arc::new(crate::backup::Quiet));
                tokio::select! {
                    result = job => match result {
                        Ok(created) => {
                            let m = &created.manifest;
                            tracing::info!(id = %m.id, kind = %m.kind, files = m.stats.total_files, changed = m.stats.changed_files, ms = m.stats.duration_ms, "scheduled backup taken");
                            let app = Arc::clone(&app);
                            let pruned = tokio::task::spawn_blocking(move || {
                                let config = app.config();
                                crate::backup::prune(&crate::backup::Repo::open(&config.backup)?, &config.backup, false)
                            }).await;
                            match pruned {
                                Ok(Ok(p)) if !p.removed.is_empty() => tracing::info!(removed = p.removed.len(), freed = p.bytes_freed, "pruned old backups"),
                                Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune backups"),
                                _ => {}
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "scheduled backup failed; retrying at the next check"),
                    },
                    () = cancel.cancelled() => return,
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the backup repository"),
            Err(e) => tracing::warn!(error = %e, "the backup schedule check stopped"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(SCHEDULE_TICK) => {}
        }
    }
}
