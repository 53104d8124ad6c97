// Over 400 lines: every slash command but /backup, /spawn, /stop, /restart and /schedule: each
// is a few lines, and the permission check is shared.

//! The slash commands. Each parses, checks the member's level, calls one
//! method of the core and renders the answer.

use std::time::Duration;

use poise::CreateReply;

use poise::serenity_prelude as serenity;

use crate::app::{AppError, Receipt, ReceiptState, Refused, SendRequest};
use crate::model::Via;
use crate::model::{AuditOutcome, Kind, MessageId, Priority, Recipient};

use super::permissions::Level;
use super::{Context, Data, Error, render};

/// Work that has not answered by then is deferred first ("acp is
/// thinking…"), well inside Discord's 3-second limit.
const DEFER_AFTER: Duration = Duration::from_secs(1);

/// Runs `work`; if it has not finished after [`DEFER_AFTER`], defers the
/// interaction first so Discord does not time it out, then waits for it.
pub(super) async fn quick<T, E>(
    ctx: Context<'_>,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, Error>
where
    Error: From<E>,
{
    let work = std::pin::pin!(work);
    let mut work = work;
    tokio::select! {
        result = &mut work => Ok(result?),
        () = tokio::time::sleep(DEFER_AFTER) => {
            ctx.defer().await?;
            Ok(work.await?)
        }
    }
}

pub(crate) fn all() -> Vec<poise::Command<Data, Error>> {
    vec![
        status(),
        waiting(),
        agents(),
        inbox(),
        message(),
        broadcast(),
        role(),
        super::backups::backup(),
        devlog(),
        super::agents::spawn(),
        super::agents::stop(),
        super::agents::restart(),
        super::schedules::schedule(),
    ]
}

fn member_roles(ctx: Context<'_>) -> Vec<u64> {
    match ctx {
        poise::Context::Application(a) => a
            .interaction
            .member
            .as_ref()
            .map(|m| m.roles.iter().map(|r| r.get()).collect())
            .unwrap_or_default(),
        poise::Context::Prefix(_) => Vec::new(),
    }
}

/// Who is acting, for messages and the audit log.
pub(super) fn actor(ctx: Context<'_>) -> String {
    format!("discord:{}:{}", ctx.author().id, ctx.author().name)
}

/// Whether this is an autocomplete request (someone typing an argument),
/// not a command.
fn is_autocomplete(ctx: Context<'_>) -> bool {
    matches!(ctx, poise::Context::Application(app)
        if app.interaction_type == poise::CommandInteractionType::Autocomplete)
}

/// Answers an autocomplete request with no choices: Discord shows nothing
/// to pick, instead of waiting for an answer that never comes.
async fn no_choices(ctx: Context<'_>) -> Result<(), Error> {
    if let poise::Context::Application(app) = ctx {
        app.interaction
            .create_response(
                ctx.serenity_context(),
                serenity::CreateInteractionResponse::Autocomplete(
                    serenity::CreateAutocompleteResponse::new(),
                ),
            )
            .await?;
    }
    Ok(())
}

/// The run-time permission check behind every command. A refusal is
/// answered (ephemeral) here, and audited for admin commands. Someone who
/// may not run a command gets no suggestions while typing it either.
async fn require(ctx: Context<'_>, needed: Level) -> Result<bool, Error> {
    let data = ctx.data();
    let config = &data.app.config().discord;
    let name = ctx.command().qualified_name.clone();
    if is_autocomplete(ctx) {
        let home = config
            .guild_id
            .is_none_or(|g| ctx.guild_id().map(serenity::GuildId::get) == Some(g));
        let channel = config.allowed_channels.is_empty()
            || config.allowed_channels.contains(&ctx.channel_id().get());
        if home && channel && Level::of(&member_roles(ctx), config) >= needed {
            return Ok(true);
        }
        no_choices(ctx).await?;
        return Ok(false);
    }
    if let Some(home) = config.guild_id
        && ctx.guild_id().map(serenity::GuildId::get) != Some(home)
    {
        ctx.send(
            CreateReply::default()
                .ephemeral(true)
                .content("🚫 acp takes commands only in the server set as `discord.guild_id`."),
        )
        .await?;
        return Ok(false);
    }
    if !config.allowed_channels.is_empty()
        && !config.allowed_channels.contains(&ctx.channel_id().get())
    {
        ctx.send(
            CreateReply::default()
                .ephemeral(true)
                .content("🚫 acp does not take commands in this channel."),
        )
        .await?;
        return Ok(false);
    }
    let level = Level::of(&member_roles(ctx), config);
    if level >= needed {
        return Ok(true);
    }
    if needed == Level::Admin {
        let what = format!("/{name}");
        let refused = data
            .app
            .audit(
                &actor(ctx),
                &what,
                None,
                AuditOutcome::Refused,
                Some("missing level admin"),
            )
            .await;
        if let Err(e) = refused {
            tracing::warn!(error = %e, "cannot audit a refused admin command");
        }
    }
    let text = format!(
        "🚫 `/{name}` needs the **{}** level; you have **{}**. A server admin can grant it by \
         adding one of your roles to `{}` in config/acp.toml.",
        needed.name(),
        level.name(),
        needed.config_key()
    );
    ctx.send(CreateReply::default().ephemeral(true).content(text))
        .await?;
    Ok(false)
}

pub(super) async fn user(ctx: Context<'_>) -> Result<bool, Error> {
    require(ctx, Level::User).await
}
pub(super) async fn operator(ctx: Context<'_>) -> Result<bool, Error> {
    require(ctx, Level::Operator).await
}
pub(super) async fn admin(ctx: Context<'_>) -> Result<bool, Error> {
    require(ctx, Level::Admin).await
}

#[expect(
    clippy::unused_async,
    reason = "poise calls autocomplete functions as async"
)]
async fn agent_names<'a>(ctx: Context<'a>, partial: &'a str) -> impl Iterator<Item = String> + 'a {
    let lower = partial.to_lowercase();
    ctx.data()
        .app
        .agents()
        .all()
        .iter()
        .map(|a| a.id.to_string())
        .filter(move |id| id.to_lowercase().contains(&lower))
        .collect::<Vec<_>>()
        .into_iter()
}

