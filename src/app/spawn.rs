//! Agents that come and go: `acp spawn PROJECT` starts one in a tmux window
//! (in the project's folder or a git worktree of its own), records it, has
//! the running service take it into its registry, then sends it the
//! project's onboarding prompt and the task as ordinary messages; `acp
//! stop AGENT` ends its window and retires it. Whichever door asks (the
//! command line, Discord, the API), it happens here, once: the store
//! decides (an id is taken by one insert; a stop is one conditional
//! update) and every door reports what it decided.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{App, AppError, Pickup, Refused, blocking};
use crate::launch::{self, Window};
use crate::model::{
    AgentId, AuditOutcome, Draft, Kind, MessageId, Priority, Recipient, SpawnState, Spawned,
};
use crate::store::spawned::Stopped;

/// How long a start waits for the running service to take the new agent
/// into its registry before the first messages are stored.
const TAKEN_IN: Duration = Duration::from_secs(20);

/// The most of a task the post announcing a start shows.
const ANNOUNCED_TASK_CHARS: usize = 1500;

/// A start asked for.
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    pub project: String,
    /// The first task, sent after the onboarding prompt.
    pub task: Option<String>,
    /// The new agent's id (default: `<project>-<n>`).
    pub id: Option<String>,
    /// Who asked, as the audit log names them (`person:alice`,
    /// `discord:123`, `http:phone`).
    pub by: String,
}

/// What a start did.
#[derive(Debug, Clone, Serialize)]
pub struct SpawnReport {
    pub agent: Spawned,
    /// The onboarding prompt and the task, in the order they go.
    pub messages: Vec<MessageId>,
    /// Whether the running service took the agent in.
    pub service: String,
}

/// What a stop did.
#[derive(Debug, Clone, Serialize)]
pub struct StopReport {
    pub agent: AgentId,
    /// The machine it ran on, when not this one (its window is closed
    /// there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Its window was still open and is closed now.
    pub window_closed: bool,
    /// Messages that were waiting for it, failed with the reason.
    pub failed: Vec<MessageId>,
    /// Its worktree, if it had one, and whether it was removed.
    pub worktree: Option<String>,
    pub worktree_removed: bool,
}

/// Why a started agent cannot be made, stopped or restarted as asked: the
/// caller's to fix, told apart so that each door can say it its way (the
/// API's status codes, Discord's replies to a press).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartedError {
    /// The id asked for is a configured agent's, or a started one's (ids
    /// are never reused).
    #[error("{0} is already an agent: give another --id")]
    IdIsAnAgent(AgentId),
    #[error("{0} is taken: give another --id")]
    IdTaken(AgentId),
    #[error(
        "{0} is configured in config/acp.toml, not started by acp: remove its table to retire it"
    )]
    Configured(AgentId),
    #[error("{0} is not an agent acp started (see acp agents)")]
    NotStarted(AgentId),
    #[error("{0} was already stopped")]
    AlreadyStopped(AgentId),
    /// Its worktree has changes (the first ones named), so nothing was
    /// done.
    #[error(
        "{agent}'s worktree has changes, so it is kept (and {agent} still runs): {changes}. \
         Commit or remove them, or stop it without --remove-worktree"
    )]
    WorktreeChanged { agent: AgentId, changes: String },
}

/// Runs tmux or git off the runtime; their refusal as the user's to fix.
async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, launch::LaunchError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| AppError::Store(crate::store::StoreError::Interrupted))?
        .map_err(|e| Refused(e.0).into())
}

/// How long the hub waits for another machine to start an agent.
const REMOTE_START: Duration = Duration::from_secs(60);
/// How often it looks.
const REMOTE_POLL: Duration = Duration::from_millis(100);

/// The record of a start: where the agent will work (the project's folder,
/// or its own worktree on branch `acp/<agent>`), not yet in a pane.
fn planned(
    project: &crate::config::Project,
    id: &AgentId,
    task: Option<String>,
    by: &str,
) -> Spawned {
    let (dir, worktree, branch) = if project.worktree {
        let path = launch::worktree_path(&project.worktrees, id.as_str());
        (path.clone(), Some(path), Some(format!("acp/{id}")))
    } else {
        (project.path.clone(), None, None)
    };
    Spawned {
        id: id.clone(),
        project: project.name.clone(),
        dir,
        worktree,
        branch,
        target: String::new(),
        socket: project.socket.clone(),
        guard: project.guard.clone(),
        profile: project.profile.clone(),
        node: project.node.clone(),
        state: SpawnState::Starting,
        task,
        spawned_at: crate::store::now_ms(),
        spawned_by: by.to_owned(),
        stopped_at: None,
        stopped_by: None,
    }
}

