//! The outbox through the core: answers to messages, posts to Discord, and
//! the receipts Discord commands owe. A post is a message like any other,
//! stored before anyone is told it was accepted, and delivered by the
//! `discord` method of `acp run`'s dispatcher.

use std::sync::Arc;

use super::{App, AppError, SendRequest, blocking};
use crate::events::Event;
use crate::model::{
    AgentId, Draft, Kind, MessageId, PersonName, Priority, Recipient, UnifiedMessage, Via,
};
use crate::store::discord::{Receipt, ReceiptState};
use crate::store::hooks::HookSeen;

/// Who answers a message.
#[derive(Debug, Clone, Copy)]
pub enum Replier<'a> {
    /// An agent (`ACP_AGENT`, `--from AGENT`, an MCP server's agent): it
    /// answers only messages sent to it.
    Agent(&'a str),
    /// The person at a door: a message in their inbox is answered as
    /// themselves; any other as its only recipient (the person speaks for
    /// the agent, as `acp reply` always let them).
    Person(&'a PersonName),
}

/// Who a message came from, for the one who answers it.
fn came_from_discord(message: &UnifiedMessage) -> bool {
    message.from.starts_with("discord:")
}

impl App {
    /// Checks that a post to Discord has somewhere to go, before it is
    /// stored.
    ///
    /// # Errors
    /// [`AppError::DiscordOff`] or [`AppError::NoDiscordChannel`].
    pub(super) async fn check_discord_route(
        &self,
        message: &UnifiedMessage,
    ) -> Result<(), AppError> {
        let discord = &self.config.discord;
        if discord.token.is_none() {
            return Err(AppError::DiscordOff);
        }
        if let Some(parent) = message.reply_to {
            let store = Arc::clone(&self.store);
            if blocking(move || store.receipt(parent)).await?.is_some() {
                return Ok(());
            }
        }
        let devlog_route = message.kind == Kind::Devlog
            && (discord.devlog_channel.is_some() || discord.devlog_webhook.is_some());
        if discord.swarm_channel.is_none() && !devlog_route {
            return Err(AppError::NoDiscordChannel);
        }
        Ok(())
    }

    /// Answers message `id` with `body`, where the message came from: a
    /// message from Discord gets its answer in that channel (a Discord
    /// reply to the command's receipt); a message from an agent gets it in
    /// that agent's inbox, and one from a person (`person:NAME`) in that
    /// person's inbox, with `reply_to` set.
    ///
    /// `caller` says who answers: an agent answers only messages sent to
    /// it; a person answers a message in their own inbox as themselves,
    /// and any other message as its only recipient.
    ///
    /// # Errors
    /// [`AppError`] saying what to do; nothing is stored then.
    pub async fn reply(
        &self,
        id: MessageId,
        body: String,
        caller: Replier<'_>,
        priority: Priority,
        files: &[std::path::PathBuf],
    ) -> Result<UnifiedMessage, AppError> {
        let (parent, deliveries) = self.read(id).await?;
        let recipients: Vec<&str> = deliveries.iter().map(|d| d.agent.as_str()).collect();
        let from: String = match caller {
            Replier::Agent(text) => {
                let me = self.registry.lookup(text)?.id.clone();
                if !recipients.contains(&me.as_str()) {
                    return Err(AppError::NotYoursToAnswer { id, caller: me });
                }
                me.to_string()
            }
            Replier::Person(me) if recipients.contains(&me.sender().as_str()) => me.sender(),
            Replier::Person(_) => match recipients.as_slice() {
                [one] => (*one).to_owned(),
                _ => {
                    return Err(AppError::AckNeedsAgent {
                        id,
                        agents: recipients.join(", "),
                    });
                }
            },
        };
        let by_agent = from.parse::<AgentId>().is_ok();
        let (to, kind) = if came_from_discord(&parent) {
            (Recipient::Discord, Kind::Report)
        } else if let Some(person) = PersonName::from_sender(&parent.from) {
            let kind = if by_agent { Kind::Report } else { Kind::Human };
            (Recipient::Person(person), kind)
        } else if let Some(agent) = parent
            .from
            .parse::<AgentId>()
            .ok()
            .filter(|a| self.registry.get(a).is_ok())
        {
            let kind = if by_agent {
                Kind::AgentToAgent
            } else {
                Kind::Human
            };
            (Recipient::Agent(agent), kind)
        } else {
            return Err(AppError::NowhereToReply {
                id,
                from: parent.from,
            });
        };
        self.send_with_files(
            SendRequest {
                draft: Draft {
                    from,
                    to,
                    kind,
                    priority,
                    body,
                    tags: Vec::new(),
                    reply_to: Some(id),
                },
                via: Via::Auto,
            },
            files,
        )
        .await
    }

    /// Records the receipt a Discord command owes for message `id`, and
    /// wakes whoever answers receipts.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn owe_receipt(&self, receipt: Receipt) -> Result<(), AppError> {
        let id = receipt.message_id;
        let store = Arc::clone(&self.store);
        blocking(move || store.owe_receipt(&receipt)).await?;
        self.events.publish(Event::ReceiptOwed { message_id: id });
        Ok(())
    }

    /// The receipts not answered yet, oldest first.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn receipts_owed(&self) -> Result<Vec<Receipt>, AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.receipts_owed()).await?)
    }

    /// Moves a receipt on: the reply now says it is late, or it is done.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn settle_receipt(&self, id: MessageId, state: ReceiptState) -> Result<(), AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.settle_receipt(id, state)).await?)
    }

    /// The agent whose Discord thread `channel` is, if it is one.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn thread_agent(&self, channel: u64) -> Result<Option<AgentId>, AppError> {
        let store = Arc::clone(&self.store);
        let agent = blocking(move || store.thread_agent(channel)).await?;
        Ok(agent.and_then(|a| a.parse().ok()))
    }
}

