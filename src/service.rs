//! `acp run`: the long-running service, a front door of its own. It holds
//! the service lock and runs the dispatcher, the Discord bot, the devlog
//! watcher, the reminders of waiting prompts, the HTTP server and the
//! backup schedule as tasks started here, once, and stopped by one
//! cancellation.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{App, AppError, ServiceLock};

/// Runs the service until `shutdown` resolves, then stops taking work,
/// finishes the deliveries in flight (unstarted ones go back to the queue)
/// and returns.
///
/// # Errors
/// [`AppError`] if it cannot start (another service holds the root, or the
/// dispatcher cannot take its lease).
pub async fn run(app: Arc<App>, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
    let _lock = ServiceLock::acquire(&app.config().root)?;
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    // Several machines: joined first, so wrong credentials or a forbidden
    // subject stop the start with a clear error. A node (not the hub)
    // runs neither the bot nor the HTTP server: the hub speaks for all.
    let cluster = app.connect_cluster().await?;
    let node_only = app.config().cluster.as_ref().is_some_and(|c| !c.is_hub());
    // Bound first: a port in use or an unsafe address stops the start.
    let http = if app.config().http.enabled && !node_only {
        Some(crate::http::bind(Arc::clone(&app)).await?)
    } else {
        None
    };
    tasks.spawn(app.start_delivering(cancel.clone(), cluster.as_ref())?);
    if let Some(link) = cluster {
        tasks.spawn(app.run_cluster(link, cancel.clone()));
    }
    if let Some(server) = http {
        match server.addr() {
            Ok(addr) => tracing::info!(
                "status page, API (/api/v1/) and metrics (/metrics) at http://{addr}/"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot read the HTTP address"),
        }
        tasks.spawn(server.run(cancel.clone()));
    }
    if app.config().discord.token.is_some() && !node_only {
        // Started once, here, not from the Ready event (which fires again
        // on every reconnect).
        let (bot_app, bot_cancel) = (Arc::clone(&app), cancel.clone());
        tasks.spawn(async move {
            if let Err(e) = crate::discord::run(bot_app, bot_cancel).await {
                tracing::error!(error = %e, "the Discord bot stopped; messages are still delivered");
            }
        });
    }
    if app.config().discord.token.is_some()
        && !node_only
        && app.config().attention.mention_after.is_some()
    {
        tasks.spawn(Arc::clone(&app).watch_waiting(cancel.clone()));
    }
    let discord = &app.config().discord;
    tasks.spawn(Arc::clone(&app).prune_activity(cancel.clone()));
    // This machine's tmux agents: their state, dialogs and answers.
    tasks.spawn(Arc::clone(&app).watch_panes(cancel.clone()));
    if discord.token.is_some()
        && !node_only
        && (discord.devlog_channel.is_some()
            || discord.swarm_channel.is_some()
            || discord.devlog_webhook.is_some())
    {
        tasks.spawn(Arc::clone(&app).watch_devlogs(cancel.clone()));
    } else if discord.token.is_some() && !node_only {
        tracing::info!(
            "devlogs are not posted: set discord.devlog_channel or discord.swarm_channel in \
             config/acp.toml"
        );
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
    if let Some(c) = app.config().cluster.as_ref().filter(|c| !c.is_hub()) {
        tracing::info!(node = %c.node, hub = %c.hub, "a node of the swarm: the hub runs the Discord bot and the HTTP server");
    } else if app.config().discord.token.is_none() {
        tracing::info!("no DISCORD_TOKEN configured: running without the Discord bot");
    }

    let lost = tokio::select! {
        () = shutdown => None,
        lost = watch_store(&app) => Some(lost),
    };
    if let Some(lost) = &lost {
        tracing::error!(
            "{lost}: acp run stops taking work now. Restore the store with `acp backup restore \
             latest --in-place`, then start acp run again"
        );
    }
    tracing::info!("shutting down: finishing deliveries in flight");
    cancel.cancel();
    tasks.wait().await;
    match lost {
        None => {
            tracing::info!("stopped cleanly");
            Ok(())
        }
        Some(lost) => Err(lost),
    }
}

/// How often the service checks that its store file is still the one it
/// opened.
const STORE_CHECK: Duration = Duration::from_secs(1);

/// Resolves when the store file is deleted or replaced under the service.
async fn watch_store(app: &App) -> AppError {
    loop {
        tokio::time::sleep(STORE_CHECK).await;
        if let Err(lost) = app.store_is_intact() {
            return lost;
        }
    }
}

/// How often the schedule looks whether a backup is due.
const SCHEDULE_TICK: Duration = Duration::from_secs(30);

/// Takes the backups `[backup]` schedules (judged from the repository, so
/// restarts do not reset the clock) and prunes after each. A backup cut
/// short by shutdown is simply not committed.
async fn backup_schedule(app: Arc<App>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            result = app.backups().tick() => match result {
                Ok(Some((created, pruned))) => {
                    let m = &created.manifest;
                    tracing::info!(id = %m.id, kind = %m.kind, files = m.stats.total_files, changed = m.stats.changed_files, ms = m.stats.duration_ms, "scheduled backup taken");
                    if let Some(p) = pruned.filter(|p| !p.removed.is_empty()) {
                        tracing::info!(removed = p.removed.len(), freed = p.bytes_freed, "pruned old backups");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "scheduled backup failed; retrying at the next check"),
            },
            () = cancel.cancelled() => return,
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(SCHEDULE_TICK) => {}
        }
    }
}
