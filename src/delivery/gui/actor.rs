//! The one thread that owns the mouse and keyboard (enigo), the clipboard
//! (arboard) and the X connection of this process. Jobs arrive over a
//! channel; across processes an OS lock on `data/gui.lock` makes sure only
//! one acp types at a time.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use enigo::{Button, Coordinate, Direction, Enigo, Mouse, Settings};

use crate::config::GuiConfig;
use crate::coords::Point;
use crate::lockfile;
use crate::model::Agent;
use crate::model::DeliveryError;
use crate::model::keys::KeyCombo;

use super::clipboard;
use super::keys::{enigo_err, press, type_line, types};
use super::window::{Display, WindowInfo};

/// One delivery for the actor.
pub(super) struct Job {
    pub agent: Agent,
    /// Where to click and type.
    pub point: Point,
    /// For onboarding: click here first and press `keys_before`.
    pub prelude: Option<(Point, Vec<KeyCombo>)>,
    pub text: String,
    pub reply: mpsc::Sender<Result<String, DeliveryError>>,
}

/// What outlives one job: the X connection and the clipboard (which must
/// keep serving a paste after the job returns).
struct Session {
    display: Display,
    clipboard: Option<arboard::Clipboard>,
}

/// A clipboard to put back once the message is submitted.
struct Restore {
    /// Held until it is done, so that no other acp pastes in between.
    lock: lockfile::Held,
    what: clipboard::PutBack,
    /// The text pasted: if the clipboard holds something else by then, the
    /// user copied it meanwhile, and it stays.
    pasted: String,
}

/// After `onboarding_keys`, how long the agent's program gets to act on
/// them (open a new chat) before the onboarding point is looked at.
const ONBOARDING_KEYS_PAUSE: Duration = Duration::from_millis(100);

pub(super) struct Actor {
    config: GuiConfig,
    lock_path: PathBuf,
    session: Option<Session>,
    restore: Option<Restore>,
}

/// Runs jobs until every sender is gone.
pub(super) fn run(config: GuiConfig, lock_path: PathBuf, jobs: &mpsc::Receiver<Job>) {
    let mut actor = Actor {
        config,
        lock_path,
        session: None,
        restore: None,
    };
    while let Ok(job) = jobs.recv() {
        let reply = job.reply.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| actor.deliver(&job)))
            .unwrap_or_else(|_| {
                Err(DeliveryError::transient(
                    "keyboard-and-mouse delivery panicked (a bug: please report it)",
                ))
            });
        let failed = result.is_err();
        let _ = reply.send(result);
        // The message is submitted and the sender told; now put the user's
        // clipboard back, the lock held until it is done.
        if let Some(restore) = actor.restore.take() {
            std::thread::sleep(clipboard::PASTE_READ_MARGIN);
            if let Some(c) = actor.session.as_mut().and_then(|s| s.clipboard.as_mut()) {
                clipboard::put_back(c, restore.what, &restore.pasted);
            }
            drop(restore.lock);
        }
        if failed {
            // Start from a fresh connection next time: the server may be gone.
            actor.session = None;
        }
    }
}

fn no_display() -> DeliveryError {
    DeliveryError::unavailable(
        "no display: DISPLAY is not set, so there are no windows to type into",
    )
}

impl Actor {
    fn lock(&self) -> Result<lockfile::Held, DeliveryError> {
        lockfile::acquire(
            &self.lock_path,
            lockfile::Mode::Exclusive,
            self.config.lock_timeout,
        )
        .map_err(|e| match e {
            lockfile::LockError::Busy { .. } => DeliveryError::transient(format!(
                "another acp process kept the keyboard and mouse for {:?} ({})",
                self.config.lock_timeout,
                self.lock_path.display()
            )),
            lockfile::LockError::Io { path, source } => DeliveryError::transient(format!(
                "cannot open the keyboard lock {}: {source}",
                path.display()
            )),
        })
    }

    fn session(&mut self) -> Result<&mut Session, DeliveryError> {
        let Some(name) = self.config.display.clone() else {
            return Err(no_display());
        };
        if self.session.as_ref().is_some_and(|s| !s.display.is_alive()) {
            self.session = None;
        }
        if self.session.is_none() {
            let display = Display::connect(&name).map_err(|e| DeliveryError::unavailable(e.0))?;
            // The clipboard is only needed for pasting; typing works without.
            let clipboard = arboard::Clipboard::new()
                .map_err(|e| tracing::warn!(error = %e, "no clipboard: bodies will be typed, not pasted"))
                .ok();
            self.session = Some(Session { display, clipboard });
        }
        self.session.as_mut().ok_or_else(no_display)
    }

    fn deliver(&mut self, job: &Job) -> Result<String, DeliveryError> {
        // Refuse early and cheaply when there is no display at all.
        let display_name = self.config.display.clone().ok_or_else(no_display)?;
        let lock = self.lock()?;
        let mut saved_clipboard = None;
        let result = self.deliver_locked(job, &display_name, &mut saved_clipboard);
        if let Some(what) = saved_clipboard {
            self.restore = Some(Restore {
                lock,
                what,
                pasted: job.text.clone(),
            });
        }
        result
    }

