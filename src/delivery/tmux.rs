//! The `tmux` delivery method: a bracketed paste into the agent's pane.
//!
//! 1. **Guard.** The pane must exist, its running command
//!    (`#{pane_current_command}`) must not be a shell (a shell would run the
//!    message as commands; only `paste_into_shell_runs_messages = true`
//!    allows it) and must match the agent's `tmux.command`; otherwise
//!    nothing is sent and the next method is tried, with the reason in the
//!    attempt.
//! 2. **One at a time per pane**, across processes: an OS lock on
//!    `data/tmux/<socket>_<pane>.lock`. Different panes run in parallel.
//! 3. **Idle gating.** With `tmux.idle_pattern`, a pane whose last lines do
//!    not match is busy: the attempt ends "busy" (no other method is
//!    tried) and the dispatcher looks again a second later, serving other
//!    agents meanwhile. Once the message has waited `busy_max_wait`, it is
//!    delivered anyway (`when_busy = "deliver"`) or keeps waiting
//!    (`"wait"`).
//! 4. **Delivery.** The body goes into a tmux buffer from standard input
//!    (`load-buffer -`: no shell, no tmux parsing of `;`, `#{}` or `$()`),
//!    then `paste-buffer -p -r -d` pastes it as one bracketed paste with its
//!    newlines as they are; after `pre_submit_delay` the submit key.
//! 5. **Submit check.** acp reads the pane; if the end of the text still sits
//!    on the input line after a second, the submit was lost: it presses the key once more
//!    and says so in the receipt.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::lockfile;
use crate::model::pane::Screen;
use crate::model::tmux::{TmuxSettings, WhenBusy};
use crate::model::{DeliveryError, MethodName, UnifiedMessage};

use super::{DeliveryMethod, Target};

/// How long a delivery waits for another one to the same pane.
const PANE_LOCK_WAIT: Duration = Duration::from_secs(120);
/// How soon a busy agent is looked at again.
const BUSY_RETRY: Duration = Duration::from_secs(1);
/// How many of the pane's last lines the idle pattern and the submit check
/// read.
const TAIL_LINES: usize = 5;
/// How long the submit check gives the agent to take the text off its
/// input line before it counts the submit as lost (a busy machine redraws
/// slowly), and how often it looks meanwhile.
const SUBMIT_SETTLE: Duration = Duration::from_secs(1);
const SUBMIT_POLL: Duration = Duration::from_millis(25);

/// Delivers into tmux panes.
pub struct TmuxMethod {
    locks: PathBuf,
}

/// What the guard saw in a pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pane {
    /// The pane id (`%3`).
    pub id: String,
    /// Its running command.
    pub command: String,
}

fn tmux(s: &TmuxSettings) -> Command {
    let mut c = Command::new("tmux");
    if let Some(socket) = &s.socket {
        c.args(["-L", socket]);
    }
    c.stdin(Stdio::null());
    c
}