/// Asks the `acp run` of `root` to reload (SIGHUP), whichever process
/// this is; `false` when none runs.
fn signal_reload(root: &std::path::Path) -> bool {
    let pid = super::ServiceLock::holder(root)
        .and_then(|pid| pid.parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw);
    match pid {
        Some(pid) => rustix::process::kill_process(pid, rustix::process::Signal::HUP).is_ok(),
        None => false,
    }
}

/// Whether the agent's first messages can be stored: the running service
/// holds it (or none runs, and `acp run` will when it starts). Stored
/// before, a dispatcher that does not know the agent would fail them.
fn taken_in(pickup: &Pickup) -> bool {
    matches!(pickup, Pickup::Loaded { .. } | Pickup::NotRunning)
}

/// What the service made of the new agent, in words.
fn said(pickup: &Pickup) -> String {
    match pickup {
        Pickup::NotRunning => {
            "no acp run is running for this root: it delivers to the agent when it starts".into()
        }
        Pickup::Loaded { .. } => "the running acp run took the agent in".into(),
        Pickup::Refused { error } => format!(
            "the running acp run refused its config ({error}), so it does not know the agent \
             yet: nothing was sent to it; fix the config, then send the task with acp send"
        ),
        Pickup::NotYet => "the running acp run has not taken the agent in yet: nothing was \
                           sent to it; check acp status, then send the task with acp send"
            .into(),
    }
}

/// Refuses to remove a worktree with changes, naming them.
async fn refuse_if_changed(id: &AgentId, spawned: &Spawned) -> Result<(), AppError> {
    let Some(path) = spawned.worktree.clone() else {
        return Ok(());
    };
    let changed = off_runtime(move || launch::changed_files(&path)).await?;
    if changed.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = changed.iter().take(20).map(String::as_str).collect();
    let more = if changed.len() > shown.len() {
        ", ..."
    } else {
        ""
    };
    Err(StartedError::WorktreeChanged {
        agent: id.clone(),
        changes: format!("{}{more}", shown.join(", ")),
    }
    .into())
}

