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
//!   streams, consumers and the bucket.
//! - [`forward`]: the `cluster` delivery method (hub to node, and node to
//!   hub for messages sent on a node).
//! - [`node`]: a node's side: take handed work, report outcomes, beat.
//! - [`hub`]: the hub's side: set up the streams, record outcomes and
//!   heartbeats, hand again what JetStream dropped.

pub mod forward;
pub mod hub;
pub(crate) mod intake;
pub mod link;
pub mod node;

use serde::{Deserialize, Serialize};

use crate::model::UnifiedMessage;
use crate::model::Via;
use crate::store::cluster::{Handed, RemoteOutcome};

pub use link::{ClusterError, Link, Names};

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
