//! The Discord commander: poise slash commands over the application core.
//!
//! Thin by design: a command parses, checks the member's level, calls one
//! method of [`App`], and renders the result with a pure function from
//! [`render`]. Nothing else in the crate imports serenity or poise.
//!
//! The API base URL (`DISCORD_API_BASE` / `discord.api_base`) is a
//! production setting for rate-limit proxies; the tests point it at a
//! loopback stand-in Discord.

mod backups;
mod commands;
pub mod permissions;
pub mod render;

use std::sync::Arc;

use poise::serenity_prelude as serenity;
use tokio_util::sync::CancellationToken;

use crate::app::App;

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
pub struct Data {
    pub app: Arc<App>,
}

/// The error type of commands: user errors are shown, others logged.
pub type Error = anyhow::Error;
/// A command's context.
pub type Context<'a> = poise::Context<'a, Data, Error>;

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
    let framework = poise::Framework::builder()
        .options(poise::FrameworkOptions {
            commands: commands::all(),
            on_error: |error| Box::pin(commands::on_error(error)),
            ..Default::default()
        })
        .initialize_owners(false)
        .setup(move |ctx, ready, framework| {
            Box::pin(async move {
                let commands = &framework.options().commands;
                match guild {
                    Some(g) => poise::builtins::register_in_guild(ctx, commands, serenity::GuildId::new(g)).await?,
                    None => poise::builtins::register_globally(ctx, commands).await?,
                }
                tracing::info!(user = %ready.user.name, guild, "Discord bot ready; slash commands registered");
                Ok(Data { app })
            })
        })
        .build();
    let intents = serenity::GatewayIntents::non_privileged();
    let mut client = serenity::ClientBuilder::new_with_http(http, intents)
        .framework(framework)
        .await?;
    let shards = client.shard_manager.clone();
    tokio::select! {
        result = client.start() => result.map_err(DiscordError::from_client)?,
        () = cancel.cancelled() => shards.shutdown_all().await,
    }
    Ok(())
}
