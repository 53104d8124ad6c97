// Over 400 lines: the steps of one keyboard-and-mouse delivery, in order, on the one thread that
// may do them.

//! The one thread that owns the mouse and keyboard (enigo), the clipboard
//! (arboard) and the X connection of this process. Jobs arrive over a
//! channel; across processes an OS lock on `data/gui.lock` makes sure only
//! one acp types at a time.

use std::collections::HashMap;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use enigo::{Button, Coordinate, Direction, Enigo, Key, Keyboard, Mouse, Settings};

use crate::coords::Point;
use crate::model::Agent;
use crate::model::DeliveryError;

use super::window::{Display, WindowInfo};
use crate::config::GuiConfig;
use crate::lockfile;
use crate::model::gui::InputMode;
use crate::model::keys::{KeyCombo, KeyName, Modifier};

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

/// What the user's clipboard held before a paste, to put back after it.
enum PutBack {
    /// This text.
    Text(String),
    /// Nothing: the clipboard was empty, and is emptied again.
    Empty,
}

/// A clipboard to put back once the message is submitted.
struct Restore {
    /// Held until it is done, so that no other acp pastes in between.
    lock: lockfile::Held,
    what: PutBack,
    /// The text pasted: if the clipboard holds something else by then, the
    /// user copied it meanwhile, and it stays.
    pasted: String,
}

/// After the submit key, how long the window gets to read the paste before
/// the clipboard is put back. The window asks for the paste when it handles
/// the paste key, before the submit key, but it handles keys on its own
/// time.
const PASTE_READ_MARGIN: Duration = Duration::from_millis(50);

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
            std::thread::sleep(PASTE_READ_MARGIN);
            if let Some(s) = actor.session.as_mut() {
                s.put_back(restore.what, &restore.pasted);
            }
            drop(restore.lock);
        }
        if failed {
            // Start from a fresh connection next time: the server may be gone.
            actor.session = None;
        }
    }
}

impl Session {
    /// Puts the user's clipboard back, unless it holds something else than
    /// the paste by now (the user copied it meanwhile: that stays). While
    /// this process holds the clipboard, reading it costs one round trip.
    fn put_back(&mut self, what: PutBack, pasted: &str) {
        let Some(clipboard) = self.clipboard.as_mut() else {
            return;
        };
        if clipboard.get_text().ok().as_deref() != Some(pasted) {
            return;
        }
        let _ = match what {
            PutBack::Text(old) => clipboard.set_text(old),
            PutBack::Empty => clipboard.clear(),
        };
    }

    /// Fills the clipboard with `text` for a paste. Returns what to put
    /// back afterwards: the user's text is read only when someone holds the
    /// clipboard (an empty one has nothing to keep, and asking costs a
    /// round trip per text format). `None` when the holder offers no text
    /// (an image, say), which cannot be put back and is not touched.
    fn fill_clipboard(&mut self, text: &str) -> Result<Option<PutBack>, DeliveryError> {
        let Some(clipboard) = self.clipboard.as_mut() else {
            return Ok(None);
        };
        let held = self
            .display
            .clipboard_owner()
            .map_err(|e| DeliveryError::transient(format!("cannot read the clipboard: {e}")))?
            .is_some();
        let what = if held {
            clipboard.get_text().ok().map(PutBack::Text)
        } else {
            Some(PutBack::Empty)
        };
        clipboard
            .set_text(text)
            .map_err(|e| DeliveryError::transient(format!("cannot set the clipboard: {e}")))?;
        Ok(what)
    }
}

fn no_display() -> DeliveryError {
    DeliveryError::unavailable(
        "no display: DISPLAY is not set, so there are no windows to type into",
    )
}

fn enigo_err(what: &str) -> impl Fn(enigo::InputError) -> DeliveryError + '_ {
    move |e| DeliveryError::transient(format!("{what} failed: {e}"))
}

