//! The application core, the only API the front doors use (the CLI, the
//! Discord bot, the service). It checks requests, stores them durably
//! (group commit), wakes the dispatcher, follows outcomes, keeps roles and
//! the audit log, and runs backups, each audited and announced as an event
//! whichever door asked.
//!
//! - [`messages`]: send, read, follow, acknowledge, status.
//! - [`retry`]: failed deliveries queued again by a person, once.
//! - [`ids`]: message and prompt ids given whole or by a unique prefix.
//! - [`visibility`]: what one agent may read: its own messages and status.
//! - [`outbox`]: answers, posts to Discord, receipts owed to commands.
//! - [`people`]: what the person at a shell may sign, people's inboxes,
//!   and the activity feed `acp watch` follows.
//! - [`devlogs`]: devlog files posted once per content version.
//! - [`observe`]: recent activity and the Discord link, for the status
//!   page and the metrics.
//! - [`attention`]: agents' states, prompts and their decisions;
//!   [`waiting`]: who waits for a person, and a waiting prompt's one
//!   reminder.
//! - [`roles`]: agents, roles, the captain, the audit log.
//! - [`cluster`]: several machines: joining the swarm as the hub or a
//!   node, the machines' heartbeats, what waits for a machine away.
//! - [`attention`]: agents' states and prompts, decided once whichever
//!   door decides; [`panes`]: the tmux agents' screens; [`relay`]: on the
//!   hub, the states and prompts of other machines' agents.
//! - [`schedules`]: stored schedules, and the loop `acp run` fires them
//!   with; [`pulse`]: the nudge for agents that went quiet, once per
//!   quiet spell.
//! - [`backups`]: create, list, verify, restore, prune, drill, schedule.
//! - [`doctor`]: the health checks of `acp doctor`.
//! - [`init`]: `acp init`, a new root; [`discover`]: the agents already
//!   running on this machine (tmux panes, windows), and their tables.
//! - [`screen`]: the agents' points and read-only looks at the desktop.
//! - [`error`]: [`AppError`] and its user-or-system decision.
//! - [`service_lock`]: whether `acp run` owns the root; [`reload`]: which
//!   configuration it runs, as it tells everyone else.

mod attention;
mod backups;
mod cluster;
mod devlogs;
mod discover;
pub mod doctor;
mod error;
mod ids;
mod init;
mod messages;
mod observe;
mod outbox;
mod panes;
mod people;
mod pulse;
mod relay;
mod reload;
mod retention;
mod retry;
mod roles;
mod schedules;
mod screen;
mod service_lock;
mod spawn;
mod visibility;
mod waiting;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, oneshot};

use crate::delivery::{Dispatcher, Methods};
use crate::events::EventBus;
use crate::model::{Registry, Via};
use crate::store::{Store, StoreError, Submission};

