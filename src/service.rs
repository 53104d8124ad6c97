//! `acp run`: the long-running service, a front door of its own. It holds
//! the service lock and the HTTP socket for its whole life, and runs one
//! generation of tasks at a time on one core: the dispatcher, the Discord
//! bot, the devlog watcher, the reminders of waiting prompts, the pane
//! watcher, the HTTP server, the stored schedules and the backup schedule,
//! started together and stopped by one cancellation.
//!
//! It watches `config/acp.toml`, `config/coordinates.json` and `.env` (and
//! takes SIGHUP): a new configuration is loaded and checked first (a core
//! opened on it), and only then does the running generation stop, finish
//! its deliveries in flight and give way to one on the new core. A
//! configuration that does not load is refused and the running one kept;
//! either way it is said in the log and in `data/service/config.json`,
//! which `acp status`, `acp doctor`, the page and the commands that save
//! the config read. [`unit`] is the systemd unit that runs it.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{App, AppError, Config, ConfigState, ServiceLock, config_digest};

pub mod unit;

/// Loads the configuration again from the files (and the environment as
/// `acp run` started with), for a reload; the error says what is wrong.
pub type Loader = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// Runs the service until `shutdown` resolves, reloading its configuration
/// through `load` when the files change; then stops taking work, finishes
/// the deliveries in flight (unstarted ones go back to the queue) and
/// returns.
///
/// # Errors
/// [`AppError`] if it cannot start (another service holds the root, or the
/// dispatcher cannot take its lease), or when its store file is lost.
pub async fn run(
    app: Arc<App>,
    load: Loader,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let root = app.config().root.clone();
    let _lock = ServiceLock::acquire(&root)?;
    // Bound first: a port in use or an unsafe address stops the start.
    // A node (not the hub) runs neither the bot nor the HTTP server: the
    // hub speaks for all.
    let listener = if app.config().http.enabled && !node_only(app.config()) {
        Some(crate::http::listen(&app.config().http).await?)
    } else {
        None
    };
    let mut reloads = Reloads::watch(&root);
    let mut state = ConfigState::starting(&root, app.held_agents());
    app.record_config_state(&state);
    let mut app = app;
    let mut generation = Generation::start(&app, listener.as_ref()).await?;
    say_started(&app);

    tokio::pin!(shutdown);
    // A ticker, not a sleep in the loop: reloads must not put the check off.
    let mut store_check = tokio::time::interval(STORE_CHECK);
    let lost = loop {
        tokio::select! {
            () = &mut shutdown => break None,
            _ = store_check.tick() => match app.store_is_intact() {
                Ok(()) => {}
                Err(lost) => break Some(lost),
            },
            why = reloads.next() => {
                tracing::debug!(?why, "asked to reload");
                let agents = app.stored_agents().await;
                let Some((next, digest, restart_needed)) = prepare(&app, &load, &mut state, why, &agents) else {
                    continue;
                };
                tracing::info!("reloading the config: finishing the deliveries in flight first");
                generation.stop().await;
                match Generation::start(&next, listener.as_ref()).await {
                    Ok(started) => {
                        generation = started;
                        app = next;
                        loaded(&app, &mut state, digest, restart_needed);
                    }
                    Err(e) => {
                        refuse(&mut state, digest, &e.to_string());
                        generation = Generation::start(&app, listener.as_ref()).await?;
                    }
                }
                app.record_config_state(&state);
            }
        }
    };
    if let Some(lost) = &lost {
        tracing::error!(
            "{lost}: acp run stops taking work now. Restore the store with `acp backup restore \
             latest --in-place`, then start acp run again"
        );
    }
    tracing::info!("shutting down: finishing deliveries in flight");
    generation.stop().await;
    // Requests still in flight on an earlier core's connections, too.
    if let Some(listener) = &listener {
        listener.finish().await;
    }
    match lost {
        None => {
            tracing::info!("stopped cleanly");
            Ok(())
        }
        Some(lost) => Err(lost),
    }
}

