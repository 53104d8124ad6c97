//! Keyboard-and-mouse delivery: the message appears in the agent's chat
//! input as if the person had typed it, and is submitted.
//!
//! The steps, for one message: read the agent's point from
//! `config/coordinates.json`; take the cross-process keyboard lock; check the
//! window under the point (the window guard); click; wait until the
//! keyboard focus is on that window (X says when it moves; `settle_ms` is
//! the deadline, past which nothing is typed); optionally clear the input;
//! type or paste the body (newlines never submit early); wait the
//! pre-submit delay; check the focus again; press the submit key. Any failure ends the attempt with a
//! reason, and the dispatcher falls back to the next method (the inbox).
//!
//! All of it runs on one actor thread per process, which owns the enigo
//! handle, the clipboard and the X connection.

#[cfg(all(unix, not(target_os = "macos")))]
mod actor;
#[cfg(all(unix, not(target_os = "macos")))]
mod clipboard;
#[cfg(all(unix, not(target_os = "macos")))]
mod focus;
#[cfg(all(unix, not(target_os = "macos")))]
mod keys;
#[cfg(all(unix, not(target_os = "macos")))]
pub mod probe;
#[cfg(all(unix, not(target_os = "macos")))]
pub mod window;

use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use crate::coords::Coordinates;
use crate::model::Agent;
use crate::model::{Kind, UnifiedMessage};

use super::{DeliveryMethod, Target, inbox};
use crate::config::GuiConfig;
use crate::model::{DeliveryError, MethodName};

/// Keyboard-and-mouse delivery for one process.
pub struct GuiMethod {
    #[cfg(all(unix, not(target_os = "macos")))]
    jobs: mpsc::SyncSender<actor::Job>,
    points: Points,
    config: GuiConfig,
}

/// Where the keyboard-and-mouse method finds the agents' points: read
/// from the file at each delivery (a one-off command), or read once, when
/// `acp run` loaded its configuration, so that an edit reaches deliveries
/// only through a reload, which checks it first.
#[derive(Debug, Clone)]
pub struct Points(Source);

#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Loaded(Arc<Result<Coordinates, String>>),
}

impl Points {
    /// Read from `path` at each delivery.
    #[must_use]
    pub fn file(path: PathBuf) -> Self {
        Self(Source::File(path))
    }

    /// Read from `path` now, once.
    #[must_use]
    pub fn load(path: &std::path::Path) -> Self {
        Self(Source::Loaded(Arc::new(
            Coordinates::load(path).map_err(|e| e.to_string()),
        )))
    }

    /// Why points read once cannot be used, if they cannot.
    #[must_use]
    pub fn problem(&self) -> Option<&str> {
        match &self.0 {
            Source::Loaded(loaded) => loaded.as_ref().as_ref().err().map(String::as_str),
            Source::File(_) => None,
        }
    }

    fn get(&self) -> Result<std::borrow::Cow<'_, Coordinates>, String> {
        match &self.0 {
            Source::File(path) => Coordinates::load(path)
                .map(std::borrow::Cow::Owned)
                .map_err(|e| e.to_string()),
            Source::Loaded(loaded) => loaded
                .as_ref()
                .as_ref()
                .map(std::borrow::Cow::Borrowed)
                .map_err(Clone::clone),
        }
    }
}

impl GuiMethod {
    /// Starts the actor thread with the method's settings, the agents'
    /// points and the cross-process keyboard lock
    /// (`lock_path`). Nothing touches the display until the first delivery,
    /// so this works on machines without one.
    #[must_use]
    pub fn start(config: &GuiConfig, points: Points, lock_path: PathBuf) -> Self {
        #[cfg(all(unix, not(target_os = "macos")))]
        let jobs = {
            let (tx, rx) = mpsc::sync_channel(64);
            let gui = config.clone();
            let spawned = std::thread::Builder::new()
                .name("acp-gui".into())
                .spawn(move || actor::run(gui, lock_path, &rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the keyboard-and-mouse thread");
            }
            tx
        };
        #[cfg(not(all(unix, not(target_os = "macos"))))]
        let _ = lock_path;
        Self {
            #[cfg(all(unix, not(target_os = "macos")))]
            jobs,
            points,
            config: config.clone(),
        }
    }

    /// The one-line notice typed in doorbell mode.
    fn doorbell_notice(message: &UnifiedMessage, path: &std::path::Path) -> String {
        format!(
            "New {} message from {} in your inbox: {} (read it, then run: acp inbox ack {})",
            message.priority,
            message.from,
            path.display(),
            message.id
        )
    }
}

impl DeliveryMethod for GuiMethod {
    fn name(&self) -> MethodName {
        MethodName::Gui
    }

