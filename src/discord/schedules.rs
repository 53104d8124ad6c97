//! `/schedule add | list | remove | pause | resume`: the stored schedules
//! `acp run` fires, over the core's schedule methods. Changing them takes
//! the operator level (audited by the core as `discord:<user id>:<name>`);
//! listing them is for everyone, like `/inbox` and `/role list`.

use std::fmt::Write as _;

use poise::CreateReply;
use poise::serenity_prelude as serenity;

use crate::app::{AppError, NewSchedule, Refused, ScheduleView};
use crate::model::schedule::WhenBusy;

use super::commands::{PriorityChoice, actor, operator, quick, user};
use super::{Context, Error};

/// Stored schedules: messages acp run sends at the times a cron expression names.
#[poise::command(
    slash_command,
    guild_only,
    subcommands(
        "schedule_add",
        "schedule_list",
        "schedule_remove",
        "schedule_pause",
        "schedule_resume"
    )
)]
#[expect(
    clippy::unused_async,
    reason = "poise needs a body for a parent command"
)]
pub(super) async fn schedule(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
enum WhenBusyChoice {
    #[name = "wait (tmux delivery waits for the pane to go idle)"]
    Wait,
    #[name = "skip (recorded as skipped)"]
    Skip,
    #[name = "deliver (to the file inbox at once)"]
    Deliver,
}

impl From<Option<WhenBusyChoice>> for WhenBusy {
    fn from(c: Option<WhenBusyChoice>) -> Self {
        match c {
            None | Some(WhenBusyChoice::Wait) => WhenBusy::Wait,
            Some(WhenBusyChoice::Skip) => WhenBusy::Skip,
            Some(WhenBusyChoice::Deliver) => WhenBusy::Deliver,
        }
    }
}

/// The targets a schedule may have: every agent, the swarm channel, and
/// each agent.
#[expect(
    clippy::unused_async,
    reason = "poise calls autocomplete functions as async"
)]
async fn targets<'a>(ctx: Context<'a>, partial: &'a str) -> Vec<String> {
    let lower = partial.to_lowercase();
    ["all", "discord"]
        .into_iter()
        .map(str::to_owned)
        .chain(
            ctx.data()
                .app
                .agents()
                .all()
                .iter()
                .map(|a| a.id.to_string()),
        )
        .filter(|t| t.to_lowercase().contains(&lower))
        .collect()
}

/// The schedules, each named by what it does, for the `id` arguments.
async fn ids(ctx: Context<'_>, partial: &str) -> Vec<serenity::AutocompleteChoice> {
    let schedules = match ctx.data().app.schedules().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the schedules for autocomplete");
            return Vec::new();
        }
    };
    let lower = partial.to_lowercase();
    schedules
        .iter()
        .map(|s| (s.id, clip(&format!("{}: {}", s.id, headline(s)), 100)))
        .filter(|(_, name)| name.to_lowercase().contains(&lower))
        .take(25)
        .map(|(id, name)| serenity::AutocompleteChoice::new(name, id))
        .collect()
}

/// A schedule in one line: its expression, target and text.
fn headline(s: &ScheduleView) -> String {
    format!("{} → {}: {}", s.cron, s.to, s.body.replace('\n', " "))
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Discord's limit on a message's content.
const CONTENT_MAX: usize = 2000;

/// Inline code that a backtick in `text` cannot end early.
fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "ˋ"))
}

/// The `/schedule list` reply: each schedule's id, expression, target and
/// zone, its last firing (due time and outcome), the next one, and the
/// firings that were missed or skipped.
#[must_use]
pub(crate) fn render_list(schedules: &[ScheduleView]) -> String {
    if schedules.is_empty() {
        return "No schedules: add one with `/schedule add`.".to_owned();
    }
    let mut out = format!("🗓️ **{} schedules**\n", schedules.len());
    for s in schedules {
        let paused = if s.paused { " ⏸️ paused" } else { "" };
        let mut line = format!(
            "**{}** {} → **{}** ({}){paused}\n",
            s.id,
            code(&s.cron),
            s.to,
            s.time_zone
        );
        let _ = writeln!(line, "> {}", clip(&s.body.replace('\n', " "), 80));
        let last = s.last.as_ref().map_or_else(
            || "never".to_owned(),
            |f| format!("{} {}", f.due, f.outcome),
        );
        let _ = write!(
            line,
            "last: {last} · next: {}",
            s.next.as_deref().unwrap_or("-")
        );
        for (outcome, icon) in [("missed", "⚠️"), ("skipped", "⏭️"), ("failed", "❌")] {
            if let Some(n) = s.counts.get(outcome).filter(|n| **n > 0) {
                let _ = write!(line, " · {icon} {n} {outcome}");
            }
        }
        line.push('\n');
        if out.chars().count() + line.chars().count() > CONTENT_MAX - 40 {
            out.push_str("… and more: `acp schedule list` shows them all.");
            return out;
        }
        out.push_str(&line);
    }
    out.trim_end().to_owned()
}

