//! `acp init`: a working root with commented example configuration.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::AppError;
use crate::config::CONFIG_FILE;

/// Screen size assumed for the example monitor layout.
const MONITOR_W: i32 = 1920;
const MONITOR_H: i32 = 1080;

/// What `init` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct InitReport {
    /// Paths created, relative to the root.
    pub created: Vec<PathBuf>,
}

/// Creates whatever is missing of a root: directories, `config/acp.toml`
/// with `agents` agents, `config/coordinates.json` and each agent's inbox.
/// Never overwrites anything; running it again reports nothing created.
///
/// # Errors
/// [`AppError::Config`] if a config is already there and does not load
/// (nothing is created then), [`AppError::Init`] for I/O, with the path.
pub fn init(root: &Path, agents: u32) -> Result<InitReport, AppError> {
    init_with(root, agents, None)
}

/// [`init`], with each agent attached to a tmux pane (`SESSION:Agent-N.0`,
/// a window named after the agent) when `tmux_session` is given.
///
/// # Errors
/// As [`init`]; [`AppError::Refused`] for a session name tmux targets
/// cannot hold.
pub fn init_with(
    root: &Path,
    agents: u32,
    tmux_session: Option<&str>,
) -> Result<InitReport, AppError> {
    if let Some(session) = tmux_session
        && (!crate::model::tmux::valid_target(session) || session.contains([':', '.']))
    {
        return Err(super::Refused(format!(
            "{session:?} is not a tmux session name acp can target: use letters, digits, '-' or \
             '_'"
        ))
        .into());
    }
    let config_exists = root.join(CONFIG_FILE).exists();
    if config_exists {
        // A root whose config is broken is not initialised: say what is
        // wrong rather than "initialised".
        crate::config::Config::load(root, &crate::config::Env::new())?;
    }
    init_files(root, agents, config_exists, tmux_session).map_err(AppError::Init)
}

fn init_files(
    root: &Path,
    agents: u32,
    config_exists: bool,
    tmux_session: Option<&str>,
) -> io::Result<InitReport> {
    let mut report = InitReport::default();
    let names: Vec<String> = (1..=agents).map(|n| format!("Agent-{n}")).collect();
    let mut dirs = vec![
        PathBuf::from("config"),
        PathBuf::from("data"),
        PathBuf::from("devlogs"),
        PathBuf::from("backups"),
        PathBuf::from("agent_workspaces"),
    ];
    // Inboxes only for a fresh config: an existing one may name other agents.
    if !config_exists {
        dirs.extend(
            names
                .iter()
                .map(|n| Path::new("agent_workspaces").join(n).join("inbox")),
        );
    }
    for dir in dirs {
        let path = root.join(&dir);
        if !path.is_dir() {
            private_dir(&path).map_err(|e| with_path(&path, &e))?;
            report.created.push(dir);
        }
    }
    let files = [
        (
            PathBuf::from(CONFIG_FILE),
            config_template(&names, tmux_session),
        ),
        (
            PathBuf::from("config/coordinates.json"),
            coordinates_template(&names),
        ),
    ];
    for (rel, text) in files {
        let path = root.join(&rel);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                io::Write::write_all(&mut f, text.as_bytes()).map_err(|e| with_path(&path, &e))?;
                f.sync_all().map_err(|e| with_path(&path, &e))?;
                report.created.push(rel);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(with_path(&path, &e)),
        }
    }
    Ok(report)
}

/// Creates a directory (and its parents) only its owner can read: the
/// store, the inboxes, the devlogs and the backups are their owner's only.
pub(crate) fn private_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