impl App {
    /// Saves a file a person sent with a message in `agent`'s workspace
    /// (`inbox/files/`), for the message to name. Checked against
    /// `limits.max_attachment_bytes` first: a file too big writes nothing.
    ///
    /// # Errors
    /// [`AppError::AttachmentTooLarge`], an unknown agent, or I/O.
    pub async fn attach(
        &self,
        agent: &AgentId,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<std::path::PathBuf, AppError> {
        let max = self.config.limits.max_attachment_bytes;
        if bytes.len() > max {
            return Err(AppError::AttachmentTooLarge {
                size: bytes.len(),
                max,
            });
        }
        let agent = self.registry.get(agent)?.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || {
            crate::delivery::inbox::write_attachment(&agent, &name, &bytes)
        })
        .await
        .map_err(|_| AppError::Store(crate::store::StoreError::Interrupted))?
        .map_err(|e| AppError::Attachment(e.reason))
    }
}

/// What a webhook event became.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum HookOutcome {
    /// A new message to an agent.
    Sent {
        message_id: MessageId,
        agent: AgentId,
    },
    /// No route matches: recorded, nothing sent.
    Unrouted,
    /// This delivery id came before; it made this message (if any).
    Duplicate { message_id: Option<MessageId> },
    /// This body came before under another delivery id, within
    /// [`HOOK_REPLAY_WINDOW`]: a replay, nothing stored.
    Replay {
        #[serde(with = "crate::model::time::ms")]
        first_received_at: i64,
    },
}

/// How long a webhook body is remembered: the same signed body sent again
/// within it, under a new delivery id, is refused as a replay.
pub const HOOK_REPLAY_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl App {
    /// Turns a webhook event into a message (or none, `draft` `None`),
    /// once per (`source`, `delivery_id`), and once per body (its hash,
    /// `body_hash`) within [`HOOK_REPLAY_WINDOW`]: the records and the
    /// message are stored in one transaction.
    ///
    /// # Errors
    /// [`AppError`]: a bad draft or a store failure; nothing is stored.
    pub async fn accept_hook(
        &self,
        source: &str,
        delivery_id: &str,
        body_hash: &str,
        draft: Option<Draft>,
    ) -> Result<HookOutcome, AppError> {
        let submission = match draft {
            Some(draft) => {
                let Recipient::Agent(agent) = &draft.to else {
                    return Err(AppError::NoAgents);
                };
                let agent = self.registry.get(agent)?.id.clone();
                let message = draft.build(self.config.limits.max_body_bytes)?;
                Some(crate::store::Submission {
                    message,
                    via: Via::Auto,
                    to: vec![crate::model::Destination::Agent(agent)],
                    audit: None,
                })
            }
            None => None,
        };
        let store = Arc::clone(&self.store);
        let (src, id, hash, sub) = (
            source.to_owned(),
            delivery_id.to_owned(),
            body_hash.to_owned(),
            submission.clone(),
        );
        let window = i64::try_from(HOOK_REPLAY_WINDOW.as_millis()).unwrap_or(i64::MAX);
        let since = crate::store::now_ms().saturating_sub(window);
        let seen =
            blocking(move || store.accept_hook(&src, &id, &hash, since, sub.as_ref())).await?;
        match seen {
            HookSeen::New => {}
            HookSeen::Duplicate(message_id) => return Ok(HookOutcome::Duplicate { message_id }),
            HookSeen::Replay { received_at } => {
                return Ok(HookOutcome::Replay {
                    first_received_at: received_at,
                });
            }
        }
        let Some(s) = submission else {
            return Ok(HookOutcome::Unrouted);
        };
        let message = s.message;
        self.accepted(&message, 1);
        let Recipient::Agent(agent) = message.to else {
            return Ok(HookOutcome::Unrouted);
        };
        Ok(HookOutcome::Sent {
            message_id: message.id,
            agent,
        })
    }
}