    /// Everything that happens while the keyboard lock is held. Sets
    /// `saved_clipboard` when the user's clipboard has to be put back.
    fn deliver_locked(
        &mut self,
        job: &Job,
        display_name: &str,
        saved_clipboard: &mut Option<clipboard::PutBack>,
    ) -> Result<String, DeliveryError> {
        let settle = self.config.settle;
        let type_max = self.config.type_max_chars;
        let s = self.session()?;
        // enigo types characters missing from the keyboard map by binding
        // them to spare keycodes, and unbinds them when dropped. Another acp
        // process picks the same spare keycodes, so the handle lives only
        // while this process holds the lock: made here, dropped before the
        // lock is released.
        let settings = Settings {
            x11_display: Some(display_name.to_owned()),
            // enigo asks the server to hold each button press and release for
            // this many ms (12 by default, after xdotool): 24 ms per click,
            // most of a paste's time. A click is press then release, each
            // handled by the server before the next is sent, as pyautogui
            // (the original system) and a hand on a mouse do it.
            linux_delay: 0,
            ..Settings::default()
        };
        let mut enigo = Enigo::new(&settings).map_err(|e| {
            DeliveryError::unavailable(format!(
                "cannot drive the keyboard on display {display_name}: {e}"
            ))
        })?;
        let enigo = &mut enigo;
        let gui = &job.agent.gui;

        if let Some((focus_point, keys)) = &job.prelude {
            let chat = guard(&s.display, &job.agent, *focus_point)?;
            click_into(enigo, &s.display, &chat, *focus_point, settle)?;
            for k in keys {
                press(enigo, k)?;
            }
            std::thread::sleep(ONBOARDING_KEYS_PAUSE);
        }
        let window = guard(&s.display, &job.agent, job.point)?;
        let keymap = s
            .display
            .keymap()
            .map_err(|e| DeliveryError::transient(e.0))?;
        let typed = types(gui.input, &job.text, type_max, &keymap) || s.clipboard.is_none();
        if !typed {
            // Filled before the click: nothing reaches the window before the
            // focus is checked.
            if let Some(c) = s.clipboard.as_mut() {
                *saved_clipboard = clipboard::fill(c, &s.display, &job.text)?;
            }
        }
        click_into(enigo, &s.display, &window, job.point, settle)?;
        for k in &gui.clear_keys {
            press(enigo, k)?;
        }
        if typed {
            for (i, line) in job.text.split('\n').enumerate() {
                if i > 0 {
                    press(enigo, &gui.newline_key)?;
                }
                type_line(enigo, &keymap, line)?;
            }
        } else {
            press(enigo, &gui.paste_key)?;
        }
        std::thread::sleep(gui.pre_submit_delay);
        check_focus(&s.display, &window, "before submitting")?;
        press(enigo, &gui.submit_key)?;
        let how = if typed { "typed" } else { "pasted" };
        Ok(format!(
            "{how} into {:?} at {} and submitted with {}",
            window.title, job.point, gui.submit_key
        ))
    }
}

/// Clicks at `p`, then waits until `window` (the one the guard approved)
/// holds the keyboard focus, for at most `deadline` (`gui.settle_ms`). A
/// window that does not take it by then is not typed into.
fn click_into(
    enigo: &mut Enigo,
    display: &Display,
    window: &WindowInfo,
    p: Point,
    deadline: Duration,
) -> Result<(), DeliveryError> {
    let watch = display
        .watch_focus(window.top_level)
        .map_err(|e| DeliveryError::transient(format!("cannot watch the keyboard focus: {e}")))?;
    enigo
        .move_mouse(p.x, p.y, Coordinate::Abs)
        .map_err(enigo_err("moving the mouse"))?;
    enigo
        .button(Button::Left, Direction::Click)
        .map_err(enigo_err("clicking"))?;
    let clicked = Instant::now();
    let focused = watch
        .wait(clicked + deadline)
        .map_err(|e| DeliveryError::transient(format!("cannot read the keyboard focus: {e}")))?;
    if focused {
        tracing::debug!(
            window = %window.title,
            after = ?clicked.elapsed(),
            "the window has the keyboard focus"
        );
        Ok(())
    } else {
        Err(DeliveryError::transient(format!(
            "the window {:?} did not take the keyboard focus within {deadline:?} of the click \
             (another window kept it): nothing typed. If that window is only slow to take it, \
             raise gui.settle_ms",
            window.title
        )))
    }
}

/// The window guard: an application window must be at the point, and match
/// the agent's title and class patterns when it has them.
pub(super) fn guard(
    display: &Display,
    agent: &Agent,
    p: Point,
) -> Result<WindowInfo, DeliveryError> {
    let window = display
        .window_at(p)
        .map_err(|e| DeliveryError::transient(format!("cannot read the window at {p}: {e}")))?
        .ok_or_else(|| {
            DeliveryError::permanent(format!(
                "no application window at {p} (bare desktop or off screen): is {}'s window open? \
                 check with `acp coords test {}`",
                agent.id, agent.id
            ))
        })?;
    if let Some(pattern) = &agent.gui.window_title
        && !pattern.is_match(&window.title)
    {
        return Err(DeliveryError::permanent(format!(
            "the window at {p} is {:?}, whose title does not match {}'s window_title {:?}: \
             refusing to type into it",
            window.title,
            agent.id,
            pattern.to_string()
        )));
    }
    if let Some(pattern) = &agent.gui.window_class
        && !pattern.is_match(&window.class)
    {
        return Err(DeliveryError::permanent(format!(
            "the window at {p} has class {:?}, which does not match {}'s window_class {:?}: \
             refusing to type into it",
            window.class,
            agent.id,
            pattern.to_string()
        )));
    }
    Ok(window)
}

/// Keystrokes go to the window holding the keyboard; it must be the one the
/// guard approved.
fn check_focus(display: &Display, window: &WindowInfo, when: &str) -> Result<(), DeliveryError> {
    let focus = display
        .keyboard_window()
        .map_err(|e| DeliveryError::transient(format!("cannot read the keyboard focus: {e}")))?;
    if focus == Some(window.top_level) {
        Ok(())
    } else {
        Err(DeliveryError::transient(format!(
            "the keyboard focus is not on {:?} {when} (another window took it): stopped, nothing \
             submitted",
            window.title
        )))
    }
}