/// The core's refusal of a cron expression, its caret kept aligned in a
/// code block (a backtick in the expression cannot end the block early:
/// it is shown as a look-alike of the same width).
fn cron_refused(e: &crate::model::schedule::CronSyntaxError) -> Refused {
    Refused(format!(
        "That cron expression was not stored:\n```\n{}\n```",
        e.to_string().replace('`', "ˋ")
    ))
}

/// `wait_up_to:`: a duration such as `90s`, `10m` or `1h 30m`, longer
/// than zero.
fn wait_window(text: &str) -> Result<std::time::Duration, Refused> {
    crate::model::schedule::parse_wait(text).map_err(|why| {
        Refused(format!(
            "wait_up_to {:?}: {why}",
            text.chars().take(32).collect::<String>()
        ))
    })
}

/// Store a schedule (operator): acp run sends the text at each due time.
#[poise::command(slash_command, guild_only, rename = "add", check = "operator")]
#[expect(
    clippy::too_many_arguments,
    reason = "a slash command's options are its arguments"
)]
async fn schedule_add(
    ctx: Context<'_>,
    #[description = "5 fields (minute hour day month weekday) or 6 with seconds, e.g. 0 9 * * MON-FRI"]
    cron: String,
    #[description = "An agent, all (every agent) or discord (the swarm channel)"]
    #[autocomplete = "targets"]
    to: String,
    #[description = "What to send"] text: String,
    #[description = "Delivery priority (default normal)"] priority: Option<PriorityChoice>,
    #[description = "When the agent's pane is busy at the due time (default wait)"]
    when_busy: Option<WhenBusyChoice>,
    #[description = "How long a wait firing waits for the agent to go idle, e.g. 90s, 10m, 1h 30m (default 10m)"]
    wait_up_to: Option<String>,
    #[description = "Send the newest firing missed while acp run was down once it starts (default no)"]
    catch_up: Option<bool>,
) -> Result<(), Error> {
    let app = ctx.data().app.clone();
    let new = NewSchedule {
        cron,
        to,
        body: text,
        priority: priority.into(),
        when_busy: when_busy.into(),
        wait: wait_up_to.as_deref().map(wait_window).transpose()?,
        catch_up: catch_up.unwrap_or(false),
    };
    let by = actor(ctx);
    let stored = quick(ctx, async {
        let id = app.add_schedule(new, &by).await?;
        app.schedule(id).await
    })
    .await;
    let view = match stored {
        Ok(view) => view,
        Err(e) => {
            return Err(match e.downcast::<AppError>() {
                Ok(AppError::Cron(cron)) => cron_refused(&cron).into(),
                Ok(other) => other.into(),
                Err(other) => other,
            });
        }
    };
    let mut text = format!(
        "🗓️ Schedule **{}** stored: {} → **{}** ({}). Next: {}.",
        view.id,
        code(&view.cron),
        view.to,
        view.time_zone,
        view.next.as_deref().unwrap_or("never")
    );
    if !app.delivering() {
        text.push_str(" No `acp run` is running for this root: schedules fire only while it runs.");
    }
    ctx.say(text).await?;
    Ok(())
}

/// Every schedule: its expression and zone, target, last and next firing, and missed ones.
#[poise::command(slash_command, guild_only, rename = "list", check = "user")]
async fn schedule_list(ctx: Context<'_>) -> Result<(), Error> {
    let schedules = quick(ctx, ctx.data().app.schedules()).await?;
    ctx.say(render_list(&schedules)).await?;
    Ok(())
}