fn node_only(config: &Config) -> bool {
    config.cluster.as_ref().is_some_and(|c| !c.is_hub())
}

fn say_started(app: &App) {
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
}

/// A new configuration loaded and checked, with its digest and what of it
/// waits for a restart.
type Prepared = (Arc<App>, String, Vec<String>);

/// Loads the configuration on disk for a reload and opens a core on it;
/// `None` when there is nothing to do or it is refused (said in `state`).
fn prepare(
    app: &App,
    load: &Loader,
    state: &mut ConfigState,
    why: Why,
    agents: &str,
) -> Option<Prepared> {
    let digest = config_digest(&app.config().root);
    if digest == state.running && agents == state.agents {
        if state.refused.take().is_some() {
            tracing::info!("the config is back to the one acp run uses");
            app.record_config_state(state);
        } else if why == Why::Hangup {
            tracing::info!("SIGHUP: the config files have not changed");
        }
        return None;
    }
    if state.refused.as_ref().is_some_and(|r| r.digest == digest) && why != Why::Hangup {
        return None;
    }
    let opened = load().and_then(|mut config| {
        let restart_needed = app.config().keep_what_needs_restart(&mut config);
        let next = App::open(config)
            .map_err(|e| e.to_string())?
            .with_points_loaded();
        match next.points_problem() {
            Some(problem) => Err(problem),
            None => Ok((Arc::new(next), restart_needed)),
        }
    });
    match opened {
        Ok((next, restart_needed)) => Some((next, digest, restart_needed)),
        Err(error) => {
            refuse(state, digest, &error);
            app.record_config_state(state);
            None
        }
    }
}

fn refuse(state: &mut ConfigState, digest: String, error: &str) {
    tracing::error!(
        error,
        "the new config is refused: acp run keeps the one it loaded before; fix the file and it \
         is read again when saved"
    );
    state.refuse(digest, error);
}

fn loaded(app: &App, state: &mut ConfigState, digest: String, restart_needed: Vec<String>) {
    state.loaded(digest, app.held_agents(), restart_needed);
    tracing::info!(agents = app.agents().all().len(), "reloaded the config");
    if !state.restart_needed.is_empty() {
        tracing::warn!(
            "restart needed: acp run keeps running without {} until it is restarted",
            state.restart_needed.join("; ")
        );
    }
}

