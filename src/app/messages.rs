//! Messages through the core: send, read, follow the outcome, acknowledge.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{App, AppError, CommitJob, SendRequest, blocking};
use crate::events::Event;
use crate::model::{
    AgentId, AuditOutcome, Destination, Kind, MessageId, Recipient, UnifiedMessage,
};
use crate::store::{AckResult, DeliveryView, InboxEntry, Status, StoreError, Submission, now_ms};

impl App {
    /// Checks and stores a message; when this returns `Ok`, the message and
    /// one delivery per recipient are on disk and the dispatcher is woken.
    ///
    /// # Errors
    /// [`AppError`]: bad input (nothing stored) or a store failure.
    pub async fn send(&self, req: SendRequest) -> Result<UnifiedMessage, AppError> {
        self.send_with_files(req, &[]).await
    }

    /// [`App::send`], for a post to Discord carrying files (`--file`):
    /// they are copied into the outbox before the message is stored, so
    /// the post carries them as they were.
    ///
    /// # Errors
    /// [`AppError`]: bad input (nothing stored) or a store failure.
    pub async fn send_with_files(
        &self,
        req: SendRequest,
        files: &[std::path::PathBuf],
    ) -> Result<UnifiedMessage, AppError> {
        self.send_inner(req, files, None).await
    }

    /// [`App::send`], with an audit row (`actor` did `action`) stored in
    /// the same transaction as the message: the HTTP API audits each send
    /// at no extra fsync.
    ///
    /// # Errors
    /// [`AppError`]: bad input (nothing stored) or a store failure.
    pub async fn send_audited(
        &self,
        req: SendRequest,
        actor: &str,
        action: &str,
    ) -> Result<UnifiedMessage, AppError> {
        self.send_inner(req, &[], Some((actor.to_owned(), action.to_owned())))
            .await
    }

