//! The application core every front door calls: the CLI today, the Discord
//! bot and the status page later. It checks requests, stores them durably
//! (group commit), wakes the dispatcher and answers questions about state.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, oneshot};

use crate::agents::{AgentError, AgentId, Registry};
use crate::backup::{self, BackupError, Progress};
use crate::config::Config;
use crate::delivery::{Dispatcher, Methods, Via};
use crate::events::{Event, EventBus};
use crate::message::{Draft, Kind, MessageError, MessageId, Priority, Recipient, UnifiedMessage};
use crate::store::roles::{AuditEntry, RoleAssignment};
use crate::store::{
    AckResult, DeliveryView, InboxEntry, Status, Store, StoreError, Submission, now_ms,
};

/// Longest role description accepted.
pub const MAX_ROLE_CHARS: usize = 200;
/// Most messages stored in one group commit.
const GROUP_COMMIT_MAX: usize = 1024;

/// Why a request to the core failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no message with id {0}: list message ids with `acp inbox list --agent AGENT`")]
    NotFound(MessageId),
    #[error("there are no agents to broadcast to: add [[agents]] to config/acp.toml")]
    NoAgents,
    #[error(
        "message {id} went to several agents ({agents}): say which one acknowledges it with --agent"
    )]
    AckNeedsAgent { id: MessageId, agents: String },
    #[error("message {id} was not sent to {agent}")]
    NotRecipient { id: MessageId, agent: AgentId },
    #[error(
        "message {id} is {state} for {agent}, not delivered yet: it can be acknowledged once delivered"
    )]
    NotDelivered {
        id: MessageId,
        agent: AgentId,
        state: String,
    },
    #[error("a role is 1 to 200 printable characters")]
    BadRole,
    #[error("the store writer has stopped (see the log above); the message was not accepted")]
    WriterGone,
    #[error("cannot start the dispatcher: {0}")]
    Dispatcher(#[source] std::io::Error),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error("the backup task stopped unexpectedly")]
    BackupTask,
}

impl AppError {
    /// Whether the caller's input was at fault (exit code 2, an ephemeral
    /// "fix this" reply) rather than the system.
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::Backup(e) => e.is_user_error(),
            Self::Store(_) | Self::WriterGone | Self::Dispatcher(_) | Self::BackupTask => false,
            _ => true,
        }
    }
}

