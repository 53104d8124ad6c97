//! Read-only looks at the desktop for `acp coords`: the pointer, the live
//! monitors, and what the window guard would say about an agent's point.

use enigo::{Coordinate, Enigo, Mouse, Settings};

use crate::coords::{Monitor, Point};
use crate::model::Agent;

use super::window::{Display, WindowInfo};
use crate::config::GuiConfig;

/// What is at an agent's point, and whether the guard would type there.
#[derive(Debug, Clone)]
pub struct Probe {
    pub window: Option<WindowInfo>,
    /// `Ok` if the guard accepts the window, else its reason.
    pub verdict: Result<(), String>,
}

fn connect(config: &GuiConfig) -> Result<(String, Display), String> {
    let name = config.display.clone().ok_or_else(|| {
        "no display: DISPLAY is not set (run this on the desktop the agents are on)".to_owned()
    })?;
    let display = Display::connect(&name).map_err(|e| e.0)?;
    Ok((name, display))
}

/// The live monitor layout.
///
/// # Errors
/// Why the display could not be read.
pub fn live_monitors(config: &GuiConfig) -> Result<Vec<Monitor>, String> {
    Ok(connect(config)?.1.monitors())
}

/// The pointer position and the window under it.
///
/// # Errors
/// Why the display could not be read.
pub fn pointer(config: &GuiConfig) -> Result<(Point, Option<WindowInfo>), String> {
    let (_, display) = connect(config)?;
    let p = display.pointer().map_err(|e| e.0)?;
    let window = display.window_at(p).map_err(|e| e.0)?;
    Ok((p, window))
}

/// Looks at an agent's point (moving the mouse there when asked, never
/// clicking or typing) and reports what the guard would decide.
///
/// # Errors
/// Why the display could not be read or the mouse moved.
pub fn probe(
    config: &GuiConfig,
    agent: &Agent,
    p: Point,
    move_pointer: bool,
) -> Result<Probe, String> {
    let (name, display) = connect(config)?;
    if move_pointer {
        let settings = Settings {
            x11_display: Some(name),
            ..Settings::default()
        };
        let mut enigo =
            Enigo::new(&settings).map_err(|e| format!("cannot drive the mouse: {e}"))?;
        enigo
            .move_mouse(p.x, p.y, Coordinate::Abs)
            .map_err(|e| format!("cannot move the mouse: {e}"))?;
    }
    let verdict = super::actor::guard(&display, agent, p)
        .map(|_| ())
        .map_err(|e| e.reason);
    let window = display.window_at(p).map_err(|e| e.0)?;
    Ok(Probe { window, verdict })
}

/// The application windows on the screen (bottom to top), and the
/// top-level window at each of `points` (`None` over the bare desktop or
/// off the screen).
///
/// # Errors
/// Why the display could not be read.
pub fn windows(
    config: &GuiConfig,
    points: &[Point],
) -> Result<(Vec<WindowInfo>, Vec<Option<u32>>), String> {
    let (_, display) = connect(config)?;
    let windows = display.windows().map_err(|e| e.0)?;
    let at = points
        .iter()
        .map(|p| display.window_at(*p).ok().flatten().map(|w| w.top_level))
        .collect();
    Ok((windows, at))
}