fn with_path(path: &Path, e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

const CONFIG_HEAD: &str = r#"# acp configuration. Layering: built-in defaults < this file < environment
# (ACP_*, DISCORD_*; also read from .env in the root) < command-line flags.
# Unknown keys are errors, so a typo never silently does nothing.

# The agent that coordinates the others (`acp roles captain` overrides it).
captain = "Agent-1"

[delivery]
# Methods tried in order for agents that do not set their own:
#   inbox  a markdown file in agent_workspaces/<id>/inbox/ (always works)
#   gui    keyboard and mouse into the agent's chat window (see [gui])
order = ["inbox"]
# Attempts (each trying every method) before a delivery is marked failed.
max_attempts = 5
# Retry delays: retry_base_ms, doubling each attempt, at most retry_max_ms.
retry_base_ms = 500
retry_max_ms = 60000
# How often `acp run` looks for messages queued by other acp processes.
poll_ms = 100
# Most deliveries claimed in one batch.
batch_size = 256

[limits]
# Largest message body in bytes (16 KiB). Longer text belongs in a file.
max_body_bytes = 16384
# Largest file a /message may carry (10 MiB), saved in the agent's
# workspace (inbox/files/) and named in the message.
max_attachment_bytes = 10485760

[approval]
# How long a permission prompt waits for a decision from Discord or `acp
# approve` (seconds); then it ends unanswered and the agent's own dialog
# stays up. Give the agent's hook a longer timeout than this.
timeout_secs = 600
# How often acp run reads tmux agents' panes for their state and dialogs
# (milliseconds).
pane_probe_ms = 500
# true: the captain agent may answer other agents' prompts over MCP
# (decide_prompt); its own prompts stay a person's.
captain_decides = false

[attention]
# A prompt still undecided this long (seconds) after it was raised gets one
# reminder on Discord, in reply to its post, that pings mention_roles and
# mention_users: the only post of acp that pings anyone. 0 = never.
mention_after_secs = 300
# Role ids the reminder pings; left out = discord.operator_roles.
# mention_roles = []
# User ids the reminder pings.
mention_users = []

[schedules]
# The zone the cron expressions of `acp schedule` are read in (an IANA
# name); left out = this machine's zone.
# time_zone = "Europe/Berlin"

[store]
# Finished messages (delivered, failed or acknowledged) older than this
# many days are removed with their deliveries, attempts and receipts, by
# `acp run` every hour (fractions allowed; 0 keeps everything).
keep_days = 90
# The newest messages kept for each recipient, however old.
keep_min = 100
# A removed message's inbox file (in the agent's inbox/ or a person's)
# goes with it; true keeps the files.
keep_inbox_files = false
# Audit rows are kept longer (0 keeps them all).
audit_keep_days = 365
# `acp doctor` warns when the store file grows past this (MB).
warn_size_mb = 1024

[pulse]
# An agent quiet this long (minutes; 0.5 is half a minute) gets a nudge, a
# message from "pulse", once per quiet spell, and you are told in its
# Discord thread. Activity: a message delivered to it; a message, reply or
# devlog from it; an ack; a change of its state or a hook event; its tmux
# pane changing. An agent that waits for you (a prompt, done, asking) is
# not nudged. Left out or 0 = no pulse.
# after_minutes = 30
# The nudge; {quiet} becomes how long it has been quiet ("42 min").
# text = "You have been quiet for {quiet}. If you are blocked, say what you need; otherwise continue with your task."
# priority = "normal"
# No nudges in these hours (in [schedules] time_zone); a spell that runs
# into them is nudged once they end.
# quiet_hours = "22:00-07:00"
# The agents it watches; left out = every agent.
# agents = ["Agent-1"]

[coords]
# Two agents' input points closer than this (pixels) are reported as a clash.
near_radius_px = 10

[gui]
# Keyboard-and-mouse delivery (method "gui"). Before you add "gui" to an
# agent's delivery order: capture its chat input with
# `acp coords capture Agent-N --save`, set its window_title (below), and check
# with `acp coords test Agent-N` that the window guard accepts the window.
# How long to wait for another acp process that is typing (ms).
lock_timeout_ms = 10000
# After the click, the longest wait for the window to take the keyboard
# focus (ms). Typing starts as soon as it has it; a window that does not
# take it in time is not typed into (the message goes to the next method).
settle_ms = 500
# With input = "auto": single-line bodies up to this many characters, all on
# the keyboard map, are typed; longer, multi-line or accented ones are pasted.
type_max_chars = 200
# Defaults for every agent; an [[agents]] table can set its own.
input = "auto"               # auto | type | paste
submit_key = "enter"         # e.g. "ctrl+enter"
paste_key = "ctrl+v"         # in a terminal: "ctrl+shift+v"
newline_key = "shift+enter"  # pressed between lines when typing
clear_keys = []              # e.g. ["ctrl+a", "delete"]: clear the input first
onboarding_keys = []         # e.g. ["ctrl+n"]: open a new chat before onboarding
pre_submit_delay_ms = 200    # wait between the body and the submit key

[discord]
# Register slash commands in this guild only (instant), and refuse commands
# from any other server; absent = global, in every server the bot is in.
# guild_id = 123456789012345678
# Base URL of the Discord API, for a rate-limit proxy; empty = discord.com.
api_base = ""
# Permission levels (user < operator < admin), from Discord role ids. Every
# member is a user: /status, /agents, /inbox, /role list. Operators may also
# /message and /broadcast; admins may also /role set, /role captain, /backup.
# Refusals are ephemeral and admin commands are audited (`acp audit`).
operator_roles = []
admin_roles = []
# Answer commands only in these channel ids (empty = everywhere).
allowed_channels = []
# How long (s) a /message reply is edited into the delivery receipt. Discord's
# interaction token lasts 15 minutes (at most 840 here); an outcome that comes
# later is posted to the channel as a new message.
receipt_window_secs = 840
# Where agents answer (`acp send --to discord`, `acp reply` to an agent's
# message that has no command to reply to): a channel id. 0 = not set.
swarm_channel = 0
# One thread per agent in the swarm channel, made on its first post and kept
# (in the store) across restarts; /message typed in it needs no agent.
agent_threads = false
# Devlogs: markdown files in devlogs/<agent>/ (or with `agent: NAME` in front
# matter) are posted while acp run runs, once per content version, to this
# channel id (0 = the agent's thread, else the swarm channel). Set
# DISCORD_DEVLOG_WEBHOOK in .env to post them through a channel webhook, with
# each agent's name as the author.
devlog_channel = 0
# A devlog must be unchanged this long (ms) before it is posted.
devlog_settle_ms = 1000

"#;

const SERVICE_SECTIONS: &str = r#"[http]
# acp run serves a status page (/), a JSON API (/api/v1/, needs a token from
# ACP_API_TOKENS in .env, with its scopes: see .env.example), Prometheus
# metrics (/metrics), /healthz, /readyz and signed webhooks (/hooks/NAME).
# Beyond 127.0.0.1 it needs an API token.
enabled = true
bind = "127.0.0.1:7420"
max_body_bytes = 1048576
# Names requests may carry in Host besides IP addresses (and localhost, on a
# loopback or any-address bind): what a reverse proxy or tunnel forwards,
# e.g. ["acp.example.com"]. Any other is refused (421), so a web page cannot
# reach acp through DNS rebinding. ACP_HTTP_HOSTS overrides it.
hosts = []
# Slow clients are cut off: a request's head must arrive within
# header_timeout_secs (also how long a kept-alive connection may sit idle),
# its body within body_timeout_secs, and a connection that moves no byte for
# idle_timeout_secs is closed.
header_timeout_secs = 10
body_timeout_secs = 30
idle_timeout_secs = 60
# Connections served at once; more wait to be accepted. acp run raises its
# open-file limit (ulimit -n) to the hard one, and warns if this leaves
# fewer than 128 files for deliveries and the store.
max_connections = 1024
# Refused requests are audited as one row per source and reason per this
# many seconds: the first at once, the rest counted in one row.
refusal_audit_secs = 60
# Webhooks: events whose repository and branch match become a message to the
# agent ("*" matches any). The secret is ACP_HOOK_SECRET_<NAME> in .env.
# [[http.hooks]]
# name = "github"
# repository = "you/project"
# branch = "main"
# agent = "Agent-3"
# template = "CI {conclusion} on {branch}: {title} {url}"

[backup]
# Backups hold config/, devlogs/, every agent inbox, the store (captured
# consistently while acp runs) and the paths in `include`; never .env.
# Put the repository on another disk to survive a disk failure.
repository = "backups"
include = []                 # more root-relative paths, e.g. ["notes"]
exclude = []                 # root-relative paths left out
zstd_level = 3               # 1 (fastest) to 19 (smallest)
# `acp run` takes backups on this schedule (0 = never) and prunes after each.
full_every_hours = 24
differential_every_hours = 0
incremental_every_minutes = 60
# Retention for `acp backup prune`: the newest N backups, plus the newest of
# each of the last N days and weeks. Chains that kept backups need are kept.
keep_last = 24
keep_daily = 7
keep_weekly = 4
# `acp doctor` warns when the newest backup is older than this.
rpo_minutes = 120

# Several machines, one swarm (see docs/several-machines.md). Without
# this table acp runs on one machine and needs no NATS. Every machine keeps
# the same file; each names itself with ACP_NODE in its .env (or `acp run
# --node NAME`). NATS's address and credentials are ACP_NATS_* in .env,
# never here.
# [cluster]
# hub = "desk-1"               # required: runs the Discord bot and the HTTP
#                              # server, and holds the store of record
# swarm = "acp"                # namespaces subjects, streams and the bucket
# max_age_hours = 168          # how long work waits for a machine that is away
# max_stream_mb = 1024         # per stream; when full, new work waits on the hub
# duplicate_window_secs = 600  # JetStream drops a second copy within this time
# heartbeat_ms = 2000          # how often each machine says it is alive
# presence_ttl_ms = 10000      # unheard of this long: offline (>= 2 heartbeats)

"#;

const AGENTS_HELP: &str = r#"# One [[agents]] table per agent.
#   id         Agent-N style: a letter, then letters, digits, '-' or '_'
#   name       shown to people (default: the id)
#   role       default role (`acp roles set` overrides it)
#   workspace  directory under the root (absolute, or relative to the
#              root); default agent_workspaces/<id>. One per agent.
#   allow_outside_root
#              true: accept a workspace outside the root (refused
#              otherwise, since acp creates directories there)
#   delivery   this agent's method order (default: [delivery] order),
#              e.g. ["gui", "inbox"] once its coordinates are captured
#   window_title, window_class
#              regular expressions the window at the agent's point must
#              match before anything is typed (e.g. "Cursor.*Agent-3");
#              without them acp only refuses the bare desktop
#   doorbell   true: write the message to the inbox and type only a
#              one-line notice naming the file
#   input, submit_key, paste_key, newline_key, clear_keys,
#   onboarding_keys, pre_submit_delay_ms: as in [gui], for this agent
#   tmux       for an agent in a terminal: { target = "session:window.pane",
#              command = "^claude$", idle_pattern = "^>" } (see docs/terminal-agents.md;
#              `acp tmux attach AGENT PANE --save` writes it)
#   node       with [cluster]: the machine that runs this agent and
#              delivers to it (default: the hub), e.g. "desk-2"
"#;

fn config_template(names: &[String], tmux_session: Option<&str>) -> String {
    let mut s = String::from(CONFIG_HEAD);
    s.push_str(SERVICE_SECTIONS);
    s.push_str(AGENTS_HELP);
    for (i, name) in names.iter().enumerate() {
        let role = if i == 0 {
            "Captain: coordinates the swarm"
        } else {
            "General engineer"
        };
        let _ = write!(
            s,
            "\n[[agents]]\nid = \"{name}\"\nname = \"{name}\"\nrole = \"{role}\"\n"
        );
        if let Some(session) = tmux_session {
            let _ = write!(
                s,
                "delivery = [\"tmux\", \"inbox\"]\n# command: the agent's program in the pane (a shell is never pasted \
                 into)\ntmux = {{ target = \"{session}:{name}.0\", command = {} }}\n",
                toml::Value::String(crate::model::tmux::AGENT_PROGRAMS.into())
            );
        }
    }
    s
}

fn coordinates_template(names: &[String]) -> String {
    // Four agents per monitor in a 2×2 grid; the first monitor sits left of
    // the primary one, as in the original two-monitor set-up.
    let monitors = names.len().div_ceil(4).max(1);
    let mut entries = Vec::new();
    let mut layout = Vec::new();
    for m in 0..monitors {
        let x = (i32::try_from(m).unwrap_or(0) - 1) * MONITOR_W;
        layout.push(format!(
            "    {{\"name\": \"monitor-{}\", \"x\": {x}, \"y\": 0, \"width\": {MONITOR_W}, \
             \"height\": {MONITOR_H}}}",
            m + 1
        ));
    }
    for (i, name) in names.iter().enumerate() {
        let monitor = i / 4;
        let cell = i32::try_from(i % 4).unwrap_or(0);
        let left = (i32::try_from(monitor).unwrap_or(0) - 1) * MONITOR_W;
        let x = left + (cell % 2) * (MONITOR_W / 2) + MONITOR_W / 4;
        let y = (cell / 2) * (MONITOR_H / 2) + MONITOR_H / 2 - 60;
        entries.push(format!(
            "  \"{name}\": {{\"chat_input_coordinates\": [{x}, {y}], \"onboarding_coordinates\": \
             [{x}, {}], \"monitor\": \"monitor-{}\", \"description\": \"example: capture the \
             real point with `acp coords capture {name} --save`\"}}",
            y - 300,
            monitor + 1
        ));
    }
    format!(
        "{{\n  \"monitors\": [\n{}\n  ],\n{}\n}}\n",
        layout.join(",\n"),
        entries.join(",\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Env};
    use crate::coords::Coordinates;

    #[test]
    fn the_committed_examples_are_what_init_writes() {
        let names: Vec<String> = (1..=8).map(|n| format!("Agent-{n}")).collect();
        assert_eq!(
            config_template(&names, None),
            include_str!("../../config/acp.example.toml")
        );
        assert_eq!(
            coordinates_template(&names),
            include_str!("../../config/coordinates.example.json")
        );
    }

    #[test]
    fn templates_load_and_validate_clean() {
        for n in [1, 4, 8, 12] {
            let tmp = tempfile::tempdir().unwrap();
            let report = init(tmp.path(), n).unwrap();
            assert!(report.created.contains(&PathBuf::from(CONFIG_FILE)));
            let config = Config::load(tmp.path(), &Env::new()).unwrap();
            assert_eq!(config.agents.all().len(), n as usize);
            let coords = Coordinates::load(&config.coords_path()).unwrap();
            let findings = coords.validate(&config.agents, config.coords.near_radius_px);
            assert!(findings.is_empty(), "{n} agents: {findings:?}");
            assert!(init(tmp.path(), n).unwrap().created.is_empty());
        }
    }
}