    async fn send_inner(
        &self,
        req: SendRequest,
        files: &[std::path::PathBuf],
        audit: Option<(String, String)>,
    ) -> Result<UnifiedMessage, AppError> {
        let via = req.via;
        let (mut message, to) = self.checked(req).await?;
        let staged = self.stage_files(&mut message, files).await?;
        let deliveries = to.len();
        let submission = Submission {
            message,
            via,
            to,
            audit,
        };
        let committed = self.commit(submission.clone()).await;
        if let Err(e) = committed {
            // Not stored: its staged files go too.
            if let Some(dir) = staged {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(e);
        }
        let message = submission.message;
        self.accepted(&message, deliveries);
        Ok(message)
    }

    /// A message checked as [`App::send`] checks it, with its destinations;
    /// nothing stored.
    pub(super) async fn checked(
        &self,
        req: SendRequest,
    ) -> Result<(UnifiedMessage, Vec<Destination>), AppError> {
        let to: Vec<Destination> = match &req.draft.to {
            Recipient::Agent(id) => vec![Destination::Agent(self.registry.get(id)?.id.clone())],
            Recipient::Broadcast => self
                .registry
                .all()
                .iter()
                .map(|a| Destination::Agent(a.id.clone()))
                .collect(),
            Recipient::Discord => vec![Destination::Discord],
            Recipient::Person(name) => vec![Destination::Person(name.clone())],
        };
        if to.is_empty() {
            return Err(AppError::NoAgents);
        }
        let message = req.draft.build(self.config.limits.max_body_bytes)?;
        if let Some(parent) = message.reply_to {
            let store = Arc::clone(&self.store);
            if blocking(move || store.message(parent)).await?.is_none() {
                return Err(AppError::NotFound(parent));
            }
        }
        if message.to == Recipient::Discord {
            self.check_discord_route(&message).await?;
        }
        self.check_node_sender(&message, &to)?;
        Ok((message, to))
    }

    /// Stores a submission through the group-commit writer.
    async fn commit(&self, submission: Submission) -> Result<(), AppError> {
        let (reply, done) = oneshot::channel();
        let job = CommitJob { submission, reply };
        match self.commits.send(job) {
            Ok(()) => done
                .await
                .map_err(|_| AppError::WriterGone)
                .and_then(|r| Ok(r?)),
            Err(_) => Err(AppError::WriterGone),
        }
    }

    /// Sends `draft` to an agent this core's registry does not hold yet
    /// (one just started: the running service's registry does), as any
    /// message is stored.
    pub(super) async fn send_to_started(
        &self,
        agent: &crate::model::AgentId,
        draft: crate::model::Draft,
    ) -> Result<UnifiedMessage, AppError> {
        let message = draft.build(self.config.limits.max_body_bytes)?;
        let submission = Submission {
            message,
            via: crate::model::Via::Auto,
            to: vec![Destination::Agent(agent.clone())],
            audit: None,
        };
        self.commit(submission.clone()).await?;
        self.accepted(&submission.message, 1);
        Ok(submission.message)
    }

    /// On a node of a swarm, a message for another machine's agent goes
    /// through the hub, which takes messages only from this node's own
    /// agents: anything else is refused here, where the sender sees it.
    fn check_node_sender(
        &self,
        message: &UnifiedMessage,
        to: &[Destination],
    ) -> Result<(), AppError> {
        let Some(cluster) = self.config.cluster.as_ref().filter(|c| !c.is_hub()) else {
            return Ok(());
        };
        let elsewhere = to.iter().any(|d| match d {
            Destination::Agent(id) => self
                .registry
                .get(id)
                .is_ok_and(|a| a.node.as_ref().unwrap_or(&cluster.hub) != &cluster.node),
            Destination::Discord | Destination::Person(_) => false,
        });
        let ours = message
            .from
            .parse::<crate::model::AgentId>()
            .ok()
            .and_then(|id| self.registry.get(&id).ok())
            .is_some_and(|a| a.node.as_ref().unwrap_or(&cluster.hub) == &cluster.node);
        if elsewhere && (!ours || matches!(message.kind, Kind::Human | Kind::Devlog)) {
            return Err(super::Refused(format!(
                "this machine ({}) sends to other machines' agents only as one of its own agents \
                 (the hub refuses anything else), and {:?} is not one: set ACP_AGENT to your \
                 agent here, or send from the hub ({})",
                cluster.node, message.from, cluster.hub
            ))
            .into());
        }
        Ok(())
    }

    /// Copies a post's files into the outbox and names them in its body.
    /// Returns where, if there are any.
    async fn stage_files(
        &self,
        message: &mut UnifiedMessage,
        files: &[std::path::PathBuf],
    ) -> Result<Option<std::path::PathBuf>, AppError> {
        if files.is_empty() {
            return Ok(None);
        }
        if message.to != Recipient::Discord {
            return Err(AppError::from(super::Refused(
                "--file goes with posts to Discord (--to discord, or a reply to a Discord \
                 message); for an agent, put the file in its workspace and name the path"
                    .into(),
            )));
        }
        let dir = self.outbox_dir().join(message.id.to_string());
        let max = self.config.limits.max_attachment_bytes;
        let (files, at) = (files.to_vec(), dir.clone());
        let names = tokio::task::spawn_blocking(move || {
            crate::delivery::discord::stage_files(&at, &files, max)
        })
        .await
        .map_err(|_| AppError::Store(StoreError::Interrupted))?
        .map_err(|e| AppError::from(super::Refused(e)))?;
        for (name, size) in names {
            let _ = write!(message.body, "\n📎 {name} ({size} bytes)");
        }
        Ok(Some(dir))
    }

    /// Announces a stored message and wakes the dispatcher: every door's
    /// message, once committed, goes through here.
    pub(super) fn accepted(&self, message: &UnifiedMessage, deliveries: usize) {
        self.events.publish(Event::Accepted {
            message_id: message.id,
            from: message.from.clone(),
            to: message.to.clone(),
            kind: message.kind,
            priority: message.priority,
            deliveries,
        });
        self.wake.notify_one();
    }

    /// The status report.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn status(&self) -> Result<Status, AppError> {
        let store = Arc::clone(&self.store);
        let ids: Vec<AgentId> = self.registry.all().iter().map(|a| a.id.clone()).collect();
        Ok(blocking(move || store.status(&ids, 20, None)).await?)
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
        let id = self.registry.lookup(agent)?.id.to_string();
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
        let mut deliveries = deliveries;
        self.annotate_waiting(&mut deliveries).await;
        Ok((message.ok_or(AppError::NotFound(id))?, deliveries))
    }