/// A request to send a message; the front door fills it in.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub from: String,
    pub to: Recipient,
    pub kind: Kind,
    pub priority: Priority,
    pub body: String,
    pub tags: Vec<String>,
    pub reply_to: Option<MessageId>,
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
    pub last_delivery: Option<String>,
    pub last_delivery_at: Option<i64>,
    pub unacked: u64,
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
    /// The newest manifest's file name and summary, for `/status`.
    last_backup: Arc<std::sync::Mutex<Option<(String, backup::Summary)>>>,
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
        Ok(Self {
            registry: Arc::new(config.agents.clone()),
            config: Arc::new(config),
            store,
            events: EventBus::default(),
            wake: Arc::new(Notify::new()),
            commits,
            started: std::time::Instant::now(),
            last_backup: Arc::default(),
        })
    }

    /// How long this core has been running.
    #[must_use]
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The newest backup, if the repository exists and has one.
    ///
    /// # Errors
    /// [`AppError::Backup`] if the repository cannot be read.
    pub async fn last_backup(&self) -> Result<Option<backup::Summary>, AppError> {
        let config = Arc::clone(&self.config);
        let cache = Arc::clone(&self.last_backup);
        self.run_backup(move || {
            if !config.backup.repository.join("acp-backup.json").exists() {
                return Ok(None);
            }
            let repo = backup::Repo::open(&config.backup)?;
            let Some(newest) = repo.newest_name()? else {
                return Ok(None);
            };
            // A full manifest can list many thousand files: read it once.
            if let Ok(cached) = cache.lock()
                && let Some((name, summary)) = cached.as_ref()
                && *name == newest
            {
                return Ok(Some(summary.clone()));
            }
            let summary = repo.latest()?.map(|m| backup::Summary::from(&m));
            if let (Some(s), Ok(mut cached)) = (&summary, cache.lock()) {
                *cached = Some((newest, s.clone()));
            }
            Ok(summary)
        })
        .await
    }

    /// Takes a backup; audited with `by` when a person asked for it
    /// (`None` for the schedule).
    ///
    /// # Errors
    /// [`AppError::Backup`].
    pub async fn backup_create(
        &self,
        kind: backup::Kind,
        by: Option<&str>,
        progress: Arc<dyn Progress + Send>,
    ) -> Result<backup::Created, AppError> {
        let config = Arc::clone(&self.config);
        let result = self
            .run_backup(move || backup::create(&config, kind, &*progress))
            .await;
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
        if let Some(by) = by {
            let id = result.as_ref().ok().map(|c| c.manifest.id.clone());
            self.audit_backup(by, "backup.create", id, &result).await;
        }
        result
    }

    /// Every backup and the damaged manifests; audited with `by` when a
    /// person asked from outside the machine (Discord).
    ///
    /// # Errors
    /// [`AppError::Backup`].
    pub async fn backup_list(&self, by: Option<&str>) -> Result<backup::Catalog, AppError> {
        let config = Arc::clone(&self.config);
        let result = self
            .run_backup(move || backup::Catalog::read(&backup::Repo::open(&config.backup)?))
            .await;
        if let Some(by) = by {
            self.audit_backup(by, "backup.list", None, &result).await;
        }
        result
    }

    /// Verifies one backup or all; audited with `by`.
    ///
    /// # Errors
    /// [`AppError::Backup`].
    pub async fn backup_verify(
        &self,
        which: backup::Which,
        by: &str,
        progress: Arc<dyn Progress + Send>,
    ) -> Result<backup::VerifyReport, AppError> {
        let config = Arc::clone(&self.config);
        let result = self
            .run_backup(move || {
                backup::verify(&backup::Repo::open(&config.backup)?, &which, &*progress)
            })
            .await;
        self.audit_backup(by, "backup.verify", None, &result).await;
        result
    }

    /// Restores a backup into a new directory (never over the live state:
    /// that needs the service stopped, `acp backup restore --in-place`);
    /// audited with `by`.
    ///
    /// # Errors
    /// [`AppError::Backup`].
    pub async fn backup_restore_to(
        &self,
        id: String,
        dest: std::path::PathBuf,
        by: &str,
        progress: Arc<dyn Progress + Send>,
    ) -> Result<backup::RestoreReport, AppError> {
        let config = Arc::clone(&self.config);
        let target = id.clone();
        let result = self
            .run_backup(move || {
                let repo = backup::Repo::open(&config.backup)?;
                let catalog = backup::Catalog::read(&repo)?;
                backup::restore_to(&repo, &catalog, &id, &dest, false, &*progress)
            })
            .await;
        self.audit_backup(by, "backup.restore", Some(target), &result)
            .await;
        result
    }

    async fn run_backup<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
    ) -> Result<T, AppError> {
        match tokio::task::spawn_blocking(f).await {
            Ok(result) => Ok(result?),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(AppError::BackupTask),
        }
    }

    async fn audit_backup<T>(
        &self,
        by: &str,
        action: &'static str,
        target: Option<String>,
        result: &Result<T, AppError>,
    ) {
        let (outcome, detail) = match result {
            Ok(_) => ("ok", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
        let (store, by) = (Arc::clone(&self.store), by.to_owned());
        let _ = blocking(move || {
            store.audit(&by, action, target.as_deref(), outcome, detail.as_deref())
        })
        .await;
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

    /// The store, for read-only tools such as `acp doctor`.
    #[must_use]
    pub fn store(&self) -> &Arc<Store> {
        &self.store
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
        )
        .map_err(AppError::Dispatcher)
    }

    /// Checks and stores a message; when this returns `Ok`, the message and
    /// one delivery per recipient are on disk and the dispatcher is woken.
    ///
    /// # Errors
    /// [`AppError`]: bad input (nothing stored) or a store failure.
    pub async fn send(&self, req: SendRequest) -> Result<UnifiedMessage, AppError> {
        let agents: Vec<AgentId> = match &req.to {
            Recipient::Agent(id) => vec![self.registry.get(id)?.id.clone()],
            Recipient::Broadcast => self.registry.all().iter().map(|a| a.id.clone()).collect(),
        };
        if agents.is_empty() {
            return Err(AppError::NoAgents);
        }
        let message = Draft {
            from: req.from,
            to: req.to,
            kind: req.kind,
            priority: req.priority,
            body: req.body,
            tags: req.tags,
            reply_to: req.reply_to,
        }
        .build(self.config.limits.max_body_bytes)?;
        if let Some(parent) = message.reply_to {
            let store = Arc::clone(&self.store);
            if blocking(move || store.message(parent)).await?.is_none() {
                return Err(AppError::NotFound(parent));
            }
        }
        let deliveries = agents.len();
        let (reply, done) = oneshot::channel();
        let submission = Submission {
            message,
            via: req.via,
            agents,
        };
        let job = CommitJob {
            submission: submission.clone(),
            reply,
        };
        self.commits.send(job).map_err(|_| AppError::WriterGone)?;
        done.await.map_err(|_| AppError::WriterGone)??;
        let message = submission.message;
        self.events.publish(Event::Accepted {
            message_id: message.id,
            from: message.from.clone(),
            to: message.to.clone(),
            priority: message.priority,
            deliveries,
        });
        self.wake.notify_one();
        Ok(message)
    }

    /// The status report.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn status(&self) -> Result<Status, AppError> {
        let store = Arc::clone(&self.store);
        let ids: Vec<AgentId> = self.registry.all().iter().map(|a| a.id.clone()).collect();
        Ok(blocking(move || store.status(&ids, 20)).await?)
    }

    /// An agent's messages, newest first.
    ///
    /// # Errors
    /// [`AppError`].
    pub async fn inbox(
        &self,
        agent: &str,
        unacked_only: bool,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, AppError> {
        let id = self.registry.lookup(agent)?.id.clone();
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.inbox(&id, unacked_only, limit)).await?)
    }

    /// A message and its deliveries.
    ///
    /// # Errors
    /// [`AppError::NotFound`] or [`AppError::Store`].
    pub async fn read(
        &self,
        id: MessageId,
    ) -> Result<(UnifiedMessage, Vec<DeliveryView>), AppError> {
        let store = Arc::clone(&self.store);
        let (message, deliveries) =
            blocking(move || Ok::<_, StoreError>((store.message(id)?, store.deliveries_of(id)?)))
                .await?;
        Ok((message.ok_or(AppError::NotFound(id))?, deliveries))
    }

    /// Waits until every delivery of a message is final (delivered or
    /// failed), or `timeout` passes, and returns them as they stand.
    ///
    /// # Errors
    /// [`AppError`].
    pub async fn wait_for(
        &self,
        id: MessageId,
        timeout: Duration,
    ) -> Result<Vec<DeliveryView>, AppError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = self.events.subscribe();
        // Another process's dispatcher sends no events here: poll the store,
        // often at first, then every couple of seconds for a long retry.
        let mut poll = Duration::from_millis(50);
        loop {
            let (_, deliveries) = self.read(id).await?;
            if deliveries.iter().all(DeliveryView::is_final)
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(deliveries);
            }
            // Woken by this process's dispatcher, or polling for another's.
            let wake = tokio::time::Instant::now() + poll;
            poll = (poll * 2).min(Duration::from_secs(2));
            let _ = tokio::time::timeout_at(deadline.min(wake), async {
                while let Ok(e) = events.recv().await {
                    if e.message_id() == Some(id) {
                        break;
                    }
                }
            })
            .await;
        }
    }

    /// Records that an agent acknowledged a message. With one recipient the
    /// agent may be left out.
    ///
    /// # Errors
    /// [`AppError`] saying what to do.
    pub async fn ack(
        &self,
        id: MessageId,
        agent: Option<&str>,
        by: Option<&str>,
    ) -> Result<(AgentId, AckResult), AppError> {
        let (_, deliveries) = self.read(id).await?;
        let agent = match agent {
            Some(text) => self.registry.lookup(text)?.id.clone(),
            None => {
                if let [one] = deliveries.as_slice() {
                    one.agent.parse()?
                } else {
                    let agents = deliveries
                        .iter()
                        .map(|d| d.agent.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(AppError::AckNeedsAgent { id, agents });
                }
            }
        };
        let by = by.map_or_else(|| agent.to_string(), str::to_owned);
        let store = Arc::clone(&self.store);
        let (a, b) = (agent.clone(), by.clone());
        let result = blocking(move || store.ack(id, &a, &b, now_ms())).await?;
        match &result {
            AckResult::NoSuchDelivery => return Err(AppError::NotRecipient { id, agent }),
            AckResult::NotDelivered { state } => {
                return Err(AppError::NotDelivered {
                    id,
                    agent,
                    state: state.clone(),
                });
            }
            AckResult::Acked { .. } => self.events.publish(Event::Acked {
                message_id: id,
                agent: agent.clone(),
                by,
            }),
            AckResult::AlreadyAcked { .. } => {}
        }
        Ok((agent, result))
    }

    /// Every agent with its effective role, captain marker and last delivery.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn agent_views(&self) -> Result<Vec<AgentView>, AppError> {
        let status = self.status().await?;
        let store = Arc::clone(&self.store);
        let (roles, captain) =
            blocking(move || Ok::<_, StoreError>((store.roles()?, store.captain()?))).await?;
        let captain = captain.or_else(|| self.config.captain.as_ref().map(ToString::to_string));
        Ok(self
            .registry
            .all()
            .iter()
            .zip(status.agents)
            .map(|(a, s)| {
                let assigned: Option<&RoleAssignment> = roles.get(a.id.as_str());
                AgentView {
                    id: a.id.to_string(),
                    name: a.name.clone(),
                    role: assigned.map_or_else(|| a.role.clone(), |r| r.role.clone()),
                    role_source: if assigned.is_some() {
                        "store"
                    } else {
                        "config"
                    },
                    captain: captain.as_deref() == Some(a.id.as_str()),
                    workspace: a.workspace.display().to_string(),
                    delivery: a.delivery.iter().map(ToString::to_string).collect(),
                    last_delivery: s.last_state.map(|state| match s.last_method {
                        Some(m) => format!("{state} by {m}"),
                        None => state,
                    }),
                    last_delivery_at: s.last_at,
                    unacked: s.unacked,
                }
            })
            .collect())
    }

    /// Assigns a role to an agent (overriding the configured one), audited.
    ///
    /// # Errors
    /// [`AppError`].
    pub async fn set_role(&self, agent: &str, role: &str, by: &str) -> Result<AgentId, AppError> {
        let id = self.registry.lookup(agent)?.id.clone();
        let role = role.trim().to_owned();
        if role.is_empty()
            || role.chars().count() > MAX_ROLE_CHARS
            || role.chars().any(char::is_control)
        {
            return Err(AppError::BadRole);
        }
        let (store, a, by) = (Arc::clone(&self.store), id.clone(), by.to_owned());
        blocking(move || store.set_role(&a, &role, &by, now_ms())).await?;
        Ok(id)
    }

    /// Removes a role set at run time. Returns whether there was one.
    ///
    /// # Errors
    /// [`AppError`].
    pub async fn clear_role(&self, agent: &str, by: &str) -> Result<bool, AppError> {
        let id = self.registry.lookup(agent)?.id.clone();
        let (store, by) = (Arc::clone(&self.store), by.to_owned());
        Ok(blocking(move || store.clear_role(&id, &by, now_ms())).await?)
    }

    /// Designates the captain, audited.
    ///
    /// # Errors
    /// [`AppError`].
    pub async fn set_captain(&self, agent: &str, by: &str) -> Result<AgentId, AppError> {
        let id = self.registry.lookup(agent)?.id.clone();
        let (store, a, by) = (Arc::clone(&self.store), id.clone(), by.to_owned());
        blocking(move || store.set_captain(&a, &by, now_ms())).await?;
        Ok(id)
    }

    /// The newest audit-log rows.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.audit_log(limit)).await?)
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