/// Remove a schedule (operator); its firings stay in the record.
#[poise::command(slash_command, guild_only, rename = "remove", check = "operator")]
async fn schedule_remove(
    ctx: Context<'_>,
    #[description = "The schedule, as /schedule list shows it"]
    #[autocomplete = "ids"]
    id: i64,
) -> Result<(), Error> {
    let app = ctx.data().app.clone();
    let view = quick(ctx, async {
        let view = app.schedule(id).await?;
        app.remove_schedule(id, &actor(ctx)).await?;
        Ok::<_, AppError>(view)
    })
    .await?;
    ctx.say(format!(
        "🗑️ Schedule **{id}** removed ({}).",
        clip(&headline(&view), 200)
    ))
    .await?;
    Ok(())
}

/// Stop firing a schedule until it is resumed (operator).
#[poise::command(slash_command, guild_only, rename = "pause", check = "operator")]
async fn schedule_pause(
    ctx: Context<'_>,
    #[description = "The schedule, as /schedule list shows it"]
    #[autocomplete = "ids"]
    id: i64,
) -> Result<(), Error> {
    pause(ctx, id, true).await
}

/// Fire a paused schedule again, from now on: none missed meanwhile (operator).
#[poise::command(slash_command, guild_only, rename = "resume", check = "operator")]
async fn schedule_resume(
    ctx: Context<'_>,
    #[description = "The schedule, as /schedule list shows it"]
    #[autocomplete = "ids"]
    id: i64,
) -> Result<(), Error> {
    pause(ctx, id, false).await
}

async fn pause(ctx: Context<'_>, id: i64, paused: bool) -> Result<(), Error> {
    let app = ctx.data().app.clone();
    let view = quick(ctx, async {
        app.pause_schedule(id, paused, &actor(ctx)).await?;
        app.schedule(id).await
    })
    .await?;
    let text = if paused {
        format!("⏸️ Schedule **{id}** paused: it fires again once resumed.")
    } else {
        format!(
            "▶️ Schedule **{id}** resumed. Next: {}.",
            view.next.as_deref().unwrap_or("never")
        )
    };
    ctx.send(CreateReply::default().content(text)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::FiringView;

    fn view(id: i64, body: &str, missed: i64) -> ScheduleView {
        ScheduleView {
            id,
            cron: "0 9 * * MON-FRI".into(),
            to: "Agent-2".into(),
            body: body.into(),
            priority: "normal".into(),
            when_busy: "wait",
            wait_secs: 600,
            catch_up: false,
            paused: false,
            time_zone: "Europe/Berlin".into(),
            last: Some(FiringView {
                due: "2026-12-01 09:00:00 CET".into(),
                due_at: 0,
                outcome: "sent",
                message_id: None,
                detail: None,
            }),
            next: Some("2026-12-02 09:00:00 CET".into()),
            next_at: None,
            counts: [("missed".to_owned(), missed), ("sent".to_owned(), 4)]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn the_list_shows_last_next_zone_and_missed_and_fits_a_message() {
        let text = render_list(&[view(3, "post your plan", 2)]);
        for want in [
            "**3** `0 9 * * MON-FRI` → **Agent-2** (Europe/Berlin)",
            "> post your plan",
            "last: 2026-12-01 09:00:00 CET sent · next: 2026-12-02 09:00:00 CET",
            "⚠️ 2 missed",
        ] {
            assert!(text.contains(want), "{want:?} in {text}");
        }
        assert!(!text.contains("skipped"), "{text}");
        let many: Vec<ScheduleView> = (0..100).map(|i| view(i, &"x".repeat(300), 0)).collect();
        let text = render_list(&many);
        assert!(text.chars().count() <= CONTENT_MAX, "{}", text.len());
        assert!(text.ends_with("`acp schedule list` shows them all."));
        assert_eq!(
            render_list(&[]),
            "No schedules: add one with `/schedule add`."
        );
    }

    #[test]
    fn a_bad_expression_keeps_its_caret_in_a_code_block() {
        let e = crate::model::schedule::Cron::parse("*/5 61 * `").unwrap_err();
        let text = cron_refused(&e).0;
        let block = text.split("```").nth(1).unwrap();
        assert_eq!(text.matches("```").count(), 2, "{text}");
        assert!(block.contains("column"), "{text}");
        assert!(!block.contains('`'), "{text}");
    }
}