#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
pub(super) enum PriorityChoice {
    #[name = "normal"]
    Normal,
    #[name = "urgent"]
    Urgent,
    #[name = "critical"]
    Critical,
}

impl From<Option<PriorityChoice>> for Priority {
    fn from(p: Option<PriorityChoice>) -> Self {
        match p {
            None | Some(PriorityChoice::Normal) => Priority::Normal,
            Some(PriorityChoice::Urgent) => Priority::Urgent,
            Some(PriorityChoice::Critical) => Priority::Critical,
        }
    }
}

/// Queue depth by state and priority, and recent failures.
#[poise::command(slash_command, guild_only, check = "user")]
async fn status(ctx: Context<'_>) -> Result<(), Error> {
    let app = &ctx.data().app;
    let (status, last_backup) = quick(ctx, async {
        let status = app.status().await?;
        // A repository that cannot be read shows as "none"; `acp doctor`
        // says why.
        let last = app.backups().last().await.unwrap_or(None);
        Ok::<_, AppError>((status, last))
    })
    .await?;
    ctx.send(CreateReply::default().embed(render::status(
        &status,
        app.uptime(),
        last_backup.as_ref(),
    )))
    .await?;
    Ok(())
}

/// Every agent waiting for a person (a prompt, a question, done, exited), and for how long.
#[poise::command(slash_command, guild_only, check = "user")]
async fn waiting(ctx: Context<'_>) -> Result<(), Error> {
    let app = &ctx.data().app;
    let waiting = quick(ctx, app.waiting()).await?;
    ctx.say(render::waiting(
        &waiting,
        jiff::Timestamp::now().as_millisecond(),
    ))
    .await?;
    Ok(())
}

/// Every agent with its role, captain marker, last delivery and unacked count.
#[poise::command(slash_command, guild_only, check = "user")]
async fn agents(ctx: Context<'_>) -> Result<(), Error> {
    let views = quick(ctx, ctx.data().app.agent_views()).await?;
    ctx.send(CreateReply::default().embed(render::agents(&views)))
        .await?;
    Ok(())
}

async fn send_and_receipt(
    ctx: Context<'_>,
    to: Recipient,
    kind: Kind,
    text: String,
    priority: Priority,
) -> Result<(), Error> {
    let asked_at = jiff::Timestamp::now().as_millisecond();
    let app = ctx.data().app.clone();
    let request = SendRequest {
        draft: crate::model::Draft {
            from: actor(ctx),
            to,
            kind,
            priority,
            body: text,
            tags: vec![],
            reply_to: None,
        },
        via: Via::Auto,
    };
    let message = quick(ctx, app.send(request)).await?;
    let waiting = app.waiting_for(&message).await;
    say_and_owe_receipt(
        ctx,
        render::accepted(&message, app.delivering(), waiting.as_deref()),
        message.id,
        asked_at,
    )
    .await
}

