//! The `acp` command line: argument parsing and one function per command.
//! Commands parse, call the application core, and print; `--json` on any
//! command prints machine-readable output instead.

#![expect(
    clippy::doc_markdown,
    reason = "doc comments on arguments are --help text, where backticks would show"
)]

mod backup;
mod coords;
mod doctor;
mod send;
mod show;

use std::io::{self, IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::app::App;
use crate::config::{Config, Env};
use crate::delivery::{Methods, Via};
use crate::message::{Kind, MessageId, Priority};

/// Exit code for bad usage or bad input (also clap's).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a failure of the system or of a delivery.
pub const EXIT_FAILURE: u8 = 1;

/// Bad input found by the CLI itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Agent Cellphone: send messages to a swarm of AI coding agents and deliver
/// them durably (chat window or file inbox).
#[derive(Debug, Parser)]
#[command(name = "acp", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
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
pub enum Command {
    /// Create a working root with commented example config (safe to re-run).
    Init {
        /// How many agents (Agent-1 ... Agent-N) the example config names.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
        agents: u32,
    },
    /// Send a message to one agent; prints its id once it is stored.
    Send {
        /// The agent to send to, e.g. Agent-2.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Send a message to every agent.
    Broadcast {
        #[command(flatten)]
        opts: SendOpts,
    },
    /// Queue depth by state and priority, each agent's last delivery, failures.
    Status,
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
    /// The audit log of administrative actions, newest first.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Run the service: deliver queued messages (and run the Discord bot
    /// when DISCORD_TOKEN is set) until SIGINT or SIGTERM.
    Run,
    /// Run only the Discord bot (deliveries stay with `acp run`).
    Bot,
    /// Backups: create, list, verify, restore, prune, drill.
    Backup(BackupArgs),
    /// Check everything acp depends on and say what to fix.
    Doctor,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// How a long run shows its progress: a bar on a terminal (auto), one
    /// JSON object per line on stderr for scripts (json), or nothing.
    #[arg(long, global = true, value_enum, default_value_t = backup::ProgressMode::Auto)]
    pub progress: backup::ProgressMode,
    #[command(subcommand)]
    pub cmd: BackupCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BackupCommand {
    /// Take a backup now (while `acp run` runs, too).
    Create {
        /// full, incremental (changes since the last backup) or
        /// differential (changes since the last full one).
        #[arg(long, default_value = "incremental", value_parser = backup::parse_kind)]
        kind: crate::backup::Kind,
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
pub struct SendOpts {
    /// Who sends it (default: $ACP_AGENT, else "operator").
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
pub enum RolesCommand {
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
pub enum InboxCommand {
    /// An agent's messages, newest first.
    List {
        /// The agent whose messages to list, e.g. Agent-2.
        #[arg(long)]
        agent: String,
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
    /// Acknowledge a message: the agent has read and acted on it.
    Ack {
        #[arg(value_parser = parse_id)]
        id: MessageId,
        /// The recipient acknowledging (needed for broadcasts).
        #[arg(long)]
        agent: Option<String>,
        /// Who acknowledges (default: the agent).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CoordsCommand {
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
        .map_err(|e: crate::message::MessageError| e.to_string())
}
fn parse_kind(s: &str) -> Result<Kind, String> {
    s.parse()
        .map_err(|e: crate::message::MessageError| e.to_string())
}
fn parse_via(s: &str) -> Result<Via, String> {
    s.parse()
        .map_err(|_| format!("unknown method {s:?}: use auto, inbox or gui"))
}
fn parse_id(s: &str) -> Result<MessageId, String> {
    s.parse()
        .map_err(|e: crate::message::MessageError| e.to_string())
}

/// The root: `--root`, else `ACP_ROOT` (both handled by clap), else the
/// current directory.
fn root_of(cli: &Cli) -> Result<PathBuf> {
    // Absolute, so paths stored in receipts mean the same from any directory.
    match &cli.root {
        Some(root) => std::path::absolute(root)
            .with_context(|| format!("cannot resolve --root {}", root.display())),
        None => std::env::current_dir().context("cannot read the current directory"),
    }
}

/// The environment layer: `.env` in the root, overridden by the process
/// environment.
fn collect_env(root: &std::path::Path) -> Result<Env> {
    let mut env = Env::new();
    let dotenv = root.join(".env");
    if dotenv.exists() {
        let iter = dotenvy::from_path_iter(&dotenv)
            .with_context(|| format!("cannot read {}", dotenv.display()))?;
        for item in iter {
            let (key, value) = item.map_err(|e| {
                UsageError(format!(
                    "{}: {e}: fix the line or remove it",
                    dotenv.display()
                ))
            })?;
            env.insert(key, value);
        }
    }
    for (key, value) in std::env::vars() {
        if key.starts_with("ACP_") || key.starts_with("DISCORD_") || key == "DISPLAY" {
            env.insert(key, value);
        }
    }
    Ok(env)
}

/// Loads the config.
fn load_config(cli: &Cli) -> Result<Config> {
    let root = root_of(cli)?;
    let env = collect_env(&root)?;
    Ok(Config::load(&root, &env)?)
}

/// Loads the config and opens the core.
fn open_app(cli: &Cli) -> Result<Arc<App>> {
    let root = root_of(cli)?;
    let env = collect_env(&root)?;
    let config = Config::load(&root, &env)?;
    Ok(Arc::new(App::open(config)?))
}

/// Reads a message argument: the text, or standard input for `-`.
fn read_body(arg: &str) -> Result<String> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    if io::stdin().is_terminal() {
        eprintln!("reading the message from standard input; end it with Ctrl-D");
    }
    let mut bytes = Vec::new();
    // Read a little past any sane limit so the size error can say how big.
    io::stdin()
        .take(64 << 20)
        .read_to_end(&mut bytes)
        .context("cannot read standard input")?;
    String::from_utf8(bytes).map_err(|e| {
        UsageError(format!(
            "standard input is not UTF-8 text (byte {} is invalid): send text, not a binary file",
            e.utf8_error().valid_up_to()
        ))
        .into()
    })
}

/// Runs a parsed command line; returns the process exit code.
///
/// # Errors
/// Any failure, for `main` to print and turn into an exit code.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Init { agents } => show::init(&root_of(&cli)?, *agents, cli.json),
        Command::Send { to, opts } => send::send(&open_app(&cli)?, Some(to), opts, cli.json).await,
        Command::Broadcast { opts } => send::send(&open_app(&cli)?, None, opts, cli.json).await,
        Command::Status => show::status(&*open_app(&cli)?, cli.json).await,
        Command::Agents => show::agents(&*open_app(&cli)?, cli.json).await,
        Command::Roles(cmd) => show::roles(&*open_app(&cli)?, cmd, cli.json).await,
        Command::Inbox(cmd) => show::inbox(&*open_app(&cli)?, cmd, cli.json).await,
        Command::Coords(CoordsCommand::Validate) => coords::validate(&*open_app(&cli)?, cli.json),
        Command::Coords(CoordsCommand::Capture {
            agent,
            countdown,
            onboarding,
            save,
        }) => {
            coords::capture(
                &*open_app(&cli)?,
                agent,
                *countdown,
                *onboarding,
                *save,
                cli.json,
            )
            .await
        }
        Command::Coords(CoordsCommand::Test {
            agent,
            onboarding,
            no_move,
        }) => coords::test(&*open_app(&cli)?, agent, *onboarding, !*no_move, cli.json),
        Command::Audit { limit } => show::audit(&*open_app(&cli)?, *limit, cli.json).await,
        Command::Bot => {
            let app = open_app(&cli)?;
            let cancel = tokio_util::sync::CancellationToken::new();
            let stop = cancel.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                stop.cancel();
            });
            crate::discord::run(app, cancel)
                .await
                .map_err(|e| UsageError(e.to_string()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup(BackupArgs { progress, cmd }) => {
            // Restoring onto a new machine: no config yet, so the defaults
            // and the environment (ACP_BACKUP_REPOSITORY, ACP_BACKUP_KEY).
            let needs_root = !matches!(
                cmd,
                BackupCommand::List
                    | BackupCommand::Verify { .. }
                    | BackupCommand::Keygen
                    | BackupCommand::Restore {
                        in_place: false,
                        ..
                    }
            );
            let config = match load_config(&cli) {
                Err(e)
                    if !needs_root
                        && matches!(
                            e.downcast_ref::<crate::config::ConfigError>(),
                            Some(crate::config::ConfigError::Missing { .. })
                        ) =>
                {
                    let root = root_of(&cli)?;
                    Config::from_env_only(&root, &collect_env(&root)?)?
                }
                other => other?,
            };
            let mut cmd = cmd.clone();
            if let BackupCommand::Restore { to: Some(dir), .. } = &mut cmd {
                *dir = backup::absolute(dir)?;
            }
            tokio::task::block_in_place(|| backup::run(&config, &cmd, *progress, cli.json))
        }
        Command::Doctor => match load_config(&cli) {
            Ok(config) => tokio::task::block_in_place(|| doctor::run(&config, cli.json)),
            Err(e) => match e.downcast_ref::<crate::config::ConfigError>() {
                // A broken config is the doctor's first finding, not a crash.
                Some(config_error) => doctor::config_failed(config_error, cli.json),
                None => Err(e),
            },
        },
        Command::Run => {
            let app = open_app(&cli)?;
            let methods = Methods::for_config(app.config());
            crate::service::run(app, methods, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stop with Ctrl-C");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The exit code for an error: 2 for bad usage or input, 1 otherwise.
#[must_use]
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<UsageError>()
            || cause.is::<crate::config::ConfigError>()
            || cause.is::<crate::message::MessageError>()
            || cause.is::<crate::agents::AgentError>()
            || cause.is::<crate::coords::CoordsError>()
        {
            return EXIT_USAGE;
        }
        if let Some(e) = cause.downcast_ref::<crate::backup::BackupError>() {
            return if e.is_user_error() {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            };
        }
        if let Some(e) = cause.downcast_ref::<crate::app::AppError>() {
            return if e.is_user_error() {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            };
        }
    }
    EXIT_FAILURE
}