    fn deliver(&self, to: Target<'_>, message: &UnifiedMessage) -> Result<String, DeliveryError> {
        let agent = to.agent(self.name())?;
        if self.config.display.is_none() {
            return Err(DeliveryError::unavailable(
                "no display: DISPLAY is not set, so there are no windows to type into",
            ));
        }
        let coords = self.points.get().map_err(|e| {
            DeliveryError::permanent(format!(
                "{e}: fix it, then check with `acp coords validate`"
            ))
        })?;
        let points = coords.agents.get(&agent.id).ok_or_else(|| {
            DeliveryError::permanent(format!(
                "no coordinates for {} in config/coordinates.json: add them with `acp coords \
                 capture {} --save`",
                agent.id, agent.id
            ))
        })?;
        let onboarding = message.kind == Kind::Onboarding;
        let point = if onboarding {
            points.onboarding_input.unwrap_or(points.chat_input)
        } else {
            points.chat_input
        };
        if !coords.monitors.is_empty() && !coords.monitors.iter().any(|m| m.contains(point)) {
            return Err(DeliveryError::permanent(format!(
                "{}'s point {point} is outside every monitor in config/coordinates.json",
                agent.id
            )));
        }
        let prelude = (onboarding && !agent.gui.onboarding_keys.is_empty())
            .then(|| (points.chat_input, agent.gui.onboarding_keys.clone()));

        let (text, doorbell_path) = if agent.gui.doorbell {
            let path = inbox::write_message(agent, message)
                .map_err(|e| DeliveryError {
                    kind: e.kind,
                    reason: format!("doorbell: cannot write the inbox file first: {}", e.reason),
                    retry_after: None,
                })?
                .path()
                .to_owned();
            (Self::doorbell_notice(message, &path), Some(path))
        } else {
            (message.body.clone(), None)
        };
        let detail = self.run(agent, point, prelude, text)?;
        Ok(match doorbell_path {
            Some(path) => format!(
                "doorbell notice {detail}; the message is in {}",
                path.display()
            ),
            None => detail,
        })
    }
}

impl GuiMethod {
    #[cfg(all(unix, not(target_os = "macos")))]
    fn run(
        &self,
        agent: &Agent,
        point: crate::coords::Point,
        prelude: Option<(crate::coords::Point, Vec<crate::model::keys::KeyCombo>)>,
        text: String,
    ) -> Result<String, DeliveryError> {
        let (reply, answer) = mpsc::channel();
        // Typing runs at a few ms per character at worst; allow for it and
        // for waiting on another process's lock.
        let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
        let timeout = self.config.lock_timeout
            + Duration::from_millis(chars.saturating_mul(20))
            + Duration::from_secs(30);
        let job = actor::Job {
            agent: agent.clone(),
            point,
            prelude,
            text,
            reply,
        };
        self.jobs.try_send(job).map_err(|e| {
            DeliveryError::transient(format!(
                "the keyboard-and-mouse thread is not taking work: {e}"
            ))
        })?;
        answer.recv_timeout(timeout).map_err(|_| {
            DeliveryError::transient(format!(
                "keyboard-and-mouse delivery did not finish within {timeout:?}"
            ))
        })?
    }

    #[cfg(not(all(unix, not(target_os = "macos"))))]
    fn run(
        &self,
        _agent: &Agent,
        _point: crate::coords::Point,
        _prelude: Option<(crate::coords::Point, Vec<crate::model::keys::KeyCombo>)>,
        _text: String,
    ) -> Result<String, DeliveryError> {
        Err(DeliveryError::unavailable(
            "keyboard-and-mouse delivery is built for X11 (Linux and BSD desktops) only so far",
        ))
    }
}
