//! The event bus: what happened to messages and backups, for whoever
//! listens (today the receipts that `App::follow` gives the CLI and
//! Discord) without any module calling another's internals.
//!
//! Events are best effort and in-process: a listener that falls behind loses
//! the oldest events (and is told how many), and events from other processes
//! do not arrive here. The store is the record; events are the prompt.

use serde::Serialize;
use tokio::sync::broadcast;

use crate::model::{AgentId, Destination, MethodName, NodeName};
use crate::model::{Kind, MessageId, Priority, Recipient};

/// Something that happened in the pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A message was stored and its deliveries queued.
    Accepted {
        message_id: MessageId,
        from: String,
        to: Recipient,
        kind: Kind,
        priority: Priority,
        deliveries: usize,
    },
    /// A delivery succeeded; `fell_back` lists the methods that failed first.
    Delivered {
        message_id: MessageId,
        agent: Destination,
        kind: Kind,
        method: MethodName,
        detail: String,
        fell_back: Vec<(MethodName, String)>,
    },
    /// A delivery was handed to the machine that runs the agent; its
    /// outcome follows as `Delivered` or `Failed` when that machine says.
    Forwarded {
        message_id: MessageId,
        agent: Destination,
        node: NodeName,
    },
    /// An attempt failed and will be retried.
    Retrying {
        message_id: MessageId,
        agent: Destination,
        attempt: u32,
        next_attempt_at: i64,
        error: String,
    },
    /// A delivery failed for good.
    Failed {
        message_id: MessageId,
        agent: Destination,
        attempts: u32,
        error: String,
    },
    /// A person queued a failed delivery again (`acp retry`); its
    /// outcome follows as for any delivery.
    Retried {
        message_id: MessageId,
        agent: Destination,
        by: String,
    },
    /// A recipient (an agent, a person's inbox) acknowledged a message.
    Acked {
        message_id: MessageId,
        agent: Destination,
        by: String,
    },
    /// A Discord command now owes a receipt for this message.
    ReceiptOwed { message_id: MessageId },
    /// A backup was committed (by a person or the schedule).
    BackupTaken {
        id: String,
        kind: String,
        files: u64,
        bytes: u64,
        duration_ms: u64,
    },
    /// A backup could not be taken.
    BackupFailed { kind: String, error: String },
    /// An agent's state changed.
    AgentState {
        agent: AgentId,
        state: crate::model::AgentState,
    },
    /// An agent asks a person (a permission, a question).
    PromptRaised {
        id: crate::model::PromptId,
        agent: AgentId,
    },
    /// A prompt was decided (the first decision; later ones are refused).
    PromptDecided {
        id: crate::model::PromptId,
        decision: crate::model::Decision,
        by: String,
    },
    /// A front door finished a command (a Discord slash command, an API
    /// call): its name, whether it went well, how long it took.
    Command {
        door: &'static str,
        name: String,
        ok: bool,
        ms: u64,
    },
}

impl Event {
    /// The message the event is about, if it is about one.
    #[must_use]
    pub fn message_id(&self) -> Option<MessageId> {
        match self {
            Self::Accepted { message_id, .. }
            | Self::Delivered { message_id, .. }
            | Self::Retrying { message_id, .. }
            | Self::Forwarded { message_id, .. }
            | Self::Failed { message_id, .. }
            | Self::Acked { message_id, .. }
            | Self::Retried { message_id, .. }
            | Self::ReceiptOwed { message_id } => Some(*message_id),
            Self::BackupTaken { .. }
            | Self::BackupFailed { .. }
            | Self::Command { .. }
            | Self::AgentState { .. }
            | Self::PromptRaised { .. }
            | Self::PromptDecided { .. } => None,
        }
    }
}

/// A cloneable handle to publish and subscribe.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl EventBus {
    /// A bus keeping up to `capacity` events for slow listeners.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
        }
    }

    /// Publishes an event; nobody listening is fine.
    pub(crate) fn publish(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// A new listener, seeing events published from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
