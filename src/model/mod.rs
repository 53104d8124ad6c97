//! The model: the words every layer speaks. It imports nothing else of the
//! crate, so config, the store, delivery, backups, the core and every front
//! door can all use it without a cycle.
//!
//! - [`agent`]: agent ids (a strict pattern), agents and the registry.
//! - [`attention`]: an agent's state, the prompts it raises for a person,
//!   and the decisions on them.
//! - [`message`]: `UnifiedMessage`, `Draft`, ids, kinds, priorities, body
//!   limits.
//! - [`audit`]: how an audited action ended.
//! - [`delivery`]: method names, `Via`, failure kinds.
//! - [`time`]: times in JSON, RFC 3339 everywhere.
//! - [`gui`] and [`keys`]: an agent's keyboard-and-mouse settings, as data.
//! - [`tmux`]: an agent's tmux pane and idle detection, as data.
//! - [`node`]: the machines of a swarm (node names).
//! - [`pane`]: terminal agents' screens read by per-program profiles.
//! - [`prefix`]: ids given by a unique prefix, one resolver for every
//!   kind of id.
//! - [`person`]: people (`person:NAME`), who send from the command line
//!   or the API and get answers in their inbox.
//! - [`spawn`]: agents acp started in a project, as the store keeps them.
//! - [`schedule`]: stored schedules (cron expressions read in a zone) and
//!   their firings.

pub mod agent;
pub mod attention;
pub mod audit;
pub mod delivery;
pub mod gui;
pub mod keys;
pub mod message;
pub mod node;
pub mod pane;
pub mod person;
pub mod prefix;
pub mod schedule;
pub mod spawn;
pub mod time;
pub mod tmux;

pub use agent::{Agent, AgentError, AgentId, MAX_AGENT_ID_LEN, Registry};
pub use attention::{
    AgentState, Decided, Decision, Mentions, Press, Prompt, PromptId, PromptSource,
};
pub use audit::AuditOutcome;
pub use delivery::{
    AttemptOutcome, DISCORD, DeliveryError, DeliveryState, Destination, FailureKind, MethodName,
    UnknownMethod, UnknownState, Via,
};
pub use message::{
    DEFAULT_MAX_BODY_BYTES, Draft, Kind, MAX_SENDER_CHARS, MAX_TAG_CHARS, MAX_TAGS, MessageError,
    MessageId, Priority, Recipient, UnifiedMessage, check_body,
};
pub use node::{InvalidNodeName, NodeName};
pub use person::{InvalidPersonName, PERSON_PREFIX, PersonName};
pub use prefix::{IdPrefix, PrefixError};
pub use spawn::{SpawnState, Spawned};
