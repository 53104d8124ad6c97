//! Starting and ending agents' programs for `acp spawn` and `acp stop`: a
//! tmux window running the project's command (its words run as given, no
//! shell between), and a git worktree of its own. Each function says what
//! went wrong in a sentence a person can act on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a window or a worktree could not be made or ended.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LaunchError(pub String);

/// A window to open for a new agent.
#[derive(Debug, Clone)]
pub struct Window<'a> {
    /// A named tmux server (`-L`); none: the default one.
    pub socket: Option<&'a str>,
    pub session: &'a str,
    /// The window's name (the agent's id).
    pub name: &'a str,
    /// Where the program starts.
    pub dir: &'a Path,
    /// The program and its arguments.
    pub command: &'a [String],
    /// Set in the program's environment.
    pub env: &'a [(String, String)],
}

fn tmux(socket: Option<&str>) -> Command {
    let mut c = Command::new("tmux");
    if let Some(socket) = socket {
        c.args(["-L", socket]);
    }
    c.stdin(Stdio::null());
    c
}

/// Runs a command; its standard output, or its error output as the reason.
fn run(mut c: Command, what: &str) -> Result<String, LaunchError> {
    let out = c.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            LaunchError(format!("{what}: the program is not installed ({e})"))
        } else {
            LaunchError(format!("{what}: {e}"))
        }
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(LaunchError(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Opens a window running `w.command` in session `w.session` (made if it
/// is not there yet); returns the new pane's id (`%12`).
///
/// # Errors
/// [`LaunchError`]: tmux missing or refusing.
pub fn open_window(w: &Window<'_>) -> Result<String, LaunchError> {
    if w.command.is_empty() {
        return Err(LaunchError("the project's command is empty".into()));
    }
    let exists = tmux(w.socket)
        .args(["has-session", "-t", &format!("={}", w.session)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut c = tmux(w.socket);
    if exists {
        c.args(["new-window", "-d", "-t", &format!("={}:", w.session)]);
    } else {
        c.args(["new-session", "-d", "-s", w.session]);
    }
    c.args(["-n", w.name, "-P", "-F", "#{pane_id}", "-c"])
        .arg(w.dir);
    for (key, value) in w.env {
        c.arg("-e").arg(format!("{key}={value}"));
    }
    // Several words are run directly (one alone would go to `sh -c`):
    // `env --` first makes even a one-word command several, and execs it.
    c.args(["env", "--"]);
    c.args(w.command);
    let pane = run(
        c,
        &format!("cannot start the agent in tmux session {}", w.session),
    )?;
    if !pane.starts_with('%') {
        return Err(LaunchError(format!(
            "tmux did not say which pane it opened (it printed {pane:?})"
        )));
    }
    Ok(pane)
}

/// Ends pane `target`'s window; `false` when it was already gone.
///
/// # Errors
/// [`LaunchError`]: tmux refusing for another reason.
pub fn close_window(socket: Option<&str>, target: &str) -> Result<bool, LaunchError> {
    if !pane_alive(socket, target) {
        return Ok(false);
    }
    run(
        {
            let mut c = tmux(socket);
            c.args(["kill-window", "-t", target]);
            c
        },
        &format!("cannot close pane {target}'s window"),
    )?;
    Ok(true)
}

/// Whether pane `target` is there.
#[must_use]
pub fn pane_alive(socket: Option<&str>, target: &str) -> bool {
    tmux(socket)
        .args(["display-message", "-p", "-t", target, "#{pane_id}"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == target)
}

fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(dir).stdin(Stdio::null());
    c
}

/// Adds a worktree at `path` on a new branch `branch` from `repo`'s
/// checked-out commit (or on `branch` as it is, if it exists: a restart).
///
/// # Errors
/// [`LaunchError`]: not a repository, the path or branch in use.
pub fn add_worktree(repo: &Path, path: &Path, branch: &str) -> Result<(), LaunchError> {
    let exists = git(repo)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("refs/heads/{branch}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut c = git(repo);
    c.args(["worktree", "add"]);
    if exists {
        c.arg(path).arg(branch);
    } else {
        c.args(["-b", branch]).arg(path);
    }
    run(
        c,
        &format!(
            "cannot add a git worktree of {} at {}",
            repo.display(),
            path.display()
        ),
    )
    .map(|_| ())
}

/// The files with changes in worktree `path` (modified, added, deleted,
/// untracked), as git names them.
///
/// # Errors
/// [`LaunchError`]: not a worktree.
pub fn changed_files(path: &Path) -> Result<Vec<String>, LaunchError> {
    let mut c = git(path);
    c.args(["status", "--porcelain=v1", "-z", "--untracked-files=all"]);
    let out = c
        .output()
        .map_err(|e| LaunchError(format!("cannot run git in {}: {e}", path.display())))?;
    if !out.status.success() {
        return Err(LaunchError(format!(
            "cannot read {}'s changes: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // Entries are "XY name\0", a rename adds "from\0" after.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut files = Vec::new();
    let mut parts = text.split('\0');
    while let Some(entry) = parts.next() {
        if entry.len() < 4 {
            continue;
        }
        let (code, name) = entry.split_at(3);
        files.push(name.to_owned());
        if code.starts_with('R') || code.starts_with('C') {
            parts.next();
        }
    }
    Ok(files)
}

/// Removes worktree `path` of `repo` (its branch stays). git refuses a
/// worktree with changes; the caller checks [`changed_files`] first to say
/// which.
///
/// # Errors
/// [`LaunchError`].
pub fn remove_worktree(repo: &Path, path: &Path) -> Result<(), LaunchError> {
    let mut c = git(repo);
    c.args(["worktree", "remove"]).arg(path);
    run(c, &format!("cannot remove the worktree {}", path.display())).map(|_| ())
}

/// Where agent `id`'s worktree goes under `worktrees`.
#[must_use]
pub fn worktree_path(worktrees: &Path, id: &str) -> PathBuf {
    worktrees.join(id)
}
