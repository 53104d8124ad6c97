//! Several machines, one swarm, through NATS JetStream (`[cluster]`).
//!
//! The hub holds the store of record. Its dispatcher hands each delivery
//! for an agent of another machine to that machine's subject
//! (`acp.SWARM.node.NODE`, the `cluster` method); the machine stores it in
//! its own store (once, however often JetStream redelivers it), acks it,
//! delivers it with its own methods (gui, tmux, inbox) and sends the
//! outcome back on `acp.SWARM.hub.NODE`, where the hub records it: the
//! receipt, `/status` and the page tell the truth for every machine.
//! Heartbeats go to a key-value bucket whose entries expire.
//!
//! - [`link`]: the connection, credentials, and the names of subjects,
//!   streams, consumers and the bucket; [`error`]: why it failed, and
//!   what to do.
//! - [`forward`]: the `cluster` delivery method (hub to node, and node to
//!   hub for messages sent on a node).
//! - [`node`]: a node's side: take handed work, report outcomes, beat.
//! - [`hub`]: the hub's side: set up the streams, record outcomes and
//!   heartbeats, hand again what JetStream dropped.
//! - [`attention`]: agents' states and prompts, from a node to the hub's
//!   bot, and the hub's decisions back, on the same subjects.

pub mod attention;
pub mod error;
pub mod forward;
pub mod hub;
pub(crate) mod intake;
pub mod link;
pub mod node;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::model::{AgentId, Decided, NodeName, Prompt, PromptId, UnifiedMessage, Via};
use crate::store::cluster::{Handed, RemoteOutcome};
use crate::store::relay::StateReport;

pub use error::{ClusterError, TlsCause};
pub use link::{Link, Names};

/// What travels through JetStream, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Envelope {
    /// Hub to node: deliver this to one of your agents.
    Handed(Handed),
    /// Node to hub: how a handed delivery ended.
    Outcome(RemoteOutcome),
    /// Node to hub: a message sent on the node (an agent's `acp send`),
    /// for the hub to store and route.
    Submitted {
        message: UnifiedMessage,
        via: Via,
        agent: crate::model::AgentId,
    },
    /// Node to hub: one of its agents' state changed.
    State(StateReport),
    /// Node to hub: one of its agents asks a person (undecided), and
    /// again once the prompt is final there, with the decision the agent
    /// got (and, for a pane, what was done there). The hub keeps the id.
    Prompted(Prompt),
    /// Hub to node: the decision the hub kept on one of the node's
    /// prompts.
    Decision {
        prompt: PromptId,
        agent: AgentId,
        decided: Decided,
    },
    /// Hub to node: start agent `agent` in `project` (the node's own
    /// `[[projects]]` table says with what command: none travels).
    Spawn {
        agent: AgentId,
        project: String,
        by: String,
    },
    /// Node to hub: the agent is started (its pane), or why not.
    Spawned {
        agent: AgentId,
        result: Result<String, String>,
    },
    /// Hub to node: agent `agent` was stopped: close its window, fail
    /// what waits for it there.
    Stop { agent: AgentId, by: String },
}

/// A node's side of starting agents: the core's (it opens the window and
/// records the agent there), handed to the node by `acp run`.
pub trait Spawner: Send + Sync {
    /// Starts `agent` in `project` on this machine (again: the same
    /// answer for an agent already started); its pane, or why not.
    fn spawn(
        &self,
        agent: AgentId,
        project: String,
        by: String,
    ) -> BoxFuture<'_, Result<String, String>>;
    /// Stops `agent` on this machine (nothing, if it is already).
    fn stop(&self, agent: AgentId, by: String) -> BoxFuture<'_, Result<(), String>>;
}

/// What the hub made of a node's report on one of its agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Stored (or already here).
    Stored,
    /// Refused for good, and why.
    Refused(String),
    /// Not stored now (the store failed): JetStream redelivers it.
    Later(String),
}

/// The hub's work on agents' states and prompts from nodes: the core's
/// (it writes their Discord posts and checks them as a door would),
/// handed to the hub by `acp run`.
pub trait Attention: Send + Sync {
    /// A node's agent changed state.
    fn state(&self, node: NodeName, report: StateReport) -> BoxFuture<'_, Taken>;
    /// A node's agent asks a person, or its prompt is final there.
    fn prompt(&self, node: NodeName, prompt: Prompt) -> BoxFuture<'_, Taken>;
}

/// What a heartbeat says, in the presence bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Beat {
    pub node: String,
    /// Milliseconds since the epoch, by the node's clock.
    pub at: i64,
    pub version: String,
    pub agents: Vec<String>,
}
