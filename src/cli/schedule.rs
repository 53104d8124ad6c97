//! `acp schedule`: stored schedules that `acp run` fires.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use acp::app::{App, NewSchedule};
use acp::model::schedule::WhenBusy;

use super::ScheduleCommand;
use super::show::actor;

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) async fn run(app: &App, cmd: &ScheduleCommand, json_out: bool) -> Result<ExitCode> {
    let by = actor();
    match cmd {
        ScheduleCommand::Add {
            cron,
            to,
            priority,
            when_busy,
            wait_up_to,
            catch_up,
            text,
        } => {
            let new = NewSchedule {
                cron: cron.clone(),
                to: to.clone(),
                body: text.clone(),
                priority: *priority,
                when_busy: WhenBusy::parse(when_busy).unwrap_or_default(),
                wait: Some(*wait_up_to),
                catch_up: *catch_up,
            };
            let id = app.add_schedule(new, &by).await?;
            let view = app.schedules().await?.into_iter().find(|s| s.id == id);
            if json_out {
                print_json(&view)?;
            } else {
                outln!("schedule {id} stored");
                if let Some(v) = view {
                    outln!("next: {}", v.next.as_deref().unwrap_or("never"));
                }
                if !app.delivering() {
                    outln!("acp run is not running: schedules fire only while it runs");
                }
            }
        }
        ScheduleCommand::List => {
            let views = app.schedules().await?;
            if json_out {
                print_json(&views)?;
            } else if views.is_empty() {
                outln!("no schedules: add one with `acp schedule add`");
            } else {
                for v in views {
                    let state = if v.paused { "  [paused]" } else { "" };
                    outln!("{}  {:<16} to {}{state}", v.id, v.cron, v.to);
                    outln!("   text:  {}", v.body);
                    let busy = if v.when_busy == "wait" {
                        format!(
                            "wait up to {:#}",
                            jiff::SignedDuration::from_secs(
                                i64::try_from(v.wait_secs).unwrap_or(i64::MAX),
                            )
                        )
                    } else {
                        v.when_busy.to_owned()
                    };
                    outln!(
                        "   zone:  {}; {} priority; when busy: {busy}{}",
                        v.time_zone,
                        v.priority,
                        if v.catch_up { "; catches up once" } else { "" }
                    );
                    let last = v
                        .last
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |f| format!("{} {}", f.due, f.outcome));
                    outln!("   last:  {last}");
                    outln!("   next:  {}", v.next.as_deref().unwrap_or("-"));
                    let counts: Vec<String> =
                        v.counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
                    if !counts.is_empty() {
                        outln!("   fired: {}", counts.join(", "));
                    }
                }
            }
        }
        ScheduleCommand::Firings { id, limit } => {
            firings(app, *id, *limit, json_out).await?;
        }
        ScheduleCommand::Remove { id } => {
            app.remove_schedule(*id, &by).await?;
            done(json_out, *id, "removed")?;
        }
        ScheduleCommand::Pause { id } => {
            app.pause_schedule(*id, true, &by).await?;
            done(json_out, *id, "paused")?;
        }
        ScheduleCommand::Resume { id } => {
            app.pause_schedule(*id, false, &by).await?;
            done(json_out, *id, "resumed")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `acp schedule firings ID`: newest first, a line each (and why, for
/// one that failed or was skipped).
async fn firings(app: &App, id: i64, limit: usize, json_out: bool) -> Result<()> {
    let firings = app.firings(id, limit).await?;
    if json_out {
        return print_json(&firings);
    }
    if firings.is_empty() {
        outln!("schedule {id} has not fired yet");
    }
    for f in firings {
        let message = f.message_id.as_deref().unwrap_or("-");
        outln!("{}  {:<9}  {message}", f.due, f.outcome);
        if let Some(detail) = f.detail {
            outln!("   {detail}");
        }
    }
    Ok(())
}

fn done(json_out: bool, id: i64, what: &str) -> Result<()> {
    if json_out {
        print_json(&json!({ "id": id, "done": what }))
    } else {
        outln!("schedule {id} {what}");
        Ok(())
    }
}
