//! `/spawn`, `/stop` and `/restart` (admin): agents that come and go.
//!
//! A start and a restart take a second or two (a window, a worktree, the
//! service taking the agent in), so their replies are deferred. A stop
//! asks first: its reply carries Stop and Cancel buttons that only the
//! admin who asked may press. A press that stops is answered with a
//! deferred update and the post edited to say what was done; two presses
//! at once are decided by the store (the core's stop is one conditional
//! update) and the one that lost is told who stopped it. Every start,
//! stop and restart is audited by the core as `discord:<user id>:<name>`.

use std::fmt::Write as _;

use poise::CreateReply;
use poise::serenity_prelude as serenity;

use crate::app::{AppError, SpawnReport, SpawnRequest, StartedError, StopReport};
use crate::model::{AgentId, AuditOutcome, MessageId, SpawnState, Spawned};

use super::commands::{actor, admin};
use super::permissions::Level;
use super::prompts::{when, who};
use super::{Context, Data, Error, no_mentions};

/// Start an agent in a project (admin): a tmux window, its own worktree, its onboarding and task.
#[poise::command(slash_command, guild_only, check = "admin")]
pub(super) async fn spawn(
    ctx: Context<'_>,
    #[description = "The project, from [[projects]] in config/acp.toml"]
    #[autocomplete = "project_names"]
    project: String,
    #[description = "Its first task, sent after the project's onboarding prompt"] task: Option<
        String,
    >,
    #[description = "Its id (default: the project's name and the next number, e.g. web-3)"]
    id: Option<String>,
) -> Result<(), Error> {
    ctx.defer().await?;
    let app = ctx.data().app.clone();
    let by = actor(ctx);
    let report = app
        .spawn(SpawnRequest {
            project,
            task,
            id,
            by: by.clone(),
        })
        .await?;
    // Its thread, when agents have threads: made by the start's post, as a
    // configured agent's is by its first.
    let announced = match app.announce_started(&report, &who(&by)).await {
        Ok(id) => id.is_some(),
        Err(e) => {
            tracing::warn!(error = %e, agent = %report.agent.id, "cannot post the start in the agent's thread");
            false
        }
    };
    let thread = announced
        .then_some(app.config().discord.swarm_channel)
        .flatten();
    ctx.send(CreateReply::default().content(started(&report, "started", thread)))
        .await?;
    Ok(())
}

/// Restart an agent acp started (admin): a new window in the same folder or worktree.
#[poise::command(slash_command, guild_only, check = "admin")]
pub(super) async fn restart(
    ctx: Context<'_>,
    #[description = "An agent acp started"]
    #[autocomplete = "started_names"]
    agent: String,
) -> Result<(), Error> {
    ctx.defer().await?;
    let app = ctx.data().app.clone();
    let report = app.restart_agent(&agent, &actor(ctx)).await?;
    ctx.send(CreateReply::default().content(started(&report, "restarted", None)))
        .await?;
    Ok(())
}

/// Stop an agent acp started (admin): asks first, with a button only you can press.
#[poise::command(slash_command, guild_only, check = "admin")]
pub(super) async fn stop(
    ctx: Context<'_>,
    #[description = "A running agent acp started"]
    #[autocomplete = "running_names"]
    agent: String,
    #[description = "Also remove its worktree, if it has no changes (default: keep it)"]
    remove_worktree: Option<bool>,
) -> Result<(), Error> {
    let app = &ctx.data().app;
    let spawned = app.started_agent(&agent).await?;
    if spawned.state == SpawnState::Stopped {
        ctx.send(
            CreateReply::default()
                .ephemeral(true)
                .content(already_stopped(&spawned)),
        )
        .await?;
        return Ok(());
    }
    let ask = StopButton {
        agent: spawned.id.clone(),
        asker: ctx.author().id.get(),
        remove_worktree: remove_worktree.unwrap_or(false),
        confirm: true,
    };
    let buttons = serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(ask.custom_id())
            .label(format!("Stop {}", spawned.id))
            .style(serenity::ButtonStyle::Danger),
        serenity::CreateButton::new(
            StopButton {
                confirm: false,
                ..ask.clone()
            }
            .custom_id(),
        )
        .label("Cancel")
        .style(serenity::ButtonStyle::Secondary),
    ]);
    ctx.send(
        CreateReply::default()
            .content(asking(&spawned, &ask))
            .components(vec![buttons]),
    )
    .await?;
    Ok(())
}

