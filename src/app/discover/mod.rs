//! `acp discover`: the agents already running on this machine, and the
//! `[[agents]]` tables that would reach them.
//!
//! - **tmux**: every server whose socket is in the user's tmux folder
//!   (`${TMUX_TMPDIR:-/tmp}/tmux-UID/`: the default server and the named
//!   ones), every pane: the pane's foreground job, at or under its first
//!   process (a shell, often), is looked up in `/proc` for a known agent
//!   program ([`programs`]). A pane an agent's `tmux.target` already names
//!   is reported as configured; one where tmux shows a shell (the agent runs
//!   under a shell that is not interactive) as unreachable, since tmux
//!   delivery never pastes into a shell.
//! - **Windows** (X11): the windows of agent applications (Cursor, VS
//!   Code). Their points are unknown until a person captures them.
//!
//! [`save`] writes the new tables into `config/acp.toml`.

mod procs;
mod programs;
mod save;
mod windows;

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Serialize;

use super::{App, AppError};
use crate::model::AgentId;
use crate::model::tmux::{is_shell, valid_socket, valid_target};

use save::Ids;
pub use save::Saved;

/// The tmux server `tmux` uses without `-L`.
const DEFAULT_SOCKET: &str = "default";

/// What `acp discover` found on this machine.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    /// The folder of tmux sockets looked in.
    pub tmux_dir: String,
    /// Each tmux server there.
    pub servers: Vec<TmuxServer>,
    /// Agent programs found in tmux panes.
    pub panes: Vec<FoundPane>,
    /// Windows of agent applications.
    pub windows: Vec<FoundWindow>,
    /// Why no windows were looked at (no display), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows_unread: Option<String>,
}

impl Discovery {
    /// The agents `acp discover --save` would add.
    #[must_use]
    pub fn new_agents(&self) -> Vec<(&AgentId, &str)> {
        let panes = self.panes.iter().map(|p| &p.standing);
        let windows = self.windows.iter().map(|w| &w.standing);
        panes
            .chain(windows)
            .filter_map(|s| match s {
                Standing::New { agent, table } => Some((agent, table.as_str())),
                _ => None,
            })
            .collect()
    }
}

/// A tmux server.
#[derive(Debug, Clone, Serialize)]
pub struct TmuxServer {
    /// Its name, as `tmux -L` takes it (`default` without `-L`).
    pub socket: String,
    pub path: String,
    /// Panes looked at.
    pub panes: usize,
    /// Why it did not answer (a socket left by a server that ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where something found stands with the config.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Standing {
    /// Not configured: `table` adds it, as `agent`.
    New { agent: AgentId, table: String },
    /// An agent's table already reaches it.
    Configured { agent: AgentId },
    /// acp could not deliver there: why, and what to do.
    Unreachable { reason: String },
}

/// An agent program in a tmux pane.
#[derive(Debug, Clone, Serialize)]
pub struct FoundPane {
    /// The server (`default`, or the `-L` name).
    pub socket: String,
    /// The pane id (`%3`).
    pub pane: String,
    /// The target a table would name (`work:1.0`).
    pub target: String,
    /// The agent program (`claude`).
    pub program: String,
    /// What people call it (`Claude Code`).
    pub title: String,
    /// Its process, and how it was told.
    pub pid: u32,
    pub seen_as: String,
    /// The pane's program as tmux shows it (what the guard checks).
    pub pane_command: String,
    /// The guard and the profile a table would set.
    pub guard: String,
    pub profile: String,
    /// The pane's working directory.
    pub cwd: String,
    #[serde(flatten)]
    pub standing: Standing,
}

/// A window of an agent application.
#[derive(Debug, Clone, Serialize)]
pub struct FoundWindow {
    /// The X11 window id.
    pub window: u32,
    /// The application (`Cursor`).
    pub app: String,
    /// `WM_CLASS` as "instance/Class", and the title.
    pub class: String,
    pub title: String,
    #[serde(flatten)]
    pub standing: Standing,
}