pub use crate::cluster::Link as ClusterLink;
pub use crate::watch::{Wakes, Watch, settle as settle_changes};
pub use attention::{Ask, Decide, PROMPT_DETAIL_MAX, StateRow};
pub use backups::{Backups, Listing, Pick, Reporter, Scheduled, scope as backup_scope};
pub use cluster::{ClusterError, NodeView};
pub use devlogs::{DEVLOG_MAX_BYTES, DevlogPost};
pub use discover::{Discovery, FoundPane, FoundWindow, Saved, Standing, TmuxServer};
pub use messages::Follow;
pub use observe::{DiscordLink, TmuxProbe};
pub use outbox::{HOOK_REPLAY_WINDOW, HookOutcome, Replier};
pub use people::PersonInbox;
pub use reload::{
    ConfigState, Pickup, RefusedConfig, WATCHED as CONFIG_FILES, config_digest, watch_config,
};
pub use retention::{RetentionReport, StoreStats};
pub use retry::{RETRY_MAX, Requeued, RetryReport, Skipped};
pub use schedules::{FiringView, NewSchedule, ScheduleView};
pub use screen::{Probe, Validation, Window};
// What the front doors read, named through the core so that no door
// reaches into an engine.
pub use crate::backup::{
    BackupCheck, Catalog, Created, Drill, InPlace, Kind as BackupKind, Manifest, Progress,
    PruneReport, Quiet, RestoreReport, Summary, VerifyReport, Which,
};
pub use crate::config::{
    ApiToken, CONFIG_FILE, Config, ConfigError, DEFAULT_SCOPES, DiscordConfig, Env, HookConfig,
    HookRoute, HttpConfig, Origin, Redactor, Scope, Setting,
};
pub use crate::coords::{Finding, Monitor, Point, Severity};
pub use crate::events::Event;
pub use crate::store::activity::RecentDelivery;
pub use crate::store::devlogs::DevlogVersion;
pub use crate::store::discord::{Receipt, ReceiptState};
pub use crate::store::feed::{Activity, FEED_KEEP_MS, FeedEntry};
pub use crate::store::retention::{FileStat, Pruned, TableStat};
pub use crate::store::roles::AuditEntry;
pub use crate::store::views::{AgentStatus, AttemptView, FailureView};
pub use crate::store::{AckResult, DeliveryView, InboxEntry, Status};
pub use error::{AppError, Refused, is_user_error};
pub use init::{InitReport, init, init_with};
pub use service_lock::ServiceLock;
pub use spawn::{SpawnReport, SpawnRequest, StartedError, StopReport};
pub use waiting::{PromptTimes, Waiting};

/// Longest role description accepted.
pub const MAX_ROLE_CHARS: usize = 200;
/// Most messages stored in one group commit.
const GROUP_COMMIT_MAX: usize = 1024;

/// A request to send a message: the message as the front door drafted it,
/// and which methods it may use.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub draft: crate::model::Draft,
    pub via: Via,
}

/// An agent as shown by `acp agents` and `/agents`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub role: String,
    /// `config` or `store` (set with `acp roles set`).
    pub role_source: &'static str,
    pub captain: bool,
    pub workspace: String,
    pub delivery: Vec<String>,
    /// The newest final delivery to it: how it ended, by which method.
    pub last_state: Option<crate::model::DeliveryState>,
    pub last_method: Option<crate::model::MethodName>,
    #[serde(with = "crate::model::time::opt_ms")]
    pub last_delivery_at: Option<i64>,
    pub unacked: u64,
    /// For an agent in tmux: `idle`, `busy`, or why its pane cannot be
    /// used, from the probe tmux delivery uses.
    pub terminal: Option<String>,
    /// The machine it runs on, in a swarm of several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// That machine as the hub last heard of it: "online, last heartbeat
    /// 14:02:05" or "offline since 14:02".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_presence: Option<String>,
    /// With the pulse on for it: how long it has been quiet, and whether
    /// this quiet spell was nudged ("quiet for 42 min (last: a message
    /// from it), nudged at 14:02 CET").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pulse: Option<String>,
}

impl AgentView {
    /// The last delivery in words: "delivered by inbox", "failed".
    #[must_use]
    pub fn last_delivery(&self) -> Option<String> {
        self.last_state.map(|state| match self.last_method {
            Some(m) => format!("{state} by {m}"),
            None => state.to_string(),
        })
    }
}

