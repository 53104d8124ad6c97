//! The `acp` command line: argument parsing and one function per command.
//! Commands parse, call the application core, and print; `--json` on any
//! command prints machine-readable output instead.

/// `println!` that returns the write error instead of panicking, so a
/// closed pipe (`acp --json backup list | head -1`) ends the command
/// quietly ([`exit_code`] and `main` treat it as done).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

/// `print!` likewise.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod args;
mod backup;
mod coords;
mod discover;
#[cfg(test)]
mod docs_check;
mod doctor;
pub(crate) mod logging;
mod people;
mod progress;
mod prompts;
mod schedule;
mod send;
mod service;
mod settings;
mod show;
mod started;
mod store;
mod watch;

use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};

use acp::app::App;
use acp::app::{Config, Env};

/// Exit code for bad usage or bad input (also clap's).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code for a failure of the system or of a delivery.
pub(crate) const EXIT_FAILURE: u8 = 1;

/// Bad input found by the CLI itself: the core's [`Refused`](acp::app::Refused).
pub(crate) use acp::app::Refused as UsageError;
pub(crate) use args::{
    BackupCommand, Cli, Command, ConfigCommand, CoordsCommand, DevlogCommand, InboxCommand,
    ReplyArgs, RetryArgs, RolesCommand, ScheduleCommand, ScopeArgs, SendOpts, ServiceCommand,
    StoreCommand, TmuxCommand,
};

/// The root: `--root`, else `ACP_ROOT` (both handled by clap), else the
/// nearest directory at or above the current one that holds
/// `config/acp.toml` (as git finds its repository), so an agent can run
/// acp from its workspace; else the current directory.
fn root_of(cli: &Cli) -> Result<PathBuf> {
    let here = here_or_root(cli)?;
    if cli.root.is_some() {
        return Ok(here);
    }
    Ok(here
        .ancestors()
        .find(|dir| dir.join(acp::app::CONFIG_FILE).is_file())
        .map_or(here.clone(), Path::to_path_buf))
}

/// `--root` made absolute, or the current directory: where `acp init`
/// creates a root.
fn here_or_root(cli: &Cli) -> Result<PathBuf> {
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
            let (key, value) = item.map_err(|e| dotenv_error(&dotenv, &e))?;
            env.insert(key, value);
        }
    }
    for (key, value) in std::env::vars() {
        if key.starts_with("ACP_")
            || key.starts_with("DISCORD_")
            || key == "DISPLAY"
            || key == "TMUX_TMPDIR"
        {
            env.insert(key, value);
        }
    }
    logging::hide(&env);
    Ok(env)
}

/// What is wrong with `.env`, naming the file, the line and the key but
/// never the value: the file holds secrets, and this message may go to a
/// service log.
fn dotenv_error(path: &std::path::Path, e: &dotenvy::Error) -> UsageError {
    let file = path.display();
    match e {
        dotenvy::Error::LineParse(line, _) => {
            // dotenvy reports the part of the line it could not read: find
            // the line that holds it, for its number and its key.
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let fragment = line.lines().next().unwrap_or_default();
            let found = text
                .lines()
                .enumerate()
                .find(|(_, l)| !fragment.is_empty() && l.contains(fragment));
            let number =
                found.map_or_else(|| "a line".to_owned(), |(i, _)| format!("line {}", i + 1));
            let key: String = found
                .map_or("", |(_, l)| l)
                .trim_start()
                .trim_start_matches("export ")
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let key = if key.is_empty() {
                String::new()
            } else {
                format!(" ({key})")
            };
            UsageError(format!(
                "{file}: {number}{key} is not KEY=VALUE (the value is not shown: it may be a \
                 secret): quote a value that has spaces or # (KEY=\"...\"), or remove the line"
            ))
        }
        dotenvy::Error::Io(io) => UsageError(format!("cannot read {file}: {io}")),
        dotenvy::Error::EnvVar(_) => UsageError(format!(
            "{file}: a value refers to a variable that is not set: set it, or write the value out"
        )),
        _ => UsageError(format!("{file} cannot be read: fix it or remove it")),
    }
}