impl App {
    /// Looks for running agents: tmux panes on every server in the
    /// user's tmux folder, and windows of agent applications on the
    /// display. Reads only; [`App::save_discovered`] writes.
    ///
    /// # Errors
    /// [`AppError::Store`] if the agents acp started cannot be read.
    pub async fn discover(&self) -> Result<Discovery, AppError> {
        let store = std::sync::Arc::clone(&self.store);
        let started = super::blocking(move || store.spawned(false)).await?;
        let known = Known {
            config: std::sync::Arc::clone(&self.config),
            agents: std::sync::Arc::clone(&self.registry),
            started,
        };
        let found = tokio::task::spawn_blocking(move || discover(&known)).await;
        Ok(found.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())))
    }
}

/// What acp already knows: its config, its agents (the configured ones
/// and the running ones it started) and every agent it ever started.
struct Known {
    config: std::sync::Arc<crate::config::Config>,
    agents: std::sync::Arc<crate::model::Registry>,
    started: Vec<crate::model::Spawned>,
}

fn discover(known: &Known) -> Discovery {
    let config = &known.config;
    // Ids in use, and those of agents acp started and stopped: an id is
    // never reused for another agent.
    let mut ids = Ids(known
        .agents
        .all()
        .iter()
        .map(|a| &a.id)
        .chain(known.started.iter().map(|s| &s.id))
        .map(|id| id.as_str().to_ascii_lowercase())
        .collect());
    let dir = tmux_dir(config);
    let (servers, panes) = tmux_panes(known, &dir, &mut ids);
    let (windows, windows_unread) = match windows::found(config, known.agents.all(), &mut ids) {
        Ok(w) => (w, None),
        Err(why) => (Vec::new(), Some(why)),
    };
    Discovery {
        tmux_dir: dir.display().to_string(),
        servers,
        panes,
        windows,
        windows_unread,
    }
}

/// `${TMUX_TMPDIR:-/tmp}/tmux-UID`, as tmux makes it.
fn tmux_dir(config: &crate::config::Config) -> PathBuf {
    let base = config
        .discover
        .tmux_tmpdir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    #[cfg(unix)]
    let uid = rustix::process::getuid().as_raw();
    #[cfg(not(unix))]
    let uid = 0;
    base.join(format!("tmux-{uid}"))
}

/// The sockets in `dir`, the default server first, then by name.
fn sockets(dir: &std::path::Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| {
            #[cfg(unix)]
            {
                use std::os::unix::fs::FileTypeExt as _;
                e.file_type().is_ok_and(|t| t.is_socket())
            }
            #[cfg(not(unix))]
            {
                let _ = e;
                false
            }
        })
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    out.sort_by(|a, b| (a.0 != DEFAULT_SOCKET, &a.0).cmp(&(b.0 != DEFAULT_SOCKET, &b.0)));
    out
}

/// Every tmux server's panes, and the agents in them.
fn tmux_panes(
    known: &Known,
    dir: &std::path::Path,
    ids: &mut Ids,
) -> (Vec<TmuxServer>, Vec<FoundPane>) {
    let table = procs::Table::read();
    let mut servers = Vec::new();
    let mut found = Vec::new();
    let mut named_windows: HashSet<String> = HashSet::new();
    for (socket, path) in sockets(dir) {
        let rows = match crate::delivery::tmux::list_panes(&path) {
            Ok(rows) => rows,
            Err(e) => {
                servers.push(TmuxServer {
                    socket,
                    path: path.display().to_string(),
                    panes: 0,
                    error: Some(e.reason),
                });
                continue;
            }
        };
        for row in &rows {
            let Some(seen) = agent_in(&table, row, &known.config.discover.programs) else {
                continue;
            };
            let mut pane = pane_found(&socket, row, &rows, seen);
            pane.standing = standing(known, &socket, row, &pane, ids, &mut named_windows);
            found.push(pane);
        }
        servers.push(TmuxServer {
            socket,
            path: path.display().to_string(),
            panes: rows.len(),
            error: None,
        });
    }
    (servers, found)
}

/// The agent program in a pane's foreground job, nearest its first
/// process; without a process table, by what tmux shows.
fn agent_in(
    table: &procs::Table,
    row: &crate::delivery::tmux::PaneRow,
    extra: &[crate::config::ProgramPattern],
) -> Option<(u32, programs::Seen)> {
    let under = table.foreground_under(row.pid);
    if under.is_empty() {
        let facts = programs::Facts {
            comm: row.command.clone(),
            argv: vec![row.command.clone()],
            exe: None,
        };
        return programs::identify(&facts, extra).map(|s| (row.pid, s));
    }
    under.into_iter().find_map(|pid| {
        let facts = procs::facts(pid)?;
        programs::identify(&facts, extra).map(|s| (pid, s))
    })
}

