//! The channels acp posts to (`discord.swarm_channel`,
//! `discord.devlog_channel`, and agent threads in the swarm channel): that
//! each is there, and what the bot lacks in it, with where the lack comes
//! from (a channel overwrite, or none of its roles).

use super::discord::failed;
use super::{Check, Level, bad, ok};
use crate::config::DiscordConfig;
use crate::delivery::discord::probe::{self, Bot, Look, Probe, Server};

/// Each channel acp posts to, and what the bot lacks there.
pub(super) async fn channel_checks(
    probe: &Probe,
    bot: &Bot,
    d: &DiscordConfig,
    server: Option<&Server>,
) -> Vec<Check> {
    let mut wanted = Vec::new();
    if let Some(id) = d.swarm_channel {
        wanted.push((
            "swarm channel",
            "discord.swarm_channel",
            id,
            d.agent_threads,
        ));
    }
    // Through a webhook, devlogs go where the webhook posts, not as the bot.
    if let Some(id) = d.devlog_channel.filter(|_| d.devlog_webhook.is_none()) {
        wanted.push(("devlog channel", "discord.devlog_channel", id, false));
    }
    // Channels of another server than the configured one (or of any, with
    // no guild_id), asked about once each.
    let mut others: Vec<Server> = Vec::new();
    let mut out = Vec::new();
    for (check, key, id, threads) in wanted {
        let channel = match probe.channel(id).await {
            Ok(Look::Found(channel)) => channel,
            Ok(Look::Unknown) => {
                out.push(bad(
                    check,
                    Level::Fail,
                    format!("Discord has no channel {id} ({key})"),
                    format!(
                        "set {key} in config/acp.toml to the channel's id: right-click the \
                         channel → Copy Channel ID (with Developer Mode on)"
                    ),
                ));
                continue;
            }
            Ok(Look::Hidden) => {
                out.push(bad(
                    check,
                    Level::Fail,
                    format!("the bot may not see channel {id} ({key}): it lacks View Channel"),
                    format!(
                        "Edit Channel → Permissions: add the bot's role and allow View Channel, \
                         Send Messages, Read Message History and Attach Files{}; or check {key}",
                        if threads {
                            ", Create Public Threads and Send Messages in Threads"
                        } else {
                            ""
                        }
                    ),
                ));
                continue;
            }
            Err(e) => {
                out.push(failed(check, probe, &e));
                continue;
            }
        };
        let home = server.filter(|s| s.id == channel.guild_id);
        if home.is_none() && !others.iter().any(|s| s.id == channel.guild_id) {
            match probe.server(channel.guild_id, bot.id).await {
                Ok(Look::Found(s)) => others.push(s),
                Ok(_) => {
                    out.push(bad(
                        check,
                        Level::Fail,
                        format!(
                            "#{} ({id}) is in server {}, which the bot is not in",
                            channel.name, channel.guild_id
                        ),
                        format!("set {key} to a channel of your server, or invite the bot there"),
                    ));
                    continue;
                }
                Err(e) => {
                    out.push(failed(check, probe, &e));
                    continue;
                }
            }
        }
        let Some(at) = home.or_else(|| others.iter().find(|s| s.id == channel.guild_id)) else {
            continue;
        };
        out.push(channel_access(check, key, d, at, &channel, threads));
    }
    out
}

/// The verdict on one channel the bot is in the server of.
fn channel_access(
    check: &'static str,
    key: &str,
    d: &DiscordConfig,
    server: &Server,
    channel: &probe::Channel,
    threads: bool,
) -> Check {
    let name = format!("#{} ({})", channel.name, channel.id);
    let elsewhere = d
        .guild_id
        .filter(|g| *g != server.id)
        .map(|g| {
            format!(
                "; it is in server {} ({}), not in discord.guild_id {g}",
                server.name, server.id
            )
        })
        .unwrap_or_default();
    let lacks = server.lacks(channel, threads);
    if lacks.is_empty() {
        let can = if threads {
            "view, post, reply, attach files, make agent threads and post in them"
        } else {
            "view, post, reply and attach files"
        };
        let detail = format!("{name}: the bot may {can}{elsewhere}");
        return if elsewhere.is_empty() {
            ok(check, detail)
        } else {
            bad(
                check,
                Level::Warn,
                detail,
                format!("use a channel of the server in discord.guild_id for {key}"),
            )
        };
    }
    let names = |by_channel: bool| -> Vec<&str> {
        lacks
            .iter()
            .filter(|l| l.by_channel == by_channel)
            .map(|l| l.permission)
            .collect()
    };
    let (denied, ungranted) = (names(true), names(false));
    let mut why = Vec::new();
    let mut fix = Vec::new();
    let roles = server.bot_roles();
    let role = roles
        .first()
        .map_or_else(|| "the bot".to_owned(), |r| format!("the bot's role {r}"));
    let them = |n: &[&str]| if n.len() == 1 { "it" } else { "them" };
    if !denied.is_empty() {
        why.push(format!(
            "{} (the channel's permission overwrites deny {})",
            denied.join(", "),
            them(&denied)
        ));
        fix.push(format!(
            "Edit Channel #{} → Permissions: allow {} for {role} (or remove the overwrite that \
             denies {})",
            channel.name,
            denied.join(", "),
            them(&denied)
        ));
    }
    if !ungranted.is_empty() {
        why.push(format!(
            "{} (none of its roles grants {})",
            ungranted.join(", "),
            them(&ungranted)
        ));
        fix.push(format!(
            "Server Settings → Roles → {}: allow {} (or allow {} for the bot in the channel's \
             permissions)",
            roles.first().map_or("the bot's role", String::as_str),
            ungranted.join(", "),
            them(&ungranted)
        ));
    }
    bad(
        check,
        Level::Fail,
        format!(
            "{name}: the bot lacks {}{elsewhere}: posts there fail",
            why.join("; ")
        ),
        fix.join("; "),
    )
}
