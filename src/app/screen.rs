//! The screen through the core, for `acp coords`: the agents' points in
//! `config/coordinates.json`, checked against the file's monitors and the
//! live ones, and read-only looks at the desktop (the pointer, the window
//! at an agent's point, the window guard's verdict).

use std::path::PathBuf;

use super::{App, AppError};
use crate::coords::{Coordinates, Finding, Monitor, Point, Severity};
use crate::model::AgentId;

/// What `acp coords validate` found.
#[derive(Debug)]
pub struct Validation {
    /// Agents with points in the file.
    pub agents: usize,
    /// Monitors the file lists.
    pub monitors: usize,
    /// The live layout, or why it could not be read.
    pub live: Result<Vec<Monitor>, String>,
    pub findings: Vec<Finding>,
}

impl Validation {
    /// How many findings are errors (the rest are warnings).
    #[must_use]
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }
}

/// The window at a point, as `acp coords` shows it.
#[derive(Debug, Clone)]
pub struct Window {
    pub title: String,
    pub class: String,
}

/// What is at an agent's point, and whether the guard would type there.
#[derive(Debug, Clone)]
pub struct Probe {
    pub agent: AgentId,
    pub point: Point,
    pub window: Option<Window>,
    /// `Ok` if the guard accepts the window, else its reason.
    pub verdict: Result<(), String>,
}

impl App {
    /// Checks `config/coordinates.json`, and against the live screen when
    /// there is a display.
    ///
    /// # Errors
    /// [`AppError::Coords`] if the file cannot be read or parsed.
    pub fn validate_coords(&self) -> Result<Validation, AppError> {
        let coords = Coordinates::load(&self.config.coords_path())?;
        let mut findings = coords.validate(&self.registry, self.config.coords.near_radius_px);
        let live = live_monitors(self);
        if let Ok(monitors) = &live {
            findings.extend(coords.check_live(monitors));
        }
        Ok(Validation {
            agents: coords.agents.len(),
            monitors: coords.monitors.len(),
            live,
            findings,
        })
    }

    /// Where `config/coordinates.json` is.
    #[must_use]
    pub fn coords_path(&self) -> PathBuf {
        self.config.coords_path()
    }

    /// Writes an agent's point into `config/coordinates.json`, keeping the
    /// rest of the file.
    ///
    /// # Errors
    /// [`AppError::Coords`].
    pub fn save_point(&self, agent: &AgentId, onboarding: bool, p: Point) -> Result<(), AppError> {
        Ok(Coordinates::save_point(
            &self.config.coords_path(),
            agent,
            onboarding,
            p,
        )?)
    }

    /// The pointer position and the window under it.
    ///
    /// # Errors
    /// [`AppError::Screen`] saying why the display could not be read.
    pub fn pointer(&self) -> Result<(Point, Option<Window>), AppError> {
        pointer(self)
    }

    /// Looks at an agent's point (moving the mouse there when asked, never
    /// clicking or typing) and reports what the window guard would decide.
    ///
    /// # Errors
    /// [`AppError`]: an unknown agent, no point for it, or a display that
    /// cannot be read.
    pub fn probe(
        &self,
        agent: &str,
        onboarding: bool,
        move_pointer: bool,
    ) -> Result<Probe, AppError> {
        let agent = self.registry.lookup(agent)?;
        let coords = Coordinates::load(&self.config.coords_path())?;
        let Some(points) = coords.agents.get(&agent.id) else {
            return Err(AppError::NoPoint(agent.id.clone()));
        };
        let point = if onboarding {
            points.onboarding_input.unwrap_or(points.chat_input)
        } else {
            points.chat_input
        };
        probe(self, agent, point, move_pointer)
    }
}

#[cfg(all(unix, not(target_os = "macos")))]
fn live_monitors(app: &App) -> Result<Vec<Monitor>, String> {
    crate::delivery::gui::probe::live_monitors(&app.config.gui)
}

#[cfg(all(unix, not(target_os = "macos")))]
fn window(w: crate::delivery::gui::window::WindowInfo) -> Window {
    Window {
        title: w.title,
        class: w.class,
    }
}

#[cfg(all(unix, not(target_os = "macos")))]
fn pointer(app: &App) -> Result<(Point, Option<Window>), AppError> {
    let (p, w) = crate::delivery::gui::probe::pointer(&app.config.gui).map_err(AppError::Screen)?;
    Ok((p, w.map(window)))
}

#[cfg(all(unix, not(target_os = "macos")))]
fn probe(
    app: &App,
    agent: &crate::model::Agent,
    point: Point,
    move_pointer: bool,
) -> Result<Probe, AppError> {
    let report = crate::delivery::gui::probe::probe(&app.config.gui, agent, point, move_pointer)
        .map_err(|e| AppError::Screen(format!("cannot look at the screen: {e}")))?;
    Ok(Probe {
        agent: agent.id.clone(),
        point,
        window: report.window.map(window),
        verdict: report.verdict,
    })
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn live_monitors(_app: &App) -> Result<Vec<Monitor>, String> {
    Err("live screen checks are built for X11 only so far".into())
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn pointer(_app: &App) -> Result<(Point, Option<Window>), AppError> {
    Err(AppError::Screen(
        "coordinate capture is built for X11 only so far: edit config/coordinates.json by hand"
            .into(),
    ))
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn probe(
    _app: &App,
    _agent: &crate::model::Agent,
    _point: Point,
    _move_pointer: bool,
) -> Result<Probe, AppError> {
    Err(AppError::Screen(
        "coordinate tests are built for X11 only so far".into(),
    ))
}