/// Replies `text`, then records in the store the receipt that reply owes
/// for message `id`: whichever process answers receipts edits it once the
/// outcome is known, even after a restart.
async fn say_and_owe_receipt(
    ctx: Context<'_>,
    text: String,
    id: MessageId,
    asked_at: i64,
) -> Result<(), Error> {
    let poise::Context::Application(a) = ctx else {
        ctx.say(text).await?;
        return Ok(());
    };
    // After a deferral the reply is a follow-up, edited as one.
    let followup = a
        .has_sent_initial_response
        .load(std::sync::atomic::Ordering::SeqCst);
    let reply = ctx.say(text).await?;
    let reply_id = reply.message().await.ok().map(|m| m.id.get());
    ctx.data()
        .app
        .owe_receipt(Receipt {
            message_id: id,
            channel_id: ctx.channel_id().get(),
            application_id: a.interaction.application_id.get(),
            token: a.interaction.token.clone(),
            reply_id,
            followup,
            asked_at,
            state: ReceiptState::Owed,
        })
        .await?;
    Ok(())
}

/// An agent's recent messages and whether it acknowledged them.
#[poise::command(slash_command, guild_only, check = "user")]
async fn inbox(
    ctx: Context<'_>,
    #[description = "The agent"]
    #[autocomplete = "agent_names"]
    agent: String,
) -> Result<(), Error> {
    let entries = quick(ctx, ctx.data().app.inbox(&agent, false, 10)).await?;
    ctx.say(render::inbox(&agent, &entries)).await?;
    Ok(())
}

/// Send a message to one agent; the reply turns into a delivery receipt.
///
/// Inside an agent's thread, the agent can be left out.
#[poise::command(slash_command, guild_only, check = "operator", user_cooldown = 2)]
async fn message(
    ctx: Context<'_>,
    #[description = "What to tell it"] text: String,
    #[description = "The agent, e.g. Agent-3 (not needed in its thread)"]
    #[autocomplete = "agent_names"]
    agent: Option<String>,
    #[description = "Delivery priority (default normal)"] priority: Option<PriorityChoice>,
    #[description = "A screenshot or a log, saved in the agent's workspace"] file: Option<
        serenity::Attachment,
    >,
) -> Result<(), Error> {
    let app = &ctx.data().app;
    let id = match agent {
        Some(agent) => app.agents().lookup(&agent)?.id.clone(),
        None => app
            .thread_agent(ctx.channel_id().get())
            .await?
            .ok_or_else(|| {
                Refused(
                    "say which agent with `agent:`, or type /message inside an agent's thread"
                        .into(),
                )
            })?,
    };
    let text = match file {
        Some(file) => {
            let path = quick(ctx, fetch_attachment(app, &id, &file)).await?;
            format!(
                "{text}\n\n📎 {} ({} bytes) is saved at {}",
                file.filename,
                file.size,
                path.display()
            )
        }
        None => text,
    };
    send_and_receipt(
        ctx,
        Recipient::Agent(id),
        Kind::Human,
        text,
        priority.into(),
    )
    .await
}

/// Downloads a command's file into the agent's workspace. A file over the
/// limit is refused before a byte is fetched.
async fn fetch_attachment(
    app: &crate::app::App,
    agent: &crate::model::AgentId,
    file: &serenity::Attachment,
) -> Result<std::path::PathBuf, Error> {
    let max = app.config().limits.max_attachment_bytes;
    let size = usize::try_from(file.size).unwrap_or(usize::MAX);
    if size > max {
        return Err(AppError::AttachmentTooLarge { size, max }.into());
    }
    let bytes = file.download().await?;
    Ok(app.attach(agent, &file.filename, bytes).await?)
}

/// Send a message to every agent; the receipt shows each agent's outcome.
#[poise::command(slash_command, guild_only, check = "operator", user_cooldown = 2)]
async fn broadcast(
    ctx: Context<'_>,
    #[description = "What to tell every agent"] text: String,
    #[description = "Delivery priority (default normal)"] priority: Option<PriorityChoice>,
) -> Result<(), Error> {
    send_and_receipt(
        ctx,
        Recipient::Broadcast,
        Kind::Broadcast,
        text,
        priority.into(),
    )
    .await
}