impl App {
    /// The agents acp started, newest first (`running` only, or all).
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn started_agents(&self, running_only: bool) -> Result<Vec<Spawned>, AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.spawned(running_only)).await?)
    }

    /// The started agent `text` names, running or stopped.
    ///
    /// # Errors
    /// [`StartedError::Configured`] for a configured agent,
    /// [`StartedError::NotStarted`] for any other name; an id that is not
    /// one, or [`AppError::Store`].
    pub async fn started_agent(&self, text: &str) -> Result<Spawned, AppError> {
        let id: AgentId = text.trim().parse()?;
        let store = Arc::clone(&self.store);
        let key = id.to_string();
        match blocking(move || store.spawned_agent(&key)).await? {
            Some(spawned) => Ok(spawned),
            None if self.registry.get(&id).is_ok() => Err(StartedError::Configured(id).into()),
            None => Err(StartedError::NotStarted(id).into()),
        }
    }

    /// Starts a new agent in a project: see the module's text.
    ///
    /// # Errors
    /// [`AppError`] saying what to do: an unknown project, an id taken, a
    /// project on another machine, tmux or git refusing (nothing is left
    /// half made then).
    pub async fn spawn(&self, req: SpawnRequest) -> Result<SpawnReport, AppError> {
        let project = self.config.project_named(&req.project)?.clone();
        if let Some(task) = &req.task {
            crate::model::check_body(task, self.config.limits.max_body_bytes)?;
        }
        let elsewhere = match (&project.node, &self.config.cluster) {
            (Some(node), Some(cluster)) if node != &cluster.node => {
                if !cluster.is_hub() {
                    return Err(Refused(format!(
                        "project {} runs on {node}: start its agents from the hub ({}) or on \
                         {node} itself",
                        project.name, cluster.hub
                    ))
                    .into());
                }
                if !self.delivering() {
                    return Err(Refused(format!(
                        "project {} runs on {node}, and the hub's acp run hands starts to other \
                         machines: start acp run here first",
                        project.name
                    ))
                    .into());
                }
                true
            }
            _ => false,
        };
        let (id, seq) = self.new_agent_id(&project.name, req.id.as_deref()).await?;
        let mut spawned = planned(&project, &id, req.task.clone(), &req.by);
        if !self.record_start(&spawned, seq).await? {
            return Err(StartedError::IdTaken(id).into());
        }
        spawned.target = if elsewhere {
            self.started_there(&id, project.node.as_ref()).await?
        } else {
            self.start_here(&project, &spawned).await?
        };
        spawned.state = SpawnState::Running;
        let detail = format!("project {} in {}", project.name, spawned.dir.display());
        self.audit(
            &req.by,
            "agent.spawn",
            Some(id.as_str()),
            AuditOutcome::Ok,
            Some(&detail),
        )
        .await?;
        self.taken_in(
            spawned,
            &req.by,
            project.first_prompt.as_deref(),
            req.task.as_deref(),
        )
        .await
    }

    /// Has the running service take a started agent in, then sends its
    /// onboarding prompt and task (only once it holds the agent).
    async fn taken_in(
        &self,
        spawned: Spawned,
        by: &str,
        onboarding: Option<&str>,
        task: Option<&str>,
    ) -> Result<SpawnReport, AppError> {
        let pickup = self.registry_changed().await;
        let messages = if taken_in(&pickup) {
            self.first_messages(&spawned.id, by, onboarding, task)
                .await?
        } else {
            Vec::new()
        };
        Ok(SpawnReport {
            agent: spawned,
            messages,
            service: said(&pickup),
        })
    }

    /// Records a start (`starting`), once the agent it makes is checked
    /// as the registry will hold it (a profile gone, say): `false` when the
    /// id is taken.
    async fn record_start(&self, spawned: &Spawned, seq: u32) -> Result<bool, AppError> {
        self.config.spawned_agent(&Spawned {
            target: "%0".into(),
            ..spawned.clone()
        })?;
        let store = Arc::clone(&self.store);
        let record = spawned.clone();
        Ok(blocking(move || store.begin_spawn(&record, seq)).await?)
    }

    /// Opens a recorded start's window on this machine and records it
    /// running; a start that fails goes from the record (and is audited).
    async fn start_here(
        &self,
        project: &crate::config::Project,
        spawned: &Spawned,
    ) -> Result<String, AppError> {
        let id = spawned.id.clone();
        match self.open_agent(project, spawned).await {
            Ok(pane) => {
                let store = Arc::clone(&self.store);
                let (running, target) = (id, pane.clone());
                blocking(move || store.spawn_running(&running, &target)).await?;
                Ok(pane)
            }
            Err(e) => {
                let store = Arc::clone(&self.store);
                let gone = id.clone();
                blocking(move || store.abandon_spawn(&gone)).await?;
                self.audit(
                    &spawned.spawned_by,
                    "agent.spawn",
                    Some(id.as_str()),
                    AuditOutcome::Error,
                    Some(&e.to_string()),
                )
                .await?;
                Err(e)
            }
        }
    }

    /// On the hub: waits for the machine the start was handed to (by the
    /// service's cluster task) to say how it went; its pane.
    async fn started_there(
        &self,
        id: &AgentId,
        node: Option<&crate::model::NodeName>,
    ) -> Result<String, AppError> {
        let node = node.map_or_else(String::new, ToString::to_string);
        let deadline = std::time::Instant::now() + REMOTE_START;
        loop {
            let store = Arc::clone(&self.store);
            let agent = id.clone();
            match blocking(move || store.spawn_progress(&agent)).await? {
                Some((SpawnState::Running, _, target)) => return Ok(target),
                Some((SpawnState::Stopped, error, _)) => {
                    return Err(Refused(format!(
                        "{node} could not start {id}: {}",
                        error.unwrap_or_else(|| "it was stopped".into())
                    ))
                    .into());
                }
                Some((SpawnState::Starting, ..)) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(REMOTE_POLL).await;
                }
                _ => {
                    return Err(Refused(format!(
                        "{node} has not answered the start of {id} within {} s: it stays \
                         asked, and starts when {node}'s acp run takes it (acp agents shows \
                         it then)",
                        REMOTE_START.as_secs()
                    ))
                    .into());
                }
            }
        }
    }

    /// On a node: starts the agent the hub asked for, with this machine's
    /// own project table; asked again, the same answer. Does not wait for
    /// the reload (this runs inside the task a reload stops).
    pub(crate) async fn spawn_asked(
        &self,
        agent: AgentId,
        project: &str,
        by: &str,
    ) -> Result<String, AppError> {
        let store = Arc::clone(&self.store);
        let key = agent.to_string();
        if let Some(known) = blocking(move || store.spawned_agent(&key)).await? {
            return match known.state {
                SpawnState::Running => Ok(known.target),
                _ => Err(Refused(format!("{agent} was started here before and stopped")).into()),
            };
        }
        let project = self.config.project_named(project)?.clone();
        let here = self.config.cluster.as_ref().map(|c| &c.node);
        if project.node.as_ref() != here {
            return Err(Refused(format!(
                "project {} does not run on this machine in its config",
                project.name
            ))
            .into());
        }
        let store = Arc::clone(&self.store);
        let name = project.name.clone();
        let seq = blocking(move || store.next_spawn_number(&name)).await?;
        let spawned = planned(&project, &agent, None, by);
        if !self.record_start(&spawned, seq).await? {
            return Err(Refused(format!("{agent} is taken on this machine")).into());
        }
        let pane = self.start_here(&project, &spawned).await?;
        let detail = format!(
            "project {} in {}, asked by the hub",
            project.name,
            spawned.dir.display()
        );
        self.audit(
            by,
            "agent.spawn",
            Some(agent.as_str()),
            AuditOutcome::Ok,
            Some(&detail),
        )
        .await?;
        signal_reload(&self.config.root);
        Ok(pane)
    }

    /// Says on Discord that an agent was started, in its own thread, when
    /// Discord gives agents threads (`discord.agent_threads`): a post
    /// from the agent (as acp's state posts are), tagged `spawn`, whose
    /// delivery makes the thread as a configured agent's first post does,
    /// and remembers it in the store. `by` is who asked, as the post
    /// shows them. None when there are no agent threads to post in.
    ///
    /// # Errors
    /// [`AppError::Store`] when the post cannot be stored.
    pub async fn announce_started(
        &self,
        report: &SpawnReport,
        by: &str,
    ) -> Result<Option<MessageId>, AppError> {
        if !self.config.discord.agent_threads {
            return Ok(None);
        }
        let a = &report.agent;
        let mut body = format!(
            "started by {by} in project {}: tmux pane `{}` in `{}`",
            a.project,
            a.target,
            a.dir.display()
        );
        if let Some(branch) = &a.branch {
            let _ = write!(body, " (branch `{branch}`)");
        }
        match &a.task {
            Some(task) => {
                let mut shown: String = task.chars().take(ANNOUNCED_TASK_CHARS).collect();
                if shown.len() < task.len() {
                    shown.push('…');
                }
                let _ = write!(body, ".\nIts task: {shown}");
            }
            None => body.push_str(".\nNo task yet: /message in this thread tells it one."),
        }
        let request = super::SendRequest {
            draft: Draft {
                from: a.id.to_string(),
                to: Recipient::Discord,
                kind: Kind::Report,
                priority: Priority::Normal,
                body,
                tags: vec!["spawn".into()],
                reply_to: None,
            },
            via: crate::model::Via::Auto,
        };
        match self.send(request).await {
            Ok(message) => Ok(Some(message.id)),
            Err(AppError::DiscordOff | AppError::NoDiscordChannel) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The new agent's id: the one asked for (free, and no configured
    /// agent's), else `<project>-<n>` with the next number.
    async fn new_agent_id(
        &self,
        project: &str,
        asked: Option<&str>,
    ) -> Result<(AgentId, u32), AppError> {
        let store = Arc::clone(&self.store);
        let name = project.to_owned();
        let mut seq = blocking(move || store.next_spawn_number(&name)).await?;
        if let Some(text) = asked {
            let id: AgentId = text.trim().parse()?;
            if self.registry.get(&id).is_ok() {
                return Err(StartedError::IdIsAnAgent(id).into());
            }
            return Ok((id, seq));
        }
        loop {
            let id: AgentId = format!("{project}-{seq}").parse()?;
            if self.registry.get(&id).is_err() {
                return Ok((id, seq));
            }
            seq += 1;
        }
    }

    /// Makes the agent's worktree (if the project gives one) and its
    /// window; returns the pane. A worktree made here goes again if the
    /// window cannot be opened.
    async fn open_agent(
        &self,
        project: &crate::config::Project,
        spawned: &Spawned,
    ) -> Result<String, AppError> {
        let workspace = crate::model::Registry::default_workspace(&self.config.root, &spawned.id);
        super::init::private_dir(&workspace.join("inbox")).map_err(AppError::Init)?;
        let root = self.config.root.clone();
        let project = project.clone();
        let spawned = spawned.clone();
        tokio::task::spawn_blocking(move || {
            if let (Some(path), Some(branch)) = (&spawned.worktree, &spawned.branch) {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        launch::LaunchError(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                launch::add_worktree(&project.path, path, branch)?;
            }
            let env = vec![
                ("ACP_AGENT".to_owned(), spawned.id.to_string()),
                ("ACP_ROOT".to_owned(), root.display().to_string()),
            ];
            let opened = launch::open_window(&Window {
                socket: project.socket.as_deref(),
                session: &project.session,
                name: spawned.id.as_str(),
                dir: &spawned.dir,
                command: &project.command,
                env: &env,
            });
            if opened.is_err()
                && let Some(path) = &spawned.worktree
            {
                let _ = launch::remove_worktree(&project.path, path);
            }
            opened
        })
        .await
        .map_err(|_| AppError::Store(crate::store::StoreError::Interrupted))?
        .map_err(|e| Refused(e.0).into())
    }

    /// Stores the onboarding prompt and the task for a new agent, in that
    /// order, from whoever started it.
    async fn first_messages(
        &self,
        id: &AgentId,
        by: &str,
        onboarding: Option<&str>,
        task: Option<&str>,
    ) -> Result<Vec<MessageId>, AppError> {
        let from = if by.contains(':') {
            by.to_owned()
        } else {
            format!("person:{by}")
        };
        let mut sent = Vec::new();
        for (kind, body) in [(Kind::Onboarding, onboarding), (Kind::Human, task)] {
            let Some(body) = body else { continue };
            let draft = Draft {
                from: from.clone(),
                to: Recipient::Agent(id.clone()),
                kind,
                priority: Priority::Normal,
                body: body.to_owned(),
                tags: vec!["spawn".into()],
                reply_to: None,
            };
            sent.push(self.send_to_started(id, draft).await?.id);
        }
        Ok(sent)
    }

    /// Stops a started agent: its window closed, queued messages failed
    /// with the reason, retired (its history stays); its worktree removed
    /// only when asked and clean.
    ///
    /// # Errors
    /// [`AppError`]: not a started agent, already stopped, or a worktree
    /// with changes (then nothing is done).
    pub async fn stop_agent(
        &self,
        text: &str,
        remove_worktree: bool,
        by: &str,
    ) -> Result<StopReport, AppError> {
        let spawned = self.started_agent(text).await?;
        let id = spawned.id.clone();
        let elsewhere = match (&spawned.node, &self.config.cluster) {
            (Some(node), Some(cluster)) if node != &cluster.node => Some(node.to_string()),
            _ => None,
        };
        if let Some(node) = &elsewhere
            && remove_worktree
        {
            return Err(Refused(format!(
                "{id} runs on {node}: its worktree is there; stop it from here without \
                 --remove-worktree, then remove the worktree on {node}"
            ))
            .into());
        }
        if remove_worktree {
            refuse_if_changed(&id, &spawned).await?;
        }
        let failed = self.retire(&id, by).await?;
        // Another machine's agent: the hub's acp run hands the stop to it,
        // which closes the window there.
        let (window_closed, worktree_removed) = match &elsewhere {
            Some(_) => (false, false),
            None => self.end_agent(&id, &spawned, remove_worktree).await?,
        };
        let detail = format!(
            "{} queued message(s) failed; window {}",
            failed.len(),
            match (&elsewhere, window_closed) {
                (Some(node), _) => format!("closed by {node}"),
                (None, true) => "closed".to_owned(),
                (None, false) => "already gone".to_owned(),
            }
        );
        self.audit(
            by,
            "agent.stop",
            Some(id.as_str()),
            AuditOutcome::Ok,
            Some(&detail),
        )
        .await?;
        self.registry_changed().await;
        Ok(StopReport {
            agent: id,
            machine: elsewhere,
            window_closed,
            failed,
            worktree: spawned.worktree.map(|p| p.display().to_string()),
            worktree_removed,
        })
    }

    /// Retires a started agent in the store, once, failing its queued
    /// messages with the reason (each announced); the messages failed.
    async fn retire(&self, id: &AgentId, by: &str) -> Result<Vec<MessageId>, AppError> {
        let reason = format!("{id} was stopped by {by}");
        let store = Arc::clone(&self.store);
        let (who, why, agent) = (by.to_owned(), reason.clone(), id.clone());
        let failed =
            match blocking(move || store.stop_spawned(&agent, &who, &why, crate::store::now_ms()))
                .await?
            {
                Stopped::Now { failed } => failed,
                Stopped::Already => return Err(StartedError::AlreadyStopped(id.clone()).into()),
                Stopped::Missing => return Err(StartedError::NotStarted(id.clone()).into()),
            };
        for message_id in &failed {
            self.events.publish(crate::events::Event::Failed {
                message_id: *message_id,
                agent: crate::model::Destination::Agent(id.clone()),
                attempts: 0,
                error: reason.clone(),
            });
        }
        Ok(failed)
    }

    /// On a node: stops the agent the hub stopped (its window closed, its
    /// queued messages here failed); already stopped, nothing to do. Does
    /// not wait for the reload (this runs inside the task a reload stops).
    pub(crate) async fn stop_asked(&self, agent: AgentId, by: &str) -> Result<(), AppError> {
        let store = Arc::clone(&self.store);
        let key = agent.to_string();
        let Some(spawned) = blocking(move || store.spawned_agent(&key)).await? else {
            return Ok(());
        };
        if spawned.state == SpawnState::Stopped {
            return Ok(());
        }
        self.retire(&agent, by).await?;
        self.end_agent(&agent, &spawned, false).await?;
        self.audit(
            by,
            "agent.stop",
            Some(agent.as_str()),
            AuditOutcome::Ok,
            Some("asked by the hub"),
        )
        .await?;
        signal_reload(&self.config.root);
        Ok(())
    }

    /// Restarts a started agent: its window (if still open) closed and a
    /// new one opened in the same folder or worktree, running its
    /// project's command; its queued messages wait for the new window;
    /// the onboarding prompt is sent again.
    ///
    /// # Errors
    /// [`AppError`]: not a started agent, its project gone, tmux or git
    /// refusing.
    pub async fn restart_agent(&self, text: &str, by: &str) -> Result<SpawnReport, AppError> {
        let mut spawned = match self.started_agent(text).await {
            Err(AppError::Started(StartedError::Configured(id))) => {
                return Err(StartedError::NotStarted(id).into());
            }
            other => other?,
        };
        let id = spawned.id.clone();
        let project = self.config.project_named(&spawned.project)?.clone();
        let (socket, target) = (spawned.socket.clone(), spawned.target.clone());
        off_runtime(move || launch::close_window(socket.as_deref(), &target)).await?;
        // The worktree is reused as it is (or made again from its branch,
        // if it was removed).
        let pane = {
            let mut again = spawned.clone();
            if again.worktree.as_ref().is_some_and(|w| w.is_dir()) {
                again.worktree = None;
                again.branch = None;
            }
            self.open_agent(&project, &again).await?
        };
        let store = Arc::clone(&self.store);
        let (agent, new_pane) = (id.clone(), pane.clone());
        blocking(move || store.respawned(&agent, &new_pane)).await?;
        spawned.target = pane;
        spawned.state = SpawnState::Running;
        self.audit(
            by,
            "agent.restart",
            Some(id.as_str()),
            AuditOutcome::Ok,
            Some(&spawned.target),
        )
        .await?;
        self.taken_in(spawned, by, project.first_prompt.as_deref(), None)
            .await
    }

    /// Closes a stopped agent's window, and removes its worktree when
    /// asked (checked clean before); says what it did.
    async fn end_agent(
        &self,
        id: &AgentId,
        spawned: &Spawned,
        remove_worktree: bool,
    ) -> Result<(bool, bool), AppError> {
        let (socket, target) = (spawned.socket.clone(), spawned.target.clone());
        let window_closed = off_runtime(move || launch::close_window(socket.as_deref(), &target))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(agent = %id, error = %e, "cannot close the stopped agent's window");
                false
            });
        let repo = self
            .config
            .project_named(&spawned.project)
            .map(|p| p.path.clone());
        let removed = match (remove_worktree, spawned.worktree.clone(), repo) {
            (true, Some(path), Ok(repo)) => {
                off_runtime(move || launch::remove_worktree(&repo, &path)).await?;
                true
            }
            _ => false,
        };
        Ok((window_closed, removed))
    }

    /// The started agents changed: the running service reloads (SIGHUP,
    /// whichever process this is) and this waits until it runs with them.
    async fn registry_changed(&self) -> Pickup {
        if signal_reload(&self.config.root) {
            self.await_pickup(TAKEN_IN).await
        } else {
            Pickup::NotRunning
        }
    }
}
