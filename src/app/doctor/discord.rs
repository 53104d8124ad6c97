//! The Discord checks: the config, then Discord itself through
//! `discord.api_base`: the token (`GET /users/@me`), the server
//! (`discord.guild_id`), the bot's permissions in each channel acp posts
//! to, and whether anyone can hold the operator level. Only the hub (or a
//! single machine) runs the bot, so a node checks none of it.

use super::{Check, Level, bad, ok};
use crate::config::{Config, DiscordConfig};
use crate::delivery::discord::probe::{self, Bot, Look, Probe, ProbeError, Server};

/// Every Discord check, in the order the doctor prints them.
pub async fn discord_checks(config: &Config) -> Vec<Check> {
    let d = &config.discord;
    if let Some(cluster) = config.cluster.as_ref().filter(|c| !c.is_hub()) {
        let unused = if d.token.is_some() {
            "; DISCORD_TOKEN is set here but not used"
        } else {
            ""
        };
        return vec![ok(
            "discord",
            format!(
                "a node: the hub ({}) runs the Discord bot, so this machine needs no \
                 DISCORD_TOKEN{unused}",
                cluster.hub
            ),
        )];
    }
    let Some(token) = &d.token else {
        return vec![bad(
            "discord",
            Level::Warn,
            "no DISCORD_TOKEN: acp run works without the Discord bot",
            "put DISCORD_TOKEN=... in .env in the root (see .env.example)",
        )];
    };
    let mut out = vec![channels_set(d)];
    let probe = Probe::new(token.expose(), d.api_base.as_deref());
    let bot = match probe.bot().await {
        Ok(bot) => {
            out.push(ok(
                "discord token",
                format!(
                    "Discord at {} takes it: the bot is {} ({})",
                    probe.base(),
                    bot.name,
                    bot.id
                ),
            ));
            Some(bot)
        }
        Err(e) => {
            out.push(failed("discord token", &probe, &e));
            None
        }
    };
    let server = match (&bot, d.guild_id) {
        (Some(bot), Some(guild)) => {
            let (check, server) = guild_check(&probe, bot, guild).await;
            out.push(check);
            server
        }
        (_, None) => {
            out.push(no_guild_id());
            None
        }
        // Without the bot, the server cannot be asked about.
        (None, Some(_)) => None,
    };
    // Channels are asked about once the bot is known, and is in the
    // configured server if there is one (else each channel's own server).
    let in_server = d.guild_id.is_none() || server.is_some();
    if let Some(bot) = bot.as_ref().filter(|_| in_server) {
        out.extend(super::channels::channel_checks(&probe, bot, d, server.as_ref()).await);
    }
    let unchecked = match (&bot, d.guild_id) {
        (None, _) => "not checked in Discord: see discord token above",
        (Some(_), None) => "set discord.guild_id to have them checked in your server",
        (Some(_), Some(_)) => "not checked: the bot is not in the server",
    };
    out.push(operators(d, server.as_ref(), unchecked));
    out.extend(reminders(config));
    out
}

/// Where agents post: a token without a channel posts nothing.
fn channels_set(d: &DiscordConfig) -> Check {
    if d.swarm_channel.is_none() && d.devlog_channel.is_none() && d.devlog_webhook.is_none() {
        bad(
            "discord",
            Level::Warn,
            "DISCORD_TOKEN is set, but agents have nowhere to post (`acp send --to discord`, \
             devlogs)",
            "set discord.swarm_channel (and discord.devlog_channel) to channel ids in \
             config/acp.toml",
        )
    } else {
        ok("discord", "DISCORD_TOKEN is set")
    }
}

/// A question Discord did not answer, with the fix for its cause.
pub(super) fn failed(check: &'static str, probe: &Probe, e: &ProbeError) -> Check {
    let fix = match e {
        ProbeError::Unauthorized => "the token is wrong or was reset: on \
             https://discord.com/developers/applications open the application → Bot → Reset \
             Token, put it in .env as DISCORD_TOKEN=..., and restart acp run"
            .to_owned(),
        ProbeError::Unreachable { .. } => format!(
            "check this machine's network (DNS, a firewall, a proxy) reaches {}, and \
             discord.api_base in config/acp.toml (empty for discord.com)",
            probe.base()
        ),
        ProbeError::Status { status, .. } if *status >= 500 => {
            "Discord is failing: see https://discordstatus.com, then run `acp doctor` again".into()
        }
        ProbeError::Status { .. } | ProbeError::Unreadable { .. } => {
            "run `acp doctor` again; if it says the same, `ACP_LOG=debug acp run` logs what \
             Discord answers"
                .into()
        }
    };
    bad(check, Level::Fail, e.to_string(), fix)
}

/// `discord.guild_id` unset: commands come from every server.
fn no_guild_id() -> Check {
    bad(
        "discord server",
        Level::Warn,
        "no discord.guild_id: slash commands are registered globally and taken from every \
         server the bot is in, so anyone who adds the bot to theirs can run them",
        "set guild_id in [discord] in config/acp.toml to your server's id: in Discord turn on \
         Developer Mode (User Settings → Advanced), right-click the server's icon and Copy \
         Server ID; then restart acp run",
    )
}