    /// Follows the outcome of a message: [`Follow::next`] gives its
    /// deliveries each time they change, until every one is final. The CLI's
    /// `--wait` and Discord's receipts both read outcomes this way.
    #[must_use]
    pub fn follow(&self, id: MessageId) -> Follow<'_> {
        Follow {
            app: self,
            id,
            events: self.events.subscribe(),
            poll: FIRST_POLL,
            last: None,
        }
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
        self.follow(id)
            .until_final(tokio::time::Instant::now() + timeout)
            .await
    }

    /// Delivers a message from this process, when no `acp run` is there to
    /// do it: one pass through the agent's methods, or with `wait` until the
    /// outcome is final (retries included, at their backoff) or `timeout`
    /// passes. Returns the deliveries as they stand.
    ///
    /// # Errors
    /// [`AppError`].
    pub async fn deliver_here(
        &self,
        id: MessageId,
        wait: bool,
        timeout: Duration,
    ) -> Result<Vec<DeliveryView>, AppError> {
        // In a swarm only `acp run` delivers: a command run with the wrong
        // node name must not put a message in this machine's inboxes.
        if self.config.cluster.is_some() {
            return Ok(self.read(id).await?.1);
        }
        let dispatcher = Arc::new(self.dispatcher(self.methods())?);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let d = Arc::clone(&dispatcher);
            tokio::task::spawn_blocking(move || d.pump(Some(&[id]), &CancellationToken::new()))
                .await
                .map_err(|e| AppError::Dispatcher(std::io::Error::other(e)))??;
            let (_, deliveries) = self.read(id).await?;
            let now = tokio::time::Instant::now();
            if !wait || now >= deadline || deliveries.iter().all(DeliveryView::is_final) {
                return Ok(deliveries);
            }
            // The next try is due at its backoff, which the store knows.
            let store = Arc::clone(&self.store);
            let due = blocking(move || store.next_due(false)).await?;
            let wait_ms = due.map_or(0, |at| at.saturating_sub(now_ms()).max(0));
            let pause = Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0));
            tokio::time::sleep_until(deadline.min(now + pause.max(MIN_RETRY_PAUSE))).await;
        }
    }

    /// Records that a recipient (an agent, or a person's inbox)
    /// acknowledged a message.
    ///
    /// `agent` names the recipient: an agent, or `person:NAME`. `caller`
    /// is the agent running the command (`ACP_AGENT`), if any: an agent
    /// acknowledges only its own messages (never a person's), and needs
    /// no `agent` for a broadcast. `by` is a person acknowledging for the
    /// recipient (`--by`): allowed for any recipient, and written to the
    /// audit log as done by `actor` (who really ran it). With neither, the
    /// one recipient (or `agent`) acknowledges.
    ///
    /// # Errors
    /// [`AppError`] saying what to do.
    pub async fn ack(
        &self,
        id: MessageId,
        agent: Option<&str>,
        caller: Option<&str>,
        by: Option<&str>,
        actor: &str,
    ) -> Result<(Destination, AckResult), AppError> {
        let (_, deliveries) = self.read(id).await?;
        let caller = caller.and_then(|c| self.registry.lookup(c).ok().map(|a| a.id.clone()));
        let recipients: Vec<&str> = deliveries.iter().map(|d| d.agent.as_str()).collect();
        let agent = match (agent, &caller) {
            (Some(text), _) => self.recipient(text)?,
            (None, Some(me)) if recipients.contains(&me.as_str()) => Destination::Agent(me.clone()),
            (None, _) => match recipients.as_slice() {
                [one] => one.parse()?,
                _ => {
                    return Err(AppError::AckNeedsAgent {
                        id,
                        agents: recipients.join(", "),
                    });
                }
            },
        };
        if by.is_none()
            && let Some(me) = &caller
            && agent.agent() != Some(me)
        {
            return Err(AppError::NotYours {
                id,
                agent,
                caller: me.clone(),
            });
        }
        let acked_by = by.map_or_else(|| agent.to_string(), str::to_owned);
        let store = Arc::clone(&self.store);
        let (a, b) = (agent.to_string(), acked_by.clone());
        let result = blocking(move || store.ack(id, &a, &b, now_ms())).await?;
        match &result {
            AckResult::NoSuchDelivery => return Err(AppError::NotRecipient { id, agent }),
            AckResult::NotDelivered { state } => {
                return Err(AppError::NotDelivered {
                    id,
                    agent,
                    state: *state,
                });
            }
            AckResult::Acked { .. } => {
                if by.is_some() {
                    let detail = format!("for {agent}, recorded as by {acked_by}");
                    let target = id.to_string();
                    self.audit(
                        actor,
                        "inbox.ack",
                        Some(&target),
                        AuditOutcome::Ok,
                        Some(&detail),
                    )
                    .await?;
                }
                self.events.publish(Event::Acked {
                    message_id: id,
                    agent: agent.clone(),
                    by: acked_by,
                });
            }
            AckResult::AlreadyAcked { .. } => {}
        }
        Ok((agent, result))
    }

    /// A recipient as a person names it: `person:NAME`, or an agent.
    fn recipient(&self, text: &str) -> Result<Destination, AppError> {
        if text.trim().starts_with(crate::model::PERSON_PREFIX) {
            return crate::model::PersonName::from_sender(text.trim())
                .map(Destination::Person)
                .ok_or_else(|| {
                    super::Refused(format!(
                        "{text:?} is not a person's inbox: write person:NAME (for example \
                         person:alice)"
                    ))
                    .into()
                });
        }
        Ok(Destination::Agent(self.registry.lookup(text)?.id.clone()))
    }
}

