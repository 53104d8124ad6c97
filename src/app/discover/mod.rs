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

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Serialize;

use super::App;
use crate::model::AgentId;
use crate::model::tmux::{is_shell, valid_socket, valid_target};

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

/// A window application acp knows: its `WM_CLASS` class, name, and the
/// start of its agents' ids.
const APPS: &[(&str, &str, &str)] = &[
    ("Cursor", "Cursor", "cursor"),
    ("Code", "VS Code", "vscode"),
];

/// Agent ids in use, compared without case (the config refuses two ids
/// that differ only in case).
struct Ids(HashSet<String>);

impl Ids {
    fn take(&mut self, id: &str) -> Option<AgentId> {
        let parsed: AgentId = id.parse().ok()?;
        self.0.insert(id.to_ascii_lowercase()).then_some(parsed)
    }

    /// `wanted` if free, else `PREFIX-N` for the first free N.
    fn allocate(&mut self, wanted: Option<&str>, prefix: &str) -> AgentId {
        if let Some(id) = wanted.and_then(|w| self.take(w)) {
            return id;
        }
        let mut prefix: String = prefix
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(24)
            .collect();
        if !prefix.starts_with(|c: char| c.is_ascii_alphabetic()) {
            prefix.insert_str(0, "agent-");
        }
        (1..)
            .find_map(|n| self.take(&format!("{prefix}-{n}")))
            .unwrap_or_else(|| unreachable!("ids run out only after every number"))
    }
}

impl App {
    /// Looks for running agents: tmux panes on every server in the
    /// user's tmux folder, and windows of agent applications on the
    /// display. Reads only; [`App::save_discovered`] writes.
    pub async fn discover(&self) -> Discovery {
        let config = std::sync::Arc::clone(&self.config);
        let found = tokio::task::spawn_blocking(move || discover(&config)).await;
        found.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}

fn discover(config: &crate::config::Config) -> Discovery {
    let mut ids = Ids(config
        .agents
        .all()
        .iter()
        .map(|a| a.id.as_str().to_ascii_lowercase())
        .collect());
    let dir = tmux_dir(config);
    let (servers, panes) = tmux_panes(config, &dir, &mut ids);
    let (windows, windows_unread) = match windows(config, &mut ids) {
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
    config: &crate::config::Config,
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
            let Some(seen) = agent_in(&table, row, &config.discover.programs) else {
                continue;
            };
            let mut pane = pane_found(&socket, row, &rows, seen);
            pane.standing = standing(config, &socket, row, &pane, ids, &mut named_windows);
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
    config: &crate::config::Config,
    socket: &str,
    row: &crate::delivery::tmux::PaneRow,
    pane: &FoundPane,
    ids: &mut Ids,
    named_windows: &mut HashSet<String>,
) -> Standing {
    let here = config.cluster.as_ref().map(|c| &c.node);
    let configured = config.agents.all().iter().find(|a| {
        let on_this_machine = a.node.is_none() || a.node.as_ref() == here;
        a.tmux.as_ref().is_some_and(|t| {
            on_this_machine
                && t.socket.as_deref().unwrap_or(DEFAULT_SOCKET) == socket
                && row.is_named_by(&t.target)
        })
    });
    if let Some(agent) = configured {
        return Standing::Configured {
            agent: agent.id.clone(),
        };
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

/// The windows of agent applications, and where each stands.
fn windows(config: &crate::config::Config, ids: &mut Ids) -> Result<Vec<FoundWindow>, String> {
    let points = crate::coords::Coordinates::load(&config.coords_path())
        .map(|c| c.agents)
        .unwrap_or_default();
    let pointed: Vec<(&AgentId, crate::coords::Point)> =
        points.iter().map(|(id, p)| (id, p.chat_input)).collect();
    let (seen, at) = list_windows(config, &pointed.iter().map(|(_, p)| *p).collect::<Vec<_>>())?;
    let mut out = Vec::new();
    // Agents without a point whose window guard matches a class: each
    // accounts for one window of it.
    let mut unpointed: Vec<&crate::model::Agent> = config
        .agents
        .all()
        .iter()
        .filter(|a| a.gui.window_class.is_some() && !points.contains_key(&a.id))
        .collect();
    for w in seen {
        let class_name = w.class.rsplit('/').next().unwrap_or(&w.class);
        let Some((_, app, prefix)) = APPS.iter().find(|(c, _, _)| *c == class_name) else {
            continue;
        };
        let by_point = pointed
            .iter()
            .zip(&at)
            .find(|(_, top)| **top == Some(w.top_level))
            .map(|((id, _), _)| (*id).clone());
        let by_class = || {
            let i = unpointed.iter().position(|a| {
                a.gui
                    .window_class
                    .as_ref()
                    .is_some_and(|c| c.is_match(&w.class))
            })?;
            Some(unpointed.remove(i).id.clone())
        };
        let standing = match by_point.or_else(by_class) {
            Some(agent) => Standing::Configured { agent },
            None => {
                let agent = ids.allocate(None, prefix);
                let table = save::window_table(config, &agent, app, &w.class, &w.title);
                Standing::New { agent, table }
            }
        };
        out.push(FoundWindow {
            window: w.top_level,
            app: (*app).to_owned(),
            class: w.class,
            title: w.title,
            standing,
        });
    }
    Ok(out)
}

/// An application window on the screen.
struct WindowSeen {
    top_level: u32,
    class: String,
    title: String,
}

/// The application windows on the screen, and the top-level window at
/// each of `points`.
#[cfg(all(unix, not(target_os = "macos")))]
fn list_windows(
    config: &crate::config::Config,
    points: &[crate::coords::Point],
) -> Result<(Vec<WindowSeen>, Vec<Option<u32>>), String> {
    if config.gui.display.is_none() {
        return Err("no display (DISPLAY is not set): windows were not looked at".into());
    }
    let (windows, at) = crate::delivery::gui::probe::windows(&config.gui, points)?;
    let windows = windows
        .into_iter()
        .map(|w| WindowSeen {
            top_level: w.top_level,
            class: w.class,
            title: w.title,
        })
        .collect();
    Ok((windows, at))
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn list_windows(
    _config: &crate::config::Config,
    _points: &[crate::coords::Point],
) -> Result<(Vec<WindowSeen>, Vec<Option<u32>>), String> {
    Err("windows are looked for on X11 only so far".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_window_name_when_free_else_numbered_and_never_clash() {
        let mut ids = Ids(["agent-1", "claude-1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect());
        assert_eq!(
            ids.allocate(Some("reviewer"), "claude").as_str(),
            "reviewer"
        );
        // Taken (in any case), or not an id: numbered.
        assert_eq!(
            ids.allocate(Some("Reviewer"), "claude").as_str(),
            "claude-2"
        );
        assert_eq!(ids.allocate(Some("Agent-1"), "claude").as_str(), "claude-3");
        assert_eq!(ids.allocate(Some("my window"), "codex").as_str(), "codex-1");
        assert_eq!(ids.allocate(None, "codex").as_str(), "codex-2");
        // A program whose name is no id's start.
        assert_eq!(ids.allocate(None, "2.0.76").as_str(), "agent-2076-1");
    }
}
