//! The command line's shape: every command, option and parser (clap).
//!
//! Every argument has a help text, every command examples after its help
//! (`after_help`), and every option with a fixed set of values lists them:
//! `docs_check` walks the whole tree and fails on a gap, and runs every
//! example through this parser.

#![expect(
    clippy::doc_markdown,
    reason = "doc comments on arguments are --help text, where backticks would show"
)]

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

use acp::model::{Kind, Priority, Via};

use super::backup;
use super::progress::ProgressMode;

/// The heading of the options every command takes.
const GLOBAL: &str = "Global options";

/// Agent Cellphone: send messages to a swarm of AI coding agents and deliver
/// them durably (chat window, tmux pane or file inbox).
#[derive(Debug, Parser)]
#[command(
    name = "acp",
    version,
    about,
    long_about = None,
    after_help = "Examples:
  acp init --agents 4                      # a root in the current directory
  acp run                                  # the service: deliveries, Discord, HTTP
  acp send --to Agent-2 --wait \"run the tests\"
  acp status
  acp --root ~/swarm inbox list --agent Agent-2

The guide: docs/ beside the README, or `acp COMMAND --help`."
)]
pub(crate) struct Cli {
    /// The acp root directory (config/, data/, agent_workspaces/...).
    /// Default: the nearest directory at or above this one that holds
    /// config/acp.toml, else this one.
    #[arg(long, global = true, env = "ACP_ROOT", value_name = "DIR", help_heading = GLOBAL)]
    pub root: Option<PathBuf>,
    /// Print JSON instead of text (errors too, on stdout).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug). ACP_LOG overrides;
    /// ACP_LOG_FORMAT=json writes one JSON object per line.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,
    /// Append the log to this file (created 0600) instead of stderr, e.g.
    /// for `acp run` without systemd.
    #[arg(long, global = true, value_name = "PATH", help_heading = GLOBAL)]
    pub log_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a working root with commented example config (safe to re-run).
    #[command(after_help = "Examples:
  acp init                                 # Agent-1 ... Agent-8 in the current directory
  acp --root ~/swarm init --agents 4
  acp init --tmux swarm                    # agents in tmux windows swarm:Agent-1 ...")]
    Init {
        /// How many agents (Agent-1 ... Agent-N) the example config names.
        #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
        agents: u32,
        /// Agents run in this tmux session, one window each named after
        /// the agent: they get tmux delivery (then the inbox).
        #[arg(long, value_name = "SESSION")]
        tmux: Option<String>,
    },
    /// Send a message to one agent, or post it to Discord (--to discord);
    /// prints its id once it is stored.
    #[command(after_help = "Examples:
  acp send --to Agent-2 \"migrate the users table\"
  acp send --to Agent-2 --priority urgent --wait \"CI is red on main\"
  git log -3 | acp send --to Agent-4 --tag review -
  acp send --to discord \"blocked on the API key; need a human\"
  acp send --to discord --file build.log \"the build log\"")]
    Send {
        /// The agent to send to, e.g. Agent-2; or discord: the agent's
        /// thread or the swarm channel.
        #[arg(long, value_name = "AGENT")]
        to: String,
        /// A file to post with it (repeatable; with --to discord only).
        #[arg(long = "file", value_name = "PATH")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Answer a message where it came from: its Discord channel (as a reply
    /// to the command's receipt), or the inbox of the agent that sent it.
    #[command(after_help = "Examples:
  acp reply 01JDQ3Z5X8J6Y4F2K9M0N1P2Q3 \"done: the table is migrated\"
  ACP_AGENT=Agent-3 acp reply 01JDQ3Z5X8J6Y4F2K9M0N1P2Q3 --wait \"on it\"
  acp reply 01JDQ3Z5X8J6Y4F2K9M0N1P2Q3 --file screenshot.png \"here it is\"

The id is in the inbox file's name and header.")]
    Reply(ReplyArgs),
    /// Queue a failed delivery again: message ID's, or with --failed every
    /// failed one. The attempts made stay in its history; `acp run` (or
    /// this command, when none runs) delivers it as any message.
    #[command(after_help = "Examples:
  acp retry 01JDQ3Z5X8J6
  acp retry 01JDQ3Z5X8J6 --agent Agent-2 --wait
  acp retry --failed --agent Agent-2 --since 2h")]
    Retry(RetryArgs),
    /// Devlogs: post one now, list what was posted where.
    #[command(
        subcommand,
        after_help = "Examples:
  acp devlog post devlogs/Agent-3/2026-12-01-parser.md
  acp devlog list --limit 5"
    )]
    Devlog(DevlogCommand),
    /// Send a message to every agent.
    #[command(after_help = "Examples:
  acp broadcast \"stand-up in 5 minutes: post a devlog\"
  acp broadcast --kind system --priority critical \"stop: main is frozen\"")]
    Broadcast {
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Queue depth by state and priority, each agent's last delivery, failures.
    #[command(after_help = "Examples:
  acp status
  acp --json status")]
    Status,
    /// Follow the swarm live: messages sent and answered, deliveries,
    /// failures, acknowledgements, agents' states and prompts, one line
    /// each (--json: one object per line), until Ctrl-C. Works beside `acp
    /// run`, from any shell.
    #[command(after_help = "Examples:
  acp watch
  acp watch --since 10m
  acp --json watch | jq -c 'select(.event == \"failed\")'")]
    Watch {
        /// Replay what happened in this last stretch first (e.g. 10m, 2h,
        /// 1d; at most a week back), then follow.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        since: Option<std::time::Duration>,
    },
    /// List the configured agents with roles and delivery state.
    #[command(after_help = "Examples:
  acp agents
  acp --json agents")]
    Agents,
    /// Start a new agent in a project ([[projects]] in config/acp.toml): a
    /// tmux window running the project's command, in its folder or a git
    /// worktree of its own; then its onboarding prompt and the task.
    #[command(after_help = "Examples:
  acp spawn web
  acp spawn web --task \"fix the login redirect\"
  acp spawn web --id web-login --task \"fix the login redirect\"")]
    Spawn {
        /// The project, as `name` in its [[projects]] table.
        #[arg(value_name = "PROJECT")]
        project: String,
        /// The first task, sent after the project's onboarding prompt.
        #[arg(long, value_name = "TEXT")]
        task: Option<String>,
        /// The new agent's id (default: PROJECT-N, the next number).
        #[arg(long, value_name = "AGENT")]
        id: Option<String>,
    },
    /// Restart an agent acp started: a new window in the same folder or
    /// worktree, its queued messages kept for it, its onboarding again.
    #[command(after_help = "Examples:
  acp restart web-2")]
    Restart {
        /// The agent, e.g. web-2.
        #[arg(value_name = "AGENT")]
        agent: String,
    },
    /// Stop an agent acp started: its window closed, its queued messages
    /// failed with the reason, retired (its history stays).
    #[command(after_help = "Examples:
  acp stop web-2
  acp stop web-2 --remove-worktree")]
    Stop {
        /// The agent, e.g. web-2.
        #[arg(value_name = "AGENT")]
        agent: String,
        /// Remove its git worktree too (refused while it has changes; its
        /// branch stays).
        #[arg(long)]
        remove_worktree: bool,
    },
    /// Agent roles and the captain.
    #[command(
        subcommand,
        after_help = "Examples:
  acp roles list
  acp roles set Agent-3 \"database migrations\"
  acp roles clear Agent-3
  acp roles captain Agent-1"
    )]
    Roles(RolesCommand),
    /// Stored schedules: messages `acp run` sends at the times a cron
    /// expression names, each firing recorded (sent, skipped, missed).
    #[command(
        subcommand,
        after_help = "Examples:
  acp schedule add --cron \"0 9 * * MON-FRI\" --to Agent-2 \"post your plan for today\"
  acp schedule list
  acp schedule firings 3
  acp schedule pause 3
  acp schedule remove 3"
    )]
    Schedule(ScheduleCommand),
    /// The store: its size per table, retention now, compaction.
    #[command(
        subcommand,
        after_help = "Examples:
  acp store stats
  acp store prune
  acp store compact"
    )]
    Store(StoreCommand),
    /// An agent's messages: list, read, acknowledge.
    #[command(
        subcommand,
        after_help = "Examples:
  acp inbox list --agent Agent-2 --unread
  acp inbox read 01JDQ3Z5X8J6Y4F2K9M0N1P2Q3
  ACP_AGENT=Agent-2 acp inbox ack 01JDQ3Z5X8J6Y4F2K9M0N1P2Q3"
    )]
    Inbox(InboxCommand),
    /// Screen coordinates of the agents' chat inputs.
    #[command(
        subcommand,
        after_help = "Examples:
  acp coords validate
  acp coords capture Agent-3 --save
  acp coords test Agent-3"
    )]
    Coords(CoordsCommand),
    /// Find the agents already running on this machine: tmux panes (every
    /// server in the tmux socket folder) running a known agent program,
    /// and Cursor or VS Code windows; print the tables that would add
    /// them, and write them with --save.
    #[command(after_help = "Examples:
  acp discover
  acp discover --save
  acp --json discover")]
    Discover {
        /// Append the new agents' tables to config/acp.toml (a running
        /// acp run picks them up).
        #[arg(long)]
        save: bool,
    },
    /// Terminal agents in tmux.
    #[command(
        subcommand,
        after_help = "Examples:
  acp tmux attach Agent-5 swarm:Agent-5.0
  acp tmux attach Agent-5 %3 --save"
    )]
    Tmux(TmuxCommand),
    /// The audit log of administrative actions, newest first.
    #[command(after_help = "Examples:
  acp audit
  acp --json audit --limit 200")]
    Audit {
        /// How many entries to show.
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: usize,
    },
    /// Run the service: deliver queued messages (and run the Discord bot
    /// when DISCORD_TOKEN is set) until SIGINT or SIGTERM.
    #[command(after_help = "Examples:
  acp run
  acp --root ~/swarm run -v
  acp run --node desk-2                    # a node of a swarm ([cluster])")]
    Run {
        /// This machine's name in a swarm of several ([cluster]): it
        /// delivers to the agents configured with this node (default:
        /// ACP_NODE, or [cluster] node, or the hub).
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
    },
    /// Run only the Discord bot (deliveries stay with `acp run`).
    #[command(after_help = "Examples:
  acp bot")]
    Bot,
    /// `acp run` on this root as a systemd service: install, status,
    /// uninstall.
    #[command(
        subcommand,
        after_help = "Examples:
  acp service install
  acp service status"
    )]
    Service(ServiceCommand),
    /// Serve MCP on standard input and output for one agent (add it to
    /// Claude Code, Codex or Cursor as a stdio server).
    #[command(after_help = "Examples:
  acp mcp --agent Agent-3
  claude mcp add acp -- acp --root /home/me/swarm mcp --agent Agent-3")]
    Mcp {
        /// The agent it speaks for (default: $ACP_AGENT).
        #[arg(long, value_name = "AGENT")]
        agent: Option<String>,
    },
    /// Backups: create, list, verify, restore, prune, drill.
    #[command(
        subcommand,
        after_help = "Examples:
  acp backup create --kind full
  acp backup list
  acp backup verify --all
  acp backup restore latest --to /tmp/acp-restore
  acp backup drill"
    )]
    Backup(BackupCommand),
    /// Check everything acp depends on and say what to fix.
    #[command(after_help = "Examples:
  acp doctor
  acp --json doctor")]
    Doctor,
    /// The configuration in effect.
    #[command(
        subcommand,
        after_help = "Examples:
  acp config show"
    )]
    Config(ConfigCommand),
    /// The hook Claude Code and Codex run: the agent's state, and its
    /// permission requests decided from Discord.
    ///
    /// Reads the agent's event as JSON on standard input. A permission
    /// request becomes a prompt with buttons on Discord; the hook waits for
    /// the decision and prints it in the agent's format. Other events tell
    /// acp the agent's state. docs/prompts.md has the agents' settings.
    #[command(after_help = "Examples:
  ACP_AGENT=Agent-3 acp hook < event.json