fn to_key(key: KeyName) -> Key {
    match key {
        KeyName::Enter => Key::Return,
        KeyName::Tab => Key::Tab,
        KeyName::Escape => Key::Escape,
        KeyName::Backspace => Key::Backspace,
        KeyName::Delete => Key::Delete,
        KeyName::Home => Key::Home,
        KeyName::End => Key::End,
        KeyName::PageUp => Key::PageUp,
        KeyName::PageDown => Key::PageDown,
        KeyName::Up => Key::UpArrow,
        KeyName::Down => Key::DownArrow,
        KeyName::Left => Key::LeftArrow,
        KeyName::Right => Key::RightArrow,
        KeyName::Insert => Key::Insert,
        KeyName::Space => Key::Space,
        KeyName::F(n) => [
            Key::F1,
            Key::F2,
            Key::F3,
            Key::F4,
            Key::F5,
            Key::F6,
            Key::F7,
            Key::F8,
            Key::F9,
            Key::F10,
            Key::F11,
            Key::F12,
            Key::F13,
            Key::F14,
            Key::F15,
            Key::F16,
            Key::F17,
            Key::F18,
            Key::F19,
            Key::F20,
            Key::F21,
            Key::F22,
            Key::F23,
            Key::F24,
        ][usize::from(n.clamp(1, 24) - 1)],
        KeyName::Char(c) => Key::Unicode(c),
    }
}

fn press(enigo: &mut Enigo, combo: &KeyCombo) -> Result<(), DeliveryError> {
    let mods: Vec<Key> = combo
        .modifiers
        .iter()
        .map(|m| match m {
            Modifier::Ctrl => Key::Control,
            Modifier::Shift => Key::Shift,
            Modifier::Alt => Key::Alt,
            Modifier::Meta => Key::Meta,
        })
        .collect();
    let what = "pressing a key";
    for m in &mods {
        enigo.key(*m, Direction::Press).map_err(enigo_err(what))?;
    }
    let result = enigo
        .key(to_key(combo.key), Direction::Click)
        .map_err(enigo_err(what));
    // Release modifiers even when the key failed, so none stays held.
    for m in mods.iter().rev() {
        let _ = enigo.key(*m, Direction::Release);
    }
    result
}

/// Whether a body is typed (true) or pasted. `auto` types short single
/// lines made of characters on the keyboard map; accents, CJK and emoji
/// would need keycode remapping (slow, and racy with other X clients), so
/// such bodies are pasted.
fn types(
    mode: InputMode,
    text: &str,
    type_max_chars: usize,
    keymap: &HashMap<char, (u8, bool)>,
) -> bool {
    match mode {
        InputMode::Type => true,
        InputMode::Paste => false,
        InputMode::Auto => {
            !text.contains('\n')
                && text.chars().count() <= type_max_chars
                && text.chars().all(|c| keymap.contains_key(&c))
        }
    }
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
        saved_clipboard: &mut Option<PutBack>,
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
            *saved_clipboard = s.fill_clipboard(&job.text)?;
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

/// Types one line. Characters on the keyboard map are pressed on their own
/// keycodes (with Shift where needed), like a person would; only the others
/// (accents, CJK, emoji) go through enigo's remapping of a spare keycode.
/// Remapping makes every X client reload its keymap, and a client that
/// reloads late can miss a character, so it is kept to what needs it.
fn type_line(
    enigo: &mut Enigo,
    keymap: &HashMap<char, (u8, bool)>,
    line: &str,
) -> Result<(), DeliveryError> {
    let what = "typing";
    for c in line.chars() {
        let Some(&(keycode, shift)) = keymap.get(&c) else {
            let mut buf = [0u8; 4];
            enigo
                .text(c.encode_utf8(&mut buf))
                .map_err(enigo_err(what))?;
            continue;
        };
        if shift {
            enigo
                .key(Key::Shift, Direction::Press)
                .map_err(enigo_err(what))?;
        }
        let pressed = enigo
            .raw(u16::from(keycode), Direction::Click)
            .map_err(enigo_err(what));
        if shift {
            enigo
                .key(Key::Shift, Direction::Release)
                .map_err(enigo_err(what))?;
        }
        pressed?;
    }
    Ok(())
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
