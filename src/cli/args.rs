//! The command line's shape: every command, option and parser (clap).

#![expect(
    clippy::doc_markdown,
    reason = "doc comments on arguments are --help text, where backticks would show"
)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use acp::model::{Kind, MessageId, Priority, Via};

use super::backup;

/// Agent Cellphone: send messages to a swarm of AI coding agents and deliver
/// them durably (chat window or file inbox).
#[derive(Debug, Parser)]
#[command(name = "acp", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    /// The acp root directory (config/, data/, agent_workspaces/...).
    #[arg(long, global = true, env = "ACP_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug). ACP_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a working root with commented example config (safe to re-run).
    Init {
        /// How many agents (Agent-1 ... Agent-N) the example config names.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
        agents: u32,
        /// Agents run in this tmux session, one window each named after
        /// the agent: they get tmux delivery (then the inbox).
        #[arg(long, value_name = "SESSION")]
        tmux: Option<String>,
    },
    /// Send a message to one agent, or post it to Discord (--to discord);
    /// prints its id once it is stored.
    Send {
        /// The agent to send to, e.g. Agent-2; or discord: the agent's
        /// thread or the swarm channel.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Answer a message where it came from: its Discord channel (as a reply
    /// to the command's receipt), or the inbox of the agent that sent it.
    Reply(ReplyArgs),
    /// Devlogs: post one now, list what was posted where.
    #[command(subcommand)]
    Devlog(DevlogCommand),
    /// Send a message to every agent.
    Broadcast {
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Queue depth by state and priority, each agent's last delivery, failures.
    Status,
    /// Follow the swarm live: messages sent and answered, deliveries,
    /// failures, acknowledgements, agents' states and prompts, one line
    /// each (--json: one object per line), until Ctrl-C. Works beside `acp
    /// run`, from any shell.
    Watch {
        /// Replay what happened in this last stretch first (e.g. 10m, 2h,
        /// 1d; at most a week back), then follow.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        since: Option<std::time::Duration>,
    },
    /// List the configured agents with roles and delivery state.
    Agents,
    /// Agent roles and the captain.
    #[command(subcommand)]
    Roles(RolesCommand),
    /// An agent's messages: list, read, acknowledge.
    #[command(subcommand)]
    Inbox(InboxCommand),
    /// Screen coordinates of the agents' chat inputs.
    #[command(subcommand)]
    Coords(CoordsCommand),
    /// Terminal agents in tmux.
    #[command(subcommand)]
    Tmux(TmuxCommand),
    /// The audit log of administrative actions, newest first.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Run the service: deliver queued messages (and run the Discord bot
    /// when DISCORD_TOKEN is set) until SIGINT or SIGTERM.
    Run {
        /// This machine's name in a swarm of several ([cluster]): it
        /// delivers to the agents configured with this node (default:
        /// ACP_NODE, or [cluster] node, or the hub).
        #[arg(long)]
        node: Option<String>,
    },
    /// Run only the Discord bot (deliveries stay with `acp run`).
    Bot,
    /// Serve MCP on standard input and output for one agent (add it to
    /// Claude Code, Codex or Cursor as a stdio server).
    Mcp {
        /// The agent it speaks for (default: $ACP_AGENT).
        #[arg(long)]
        agent: Option<String>,
    },
    /// Backups: create, list, verify, restore, prune, drill.
    Backup(BackupArgs),
    /// Check everything acp depends on and say what to fix.
    Doctor,
    /// The hook Claude Code and Codex run (JSON event on standard input):
    /// tells acp the agent's state, and asks Discord about permission
    /// requests, printing the decision. See the README for the settings.
    Hook,
    /// Allow a prompt an agent waits on (`acp prompts` lists them).
    Approve {
        /// The prompt's id.
        id: String,
        /// Allow it for the rest of the agent's session, where it can.
        #[arg(long)]
        session: bool,
    },
    /// Deny a prompt an agent waits on, telling it why.
    Deny {
        /// The prompt's id.
        id: String,
        /// Told to the agent.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Prompts agents wait on, and every agent's state.
    Prompts,
    /// Print the shell completion script for SHELL (`make install` puts it
    /// where the shell finds it), e.g. `acp completions bash >
    /// ~/.local/share/bash-completion/completions/acp`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), from the same definitions as --help:
    /// `acp man | man -l -`.
    Man,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BackupArgs {
    /// How a long run shows its progress: a bar on a terminal (auto), one
    /// JSON object per line on stderr for scripts (json), or nothing.
    #[arg(long, global = true, value_enum, default_value_t = super::progress::ProgressMode::Auto)]
    pub progress: super::progress::ProgressMode,
    #[command(subcommand)]
    pub cmd: BackupCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub(crate) enum BackupCommand {
    /// Take a backup now (while `acp run` runs, too).
    Create {
        /// full, incremental (changes since the last backup) or
        /// differential (changes since the last full one).
        #[arg(long, default_value = "incremental", value_parser = backup::parse_kind)]
        kind: acp::app::BackupKind,
    },
    /// Every backup, oldest first.
    List,
    /// Re-read and re-hash backups; report each damaged or missing file
    /// (exit 1 if any).
    Verify {
        /// The backup (id, unique prefix or latest); default: all.
        id: Option<String>,
        /// Every backup (the default).
        #[arg(long)]
        all: bool,
    },
    /// Restore a backup, or the state at a point in time.
    Restore {
        /// The backup: id, unique prefix, or latest.
        #[arg(conflicts_with = "at")]
        id: Option<String>,
        /// Restore the newest backup taken at or before this time
        /// (RFC 3339, or local "YYYY-MM-DD HH:MM").
        #[arg(long, value_parser = backup::parse_at)]
        at: Option<jiff::Timestamp>,
        /// Into this new or empty directory.
        #[arg(long, value_name = "DIR", conflicts_with = "in_place")]
        to: Option<PathBuf>,
        /// Over the live state (stop `acp run` first). The replaced state
        /// is kept in .acp-replaced-<time>/ under the root.
        #[arg(long)]
        in_place: bool,
        /// With --to: restore the intact files of a damaged backup.
        #[arg(long)]
        partial: bool,
    },
    /// Delete backups the retention policy ([backup] keep_*) does not keep,
    /// then their unused data. Never breaks a kept backup's chain.
    Prune {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Disaster-recovery drill: restore the latest backup into a temporary
    /// directory, verify it, and report recovery time and data age.
    Drill,
    /// Print a new encryption key for ACP_BACKUP_KEY (keep a copy off this
    /// machine: without it, encrypted backups cannot be read).
    Keygen,
}

#[derive(Debug, Args)]
pub(crate) struct ReplyArgs {
    /// The message to answer.
    #[arg(value_parser = parse_id)]
    pub id: MessageId,
    /// Who answers (default: $ACP_AGENT; else you, for a message in your
    /// inbox, or the message's only recipient).
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long, default_value = "normal", value_parser = parse_priority)]
    pub priority: Priority,
    /// A file to post with the answer (repeatable; answers on Discord only).
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Wait until it is posted or delivered, and print where.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// The answer, or - to read it from standard input.
    pub message: String,
}

#[derive(Debug, Args)]
pub(crate) struct SendOpts {
    /// Who sends it (default: $ACP_AGENT; else you, as person:NAME with
    /// NAME from $ACP_OPERATOR or your login name). Without ACP_AGENT:
    /// an agent, or a person (alice or person:alice).
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long, default_value = "normal", value_parser = parse_priority)]
    pub priority: Priority,
    /// agent_to_agent, system, onboarding or human (default: agent_to_agent
    /// from an agent, human otherwise; broadcast for `acp broadcast`).
    #[arg(long, value_parser = parse_kind)]
    pub kind: Option<Kind>,
    /// auto (the agent's configured order), inbox or gui (that method only).
    #[arg(long, default_value = "auto", value_parser = parse_via)]
    pub via: Via,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// The id of the message this answers.
    #[arg(long, value_parser = parse_id)]
    pub reply_to: Option<MessageId>,
    /// A file to post with it (repeatable; with --to discord only).
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Wait for the delivery outcome and print it (exit 1 if it failed).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// The message text, or - to read it from standard input.
    pub message: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TmuxCommand {
    /// Show what tmux delivery sees in PANE for AGENT (the guard's
    /// verdict, idle or busy) and the line that attaches it in
    /// config/acp.toml.
    Attach {
        agent: String,
        /// session:window.pane, or a pane id such as %3.
        pane: String,
        /// A named tmux server (tmux -L NAME).
        #[arg(long)]
        socket: Option<String>,
        /// Write the line into the agent's table (when the guard accepts
        /// the pane).
        #[arg(long)]
        save: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DevlogCommand {
    /// Post a devlog file (under devlogs/) to Discord now, unless this
    /// content was posted before; `acp run` sends it.
    Post {
        /// The file: a path, or one relative to devlogs/.
        file: PathBuf,
        /// Wait until it is posted, and print where.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up waiting after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Devlog versions, newest first, and where each was posted.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RolesCommand {
    /// Show each agent's role and the captain.
    List,
    /// Assign a role to an agent (overrides config/acp.toml).
    Set { agent: String, role: String },
    /// Remove an assigned role (the configured one applies again).
    Clear { agent: String },
    /// Designate the captain.
    Captain { agent: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum InboxCommand {
    /// Messages, newest first: an agent's (--agent, or $ACP_AGENT), or a
    /// person's (--person; by default yours: answers to what you sent).
    List {
        /// The agent whose messages to list, e.g. Agent-2.
        #[arg(long, conflicts_with = "person")]
        agent: Option<String>,
        /// The person whose inbox to list (default: you, that is
        /// $ACP_OPERATOR or your login name).
        #[arg(long, value_name = "NAME")]
        person: Option<String>,
        /// Only delivered messages not yet acknowledged.
        #[arg(long)]
        unread: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show a message and its delivery history (does not acknowledge it).
    Read {
        #[arg(value_parser = parse_id)]
        id: MessageId,
    },
    /// Acknowledge a message: the agent has read and acted on it, or the
    /// person has read the answer in their inbox.
    Ack {
        #[arg(value_parser = parse_id)]
        id: MessageId,
        /// The recipient acknowledging (for a broadcast, unless ACP_AGENT
        /// names one of its recipients).
        #[arg(long, conflicts_with = "person")]
        agent: Option<String>,
        /// The person whose inbox holds it (default: the message's only
        /// recipient).
        #[arg(long, value_name = "NAME")]
        person: Option<String>,
        /// A person acknowledging for the agent (recorded in the audit log
        /// as done by you).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CoordsCommand {
    /// Check every point against the monitor layout (and the live screen).
    Validate,
    /// Print the mouse position after a countdown (to point at an input).
    Capture {
        agent: String,
        /// Seconds to move the mouse into place.
        #[arg(long, default_value_t = 3)]
        countdown: u64,
        /// Capture the onboarding input instead of the chat input.
        #[arg(long)]
        onboarding: bool,
        /// Write it into config/coordinates.json (the rest is kept).
        #[arg(long)]
        save: bool,
    },
    /// Move the mouse to an agent's point and report the window there,
    /// without clicking or typing.
    Test {
        agent: String,
        /// Test the onboarding input instead of the chat input.
        #[arg(long)]
        onboarding: bool,
        /// Do not move the mouse; only look.
        #[arg(long)]
        no_move: bool,
    },
}

fn parse_priority(s: &str) -> Result<Priority, String> {
    s.parse()
        .map_err(|e: acp::model::MessageError| e.to_string())
}
fn parse_kind(s: &str) -> Result<Kind, String> {
    s.parse()
        .map_err(|e: acp::model::MessageError| e.to_string())
}
fn parse_via(s: &str) -> Result<Via, String> {
    s.parse()
        .map_err(|_| format!("unknown method {s:?}: use auto, inbox or gui"))
}
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{s:?} is not a duration: write how far back, like 30s, 10m, 2h or 1d");
    // A Span, for days: a day here is 24 hours.
    let span: jiff::Span = s.trim().parse().map_err(|_| bad())?;
    let span = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| bad())?;
    std::time::Duration::try_from(span).map_err(|_| bad())
}
fn parse_id(s: &str) -> Result<MessageId, String> {
    s.parse()
        .map_err(|e: acp::model::MessageError| e.to_string())
}