/// Whether the bot is in the configured server; the server when it is.
async fn guild_check(probe: &Probe, bot: &Bot, guild: u64) -> (Check, Option<Server>) {
    const CHECK: &str = "discord server";
    match probe.server(guild, bot.id).await {
        Ok(Look::Found(server)) => (
            ok(
                CHECK,
                format!(
                    "the bot is in {} ({guild}), and commands are taken only there \
                     (discord.guild_id)",
                    server.name
                ),
            ),
            Some(server),
        ),
        Ok(Look::Unknown | Look::Hidden) => {
            let invite = match probe.application_id().await {
                Ok(app) => probe::invite_url(app),
                Err(_) => probe::invite_url(bot.id),
            };
            (
                bad(
                    CHECK,
                    Level::Fail,
                    format!(
                        "the bot {} is not in server {guild} (discord.guild_id): it takes \
                         commands from no one",
                        bot.name
                    ),
                    format!(
                        "invite it, as someone who may manage that server: {invite} (or correct \
                         discord.guild_id: right-click the server's icon → Copy Server ID)"
                    ),
                ),
                None,
            )
        }
        Err(e) => (failed(CHECK, probe, &e), None),
    }
}

/// Whether anyone can hold the operator level (`/message`, `/broadcast`):
/// a role in `discord.operator_roles` or `discord.admin_roles` that the
/// server has and a person can be given. Who holds a role Discord shows a
/// bot only with the privileged Server Members intent, which acp does not
/// ask for, so that is left to the server's settings.
fn operators(d: &DiscordConfig, server: Option<&Server>, unchecked: &str) -> Check {
    const CHECK: &str = "operators";
    let configured: Vec<(u64, &str)> = d
        .operator_roles
        .iter()
        .map(|r| (*r, "discord.operator_roles"))
        .chain(d.admin_roles.iter().map(|r| (*r, "discord.admin_roles")))
        .collect();
    if configured.is_empty() {
        return bad(
            CHECK,
            Level::Warn,
            "nobody holds the operator level: discord.operator_roles and discord.admin_roles \
             are empty, so no one may /message or /broadcast agents from Discord",
            "make a role (Server Settings → Roles), give it to the people who steer the agents, \
             right-click it → Copy Role ID, put the id in discord.operator_roles in \
             config/acp.toml, and restart acp run",
        );
    }
    let Some(server) = server else {
        return ok(
            CHECK,
            format!(
                "{} role id(s) grant the operator level ({unchecked})",
                configured.len()
            ),
        );
    };
    let mut good = Vec::new();
    let mut wrong = Vec::new();
    for (id, key) in &configured {
        match server.role(*id) {
            Some(r) if r.managed => wrong.push(format!(
                "{} ({id}, {key}) belongs to a bot or an integration, so no person can be given it",
                r.name
            )),
            Some(r) if r.id == server.id => good.push("@everyone (every member)".to_owned()),
            Some(r) => good.push(format!("{} ({key})", r.name)),
            None => wrong.push(format!("{id} ({key}) is not a role of {}", server.name)),
        }
    }
    let fix = "copy the role's id again (Server Settings → Roles → right-click the role → Copy \
               Role ID) into config/acp.toml, and restart acp run";
    if good.is_empty() {
        bad(
            CHECK,
            Level::Warn,
            format!("nobody holds the operator level: {}", wrong.join("; ")),
            fix,
        )
    } else if wrong.is_empty() {
        ok(
            CHECK,
            format!(
                "members with {} hold the operator level (who has a role: Server Settings → \
                 Roles → the role → Manage Members)",
                good.join(", ")
            ),
        )
    } else {
        bad(
            CHECK,
            Level::Warn,
            format!(
                "only {} grant the operator level: {}",
                good.join(", "),
                wrong.join("; ")
            ),
            fix,
        )
    }
}

/// Whom a prompt left waiting pings, when reminders are on: nobody to
/// ping is a warning.
pub(super) fn reminders(config: &Config) -> Option<Check> {
    const CHECK: &str = "reminders";
    config.discord.token.as_ref()?;
    let after = config.attention.mention_after?;
    let to = &config.attention.mentions;
    let waited =
        crate::model::attention::waited(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
    Some(if to.is_empty() {
        bad(
            CHECK,
            Level::Warn,
            format!("a prompt waiting {waited} would ping nobody: no role or user to mention"),
            "set discord.operator_roles (pinged by default) or attention.mention_roles / \
             attention.mention_users in config/acp.toml; or attention.mention_after_secs = 0 \
             for no reminder",
        )
    } else {
        ok(
            CHECK,
            format!(
                "a prompt waiting {waited} pings {} role(s) and {} user(s) once \
                 (attention.mention_roles, attention.mention_users)",
                to.roles.len(),
                to.users.len()
            ),
        )
    })
}