struct CommitJob {
    submission: Submission,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The core. Cheap to share behind an `Arc`.
pub struct App {
    config: Arc<Config>,
    registry: Arc<Registry>,
    store: Arc<Store>,
    events: EventBus,
    wake: Arc<Notify>,
    commits: mpsc::Sender<CommitJob>,
    started: std::time::Instant,
    backups: Backups,
    /// The store file as opened (device, inode), to notice it replaced.
    store_file: Option<(u64, u64)>,
    /// The started agents the registry holds, as the store named them
    /// (a reload compares it).
    started_agents: String,
    /// The agents' points for keyboard-and-mouse delivery: read at each
    /// delivery, or once by `acp run` as it loads its configuration.
    points: crate::delivery::gui::Points,
    /// The Discord connection, as the bot reports it.
    discord_link: std::sync::Mutex<DiscordLink>,
    /// When this process's dispatcher last went round its loop (ms since
    /// the epoch; 0: not running).
    dispatcher_beat: Arc<std::sync::atomic::AtomicI64>,
}

impl App {
    /// Opens the store under the config's root and starts the group-commit
    /// writer.
    ///
    /// # Errors
    /// [`AppError::Store`] if the store cannot be opened.
    pub fn open(config: Config) -> Result<Self, AppError> {
        let store = Arc::new(Store::open(&config.db_path())?);
        let writer = Store::open(&config.db_path())?;
        let (commits, jobs) = mpsc::channel();
        std::thread::Builder::new()
            .name("acp-commit".into())
            .spawn(move || group_commit(&writer, &jobs))
            .map_err(|e| AppError::Dispatcher(std::io::Error::other(e)))?;
        let store_file = file_identity(&config.db_path());
        let (registry, started_agents) = registry_with_started(&config, &store)?;
        let config = Arc::new(config);
        let events = EventBus::default();
        Ok(Self {
            registry: Arc::new(registry),
            started_agents,
            backups: Backups::new(&config, events.clone(), Arc::clone(&store)),
            points: crate::delivery::gui::Points::file(config.coords_path()),
            config,
            store,
            events,
            wake: Arc::new(Notify::new()),
            commits,
            started: std::time::Instant::now(),
            store_file,
            discord_link: std::sync::Mutex::new(DiscordLink::Connecting),
            dispatcher_beat: Arc::new(std::sync::atomic::AtomicI64::new(0)),
        })
    }

    /// The core as `acp run` uses it: the agents' points read once, now,
    /// so that an edit reaches deliveries only through a reload that
    /// checked it.
    #[must_use]
    pub fn with_points_loaded(mut self) -> Self {
        self.points = crate::delivery::gui::Points::load(&self.config.coords_path());
        self
    }

    /// How long this core has been running.
    #[must_use]
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether the store file is still the one this core opened: deleted
    /// or replaced (a restore by hand, a cleanup), the core would write
    /// into a file nobody reads, or into one SQLite cannot trust.
    ///
    /// # Errors
    /// [`AppError::StoreLost`] saying which.
    pub fn store_is_intact(&self) -> Result<(), AppError> {
        let path = self.config.db_path();
        match (self.store_file, file_identity(&path)) {
            (Some(opened), Some(now)) if opened == now => Ok(()),
            (_, None) => Err(AppError::StoreLost {
                path: path.display().to_string(),
                how: "deleted",
            }),
            _ => Err(AppError::StoreLost {
                path: path.display().to_string(),
                how: "replaced",
            }),
        }
    }

    /// Whether an `acp run` delivers for this root (this process or
    /// another): without one, accepted messages wait in the queue.
    #[must_use]
    pub fn delivering(&self) -> bool {
        ServiceLock::is_held(&self.config.root)
    }

    /// Backups of this root, audited and announced.
    #[must_use]
    pub fn backups(&self) -> &Backups {
        &self.backups
    }

    /// The loaded configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The agent registry.
    #[must_use]
    pub fn agents(&self) -> &Registry {
        &self.registry
    }

