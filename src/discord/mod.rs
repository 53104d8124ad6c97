//! The Discord commander: poise slash commands over the application core.
//!
//! Thin by design: a command parses, checks the member's level, calls one
//! method of [`App`], and renders the result with a pure function from
//! [`render`]. Besides this module only the outbox's REST client
//! (`delivery::discord`) uses serenity, and nothing else uses poise.
//!
//! The API base URL (`DISCORD_API_BASE` / `discord.api_base`) is a
//! production setting for rate-limit proxies; the tests point it at a
//! loopback stand-in Discord.

mod agents;
mod backups;
mod commands;
pub(crate) mod permissions;
mod prompts;
mod receipts;
pub(crate) mod render;
mod schedules;

use std::sync::Arc;

use poise::serenity_prelude as serenity;
use tokio_util::sync::CancellationToken;

use crate::app::App;

/// Commands only admins may run, hidden from other members in Discord's
/// picker (the run-time check still refuses them).
const ADMIN_ONLY: &[&str] = &["backup", "spawn", "stop", "restart"];

/// Discord's Manage Server permission: members without it do not see the
/// admin-only commands (a server admin can grant them to other roles under
/// Server Settings → Integrations).
const MANAGE_GUILD: u64 = 1 << 5;

/// The body that registers the commands: poise's, with
/// `default_member_permissions` on the admin-only ones, written as the
/// integer Discord's OpenAPI description types it (poise's helper writes
/// a string).
fn registration(commands: &[poise::Command<Data, Error>]) -> Result<serde_json::Value, Error> {
    let mut body = serde_json::to_value(poise::builtins::create_application_commands(commands))?;
    for command in body.as_array_mut().into_iter().flatten() {
        if command["name"]
            .as_str()
            .is_some_and(|name| ADMIN_ONLY.contains(&name))
        {
            command["default_member_permissions"] = serde_json::json!(MANAGE_GUILD);
        }
    }
    Ok(body)
}

/// Who may be pinged by what acp posts: nobody. Agents' text (an answer, a
/// devlog, an inbox listing) can hold `@everyone` or `<@id>`, and a
/// prompt-injected agent must not page people through the bot.
pub(crate) fn no_mentions() -> serenity::CreateAllowedMentions {
    serenity::CreateAllowedMentions::new()
}

/// Tells the core how the gateway connection stands, for `/readyz` and
/// the status page.
fn link_changed(_ctx: &serenity::Context, event: &serenity::FullEvent, data: &Data) {
    use crate::app::DiscordLink;
    let link = match event {
        serenity::FullEvent::Ready { .. } | serenity::FullEvent::Resume { .. } => {
            DiscordLink::Connected
        }
        serenity::FullEvent::ShardStageUpdate { event } => {
            if event.new == serenity::ConnectionStage::Connected {
                DiscordLink::Connected
            } else {
                DiscordLink::Connecting
            }
        }
        _ => return,
    };
    data.app.set_discord_link(link);
}

/// Why the bot could not run.
#[derive(Debug, thiserror::Error)]
pub enum DiscordError {
    #[error("no DISCORD_TOKEN configured: put it in .env in the acp root (see .env.example)")]
    NoToken,
    #[error(
        "Discord refused DISCORD_TOKEN (authentication failed): reset the token on the Bot page \
         of the Discord developer portal and put the new one in .env"
    )]
    BadToken,
    #[error("the Discord client failed: {0}")]
    Client(#[from] serenity::Error),
}

impl DiscordError {
    /// Names the failures a user can fix.
    fn from_client(e: serenity::Error) -> Self {
        match e {
            serenity::Error::Gateway(serenity::GatewayError::InvalidAuthentication) => {
                Self::BadToken
            }
            other => Self::Client(other),
        }
    }
}

/// What every command can reach.
pub(crate) struct Data {
    pub(crate) app: Arc<App>,
}

