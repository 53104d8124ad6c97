//! The windows of agent applications (Cursor, VS Code) on the X display,
//! and which of them an agent's table already reaches.

use super::{FoundWindow, Ids, Standing, save};
use crate::model::AgentId;

/// A window application acp knows: its `WM_CLASS` class, name, and the
/// start of its agents' ids.
const APPS: &[(&str, &str, &str)] = &[
    ("Cursor", "Cursor", "cursor"),
    ("Code", "VS Code", "vscode"),
];

/// The windows of agent applications, and where each stands with
/// `agents`.
pub(super) fn found(
    config: &crate::config::Config,
    agents: &[crate::model::Agent],
    ids: &mut Ids,
) -> Result<Vec<FoundWindow>, String> {
    let points = crate::coords::Coordinates::load(&config.coords_path())
        .map(|c| c.agents)
        .unwrap_or_default();
    let pointed: Vec<(&AgentId, crate::coords::Point)> =
        points.iter().map(|(id, p)| (id, p.chat_input)).collect();
    let (seen, at) = list_windows(config, &pointed.iter().map(|(_, p)| *p).collect::<Vec<_>>())?;
    let mut out = Vec::new();
    // Agents without a point whose window guard matches a class: each
    // accounts for one window of it.
    let mut unpointed: Vec<&crate::model::Agent> = agents
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
        let standing = if let Some(agent) = by_point.or_else(by_class) {
            Standing::Configured { agent }
        } else {
            let agent = ids.allocate(None, prefix);
            let table = save::window_table(config, &agent, app, &w.class, &w.title);
            Standing::New { agent, table }
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
