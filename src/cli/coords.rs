//! `acp coords validate | capture | test`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::app::App;
use crate::coords::{Coordinates, Severity};

use super::{EXIT_FAILURE, UsageError};

fn print_json(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Checks the file, and against the live screen when there is a display.
pub fn validate(app: &App, json_out: bool) -> Result<ExitCode> {
    let coords = Coordinates::load(&app.config().coords_path())?;
    let mut findings = coords.validate(app.agents(), app.config().coords.near_radius_px);
    let live = live_monitors(app);
    if let Ok(monitors) = &live {
        findings.extend(coords.check_live(monitors));
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    if json_out {
        print_json(&json!({
            "ok": errors == 0,
            "agents": coords.agents.len(),
            "monitors": coords.monitors.len(),
            "live_monitors": live.as_ref().ok(),
            "findings": findings,
        }))?;
    } else {
        for f in &findings {
            println!("{f}");
        }
        match &live {
            Ok(m) => println!("checked against the live screen: {} monitor(s)", m.len()),
            Err(why) => println!("not checked against the live screen: {why}"),
        }
        println!(
            "{} agent(s), {} monitor(s) in the file: {errors} error(s), {} warning(s)",
            coords.agents.len(),
            coords.monitors.len(),
            findings.len() - errors
        );
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

#[cfg(all(unix, not(target_os = "macos")))]
fn live_monitors(app: &App) -> Result<Vec<crate::coords::Monitor>, String> {
    crate::delivery::gui::probe::live_monitors(&app.config().gui)
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn live_monitors(_app: &App) -> Result<Vec<crate::coords::Monitor>, String> {
    Err("live screen checks are built for X11 only so far".into())
}

/// Prints the pointer position after a countdown; with `save`, writes it.
#[cfg(all(unix, not(target_os = "macos")))]
pub async fn capture(
    app: &App,
    agent: &str,
    countdown: u64,
    onboarding: bool,
    save: bool,
    json_out: bool,
) -> Result<ExitCode> {
    use crate::delivery::gui::probe;
    let id = app.agents().lookup(agent)?.id.clone();
    let what = if onboarding {
        "onboarding input"
    } else {
        "chat input"
    };
    for left in (1..=countdown).rev() {
        eprintln!("put the mouse over {id}'s {what}: capturing in {left}...");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (point, window) = probe::pointer(&app.config().gui).map_err(UsageError)?;
    let title = window
        .as_ref()
        .map_or("(no window)", |w| w.title.as_str())
        .to_owned();
    if save {
        Coordinates::save_point(&app.config().coords_path(), &id, onboarding, point)?;
    }
    if json_out {
        print_json(
            &json!({ "agent": id, "input": what, "x": point.x, "y": point.y, "window": title, "saved": save }),
        )?;
    } else {
        println!("{id} {what}: {point} over window {title:?}");
        if save {
            println!("saved to {}", app.config().coords_path().display());
        } else {
            println!("(add --save to write it to config/coordinates.json)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Moves the mouse to an agent's point and reports the window there.
#[cfg(all(unix, not(target_os = "macos")))]
pub fn test(
    app: &App,
    agent: &str,
    onboarding: bool,
    move_pointer: bool,
    json_out: bool,
) -> Result<ExitCode> {
    use crate::delivery::gui::probe;
    let agent = app.agents().lookup(agent)?;
    let coords = Coordinates::load(&app.config().coords_path())?;
    let Some(points) = coords.agents.get(&agent.id) else {
        bail!(UsageError(format!(
            "no coordinates for {} in config/coordinates.json: run `acp coords capture {} --save`",
            agent.id, agent.id
        )));
    };
    let point = if onboarding {
        points.onboarding_input.unwrap_or(points.chat_input)
    } else {
        points.chat_input
    };
    let report = probe::probe(&app.config().gui, agent, point, move_pointer)
        .map_err(UsageError)
        .context("cannot look at the screen")?;
    let ok = report.verdict.is_ok();
    if json_out {
        print_json(&json!({
            "agent": agent.id,
            "x": point.x,
            "y": point.y,
            "window": report.window.as_ref().map(|w| json!({ "title": w.title, "class": w.class })),
            "would_type": ok,
            "reason": report.verdict.as_ref().err(),
        }))?;
    } else {
        match &report.window {
            Some(w) => println!(
                "{} at {point}: window {:?} (class {:?})",
                agent.id, w.title, w.class
            ),
            None => println!("{} at {point}: no application window", agent.id),
        }
        match &report.verdict {
            Ok(()) => println!(
                "the window guard accepts it: messages for {} are typed here",
                agent.id
            ),
            Err(why) => println!("the window guard refuses: {why}"),
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
pub async fn capture(
    _app: &App,
    _agent: &str,
    _countdown: u64,
    _onboarding: bool,
    _save: bool,
    _json_out: bool,
) -> Result<ExitCode> {
    bail!(UsageError(
        "coordinate capture is built for X11 only so far: edit config/coordinates.json by hand"
            .into()
    ))
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
pub fn test(
    _app: &App,
    _agent: &str,
    _onboarding: bool,
    _move_pointer: bool,
    _json_out: bool,
) -> Result<ExitCode> {
    bail!(UsageError(
        "coordinate tests are built for X11 only so far".into()
    ))
}
