//! `acp coords validate | capture | test`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use acp::app::App;

fn print_json(value: &serde_json::Value) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Checks the file, and against the live screen when there is a display.
pub(crate) fn validate(app: &App, json_out: bool) -> Result<ExitCode> {
    let report = app.validate_coords()?;
    let errors = report.errors();
    if json_out {
        print_json(&json!({
            "ok": errors == 0,
            "agents": report.agents,
            "monitors": report.monitors,
            "live_monitors": report.live.as_ref().ok(),
            "findings": report.findings,
        }))?;
    } else {
        for f in &report.findings {
            outln!("{f}");
        }
        match &report.live {
            Ok(m) => outln!("checked against the live screen: {} monitor(s)", m.len()),
            Err(why) => outln!("not checked against the live screen: {why}"),
        }
        outln!(
            "{} agent(s), {} monitor(s) in the file: {errors} error(s), {} warning(s)",
            report.agents,
            report.monitors,
            report.findings.len() - errors
        );
    }
    Ok(super::success_if(errors == 0))
}

/// Prints the pointer position after a countdown; with `save`, writes it.
pub(crate) async fn capture(
    app: &App,
    agent: &str,
    countdown: u64,
    onboarding: bool,
    save: bool,
    json_out: bool,
) -> Result<ExitCode> {
    let id = app.agents().lookup(agent)?.id.clone();
    let what = if onboarding {
        "onboarding input"
    } else {
        "chat input"
    };
    for left in (1..=countdown).rev() {
        eprintln!("put the mouse over {id}'s {what}: capturing in {left}...");
        // The countdown a person reads, one second a step.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (point, window) = app.pointer()?;
    let title = window
        .as_ref()
        .map_or("(no window)", |w| w.title.as_str())
        .to_owned();
    let pickup = if save {
        app.save_point(&id, onboarding, point)?;
        Some(app.await_pickup(super::PICKUP).await)
    } else {
        None
    };
    if json_out {
        print_json(
            &json!({ "agent": id, "input": what, "x": point.x, "y": point.y, "window": title, "saved": save }),
        )?;
    } else {
        outln!("{id} {what}: {point} over window {title:?}");
        if let Some(pickup) = pickup {
            outln!("saved to {}", app.coords_path().display());
            outln!("{}", pickup.describe());
        } else {
            outln!("(add --save to write it to config/coordinates.json)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Moves the mouse to an agent's point and reports the window there.
pub(crate) fn test(
    app: &App,
    agent: &str,
    onboarding: bool,
    move_pointer: bool,
    json_out: bool,
) -> Result<ExitCode> {
    let report = app.probe(agent, onboarding, move_pointer)?;
    let (id, point) = (&report.agent, report.point);
    let ok = report.verdict.is_ok();
    if json_out {
        print_json(&json!({
            "agent": id,
            "x": point.x,
            "y": point.y,
            "window": report.window.as_ref().map(|w| json!({ "title": w.title, "class": w.class })),
            "would_type": ok,
            "reason": report.verdict.as_ref().err(),
        }))?;
    } else {
        if let Some(w) = &report.window {
            outln!(
                "{id} at {point}: window {:?} (class {:?})",
                w.title,
                w.class
            );
        } else {
            outln!("{id} at {point}: no application window");
        }
        match &report.verdict {
            Ok(()) => outln!("the window guard accepts it: messages for {id} are typed here"),
            Err(why) => outln!("the window guard refuses: {why}"),
        }
    }
    Ok(super::success_if(ok))
}