/// Runs tmux; its standard output, or why it failed.
fn run(mut c: Command, input: Option<&[u8]>) -> Result<String, DeliveryError> {
    if input.is_some() {
        c.stdin(Stdio::piped());
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DeliveryError::unavailable("tmux is not installed (apt install tmux)")
        } else {
            DeliveryError::transient(format!("cannot run tmux: {e}")).or_exhausted(&e)
        }
    })?;
    if let Some(bytes) = input
        && let Some(mut stdin) = child.stdin.take()
    {
        stdin
            .write_all(bytes)
            .map_err(|e| DeliveryError::transient(format!("cannot give tmux the text: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| DeliveryError::transient(format!("tmux did not finish: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(DeliveryError::transient(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// What the guard sees at the agent's target: the pane, or why nothing
/// may be sent there (permanent for this method: the next one is tried).
///
/// # Errors
/// [`DeliveryError`] naming the pane and the reason.
pub fn inspect(s: &TmuxSettings) -> Result<Pane, DeliveryError> {
    let mut c = tmux(s);
    c.args([
        "display-message",
        "-p",
        "-t",
        &s.target,
        "#{pane_id}\t#{pane_current_command}\t#{session_name}\t#{window_index}\t#{window_name}\t#{pane_index}",
    ]);
    let out = run(c, None).map_err(|e| match e.kind {
        crate::model::FailureKind::Transient => DeliveryError::permanent(format!(
            "tmux pane {} is not there ({}): start the agent there, or fix its tmux.target",
            s.target, e.reason
        )),
        _ => e,
    })?;
    let fields: Vec<&str> = out.trim_end().split('\t').collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    let pane = Pane {
        id: field(0).to_owned(),
        command: field(1).to_owned(),
    };
    // tmux answers for the nearest pane it finds when a name does not
    // match exactly: the pane must be the one the target names.
    if !names(&s.target, &pane.id, field(2), field(3), field(4), field(5)) {
        return Err(DeliveryError::permanent(format!(
            "tmux pane {} is not there (tmux would use {} in {}:{}.{} instead): start the agent \
             there, or fix its tmux.target",
            s.target,
            pane.id,
            field(2),
            field(4),
            field(5)
        )));
    }
    // A shell runs what is pasted into it: never, whatever tmux.command
    // says, unless the person said so in words that leave no doubt.
    if crate::model::tmux::is_shell(&pane.command) && !s.paste_into_shell {
        return Err(DeliveryError::permanent(format!(
            "tmux pane {} ({}) runs {:?}, a shell: a message pasted there would run as commands, \
             so nothing was typed. The agent may have exited: start it again in that pane (e.g. \
             `claude`), or fix tmux.target",
            s.target, pane.id, pane.command
        )));
    }
    if let Some(want) = &s.command
        && !want.is_match(&pane.command)
    {
        return Err(DeliveryError::permanent(format!(
            "tmux pane {} ({}) runs {:?}, not matching tmux.command /{want}/: nothing was typed \
             there",
            s.target, pane.id, pane.command
        )));
    }
    Ok(pane)
}

/// One pane of a tmux server, as `acp discover` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaneRow {
    /// The pane id (`%3`).
    pub id: String,
    /// The first process in the pane (often a shell).
    pub pid: u32,
    /// Its running command, as the guard sees it.
    pub command: String,
    pub session: String,
    pub window_index: String,
    pub window_name: String,
    /// The window's name was given (`-n`, `rename-window`), not taken
    /// from its program by tmux.
    pub window_named: bool,
    pub pane_index: String,
    /// The pane's working directory.
    pub path: String,
}

impl PaneRow {
    /// Whether an agent's `tmux.target` names this pane.
    #[must_use]
    pub fn is_named_by(&self, target: &str) -> bool {
        names(
            target,
            &self.id,
            &self.session,
            &self.window_index,
            &self.window_name,
            &self.pane_index,
        )
    }
}

/// Every live pane of the tmux server at `socket` (a socket file's path,
/// `tmux -S`).
///
/// # Errors
/// [`DeliveryError`] saying why the server did not answer (none runs
/// there: "no server running", "error connecting").
pub fn list_panes(socket: &std::path::Path) -> Result<Vec<PaneRow>, DeliveryError> {
    let mut c = Command::new("tmux");
    c.arg("-S").arg(socket).stdin(Stdio::null()).args([
        "list-panes",
        "-a",
        "-F",
        "#{pane_dead}\t#{pane_id}\t#{pane_pid}\t#{pane_current_command}\t#{session_name}\t\
         #{window_index}\t#{pane_index}\t#{?automatic-rename,0,1}\t#{pane_current_path}\t\
         #{window_name}",
    ]);
    let out = run(c, None)?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.splitn(10, '\t').collect();
            if f.len() < 10 || f[0] == "1" {
                return None;
            }
            Some(PaneRow {
                id: f[1].to_owned(),
                pid: f[2].parse().ok()?,
                command: f[3].to_owned(),
                session: f[4].to_owned(),
                window_index: f[5].to_owned(),
                pane_index: f[6].to_owned(),
                window_named: f[7] == "1",
                path: f[8].to_owned(),
                window_name: f[9].to_owned(),
            })
        })
        .collect())
}

/// Whether `target` names exactly this pane.
fn names(
    target: &str,
    pane_id: &str,
    session: &str,
    window_index: &str,
    window_name: &str,
    pane_index: &str,
) -> bool {
    if target.starts_with('%') {
        return target == pane_id;
    }
    let (sess, rest) = target.split_once(':').unwrap_or((target, ""));
    let (window, pane) = rest.split_once('.').unwrap_or((rest, ""));
    sess == session
        && (window.is_empty() || window == window_name || window == window_index)
        && (pane.is_empty() || pane == pane_index)
}

/// The pane's last lines, as shown.
fn tail(s: &TmuxSettings, pane: &str) -> Result<Vec<String>, DeliveryError> {
    let mut c = tmux(s);
    c.args(["capture-pane", "-p", "-J", "-t", pane]);
    let text = run(c, None)?;
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| l.trim_end().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    let keep = lines.len().saturating_sub(TAIL_LINES);
    Ok(lines.split_off(keep))
}

/// The pane's visible screen, as `capture-pane -p` shows it.
///
/// # Errors
/// [`DeliveryError`] if the pane cannot be read.
pub fn screen(s: &TmuxSettings, pane: &str) -> Result<String, DeliveryError> {
    let mut c = tmux(s);
    c.args(["capture-pane", "-p", "-t", pane]);
    run(c, None)
}

/// What the agent's profile reads on its pane's screen now.
///
/// # Errors
/// [`DeliveryError`] if the pane cannot be read.
pub fn read_pane(s: &TmuxSettings, pane: &Pane) -> Result<Screen, DeliveryError> {
    let Some(profile) = s.profile_for(&pane.command) else {
        return Ok(Screen::Unknown);
    };
    Ok(profile.read(&screen(s, &pane.id)?))
}

/// Presses `key` in the pane (then Enter, for a prompt that reads a line).
///
/// # Errors
/// [`DeliveryError`] if tmux refuses.
pub fn press(s: &TmuxSettings, pane: &str, key: &str, enter: bool) -> Result<(), DeliveryError> {
    let mut c = tmux(s);
    c.args(["send-keys", "-t", pane, key]);
    run(c, None)?;
    if enter {
        let mut c = tmux(s);
        c.args(["send-keys", "-t", pane, "Enter"]);
        run(c, None)?;
    }
    Ok(())
}

/// Whether the agent waits for input, by the idle pattern on the pane's
/// last lines (always, without a pattern).
///
/// # Errors
/// [`DeliveryError`] if the pane cannot be read.
pub fn is_idle(s: &TmuxSettings, pane: &str) -> Result<bool, DeliveryError> {
    let Some(idle) = &s.idle_pattern else {
        return Ok(true);
    };
    Ok(tail(s, pane)?.iter().any(|l| idle.is_match(l)))
}

impl TmuxMethod {
    /// The method, with its pane locks under `locks` (`data/tmux`).
    #[must_use]
    pub fn new(locks: PathBuf) -> Self {
        Self { locks }
    }

    fn lock(&self, s: &TmuxSettings, pane: &Pane) -> Result<lockfile::Held, DeliveryError> {
        std::fs::create_dir_all(&self.locks).map_err(|e| {
            DeliveryError::transient(format!("cannot create {}: {e}", self.locks.display()))
        })?;
        let name: String = format!("{}_{}", s.socket.as_deref().unwrap_or("default"), pane.id)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        lockfile::acquire(
            &self.locks.join(format!("{name}.lock")),
            lockfile::Mode::Exclusive,
            PANE_LOCK_WAIT,
        )
        .map_err(|e| DeliveryError::transient(format!("another delivery holds the pane: {e}")))
    }
}

/// The end of the text as it would sit on the input line.
fn tail_of(body: &str) -> String {
    let last = body
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let chars: Vec<char> = last.trim_end().chars().collect();
    chars[chars.len().saturating_sub(16)..].iter().collect()
}

impl DeliveryMethod for TmuxMethod {
    fn name(&self) -> MethodName {
        MethodName::Tmux
    }

    fn deliver(&self, to: Target<'_>, message: &UnifiedMessage) -> Result<String, DeliveryError> {
        let agent = to.agent(self.name())?;
        let s = agent.tmux.as_ref().ok_or_else(|| {
            DeliveryError::permanent(format!("{} has no tmux table in config/acp.toml", agent.id))
        })?;
        let pane = inspect(s)?;
        let _held = self.lock(s, &pane)?;
        // Looked at again under the lock: it may have changed meanwhile.
        let pane = inspect(s)?;
        // Busy: come back in a moment (the dispatcher keeps the message and
        // serves other agents meanwhile), until the message has waited
        // busy_max_wait; then deliver anyway, or keep waiting.
        let waited = Duration::from_millis(
            u64::try_from(crate::store::now_ms() - message.created_at).unwrap_or(0),
        );
        // A dialog or a question on the screen would take the message as
        // its answer ("1" is "Yes"): never pasted, however long it waits.
        let shown = read_pane(s, &pane)?;
        if shown.takes_answers() {
            let what = if matches!(shown, Screen::Dialog { .. }) {
                "a permission dialog"
            } else {
                "a question"
            };
            let mut e = DeliveryError::busy(format!(
                "{} shows {what}: a message pasted now would answer it, so it waits until the \
                 dialog is answered (from Discord, acp approve, or the terminal)",
                agent.id
            ));
            e.retry_after = Some(BUSY_RETRY);
            return Err(e);
        }
        let busy = !is_idle(s, &pane.id)?;
        if busy && (waited < s.busy_max_wait || s.when_busy == WhenBusy::Wait) {
            let mut e = DeliveryError::busy(format!(
                "{} is busy (its pane does not match tmux.idle_pattern): kept queued{}",
                agent.id,
                if s.when_busy == WhenBusy::Wait {
                    String::new()
                } else {
                    format!(", delivered anyway after {} s", s.busy_max_wait.as_secs())
                }
            ));
            e.retry_after = Some(BUSY_RETRY);
            return Err(e);
        }
        let buffer = format!("acp-{}", message.id);
        let mut load = tmux(s);
        load.args(["load-buffer", "-b", &buffer, "-"]);
        run(load, Some(message.body.as_bytes()))?;
        let mut paste = tmux(s);
        paste.args([
            "paste-buffer",
            "-p",
            "-r",
            "-d",
            "-b",
            &buffer,
            "-t",
            &pane.id,
        ]);
        run(paste, None)?;
        std::thread::sleep(s.pre_submit_delay);
        let submit = || {
            let mut c = tmux(s);
            c.args(["send-keys", "-t", &pane.id, &s.submit_key]);
            run(c, None)
        };
        submit()?;
        let end = tail_of(&message.body);
        let on_input_line = || -> Result<bool, DeliveryError> {
            Ok(!end.is_empty() && tail(s, &pane.id)?.last().is_some_and(|l| l.ends_with(&end)))
        };
        // The submit went through once the text leaves the input line.
        let checked = std::time::Instant::now();
        let mut still_there = on_input_line()?;
        while still_there && checked.elapsed() < SUBMIT_SETTLE {
            std::thread::sleep(SUBMIT_POLL);
            still_there = on_input_line()?;
        }
        let mut detail = format!("pane {} ({}) running {}", pane.id, s.target, pane.command);
        if busy {
            let _ = write!(
                detail,
                ", busy after {} s of waiting: delivered anyway (when_busy = \"deliver\")",
                waited.as_secs()
            );
        }
        if still_there {
            submit()?;
            detail.push_str(
                "; the text was still in the input after the submit, so it was pressed again",
            );
        }
        Ok(detail)
    }
}