/// Loads the config.
fn load_config(cli: &Cli) -> Result<Config> {
    let root = root_of(cli)?;
    let env = collect_env(&root)?;
    config_of(&root, &env)
}

/// Loads the config and opens the core.
fn open_app(cli: &Cli) -> Result<Arc<App>> {
    let root = root_of(cli)?;
    let env = collect_env(&root)?;
    let config = config_of(&root, &env)?;
    Ok(Arc::new(App::open(config)?))
}

/// How `acp run` reads its config again: as it did at the start (`.env`,
/// the environment, `--node`).
fn reloader(root: PathBuf, node: Option<String>) -> acp::service::Loader {
    Box::new(move || {
        let env = collect_env(&root).map_err(|e| format!("{e:#}"))?;
        let mut config = Config::load(&root, &env).map_err(|e| e.to_string())?;
        if let Some(node) = &node {
            config.set_node(node).map_err(|e| e.to_string())?;
        }
        Ok(config)
    })
}

/// Loads `config/acp.toml`; when it does not load while an `acp run` runs
/// for this root, the error says that the service keeps the config it
/// loaded before.
fn config_of(root: &std::path::Path, env: &Env) -> Result<Config> {
    Config::load(root, env).map_err(|e| {
        if acp::app::ServiceLock::is_held(root) {
            KeptByService(e).into()
        } else {
            e.into()
        }
    })
}

/// A config that does not load, while the running service keeps the one
/// it loaded before.
#[derive(Debug)]
struct KeptByService(acp::app::ConfigError);

impl std::fmt::Display for KeptByService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (the running acp run keeps the config it loaded before, and reads the file \
             again when it is saved)",
            self.0
        )
    }
}

impl std::error::Error for KeptByService {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Opens the core for `acp run`, as machine `node` of a swarm if given.
fn open_service(cli: &Cli, node: Option<&str>) -> Result<Arc<App>> {
    let root = root_of(cli)?;
    let env = collect_env(&root)?;
    let mut config = config_of(&root, &env)?;
    if let Some(node) = node {
        config.set_node(node)?;
    }
    Ok(Arc::new(App::open(config)?.with_points_loaded()))
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
/// `acp tmux ...`.
async fn tmux(cli: &Cli, cmd: &TmuxCommand) -> Result<ExitCode> {
    let TmuxCommand::Attach {
        agent,
        pane,
        socket,
        save,
    } = cmd;
    let app = open_app(cli)?;
    tmux_attach(&app, agent, pane, socket.as_deref(), *save, cli.json).await
}

/// How long a command that saved the config waits for the running
/// service to say it took it.
pub(crate) const PICKUP: std::time::Duration = std::time::Duration::from_secs(5);

/// `acp tmux attach AGENT PANE`: what the guard sees there, and the line
/// to put in the agent's table. Exit 1 if the guard refuses the pane.
async fn tmux_attach(
    app: &acp::app::App,
    agent: &str,
    pane: &str,
    socket: Option<&str>,
    save: bool,
    json_out: bool,
) -> Result<ExitCode> {
    let probe = app.probe_tmux(agent, pane, socket).await?;
    if save && probe.verdict.is_ok() {
        let path = app.save_tmux(&probe)?;
        let pickup = app.await_pickup(PICKUP).await;
        if !json_out {
            outln!("saved in {}: {}", path.display(), probe.config_line);
            outln!("{}", pickup.describe());
        }
    }
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&probe)?);
    } else {
        if let Some((id, command)) = &probe.pane {
            outln!("{}: pane {id} running {command}", probe.target);
        } else {
            outln!("{}: no pane", probe.target);
        }
        match &probe.verdict {
            Ok(()) => outln!("guard: ok, tmux delivery would paste here"),
            Err(why) => outln!("guard: refused: {why}"),
        }
        match probe.idle {
            Some(true) => outln!("idle: yes (the idle pattern matches)"),
            Some(false) => outln!("idle: no, busy (the idle pattern does not match)"),
            None => outln!("idle: no idle_pattern set: every delivery pastes at once"),
        }
        outln!(
            "\nto attach it, put in {}'s [[agents]] table in config/acp.toml:",
            probe.agent
        );
        outln!("  delivery = [\"tmux\", \"inbox\"]");
        outln!("  {}", probe.config_line);
    }
    Ok(if probe.verdict.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

/// `acp mcp`: the MCP server for one agent, on standard input and output.
async fn mcp(app: std::sync::Arc<acp::app::App>, agent: Option<&str>) -> Result<ExitCode> {
    let agent = agent
        .map(str::to_owned)
        .or_else(|| app.config().default_sender.clone())
        .ok_or_else(|| {
            UsageError(
                "say which agent this server speaks for: --agent AGENT, or set ACP_AGENT".into(),
            )
        })?;
    acp::mcp::serve_stdio(app, &agent).await?;
    Ok(ExitCode::SUCCESS)
}

/// `acp completions SHELL`: the script, written whole (`clap_complete`
/// panics on a closed pipe when it writes itself).
fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "acp", &mut script);
    io::Write::write_all(&mut io::stdout().lock(), &script)?;
    Ok(ExitCode::SUCCESS)
}