/// The target a table names: the window by its given name when that is
/// unique in its session, else by its index; the pane id where neither
/// makes a target acp accepts.
fn target_of(
    row: &crate::delivery::tmux::PaneRow,
    rows: &[crate::delivery::tmux::PaneRow],
) -> String {
    let unique_name = row.window_named
        && rows
            .iter()
            .filter(|r| r.session == row.session && r.window_name == row.window_name)
            .all(|r| r.window_index == row.window_index);
    let by_name = format!("{}:{}.{}", row.session, row.window_name, row.pane_index);
    let by_index = format!("{}:{}.{}", row.session, row.window_index, row.pane_index);
    if unique_name && valid_target(&by_name) && row.is_named_by(&by_name) {
        by_name
    } else if valid_target(&by_index) {
        by_index
    } else {
        row.id.clone()
    }
}

fn pane_found(
    socket: &str,
    row: &crate::delivery::tmux::PaneRow,
    rows: &[crate::delivery::tmux::PaneRow],
    (pid, seen): (u32, programs::Seen),
) -> FoundPane {
    let (title, profile) = seen.known.map_or((seen.program.clone(), "generic"), |k| {
        (k.title.to_owned(), k.profile)
    });
    FoundPane {
        socket: socket.to_owned(),
        pane: row.id.clone(),
        target: target_of(row, rows),
        guard: programs::guard(&seen.program, &row.command),
        program: seen.program,
        title,
        pid,
        seen_as: seen.how,
        pane_command: row.command.clone(),
        profile: profile.to_owned(),
        cwd: row.path.clone(),
        standing: Standing::Unreachable {
            reason: String::new(),
        },
    }
}

/// Whether a found pane is configured, unreachable, or new (with its id
/// and table).
fn standing(
    known: &Known,
    socket: &str,
    row: &crate::delivery::tmux::PaneRow,
    pane: &FoundPane,
    ids: &mut Ids,
    named_windows: &mut HashSet<String>,
) -> Standing {
    let config = &known.config;
    let here = config.cluster.as_ref().map(|c| &c.node);
    let on_this_machine = |node: Option<&crate::model::NodeName>| node.is_none() || node == here;
    let names_pane = |target: &str, on: Option<&str>| {
        on.unwrap_or(DEFAULT_SOCKET) == socket && row.is_named_by(target)
    };
    let configured = known.agents.all().iter().find_map(|a| {
        let t = a.tmux.as_ref()?;
        (on_this_machine(a.node.as_ref()) && names_pane(&t.target, t.socket.as_deref()))
            .then(|| a.id.clone())
    });
    // A running agent acp started whose settings no longer load is left
    // out of the registry, but its pane is still its own.
    let started = || {
        known.started.iter().find_map(|s| {
            (s.state != crate::model::SpawnState::Stopped
                && on_this_machine(s.node.as_ref())
                && names_pane(&s.target, s.socket.as_deref()))
            .then(|| s.id.clone())
        })
    };
    if let Some(agent) = configured.or_else(started) {
        return Standing::Configured { agent };
    }
    if is_shell(&row.command) {
        return Standing::Unreachable {
            reason: format!(
                "tmux shows {:?}, a shell, as this pane's program: {} runs under a shell that is \
                 not interactive, and tmux delivery never pastes into a shell. Start it as the \
                 pane's command (tmux new-window {}) or at an interactive shell's prompt",
                row.command, pane.program, pane.program
            ),
        };
    }
    if socket != DEFAULT_SOCKET && !valid_socket(socket) {
        return Standing::Unreachable {
            reason: format!(
                "its tmux server's socket {socket:?} is not a name tmux.socket takes (letters, \
                 digits, '_' or '-'): start the server with such a name (tmux -L NAME)"
            ),
        };
    }
    // The window's given name, once per server and session.
    let window_key = format!("{socket}\n{}\n{}", row.session, row.window_name);
    let wanted =
        (row.window_named && named_windows.insert(window_key)).then_some(row.window_name.as_str());
    let agent = ids.allocate(wanted, &pane.program);
    let table = save::pane_table(config, &agent, socket, pane);
    Standing::New { agent, table }
}