/// Agent roles and the captain.
#[poise::command(
    slash_command,
    guild_only,
    subcommands("role_list", "role_set", "role_captain")
)]
#[expect(
    clippy::unused_async,
    reason = "poise needs a body for a parent command"
)]
async fn role(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Show each agent's role and the captain.
#[poise::command(slash_command, guild_only, rename = "list", check = "user")]
async fn role_list(ctx: Context<'_>) -> Result<(), Error> {
    let views = quick(ctx, ctx.data().app.agent_views()).await?;
    ctx.send(CreateReply::default().embed(render::agents(&views)))
        .await?;
    Ok(())
}

/// Assign a role to an agent (admin).
#[poise::command(slash_command, guild_only, rename = "set", check = "admin")]
async fn role_set(
    ctx: Context<'_>,
    #[description = "The agent"]
    #[autocomplete = "agent_names"]
    agent: String,
    #[description = "Its role, e.g. Database specialist"] role: String,
) -> Result<(), Error> {
    let id = quick(ctx, ctx.data().app.set_role(&agent, &role, &actor(ctx))).await?;
    ctx.say(format!("✅ **{id}** is now: {}", role.trim()))
        .await?;
    Ok(())
}

/// Designate the captain (admin).
#[poise::command(slash_command, guild_only, rename = "captain", check = "admin")]
async fn role_captain(
    ctx: Context<'_>,
    #[description = "The agent"]
    #[autocomplete = "agent_names"]
    agent: String,
) -> Result<(), Error> {
    let id = quick(ctx, ctx.data().app.set_captain(&agent, &actor(ctx))).await?;
    ctx.say(format!("⭐ **{id}** is now the captain")).await?;
    Ok(())
}

/// Agent devlogs.
#[poise::command(slash_command, guild_only, subcommands("devlog_post"))]
#[expect(
    clippy::unused_async,
    reason = "poise needs a body for a parent command"
)]
async fn devlog(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Post a devlog from devlogs/ now; the reply says where it went.
#[poise::command(slash_command, guild_only, rename = "post", check = "operator")]
async fn devlog_post(
    ctx: Context<'_>,
    #[description = "A markdown file in devlogs/, e.g. Agent-3/2026-11-25.md"] file: String,
) -> Result<(), Error> {
    let asked_at = jiff::Timestamp::now().as_millisecond();
    let app = ctx.data().app.clone();
    let relative = std::path::Path::new(&file);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(Refused(format!(
            "`{file}` is not a path inside devlogs/: give it relative to devlogs/, e.g. \
             Agent-3/2026-11-25.md"
        ))
        .into());
    }
    let post = quick(
        ctx,
        app.post_devlog(&app.devlogs_dir().join(relative), None),
    )
    .await?;
    let Some(id) = post.message_id else {
        ctx.send(CreateReply::default().ephemeral(true).content(format!(
            "📝 `devlogs/{}` was posted before with this content: nothing new to post (`acp \
             devlog list` shows where).",
            post.path
        )))
        .await?;
        return Ok(());
    };
    let what = if post.update {
        "an update"
    } else {
        "a new devlog"
    };
    say_and_owe_receipt(
        ctx,
        format!(
            "📝 `devlogs/{}` ({what}) accepted as `{id}`: posting…",
            post.path
        ),
        id,
        asked_at,
    )
    .await
}

/// When a command started, kept for the metrics.
struct Started(std::time::Instant);

/// Notes when a command starts.
pub(crate) async fn started(ctx: Context<'_>) {
    ctx.set_invocation_data(Started(std::time::Instant::now()))
        .await;
}

/// Tells the metrics a command finished, and how.
pub(crate) async fn finished(ctx: Context<'_>, ok: bool) {
    if is_autocomplete(ctx) {
        return;
    }
    let took = ctx
        .invocation_data::<Started>()
        .await
        .map(|s| s.0.elapsed())
        .unwrap_or_default();
    ctx.data()
        .app
        .record_command("discord", &ctx.command().qualified_name, ok, took);
}

/// User errors are shown (ephemeral) as they are; anything else is logged
/// with a reference and answered "something went wrong".
pub(crate) async fn on_error(error: poise::FrameworkError<'_, Data, Error>) {
    match error {
        poise::FrameworkError::Command { error, ctx, .. } => {
            finished(ctx, false).await;
            let user_error = crate::app::is_user_error(error.as_ref());
            let text = if user_error {
                format!("⚠️ {error}")
            } else {
                let reference = MessageId::generate();
                tracing::error!(%reference, command = %ctx.command().qualified_name, error = format!("{error:#}"), "Discord command failed");
                format!("Something went wrong (ref `{reference}`); the error is in acp's log.")
            };
            let _ = ctx
                .send(CreateReply::default().ephemeral(true).content(text))
                .await;
        }
        poise::FrameworkError::CooldownHit {
            remaining_cooldown,
            ctx,
            ..
        } => {
            let text = format!(
                "⏳ Slow down: try again in {:.1} s.",
                remaining_cooldown.as_secs_f32()
            );
            let _ = ctx
                .send(CreateReply::default().ephemeral(true).content(text))
                .await;
        }
        poise::FrameworkError::CommandCheckFailed { .. } => {}
        other => {
            if let Err(e) = poise::builtins::on_error(other).await {
                tracing::error!(error = %e, "cannot report a Discord error");
            }
        }
    }
}
