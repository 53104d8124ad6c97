//! The core's one error type, and the one decision every front door reads
//! from it: the caller's mistake, or the system's.

use crate::backup::BackupError;
use crate::config::ConfigError;
use crate::coords::CoordsError;
use crate::model::{AgentError, AgentId, DeliveryState, Destination, MessageError, MessageId};
use crate::store::StoreError;

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
    #[error(
        "message {id} is {agent}'s, and you are {caller} (ACP_AGENT): an agent acknowledges only \
         its own messages; a person can do it for {agent} with --by NAME"
    )]
    NotYours {
        id: MessageId,
        agent: Destination,
        caller: AgentId,
    },
    #[error("message {id} was not sent to {agent}")]
    NotRecipient { id: MessageId, agent: Destination },
    #[error(
        "message {id} is {state} for {agent}, not delivered yet: it can be acknowledged once \
         delivered"
    )]
    NotDelivered {
        id: MessageId,
        agent: Destination,
        state: DeliveryState,
    },
    #[error(transparent)]
    Prefix(#[from] crate::model::PrefixError),
    #[error(
        "message {id} has no failed delivery to retry ({states}): only a failed delivery is \
         queued again"
    )]
    NothingToRetry { id: MessageId, states: String },
    #[error(
        "message {id} was for {agent}, who is no longer in config/acp.toml: it cannot be \
         delivered. Add {agent} back to retry it, or send the text again to another agent"
    )]
    AgentGone { id: MessageId, agent: AgentId },
    #[error(
        "message {id} is for {agent}, who runs on {node}: a delivery is retried on the machine \
         that holds it; run `acp retry {id}` there"
    )]
    RetryElsewhere {
        id: MessageId,
        agent: AgentId,
        node: String,
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
    #[error("the scheduled backup failed: {0}")]
    ScheduledBackup(String),
    #[error(
        "acp run is already running for this root (pid {pid}): stop it first, or use another --root"
    )]
    ServiceRunning { pid: String },
    #[error(
        "acp run is running for this root (pid {pid}). An in-place restore replaces the store: \
         stop `acp run` first"
    )]
    InPlaceWhileRunning { pid: String },
    #[error(transparent)]
    Coords(#[from] CoordsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("cannot create the root: {0}")]
    Init(#[source] std::io::Error),
    /// The desktop cannot be looked at (no display, a display that does
    /// not answer): the machine's state, not the request.
    #[error("{0}")]
    Screen(String),
    #[error(
        "no coordinates for {0} in config/coordinates.json: run `acp coords capture {0} --save`"
    )]
    NoPoint(crate::model::AgentId),
    #[error("the store {path} was {how} while acp was using it")]
    StoreLost { path: String, how: &'static str },
    #[error(
        "Discord is not set up for this root (no DISCORD_TOKEN in .env): nothing can be posted \
         there. Put the bot's token in .env, or send to an agent with --to AGENT"
    )]
    DiscordOff,
    #[error(
        "nowhere to post on Discord: set discord.swarm_channel (a channel id) in \
         config/acp.toml, or answer a message that came from Discord with `acp reply ID`"
    )]
    NoDiscordChannel,
    #[error(
        "message {id} came from {from}, who is neither an agent, a person (person:NAME) nor on \
         Discord: there is nowhere to send an answer. Tell them another way, or post with `acp \
         send --to discord`"
    )]
    NowhereToReply { id: MessageId, from: String },
    #[error(
        "message {id} was not sent to {caller} (ACP_AGENT): an agent answers only its own \
         messages"
    )]
    NotYoursToAnswer { id: MessageId, caller: AgentId },
    #[error("no prompt {0}: `acp prompts` lists the prompts waiting")]
    NoPrompt(crate::model::PromptId),
    #[error("no schedule {0}: `acp schedule list` lists the schedules")]
    NoSchedule(i64),
    /// A cron expression that does not parse, with the field and column
    /// at fault (the doors show its caret in fixed-width text).
    #[error(transparent)]
    Cron(#[from] crate::model::schedule::CronSyntaxError),
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Started(#[from] super::spawn::StartedError),
    #[error("the MCP connection failed: {0}")]
    Mcp(String),
    #[error(
        "the file is {size} bytes, over the limit of {max} bytes (limits.max_attachment_bytes): \
         nothing was sent. Send a smaller file, or a link to it"
    )]
    AttachmentTooLarge { size: usize, max: usize },
    #[error("cannot save the file for the agent: {0}")]
    Attachment(String),
    #[error("cannot use the service lock {path}: {source}")]
    ServiceLock {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl AppError {
    /// Whether the caller's input was at fault (exit code 2, an ephemeral
    /// "fix this" reply) rather than the system.
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::Backup(e) => e.is_user_error(),
            // Refused credentials or subjects, TLS and JetStream settings
            // are the configuration's to fix; a server down or unreachable
            // is the system's.
            Self::Cluster(e) => !matches!(
                e,
                crate::cluster::ClusterError::Unreachable { .. }
                    | crate::cluster::ClusterError::NotListening { .. }
                    | crate::cluster::ClusterError::JetStream(_)
            ),
            Self::Store(_)
            | Self::WriterGone
            | Self::Dispatcher(_)
            | Self::BackupTask
            | Self::ScheduledBackup(_)
            | Self::ServiceRunning { .. }
            | Self::StoreLost { .. }
            | Self::Init(_)
            | Self::Screen(_)
            | Self::Attachment(_)
            | Self::Mcp(_)
            | Self::ServiceLock { .. } => false,
            _ => true,
        }
    }
}

/// A request a front door refuses as it stands (a bad flag, a missing
/// argument): shown as it is, the caller's to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Whether an error, or any error it wraps, is the caller's to fix (bad
/// input, a refused request) rather than the system's. The one decision
/// that exit codes (2 or 1) and Discord's replies (shown as is, or logged
/// with a reference) both read.
#[must_use]
pub fn is_user_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(app) = e.downcast_ref::<AppError>() {
            return app.is_user_error();
        }
        if let Some(backup) = e.downcast_ref::<BackupError>() {
            return backup.is_user_error();
        }
        if e.is::<Refused>()
            || e.is::<ConfigError>()
            || e.is::<CoordsError>()
            || e.is::<MessageError>()
            || e.is::<AgentError>()
            || e.is::<crate::model::PrefixError>()
        {
            return true;
        }
        next = e.source();
    }
    false
}