Claude Code and Codex run it themselves, from their hook settings.")]
    Hook,
    /// Allow a prompt an agent waits on (`acp prompts` lists them).
    #[command(after_help = "Examples:
  acp approve 01JE4M8Q2W6Y0A3C5E7G9J1K3M
  acp approve 01JE4M8Q2W6Y0A3C5E7G9J1K3M --session")]
    Approve {
        /// The prompt's id, or a unique prefix of 8 or more characters.
        #[arg(value_name = "ID", value_parser = prompt_ref)]
        id: String,
        /// Allow it for the rest of the agent's session, where it can.
        #[arg(long)]
        session: bool,
    },
    /// Deny a prompt an agent waits on, telling it why.
    #[command(after_help = "Examples:
  acp deny 01JE4M8Q2W6Y0A3C5E7G9J1K3M --reason \"not on main: use a branch\"")]
    Deny {
        /// The prompt's id, or a unique prefix of 8 or more characters.
        #[arg(value_name = "ID", value_parser = prompt_ref)]
        id: String,
        /// Told to the agent.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Prompts agents wait on, and every agent's state.
    #[command(after_help = "Examples:
  acp prompts
  acp --json prompts")]
    Prompts,
    /// Print the shell completion script for SHELL (`make install` puts it
    /// where the shell finds it).
    #[command(after_help = "Examples:
  acp completions bash > ~/.local/share/bash-completion/completions/acp
  acp completions zsh > ~/.zfunc/_acp
  acp completions fish > ~/.config/fish/completions/acp.fish")]
    Completions {
        /// The shell to write the script for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), from the same definitions as --help.
    #[command(after_help = "Examples:
  acp man | man -l -")]
    Man,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCommand {
    /// Write a systemd unit that runs `acp run` on this root, then enable
    /// and start it (systemctl); where systemd does not answer, say what to
    /// run. The user's manager by default: it starts with your session,
    /// which has the display.
    #[command(after_help = "Examples:
  acp service install
  acp service install --print
  sudo acp service install --system")]
    Install {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Print the unit on standard output; install nothing.
        #[arg(long)]
        print: bool,
    },
    /// The unit's file, what systemd says of it, and whether `acp run`
    /// runs on this root (exit 1 if not).
    #[command(after_help = "Examples:
  acp service status
  acp --json service status")]
    Status {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Stop and disable the service, and remove its unit.
    #[command(after_help = "Examples:
  acp service uninstall
  acp service uninstall --system")]
    Uninstall {
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

/// Which systemd manager runs the service.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct ScopeArgs {
    /// Your own service manager (systemctl --user): the default.
    #[arg(long, conflicts_with = "system")]
    pub user: bool,
    /// The system's manager (/etc/systemd/system, needs root), running acp
    /// as the account that owns the root.
    #[arg(long)]
    pub system: bool,
}

/// `--progress`, for the backup commands that run long.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct ProgressArg {
    /// How a long run shows its progress: a bar on a terminal (auto), one
    /// JSON object per line on stderr for scripts (json), or nothing.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

#[derive(Debug, Clone, Subcommand)]
pub(crate) enum BackupCommand {
    /// Take a backup now (while `acp run` runs, too).
    #[command(after_help = "Examples:
  acp backup create
  acp backup create --kind full --progress json")]
    Create {
        /// What to back up.
        #[arg(long, default_value = "incremental", value_parser = backup_kind())]
        kind: acp::app::BackupKind,
        #[command(flatten)]
        progress: ProgressArg,
    },
    /// What `acp run` runs, in a process of its own, when its schedule
    /// says a backup is due: takes it and prunes, audited as `schedule`,
    /// and prints what it did as JSON. Does nothing when none is due.
    #[command(
        hide = true,
        after_help = "Examples:
  acp backup scheduled"
    )]
    Scheduled,
    /// Every backup, oldest first.
    #[command(after_help = "Examples:
  acp backup list
  acp --json backup list | head -1")]
    List,
    /// Re-read and re-hash backups; report each damaged or missing file
    /// (exit 1 if any).
    #[command(after_help = "Examples:
  acp backup verify
  acp backup verify latest
  acp backup verify 01JDQ40M2V7T5R3P1N9K8H6G4F")]
    Verify {
        /// The backup (id, unique prefix or latest); default: all.
        #[arg(value_name = "ID")]
        id: Option<String>,
        /// Every backup (the default).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        progress: ProgressArg,
    },
    /// Restore a backup, or the state at a point in time.
    #[command(after_help = "Examples:
  acp backup restore latest --to /tmp/acp-restore
  acp backup restore --at \"2026-11-25 14:00\" --to /tmp/acp-restore
  acp backup restore 01JDQ40M2V7T5R3P1N9K8H6G4F --to /tmp/r --partial
  acp backup restore latest --in-place     # stop `acp run` first")]
    Restore {
        /// The backup: id, unique prefix, or latest.
        #[arg(value_name = "ID", conflicts_with = "at")]
        id: Option<String>,
        /// Restore the newest backup taken at or before this time
        /// (RFC 3339, or local "YYYY-MM-DD HH:MM").
        #[arg(long, value_name = "TIME", value_parser = backup::parse_at)]
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
        #[command(flatten)]
        progress: ProgressArg,
    },
    /// Delete backups the retention policy ([backup] keep_*) does not keep,
    /// then their unused data. Never breaks a kept backup's chain.
    #[command(after_help = "Examples:
  acp backup prune --dry-run
  acp backup prune")]
    Prune {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Disaster-recovery drill: restore the latest backup into a temporary
    /// directory, verify it, and report recovery time and data age.
    #[command(after_help = "Examples:
  acp backup drill
  acp --json backup drill --progress none  # from cron")]
    Drill {
        #[command(flatten)]
        progress: ProgressArg,
    },
    /// Print a new encryption key for ACP_BACKUP_KEY (keep a copy off this
    /// machine: without it, encrypted backups cannot be read).
    #[command(after_help = "Examples:
  acp backup keygen >> .env                # then keep a copy somewhere safe")]
    Keygen,
}

impl BackupCommand {
    /// How this command shows its progress (those that run long take
    /// `--progress`; the others have nothing to show).
    pub(crate) fn progress(&self) -> ProgressMode {
        match self {
            Self::Create { progress, .. }
            | Self::Verify { progress, .. }
            | Self::Restore { progress, .. }
            | Self::Drill { progress } => progress.progress,
            Self::Scheduled | Self::List | Self::Prune { .. } | Self::Keygen => ProgressMode::None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Every setting in effect and where it came from (default, the file
    /// config/acp.toml with its line, an environment variable, a flag);
    /// secrets are masked.
    #[command(after_help = "Examples:
  acp config show
  acp --json config show")]
    Show,
}

#[derive(Debug, Args)]
pub(crate) struct RetryArgs {
    /// The message: its id, or a unique prefix of 8 or more characters.
    #[arg(
        value_name = "ID",
        value_parser = message_ref,
        required_unless_present = "failed",
        conflicts_with_all = ["failed", "since"]
    )]
    pub id: Option<String>,
    /// Every failed delivery (at most 1000 at once).
    #[arg(long)]
    pub failed: bool,
    /// Only the delivery to this agent (of ID, or with --failed).
    #[arg(long)]
    pub agent: Option<String>,
    /// With --failed: only deliveries that failed in the last DURATION
    /// (90s, 30m, 2h, 1d).
    #[arg(long, requires = "failed", value_parser = parse_since, value_name = "DURATION")]
    pub since: Option<std::time::Duration>,
    /// Wait for the new outcome and print it (exit 1 if it failed again).
    #[arg(long, conflicts_with = "failed")]
    pub wait: bool,
    /// With --wait: give up waiting after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub(crate) struct ReplyArgs {
    /// The message to answer: its id, or a unique prefix of 8 or more
    /// characters.
    #[arg(value_name = "ID", value_parser = message_ref)]
    pub id: String,
    /// Who answers (default: $ACP_AGENT; else you, for a message in your
    /// inbox, or the message's only recipient).
    #[arg(long, value_name = "AGENT")]
    pub from: Option<String>,
    /// Delivery priority: critical before urgent before normal.
    #[arg(long, default_value = "normal", value_parser = priority())]
    pub priority: Priority,
    /// A file to post with the answer (repeatable; answers on Discord only).
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Wait until it is posted or delivered, and print where.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, requires = "wait")]
    pub timeout: u64,
    /// The answer, or - to read it from standard input.
    #[arg(value_name = "MESSAGE")]
    pub message: String,
}

#[derive(Debug, Args)]
pub(crate) struct SendOpts {
    /// Who sends it (default: $ACP_AGENT; else you, as person:NAME with
    /// NAME from $ACP_OPERATOR or your login name). Without ACP_AGENT:
    /// an agent, or a person (alice or person:alice).
    #[arg(long, value_name = "NAME")]
    pub from: Option<String>,
    /// Delivery priority: critical before urgent before normal.
    #[arg(long, default_value = "normal", value_parser = priority())]
    pub priority: Priority,
    /// The kind of message (default: agent_to_agent from an agent, human
    /// otherwise; broadcast for `acp broadcast`; report to Discord).
    #[arg(long, value_parser = kind())]
    pub kind: Option<Kind>,
    /// Which delivery methods may carry it.
    #[arg(long, default_value = "auto", value_parser = via())]
    pub via: Via,
    /// A tag (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// The id of the message this answers (or a unique prefix of 8 or
    /// more characters).
    #[arg(long, value_name = "ID", value_parser = message_ref)]
    pub reply_to: Option<String>,
    /// Wait for the delivery outcome and print it (exit 1 if it failed).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, requires = "wait")]
    pub timeout: u64,
    /// The message text, or - to read it from standard input.
    #[arg(value_name = "MESSAGE")]
    pub message: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TmuxCommand {
    /// Show what tmux delivery sees in PANE for AGENT (the guard's
    /// verdict, idle or busy) and the line that attaches it in
    /// config/acp.toml.
    #[command(after_help = "Examples:
  acp tmux attach Agent-5 swarm:Agent-5.0
  acp tmux attach Agent-5 %3 --socket agents --save")]
    Attach {
        /// The agent to attach, e.g. Agent-5.
        agent: String,
        /// session:window.pane, or a pane id such as %3.
        pane: String,
        /// A named tmux server (tmux -L NAME).
        #[arg(long, value_name = "NAME")]
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
    #[command(after_help = "Examples:
  acp devlog post devlogs/Agent-3/2026-12-01-parser.md
  acp devlog post Agent-3/2026-12-01-parser.md --wait")]
    Post {
        /// The file: a path, or one relative to devlogs/.
        file: PathBuf,
        /// Wait until it is posted, and print where.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up waiting after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 60, requires = "wait")]
        timeout: u64,
    },
    /// Devlog versions, newest first, and where each was posted.
    #[command(after_help = "Examples:
  acp devlog list
  acp --json devlog list --limit 100")]
    List {
        /// How many versions to show.
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleCommand {
    /// Store a schedule; `acp run` sends TEXT at each due time.
    #[command(after_help = "Examples:
  acp schedule add --cron \"0 9 * * MON-FRI\" --to Agent-2 \"post your plan for today\"
  acp schedule add --cron \"*/30 * * * * *\" --to all --when-busy skip \"status?\"
  acp schedule add --cron \"0 18 * * *\" --to discord --catch-up \"end of day\"
  acp schedule add --cron \"0 9 * * *\" --to Agent-1 --wait-up-to 30m \"rebase on main\"

A cron expression is 5 fields (minute hour day-of-month month day-of-week),
or 6 with seconds first, read in the machine's time zone.")]
    Add {
        /// The cron expression, e.g. \"0 9 * * MON-FRI\" or \"*/5 * * * * *\".
        #[arg(long, value_name = "EXPR")]
        cron: String,
        /// An agent (e.g. Agent-2), all (every agent) or discord (the swarm
        /// channel).
        #[arg(long, value_name = "TARGET")]
        to: String,
        /// Delivery priority: critical before urgent before normal.
        #[arg(long, default_value = "normal", value_parser = priority())]
        priority: Priority,
        /// When the agent's pane is busy at the due time: wait (sent once
        /// it is idle, up to --wait-up-to; skipped after), skip (recorded
        /// as skipped), deliver (to its file inbox at once).
        #[arg(long, default_value = "wait", value_parser = ["wait", "skip", "deliver"])]
        when_busy: String,
        /// With --when-busy wait: how long to wait for the agent to go
        /// idle, e.g. 90s, 10m, 1h.
        #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = acp::model::schedule::parse_wait)]
        wait_up_to: std::time::Duration,
        /// Send the newest firing missed while acp run was down once when
        /// it starts again (default: only record them as missed).
        #[arg(long)]
        catch_up: bool,
        /// The text to send.
        #[arg(value_name = "TEXT")]
        text: String,
    },
    /// Each schedule: its expression and zone, target, last and next
    /// firing, and how many were sent, skipped and missed.
    #[command(after_help = "Examples:
  acp schedule list
  acp --json schedule list")]
    List,
    /// A schedule's firings, newest first: due time, outcome (sent,
    /// `caught_up`, skipped, missed, failed), message id, and why one
    /// failed or was skipped.
    #[command(after_help = "Examples:
  acp schedule firings 3
  acp schedule firings 3 --limit 100
  acp --json schedule firings 3")]
    Firings {
        /// The schedule's id, as `acp schedule list` shows it (a removed
        /// schedule's firings stay in the record).
        id: i64,
        /// How many firings to show, newest first.
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
    },
    /// Remove a schedule (its firings stay in the record).
    #[command(after_help = "Examples:
  acp schedule remove 3")]
    Remove {
        /// The schedule's id, as `acp schedule list` shows it.
        id: i64,
    },
    /// Stop firing a schedule until it is resumed.
    #[command(after_help = "Examples:
  acp schedule pause 3")]
    Pause {
        /// The schedule's id, as `acp schedule list` shows it.
        id: i64,
    },
    /// Fire a paused schedule again, from now on (none missed meanwhile).
    #[command(after_help = "Examples:
  acp schedule resume 3")]
    Resume {
        /// The schedule's id, as `acp schedule list` shows it.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum StoreCommand {
    /// Rows and bytes per table, the file's size and free space.
    #[command(after_help = "Examples:
  acp store stats
  acp --json store stats")]
    Stats,
    /// Remove now what [store] keep_days no longer keeps (acp run does
    /// it every hour), and give the space back.
    #[command(after_help = "Examples:
  acp store prune")]
    Prune,
    /// Rewrite the store file once so it gives space back while acp runs
    /// (stores made before retention need it). Blocks writers while it
    /// runs: best with acp run stopped.
    #[command(after_help = "Examples:
  acp store compact")]
    Compact,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RolesCommand {
    /// Show each agent's role and the captain.
    #[command(after_help = "Examples:
  acp roles list")]
    List,
    /// Assign a role to an agent (overrides config/acp.toml).
    #[command(after_help = "Examples:
  acp roles set Agent-3 \"database migrations\"")]
    Set {
        /// The agent, e.g. Agent-3.
        agent: String,
        /// The role: free text, shown to people and agents.
        role: String,
    },
    /// Remove an assigned role (the configured one applies again).
    #[command(after_help = "Examples:
  acp roles clear Agent-3")]
    Clear {
        /// The agent, e.g. Agent-3.
        agent: String,
    },
    /// Designate the captain.
    #[command(after_help = "Examples:
  acp roles captain Agent-1")]
    Captain {
        /// The agent that coordinates the others.
        agent: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum InboxCommand {
    /// Messages, newest first: an agent's (--agent, or $ACP_AGENT), or a
    /// person's (--person; by default yours: answers to what you sent).
    #[command(after_help = "Examples:
  acp inbox list --agent Agent-2
  ACP_AGENT=Agent-2 acp inbox list --unread --limit 10
  acp inbox list                       # yours: agents' answers to you
  acp inbox list --person alice --unread")]
    List {
        /// The agent whose messages to list, e.g. Agent-2 (default:
        /// $ACP_AGENT).
        #[arg(long, value_name = "AGENT", conflicts_with = "person")]
        agent: Option<String>,
        /// The person whose inbox to list (default, without --agent and
        /// $ACP_AGENT: you, that is $ACP_OPERATOR or your login name).
        #[arg(long, value_name = "NAME")]
        person: Option<String>,
        /// Only delivered messages not yet acknowledged.
        #[arg(long)]
        unread: bool,
        /// How many messages to show.
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: usize,
    },
    /// Show a message and its delivery history (does not acknowledge it).
    #[command(after_help = "Examples:
  acp inbox read 01JDQ3Z5X8J6Y4F2K9M0N1P2Q3")]
    Read {
        /// The message: its id, or a unique prefix of 8 or more characters.
        #[arg(value_name = "ID", value_parser = message_ref)]
        id: String,
    },
    /// Acknowledge a message: the agent has read and acted on it, or the
    /// person has read the answer in their inbox.
    #[command(after_help = "Examples:
  ACP_AGENT=Agent-2 acp inbox ack 01JDQ3Z5X8J6Y4F2K9M0N1P2Q3
  acp inbox ack 01JDQ3Z5X8J6Y4F2K9M0N1P2Q3 --agent Agent-2 --by alice
  acp inbox ack 01JDQ3Z5X8J6Y4F2K9M0N1P2Q3     # an answer in your inbox")]
    Ack {
        /// The message: its id, or a unique prefix of 8 or more characters.
        #[arg(value_name = "ID", value_parser = message_ref)]
        id: String,
        /// The recipient acknowledging (for a broadcast, unless ACP_AGENT
        /// names one of its recipients).
        #[arg(long, value_name = "AGENT", conflicts_with = "person")]
        agent: Option<String>,
        /// The person whose inbox holds it (default: the message's only
        /// recipient).
        #[arg(long, value_name = "NAME")]
        person: Option<String>,
        /// A person acknowledging for the agent (recorded in the audit log
        /// as done by you).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CoordsCommand {
    /// Check every point against the monitor layout (and the live screen).
    #[command(after_help = "Examples:
  acp coords validate
  acp --json coords validate")]
    Validate,
    /// Print the mouse position after a countdown (to point at an input).
    #[command(after_help = "Examples:
  acp coords capture Agent-3 --save
  acp coords capture Agent-3 --onboarding --countdown 5 --save")]
    Capture {
        /// The agent whose input to capture, e.g. Agent-3.
        agent: String,
        /// Seconds to move the mouse into place.
        #[arg(long, value_name = "SECS", default_value_t = 3)]
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
    #[command(after_help = "Examples:
  acp coords test Agent-3
  acp coords test Agent-3 --onboarding --no-move")]
    Test {
        /// The agent whose point to test, e.g. Agent-3.
        agent: String,
        /// Test the onboarding input instead of the chat input.
        #[arg(long)]
        onboarding: bool,
        /// Do not move the mouse; only look.
        #[arg(long)]
        no_move: bool,
    },
}

/// `--priority`: the model's priorities, listed in `--help`.
fn priority() -> impl TypedValueParser<Value = Priority> {
    PossibleValuesParser::new(Priority::ALL.map(|p| PossibleValue::new(p.as_str())))
        .try_map(|s| s.parse::<Priority>())
}

/// `--kind`: the kinds a sender may choose (devlogs are posted with `acp
/// devlog post`).
fn kind() -> impl TypedValueParser<Value = Kind> {
    PossibleValuesParser::new([
        PossibleValue::new("agent_to_agent")
            .alias("agent-to-agent")
            .help("from one agent to another"),
        PossibleValue::new("human").help("from a person"),
        PossibleValue::new("system").help("from acp or a script"),
        PossibleValue::new("broadcast").help("to every agent"),
        PossibleValue::new("onboarding")
            .help("into the agent's onboarding input (onboarding_keys first)"),
        PossibleValue::new("report").help("an agent's post to the people on Discord"),
    ])
    .try_map(|s| s.parse::<Kind>())
}

/// `--via`: the methods one message may be limited to.
fn via() -> impl TypedValueParser<Value = Via> {
    PossibleValuesParser::new([
        PossibleValue::new("auto").help("the agent's configured order, with fallback"),
        PossibleValue::new("gui").help("keyboard and mouse only"),
        PossibleValue::new("tmux").help("the agent's tmux pane only"),
        PossibleValue::new("inbox").help("the inbox file only"),
    ])
    .try_map(|s| {
        s.parse::<Via>()
            .map_err(|_| format!("unknown method {s:?}: use auto, gui, tmux or inbox"))
    })
}

/// `acp backup create --kind`.
fn backup_kind() -> impl TypedValueParser<Value = acp::app::BackupKind> {
    PossibleValuesParser::new([
        PossibleValue::new("full").help("everything"),
        PossibleValue::new("incremental").help("what changed since the last backup of any kind"),
        PossibleValue::new("differential").help("what changed since the last full backup"),
    ])
    .try_map(|s| backup::parse_kind(&s))
}

/// A message's id or a prefix of one, checked for its shape here (the
/// core resolves it).
fn message_ref(s: &str) -> Result<String, String> {
    acp::model::IdPrefix::parse(s, acp::model::prefix::MESSAGE)
        .map(|_| s.trim().to_owned())
        .map_err(|e| e.to_string())
}

/// A prompt's id or a prefix of one.
fn prompt_ref(s: &str) -> Result<String, String> {
    acp::model::IdPrefix::parse(s, acp::model::prefix::PROMPT)
        .map(|_| s.trim().to_owned())
        .map_err(|e| e.to_string())
}

/// A duration such as 90s, 30m, 2h or 1d (also 1h30m).
fn parse_since(s: &str) -> Result<std::time::Duration, String> {
    let text = s.trim();
    let bad = || format!("{s:?} is not a duration: write it as 90s, 30m, 2h or 1d");
    let days = text
        .strip_suffix('d')
        .and_then(|n| n.trim().parse::<u64>().ok());
    let duration = match days {
        Some(n) => std::time::Duration::from_secs(n.checked_mul(86_400).ok_or_else(bad)?),
        None => text
            .parse::<jiff::SignedDuration>()
            .ok()
            .and_then(|d| std::time::Duration::try_from(d).ok())
            .ok_or_else(bad)?,
    };
    if duration.is_zero() {
        return Err(bad());
    }
    Ok(duration)
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