/// The tasks of one core, stopped together.
struct Generation {
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Generation {
    /// Starts every task of `app`; serves HTTP on `listener`.
    async fn start(
        app: &Arc<App>,
        listener: Option<&crate::http::Listener>,
    ) -> Result<Self, AppError> {
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        // Several machines: joined first, so wrong credentials or a
        // forbidden subject stop the start with a clear error.
        let cluster = app.connect_cluster().await?;
        let http = match listener {
            Some(listener) => Some(crate::http::serve_on(Arc::clone(app), listener.clone()).await?),
            None => None,
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
        start_discord(app, &tasks, &cancel);
        // This machine's tmux agents: their state, dialogs and answers.
        tasks.spawn(Arc::clone(app).watch_panes(cancel.clone()));
        // Stored schedules (`acp schedule`), each firing decided once.
        tasks.spawn(Arc::clone(app).run_schedules(cancel.clone()));
        // Agents quiet for `[pulse] after_minutes`: a nudge per quiet spell.
        if app.config().pulse.after.is_some() {
            tasks.spawn(Arc::clone(app).run_pulse(cancel.clone()));
        }
        // Finished messages older than [store] keep_days (their inbox
        // files with them) and old activity, hourly.
        tasks.spawn(Arc::clone(app).run_retention(cancel.clone()));
        let schedule = &app.config().backup;
        if schedule.full_every.is_some()
            || schedule.differential_every.is_some()
            || schedule.incremental_every.is_some()
        {
            tasks.spawn(backup_schedule(Arc::clone(app), cancel.clone()));
        }
        tasks.close();
        Ok(Self { cancel, tasks })
    }

    /// Stops its tasks and waits for them (deliveries in flight finish).
    async fn stop(self) {
        self.cancel.cancel();
        self.tasks.wait().await;
    }
}

/// The bot, the reminders of waiting prompts and the devlog watcher, on
/// the machine that speaks to Discord.
fn start_discord(app: &Arc<App>, tasks: &TaskTracker, cancel: &CancellationToken) {
    let discord = &app.config().discord;
    if discord.token.is_none() || node_only(app.config()) {
        return;
    }
    // Started once per core, here, not from the Ready event (which fires
    // again on every reconnect).
    let (bot_app, bot_cancel) = (Arc::clone(app), cancel.clone());
    tasks.spawn(async move {
        if let Err(e) = crate::discord::run(bot_app, bot_cancel).await {
            tracing::error!(error = %e, "the Discord bot stopped; messages are still delivered");
        }
    });
    if app.config().attention.mention_after.is_some() {
        tasks.spawn(Arc::clone(app).watch_waiting(cancel.clone()));
    }
    if discord.devlog_channel.is_some()
        || discord.swarm_channel.is_some()
        || discord.devlog_webhook.is_some()
    {
        tasks.spawn(Arc::clone(app).watch_devlogs(cancel.clone()));
    } else {
        tracing::info!(
            "devlogs are not posted: set discord.devlog_channel or discord.swarm_channel in \
             config/acp.toml"
        );
    }
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// One of the files changed.
    Changed,
    /// SIGHUP (`systemctl reload`).
    Hangup,
}

/// How long file changes are gathered into one reload (an editor's save
/// is several).
const SETTLE: Duration = Duration::from_millis(200);

/// The prompts to reload: changes to the files and SIGHUP.
struct Reloads {
    changed: Option<(crate::app::Watch, crate::app::Wakes)>,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Reloads {
    /// Watches `config/` and the root itself (for `.env`), not their
    /// subfolders; without a watcher, SIGHUP still works.
    fn watch(root: &Path) -> Self {
        let changed = match crate::app::watch_config(root) {
            Ok(watch) => Some(watch),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the config files: reload with SIGHUP");
                None
            }
        };
        Self {
            changed,
            #[cfg(unix)]
            hangup: match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(signal) => Some(signal),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP");
                    None
                }
            },
        }
    }

    /// The next prompt, a burst of changes gathered into one; pending for
    /// ever when there is no source.
    async fn next(&mut self) -> Why {
        let changed = async {
            match self.changed.as_mut() {
                Some((_, wakes)) => {
                    let woke = wakes.recv().await;
                    crate::app::settle_changes(wakes, SETTLE).await;
                    woke
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(unix)]
        let hangup = async {
            match self.hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<Option<()>>();
        tokio::select! {
            Some(()) = changed => Why::Changed,
            Some(()) = hangup => Why::Hangup,
            else => std::future::pending().await,
        }
    }
}

/// How often the service checks that its store file is still the one it
/// opened.
const STORE_CHECK: Duration = Duration::from_secs(1);

/// How often the schedule looks whether a backup is due.
const SCHEDULE_TICK: Duration = Duration::from_secs(30);

/// Takes the backups `[backup]` schedules (judged from the repository, so
/// restarts do not reset the clock) and prunes after each, each in a
/// child process (see [`crate::app::Backups::tick_in_child`]). A backup
/// cut short by shutdown is simply not committed.
async fn backup_schedule(app: Arc<App>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            result = app.backups().tick_in_child() => match result {
                Ok(Some(done)) => {
                    if let Some(m) = &done.taken {
                        tracing::info!(id = %m.id, kind = %m.kind, files = m.stats.total_files, changed = m.stats.changed_files, ms = m.stats.duration_ms, "scheduled backup taken");
                    }
                    if done.pruned > 0 {
                        tracing::info!(removed = done.pruned, freed = done.freed, "pruned old backups");
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