/// How soon a follower first looks at the store again without an event.
const FIRST_POLL: Duration = Duration::from_millis(50);
/// How long it waits at most between looks (another process's dispatcher
/// sends no events here).
const MAX_POLL: Duration = Duration::from_secs(2);
/// The shortest pause between two inline delivery passes.
const MIN_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// The outcome of one message as it develops; see [`App::follow`].
pub struct Follow<'a> {
    app: &'a App,
    id: MessageId,
    events: tokio::sync::broadcast::Receiver<Event>,
    poll: Duration,
    last: Option<Vec<DeliveryView>>,
}

impl Follow<'_> {
    /// The deliveries as they stand once they differ from the last answer
    /// (the first call answers at once), or `None` when the last answer was
    /// already final, or at `deadline`.
    ///
    /// # Errors
    /// [`AppError`] if the message cannot be read.
    pub async fn next(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Vec<DeliveryView>>, AppError> {
        if self
            .last
            .as_ref()
            .is_some_and(|d| d.iter().all(DeliveryView::is_final))
        {
            return Ok(None);
        }
        loop {
            let (_, deliveries) = self.app.read(self.id).await?;
            if self.last.as_ref() != Some(&deliveries) {
                self.last = Some(deliveries.clone());
                return Ok(Some(deliveries));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            // Woken by this process's dispatcher, or polling for another's:
            // often at first, then every couple of seconds for a long retry.
            let wake = tokio::time::Instant::now() + self.poll;
            self.poll = (self.poll * 2).min(MAX_POLL);
            let id = self.id;
            let events = &mut self.events;
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

    /// Follows until every delivery is final or `deadline` passes, and
    /// returns the deliveries as they stand then.
    ///
    /// # Errors
    /// [`AppError`] if the message cannot be read.
    pub async fn until_final(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<DeliveryView>, AppError> {
        while self.next(deadline).await?.is_some() {}
        match self.last.take() {
            Some(deliveries) => Ok(deliveries),
            None => Ok(self.app.read(self.id).await?.1),
        }
    }
}