/// The error type of commands: user errors are shown, others logged.
pub(crate) type Error = anyhow::Error;
/// A command's context.
pub(crate) type Context<'a> = poise::Context<'a, Data, Error>;

/// Runs the bot until `cancel`, then shuts the shards down.
///
/// # Errors
/// [`DiscordError`] if there is no token or the client cannot start.
pub async fn run(app: Arc<App>, cancel: CancellationToken) -> Result<(), DiscordError> {
    let config = app.config().discord.clone();
    let token = config.token.clone().ok_or(DiscordError::NoToken)?;
    let mut http = serenity::HttpBuilder::new(token.expose());
    if let Some(base) = &config.api_base {
        // serenity ignores the proxy unless its rate limiter is off; a
        // rate-limit proxy does that job instead.
        http = http.proxy(base.clone()).ratelimiter_disabled(true);
    }
    let http = http.build();
    let guild = config.guild_id;
    if guild.is_none() {
        tracing::warn!(
            "no discord.guild_id: slash commands are registered globally and taken from every \
             server the bot is in. Set discord.guild_id in config/acp.toml to your server's id \
             (Developer Mode on, then right-click the server → Copy Server ID)"
        );
    }
    let setup_app = Arc::clone(&app);
    let link_app = Arc::clone(&app);
    let framework = poise::Framework::builder()
        .options(poise::FrameworkOptions {
            commands: commands::all(),
            on_error: |error| Box::pin(commands::on_error(error)),
            // Every reply, follow-up and edit made through poise.
            allowed_mentions: Some(no_mentions()),
            pre_command: |ctx| Box::pin(commands::started(ctx)),
            post_command: |ctx| Box::pin(commands::finished(ctx, true)),
            event_handler: |ctx, event, _framework, data| {
                Box::pin(async move {
                    link_changed(ctx, event, data);
                    if let serenity::FullEvent::InteractionCreate {
                        interaction: serenity::Interaction::Component(ci),
                    } = event
                    {
                        let answered = match prompts::press(ctx, ci, data).await {
                            Ok(false) => agents::press(ctx, ci, data).await.map(|_| ()),
                            other => other.map(|_| ()),
                        };
                        if let Err(e) = answered {
                            tracing::warn!(error = %e, "cannot answer a button press");
                        }
                    }
                    Ok(())
                })
            },
            ..Default::default()
        })
        .initialize_owners(false)
        .setup(move |ctx, ready, framework| {
            Box::pin(async move {
                let body = registration(&framework.options().commands)?;
                match guild {
                    Some(g) => ctx.http.create_guild_commands(serenity::GuildId::new(g), &body).await?,
                    None => ctx.http.create_global_commands(&body).await?,
                };
                tracing::info!(user = %ready.user.name, guild, "Discord bot ready; slash commands registered");
                setup_app.set_discord_link(crate::app::DiscordLink::Connected);
                Ok(Data { app: setup_app })
            })
        })
        .build();
    let intents = serenity::GatewayIntents::non_privileged();
    let mut client = serenity::ClientBuilder::new_with_http(http, intents)
        .framework(framework)
        .await?;
    let shards = client.shard_manager.clone();
    // Receipts are answered over REST, beside the gateway, until the bot
    // stops.
    let receipts_stop = cancel.child_token();
    let settle = prompts::settle(Arc::clone(&app), client.http.clone(), receipts_stop.clone());
    let receipts = receipts::answer(app, client.http.clone(), receipts_stop.clone());
    let bot = async {
        let result = tokio::select! {
            result = client.start() => result.map_err(DiscordError::from_client),
            () = cancel.cancelled() => {
                shards.shutdown_all().await;
                Ok(())
            }
        };
        receipts_stop.cancel();
        result
    };
    let (result, (), ()) = tokio::join!(bot, receipts, settle);
    link_app.set_discord_link(crate::app::DiscordLink::Stopped);
    result
}