    /// The event bus.
    #[must_use]
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The signal that wakes this process's dispatcher.
    #[must_use]
    pub fn wake(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Every delivery method this process has, set up from the config.
    #[must_use]
    pub fn methods(&self) -> Methods {
        Methods::all(
            &self.config.gui,
            self.points.clone(),
            self.config.root.join("data").join("gui.lock"),
            self.config.root.join("data").join("tmux"),
            self.people_dir(),
        )
    }

    /// Delivers until `cancel`, with every method, posting to Discord too
    /// when a token is configured, and reaching other machines' agents
    /// through `cluster` when linked: what `acp run` does.
    /// Temporary files left in the inboxes by interrupted writes are
    /// removed first.
    ///
    /// # Errors
    /// [`AppError::Dispatcher`] if the dispatcher cannot take its lease.
    pub fn start_delivering(
        &self,
        cancel: tokio_util::sync::CancellationToken,
        cluster: Option<&crate::cluster::Link>,
    ) -> Result<impl std::future::Future<Output = ()> + Send + 'static, AppError> {
        let mut swept = 0;
        for agent in self.registry.all() {
            swept += crate::delivery::inbox::sweep_temp_files(
                &agent.inbox_dir(),
                Duration::from_secs(600),
            );
        }
        if swept > 0 {
            tracing::info!(
                swept,
                "removed temporary files left by interrupted inbox writes"
            );
        }
        let mut methods = self.methods();
        if let Some(token) = &self.config.discord.token {
            let http = crate::delivery::discord::http(
                token.expose(),
                self.config.discord.api_base.as_deref(),
            );
            methods.add(Arc::new(crate::delivery::discord::DiscordMethod::new(
                Arc::new(http),
                tokio::runtime::Handle::current(),
                Arc::clone(&self.store),
                Arc::clone(&self.registry),
                &self.config.discord,
                self.outbox_dir(),
            )));
        }
        if let Some(link) = cluster {
            methods.add(Arc::new(crate::cluster::forward::ClusterMethod::new(
                link.clone(),
                tokio::runtime::Handle::current(),
            )));
        }
        let dispatcher = Arc::new(self.dispatcher(methods)?);
        Ok(dispatcher.run(self.wake(), cancel, Arc::clone(&self.dispatcher_beat)))
    }

    /// `data/people/`: people's inboxes, one folder per person.
    #[must_use]
    pub fn people_dir(&self) -> std::path::PathBuf {
        self.config.root.join("data").join("people")
    }

    /// `data/outbox/`: files sent with posts to Discord, one folder per
    /// message.
    #[must_use]
    pub(crate) fn outbox_dir(&self) -> std::path::PathBuf {
        self.config.root.join("data").join("outbox")
    }

    /// A dispatcher for this process, with these delivery methods.
    ///
    /// # Errors
    /// [`AppError::Dispatcher`] if its lease cannot be taken.
    pub fn dispatcher(&self, methods: Methods) -> Result<Dispatcher, AppError> {
        Dispatcher::new(
            Arc::clone(&self.store),
            Arc::clone(&self.registry),
            methods,
            self.config.delivery.clone(),
            self.events.clone(),
            &self.config.root.join("data").join("dispatchers"),
            self.config
                .cluster
                .as_ref()
                .map(|c| (c.node.clone(), c.is_hub())),
        )
        .map_err(AppError::Dispatcher)
    }
}

/// The configured agents and the running agents acp started, and what
/// named the latter. A started agent that no longer fits the config (its
/// profile gone) is left out, said in the log.
fn registry_with_started(config: &Config, store: &Store) -> Result<(Registry, String), AppError> {
    let mut agents = config.agents.all().to_vec();
    for spawned in store.spawned(true)? {
        if agents.iter().any(|a| a.id == spawned.id) {
            tracing::warn!(agent = %spawned.id, "a started agent has the id of a configured one: the configured one is used");
            continue;
        }
        match config.spawned_agent(&spawned) {
            Ok(agent) => agents.push(agent),
            Err(e) => {
                tracing::warn!(agent = %spawned.id, error = %e, "a started agent is left out");
            }
        }
    }
    Ok((Registry::new(agents), store.spawned_fingerprint()?))
}

/// A file's (device, inode), or `None` if it is not there.
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).ok().map(|_| (0, 0))
    }
}

/// Runs store work on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(StoreError::Interrupted),
    }
}

/// The group-commit writer: takes every submission waiting, stores them in
/// one transaction (one fsync), then answers each. If a batch fails, each
/// submission is retried alone so each caller gets its own answer.
fn group_commit(store: &Store, jobs: &mpsc::Receiver<CommitJob>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let all: Vec<&Submission> = batch.iter().map(|j| &j.submission).collect();
        match store.accept(&all) {
            Ok(()) => {
                for job in batch {
                    let _ = job.reply.send(Ok(()));
                }
            }
            Err(e) if batch.len() == 1 => {
                let _ = batch.pop().map(|job| job.reply.send(Err(e)));
            }
            Err(_) => {
                for job in batch {
                    let result = store.accept(&[&job.submission]);
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}