/// The projects, for `/spawn`.
#[expect(
    clippy::unused_async,
    reason = "poise calls autocomplete functions as async"
)]
async fn project_names<'a>(ctx: Context<'a>, partial: &'a str) -> Vec<String> {
    let lower = partial.to_lowercase();
    ctx.data()
        .app
        .config()
        .projects
        .iter()
        .map(|p| p.name.clone())
        .filter(|name| name.to_lowercase().contains(&lower))
        .collect()
}

/// The agents acp started (`running` only, or all, a stopped one marked).
async fn started_choices(
    ctx: Context<'_>,
    partial: &str,
    running: bool,
) -> Vec<serenity::AutocompleteChoice> {
    let lower = partial.to_lowercase();
    let agents = match ctx.data().app.started_agents(running).await {
        Ok(agents) => agents,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the started agents for autocomplete");
            return Vec::new();
        }
    };
    agents
        .into_iter()
        .filter(|a| a.id.as_str().to_lowercase().contains(&lower))
        .map(|a| {
            let name = match a.state {
                SpawnState::Running => format!("{} ({})", a.id, a.project),
                state => format!("{} ({}, {})", a.id, a.project, state.as_str()),
            };
            serenity::AutocompleteChoice::new(name, a.id.to_string())
        })
        .collect()
}

/// Running agents acp started, for `/stop`.
async fn running_names<'a>(
    ctx: Context<'a>,
    partial: &'a str,
) -> Vec<serenity::AutocompleteChoice> {
    started_choices(ctx, partial, true).await
}

/// Every agent acp started, for `/restart` (a stopped one starts again).
async fn started_names<'a>(
    ctx: Context<'a>,
    partial: &'a str,
) -> Vec<serenity::AutocompleteChoice> {
    started_choices(ctx, partial, false).await
}

/// A button of a stop's confirmation: whose stop of which agent, and
/// what it does. Its `custom_id` carries all of it (at most 100
/// characters: an agent id is at most 32).
#[derive(Debug, Clone, PartialEq, Eq)]
struct StopButton {
    agent: AgentId,
    /// The Discord user who asked, the only one who may press.
    asker: u64,
    remove_worktree: bool,
    /// Stop (or cancel).
    confirm: bool,
}

impl StopButton {
    const PREFIX: &'static str = "acp:stop:";

    fn custom_id(&self) -> String {
        format!(
            "{}{}:{}:{}:{}",
            Self::PREFIX,
            self.agent,
            self.asker,
            if self.remove_worktree {
                "remove"
            } else {
                "keep"
            },
            if self.confirm { "confirm" } else { "cancel" }
        )
    }

    fn parse(custom_id: &str) -> Option<Self> {
        let rest = custom_id.strip_prefix(Self::PREFIX)?;
        let mut parts = rest.split(':');
        let agent = parts.next()?.parse().ok()?;
        let asker = parts.next()?.parse().ok()?;
        let remove_worktree = match parts.next()? {
            "remove" => true,
            "keep" => false,
            _ => return None,
        };
        let confirm = match parts.next()? {
            "confirm" => true,
            "cancel" => false,
            _ => return None,
        };
        parts.next().is_none().then_some(Self {
            agent,
            asker,
            remove_worktree,
            confirm,
        })
    }
}