/// `acp man`: the manual page, from the same definitions as `--help`.
fn man() -> Result<ExitCode> {
    let command = <Cli as clap::CommandFactory>::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    io::Write::write_all(&mut io::stdout().lock(), &page)?;
    Ok(ExitCode::SUCCESS)
}

/// `acp bot`: the Discord bot alone, until a signal.
async fn bot(cli: &Cli) -> Result<ExitCode> {
    let stop = shutdown_signal();
    let app = open_app(cli)?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let bot = acp::discord::run(app, cancel.clone());
    tokio::pin!(bot);
    // The signal stops the bot, which then finishes on its own.
    let result = tokio::select! {
        result = &mut bot => result,
        () = stop => {
            cancel.cancel();
            bot.await
        }
    };
    result.map_err(|e| UsageError(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Init { agents, tmux } => {
            show::init(&here_or_root(&cli)?, *agents, tmux.as_deref(), cli.json)
        }
        Command::Send { to, files, opts } => {
            send::send(&open_app(&cli)?, Some(to), files, opts, cli.json).await
        }
        Command::Broadcast { opts } => {
            send::send(&open_app(&cli)?, None, &[], opts, cli.json).await
        }
        Command::Reply(reply) => send::reply(&open_app(&cli)?, reply, cli.json).await,
        Command::Retry(retry) => send::retry(&open_app(&cli)?, retry, cli.json).await,
        Command::Config(ConfigCommand::Show) => settings::show(&cli),
        Command::Devlog(cmd) => send::devlog(&open_app(&cli)?, cmd, cli.json).await,
        Command::Tmux(cmd) => tmux(&cli, cmd).await,
        Command::Discover { save } => discover::run(&*open_app(&cli)?, *save, cli.json).await,
        Command::Status => show::status(&*open_app(&cli)?, cli.json).await,
        Command::Watch { since } => watch::watch(&*open_app(&cli)?, *since, cli.json).await,
        Command::Agents => show::agents(&*open_app(&cli)?, cli.json).await,
        Command::Spawn { project, task, id } => {
            started::spawn(
                &*open_app(&cli)?,
                project,
                task.as_deref(),
                id.as_deref(),
                cli.json,
            )
            .await
        }
        Command::Stop {
            agent,
            remove_worktree,
        } => started::stop(&*open_app(&cli)?, agent, *remove_worktree, cli.json).await,
        Command::Restart { agent } => started::restart(&*open_app(&cli)?, agent, cli.json).await,
        Command::Schedule(cmd) => schedule::run(&*open_app(&cli)?, cmd, cli.json).await,
        Command::Store(cmd) => store::run(&*open_app(&cli)?, cmd, cli.json).await,
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
        Command::Mcp { agent } => mcp(open_app(&cli)?, agent.as_deref()).await,
        Command::Bot => bot(&cli).await,
        Command::Backup(cmd) => backup_command(&cli, cmd).await,
        Command::Hook => prompts::hook(&open_app(&cli)?).await,
        Command::Approve { id, session } => {
            prompts::approve(&open_app(&cli)?, id, *session, cli.json).await
        }
        Command::Deny { id, reason } => {
            prompts::deny(&open_app(&cli)?, id, reason.as_deref(), cli.json).await
        }
        Command::Prompts => prompts::list(&open_app(&cli)?, cli.json).await,
        Command::Completions { shell } => completions(*shell),
        Command::Man => man(),
        Command::Service(cmd) => service::run(&cli, cmd),
        Command::Doctor => match load_config(&cli) {
            Ok(config) => doctor::run(&config, cli.json).await,
            Err(e) => match config_error(&e) {
                // A broken config is the doctor's first finding, not a crash.
                Some(config_error) => doctor::config_failed(config_error, cli.json),
                None => Err(e),
            },
        },
        Command::Run { node } => {
            let stop = shutdown_signal();
            let app = open_service(&cli, node.as_deref())?;
            let load = reloader(app.config().root.clone(), node.clone());
            acp::service::run(app, load, stop).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `acp backup ...`.
async fn backup_command(cli: &Cli, cmd: &BackupCommand) -> Result<ExitCode> {
    // Restoring onto a new machine: no config yet, so the defaults and the
    // environment (ACP_BACKUP_REPOSITORY, ACP_BACKUP_KEY).
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
    let (config, root) = match load_config(cli) {
        Err(e)
            if !needs_root
                && matches!(
                    config_error(&e),
                    Some(acp::app::ConfigError::Missing { .. })
                ) =>
        {
            let root = root_of(cli)?;
            (Config::from_env_only(&root, &collect_env(&root)?)?, false)
        }
        other => (other?, true),
    };
    let mut cmd = cmd.clone();
    if let BackupCommand::Restore { to: Some(dir), .. } = &mut cmd {
        *dir = backup::absolute(dir)?;
    }
    let progress = cmd.progress();
    backup::run(config, root, &cmd, progress, cli.json).await
}

/// The config error behind `e`, if that is what it is.
fn config_error(e: &anyhow::Error) -> Option<&acp::app::ConfigError> {
    e.chain()
        .find_map(|c| c.downcast_ref::<acp::app::ConfigError>())
}

/// Resolves on SIGINT or SIGTERM. The handlers are in place once this
/// returns, not once the future is first polled: a service stopped while
/// it starts (`systemctl stop` at once) finishes starting and stops
/// cleanly instead of dying of the signal.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            match (int, term) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot listen for SIGINT and SIGTERM; stop with Ctrl-C");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Exit 0 when `ok`, else 1 (the command ran; what it found is bad).
#[must_use]
pub(crate) fn success_if(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

/// An error's text for a person: every cause once. A message that already
/// says its cause (`path: Not a directory`) is not followed by the cause
/// again.
#[must_use]
pub(crate) fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Whether the error is only that whoever read the output stopped reading
/// (`| head`): the command is done, quietly.
#[must_use]
pub(crate) fn closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The exit code for an error: 2 for bad usage or input, 1 otherwise
/// (the core's one decision, [`acp::app::is_user_error`]).
#[must_use]
pub(crate) fn exit_code(err: &anyhow::Error) -> u8 {
    if closed_pipe(err) {
        return 0;
    }
    if acp::app::is_user_error(err.as_ref()) {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}