/// The reply to a start or a restart: the agent, where it runs, whether
/// the service took it in, what was queued for it, and its thread.
fn started(report: &SpawnReport, what: &str, thread_in: Option<u64>) -> String {
    let a = &report.agent;
    let mut text = format!(
        "🚀 **{}** {what} in project {}: tmux pane `{}` in `{}`",
        a.id,
        a.project,
        a.target,
        a.dir.display()
    );
    if let Some(branch) = &a.branch {
        let _ = write!(text, " (its worktree, on branch `{branch}`)");
    }
    let _ = write!(text, ".\n{}.", capitalized(&report.service));
    if !report.messages.is_empty() {
        let ids: Vec<String> = report.messages.iter().map(|m| format!("`{m}`")).collect();
        let what = if report.messages.len() == 1 {
            "its onboarding"
        } else {
            "its onboarding and task"
        };
        let _ = write!(
            text,
            "\nQueued for it, {what}: {} (typed once its prompt is ready).",
            ids.join(", ")
        );
    }
    if let Some(channel) = thread_in {
        let _ = write!(text, "\nIts thread in <#{channel}> opens with this start.");
    }
    text
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// A stop's question, above its buttons.
fn asking(spawned: &Spawned, ask: &StopButton) -> String {
    let worktree = match (&spawned.worktree, ask.remove_worktree) {
        (Some(path), false) => format!(" Its worktree `{}` is kept.", path.display()),
        (Some(path), true) => format!(
            " Its worktree `{}` is removed if it has no changes (its branch stays); with \
             changes, nothing is stopped.",
            path.display()
        ),
        (None, _) => String::new(),
    };
    format!(
        "⚠️ Stop **{}** (project {}, tmux pane `{}`)? Its window closes, messages waiting for it \
         fail, and it is retired.{worktree}\nOnly <@{}> can answer.",
        spawned.id, spawned.project, spawned.target, ask.asker
    )
}

/// What a stop did, as its post now says.
fn stopped(report: &StopReport, by: &str) -> String {
    let mut text = format!(
        "🛑 **{}** stopped by {}: {}; {} queued message(s) failed.",
        report.agent,
        who(by),
        match (&report.machine, report.window_closed) {
            (Some(node), _) => format!("{node} closes its window"),
            (None, true) => "its window closed".to_owned(),
            (None, false) => "its window was already gone".to_owned(),
        },
        report.failed.len()
    );
    if let Some(path) = &report.worktree {
        if report.worktree_removed {
            let _ = write!(text, " Worktree `{path}` removed (its branch stays).");
        } else {
            let _ = write!(text, " Worktree `{path}` kept.");
        }
    }
    text
}

fn already_stopped(spawned: &Spawned) -> String {
    let mut text = format!("**{}** was already stopped", spawned.id);
    if let Some(by) = &spawned.stopped_by {
        let _ = write!(text, " by {}", who(by));
    }
    if let Some(at) = spawned.stopped_at {
        let _ = write!(text, " at {}", when(at));
    }
    text.push_str(": nothing was done.");
    text
}

use super::prompts::ephemeral;

/// Handles a press on a stop's button. Not one: `false`.
pub(crate) async fn press(
    ctx: &serenity::Context,
    ci: &serenity::ComponentInteraction,
    data: &Data,
) -> Result<bool, serenity::Error> {
    let Some(button) = StopButton::parse(&ci.data.custom_id) else {
        return Ok(false);
    };
    let started = std::time::Instant::now();
    let answered = answer_press(ctx, ci, data, &button).await;
    data.app.record_command(
        "discord",
        "stop button",
        answered.is_ok(),
        started.elapsed(),
    );
    answered.map(|()| true)
}

/// Whether the presser may answer this stop: the admin who asked, in the
/// home server. A refusal is audited, as a refused admin command is.
async fn may_press(
    ci: &serenity::ComponentInteraction,
    data: &Data,
    button: &StopButton,
    by: &str,
) -> Option<String> {
    let config = &data.app.config().discord;
    let refusal = match Level::of_press(ci, config) {
        Err(away) => away,
        Ok(level) if level < Level::Admin => format!(
            "🚫 stopping an agent needs the admin level ({}).",
            Level::Admin.config_key()
        ),
        Ok(_) if ci.user.id.get() != button.asker => format!(
            "🚫 only <@{}>, who asked, can answer this stop. Ask for your own with /stop.",
            button.asker
        ),
        Ok(_) => return None,
    };
    let audited = data
        .app
        .audit(
            by,
            "agent.stop",
            Some(button.agent.as_str()),
            AuditOutcome::Refused,
            Some("pressed a stop's button it may not answer"),
        )
        .await;
    if let Err(e) = audited {
        tracing::warn!(error = %e, "cannot audit a refused stop button");
    }
    Some(refusal)
}

async fn answer_press(
    ctx: &serenity::Context,
    ci: &serenity::ComponentInteraction,
    data: &Data,
    button: &StopButton,
) -> Result<(), serenity::Error> {
    let app = &data.app;
    let by = format!("discord:{}:{}", ci.user.id, ci.user.name);
    if let Some(refusal) = may_press(ci, data, button, &by).await {
        return ci.create_response(&ctx.http, ephemeral(refusal)).await;
    }
    // Already stopped (a press before this one, or elsewhere): said to
    // the presser alone; the post already says it, or is edited by the
    // press that stopped it.
    match app.started_agent(button.agent.as_str()).await {
        Ok(spawned) if spawned.state == SpawnState::Stopped => {
            return ci
                .create_response(&ctx.http, ephemeral(already_stopped(&spawned)))
                .await;
        }
        Ok(_) => {}
        Err(e) => {
            return ci
                .create_response(&ctx.http, ephemeral(format!("⚠️ {e}")))
                .await;
        }
    }
    if !button.confirm {
        if let Err(e) = app
            .audit(
                &by,
                "agent.stop.cancel",
                Some(button.agent.as_str()),
                AuditOutcome::Ok,
                None,
            )
            .await
        {
            tracing::warn!(error = %e, "cannot audit a cancelled stop");
        }
        let update = serenity::CreateInteractionResponse::UpdateMessage(
            serenity::CreateInteractionResponseMessage::new()
                .content(format!(
                    "✋ Stopping **{}** was cancelled by {}: it still runs.",
                    button.agent,
                    who(&by)
                ))
                .components(Vec::new())
                .allowed_mentions(no_mentions()),
        );
        return ci.create_response(&ctx.http, update).await;
    }
    // A stop takes a moment (the window, the service taking it out).
    ci.create_response(&ctx.http, serenity::CreateInteractionResponse::Acknowledge)
        .await?;
    let edit = |text: String| {
        serenity::EditInteractionResponse::new()
            .content(text)
            .components(Vec::new())
            .allowed_mentions(no_mentions())
    };
    match app
        .stop_agent(button.agent.as_str(), button.remove_worktree, &by)
        .await
    {
        Ok(report) => {
            ci.edit_response(&ctx.http, edit(stopped(&report, &by)))
                .await?;
        }
        // Another press (or door) stopped it first: the store decided.
        Err(AppError::Started(StartedError::AlreadyStopped(id))) => {
            let text = match app.started_agent(id.as_str()).await {
                Ok(spawned) => already_stopped(&spawned),
                Err(_) => format!("**{id}** was already stopped: nothing was done."),
            };
            ci.create_followup(
                &ctx.http,
                serenity::CreateInteractionResponseFollowup::new()
                    .content(text)
                    .ephemeral(true)
                    .allowed_mentions(no_mentions()),
            )
            .await?;
        }
        Err(e) if e.is_user_error() => {
            let text = format!("⚠️ **{}** was not stopped: {e}", button.agent);
            ci.edit_response(&ctx.http, edit(text)).await?;
        }
        Err(e) => {
            let reference = MessageId::generate();
            tracing::error!(%reference, error = %e, agent = %button.agent, "a stop failed");
            let text = format!(
                "⚠️ Stopping **{}** failed (ref `{reference}`); the error is in acp's log.",
                button.agent
            );
            ci.edit_response(&ctx.http, edit(text)).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_button_says_whose_stop_of_what_within_discords_limit() {
        let button = StopButton {
            agent: "a-very-long-project-name-12345-9".parse().unwrap(),
            asker: u64::MAX,
            remove_worktree: true,
            confirm: false,
        };
        let id = button.custom_id();
        assert!(id.len() <= 100, "{id}");
        assert_eq!(StopButton::parse(&id), Some(button));
        for other in [
            "acp:prompt:01JDQ3Z5X8J6Y4F2K9M0N1P2Q3:allow",
            "acp:stop:web-1:12:keep",
            "acp:stop:web-1:12:keep:confirm:more",
            "acp:stop:../x:12:keep:confirm",
            "acp:stop:web-1:me:keep:confirm",
        ] {
            assert_eq!(StopButton::parse(other), None, "{other}");
        }
    }

    #[test]
    fn the_service_line_reads_as_a_sentence() {
        assert_eq!(
            capitalized("the running acp run took the agent in"),
            "The running acp run took the agent in"
        );
        assert_eq!(capitalized(""), "");
    }
}
