//! What the bot may do on Discord, asked of Discord itself (for `acp
//! doctor`): whether it takes the token, whether the bot is in a server,
//! and the bot's permissions in a channel, computed from the server's
//! roles, the bot's roles and the channel's overwrites the way Discord
//! does (serenity's `PartialGuild::user_permissions_in`). Only reads: no
//! request here changes anything on Discord.

use std::future::Future;
use std::time::Duration;

use serenity::all as dc;

/// How long one request may take before Discord counts as unreachable.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What the outbox needs in a channel it posts to: to see it, post, reply
/// to a post (a reply needs Read Message History) and attach files (files
/// sent with a message, long devlogs).
const POST: dc::Permissions = dc::Permissions::VIEW_CHANNEL
    .union(dc::Permissions::SEND_MESSAGES)
    .union(dc::Permissions::READ_MESSAGE_HISTORY)
    .union(dc::Permissions::ATTACH_FILES);

/// What agent threads need in the channel they are made in.
const THREADS: dc::Permissions =
    dc::Permissions::CREATE_PUBLIC_THREADS.union(dc::Permissions::SEND_MESSAGES_IN_THREADS);

/// Why a question to Discord got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("Discord refused DISCORD_TOKEN (401 Unauthorized)")]
    Unauthorized,
    #[error("cannot reach {base}: {reason}")]
    Unreachable { base: String, reason: String },
    #[error("Discord answered {status} to {what} ({message})")]
    Status {
        what: String,
        status: u16,
        message: String,
    },
    #[error("cannot read Discord's answer to {what}: {reason}")]
    Unreadable { what: String, reason: String },
}

/// An answer about a thing that may not be there for the bot.
#[derive(Debug)]
pub enum Look<T> {
    Found(T),
    /// Discord knows no such thing (404).
    Unknown,
    /// It is there, but the bot may not see it (403 Missing Access).
    Hidden,
}

/// The bot user the token signs in as.
#[derive(Debug, Clone)]
pub struct Bot {
    pub id: u64,
    pub name: String,
}

/// A role of a server.
#[derive(Debug, Clone)]
pub struct Role {
    pub id: u64,
    pub name: String,
    /// Held by a bot or an integration: Discord gives it to no person.
    pub managed: bool,
}

/// A server the bot is in, with its roles and the bot's own.
#[derive(Debug)]
pub struct Server {
    pub id: u64,
    pub name: String,
    guild: dc::PartialGuild,
    member: dc::Member,
}

/// A channel of a server.
#[derive(Debug)]
pub struct Channel {
    pub id: u64,
    pub name: String,
    pub guild_id: u64,
    inner: dc::GuildChannel,
}

/// A permission the bot lacks in a channel, and where that comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lack {
    /// As Discord shows it: "Send Messages".
    pub permission: &'static str,
    /// A role of the bot grants it, but the channel's overwrites take it
    /// away; else no role of the bot grants it at all.
    pub by_channel: bool,
}

impl Server {
    /// The server's role with this id, if it has one.
    #[must_use]
    pub fn role(&self, id: u64) -> Option<Role> {
        self.guild
            .roles
            .get(&dc::RoleId::new(id.max(1)))
            .map(|r| Role {
                id,
                name: r.name.clone(),
                managed: r.managed,
            })
    }

    /// The bot's roles here, by name (without @everyone).
    #[must_use]
    pub fn bot_roles(&self) -> Vec<String> {
        self.member
            .roles
            .iter()
            .filter_map(|id| self.guild.roles.get(id).map(|r| r.name.clone()))
            .collect()
    }

    /// What the bot lacks in `channel` to post there (and, with
    /// `threads`, to make agent threads in it and post in them).
    #[must_use]
    pub fn lacks(&self, channel: &Channel, threads: bool) -> Vec<Lack> {
        let needed = if threads { POST | THREADS } else { POST };
        let here = self.guild.user_permissions_in(&channel.inner, &self.member);
        let anywhere = self.guild.member_permissions(&self.member);
        needed
            .iter()
            .filter(|p| !here.contains(*p))
            .map(|p| Lack {
                permission: p.get_permission_names().first().copied().unwrap_or("?"),
                by_channel: anywhere.contains(p),
            })
            .collect()
    }
}

/// The permissions an invite should grant: what the outbox needs in its
/// channels, agent threads, and Embed Links for the bot's receipts.
#[must_use]
pub fn invite_permissions() -> u64 {
    (POST | THREADS | dc::Permissions::EMBED_LINKS).bits()
}

/// The link that adds the bot of `application` to a server, with its
/// scopes and permissions.
#[must_use]
pub fn invite_url(application: u64) -> String {
    format!(
        "https://discord.com/oauth2/authorize?client_id={application}&scope=bot+applications.commands&permissions={}",
        invite_permissions()
    )
}

/// Asks Discord, with the bot's token, through the configured base URL.
pub struct Probe {
    http: dc::Http,
    /// Where requests go, as shown to people.
    base: String,
}

impl Probe {
    /// A probe with this token, at `api_base` (else discord.com).
    #[must_use]
    pub fn new(token: &str, api_base: Option<&str>) -> Self {
        Self {
            http: super::http(token, api_base),
            base: api_base.map_or_else(|| "https://discord.com".to_owned(), str::to_owned),
        }
    }

    /// Where the requests go.
    #[must_use]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One request, within [`TIMEOUT`].
    async fn ask<T>(
        &self,
        what: &str,
        request: impl Future<Output = serenity::Result<T>>,
    ) -> Result<T, ProbeError> {
        let Ok(answer) = tokio::time::timeout(TIMEOUT, request).await else {
            return Err(ProbeError::Unreachable {
                base: self.base.clone(),
                reason: format!("no answer within {} s", TIMEOUT.as_secs()),
            });
        };
        answer.map_err(|e| self.error(what, &e))
    }

    fn error(&self, what: &str, e: &dc::Error) -> ProbeError {
        match e {
            dc::Error::Http(dc::HttpError::UnsuccessfulRequest(r)) => {
                match r.status_code.as_u16() {
                    401 => ProbeError::Unauthorized,
                    status => ProbeError::Status {
                        what: what.to_owned(),
                        status,
                        message: r.error.message.clone(),
                    },
                }
            }
            dc::Error::Http(dc::HttpError::Request(e)) => {
                // The innermost cause says most ("Connection refused");
                // reqwest's own text is only "error sending request".
                let mut cause: &dyn std::error::Error = e;
                while let Some(inner) = cause.source() {
                    cause = inner;
                }
                ProbeError::Unreachable {
                    base: self.base.clone(),
                    reason: crate::config::redact::scrub(&cause.to_string()).into_owned(),
                }
            }
            other => ProbeError::Unreadable {
                what: what.to_owned(),
                reason: other.to_string(),
            },
        }
    }

    /// The bot user of the token (`GET /users/@me`).
    ///
    /// # Errors
    /// [`ProbeError::Unauthorized`] for a token Discord refuses.
    pub async fn bot(&self) -> Result<Bot, ProbeError> {
        let me = self
            .ask("GET /users/@me", self.http.get_current_user())
            .await?;
        Ok(Bot {
            id: me.id.get(),
            name: me.name.clone(),
        })
    }

    /// The bot's application, whose id an invite names.
    ///
    /// # Errors
    /// [`ProbeError`] if Discord does not say.
    pub async fn application_id(&self) -> Result<u64, ProbeError> {
        let app = self
            .ask(
                "GET /oauth2/applications/@me",
                self.http.get_current_application_info(),
            )
            .await?;
        Ok(app.id.get())
    }

    /// The server `guild` with its roles and the bot's (`GET
    /// /guilds/{id}`, `GET /guilds/{id}/members/{bot}`); not found or
    /// hidden when the bot is not in it.
    ///
    /// # Errors
    /// [`ProbeError`] for anything but "not there".
    pub async fn server(&self, guild: u64, bot: u64) -> Result<Look<Server>, ProbeError> {
        let id = dc::GuildId::new(guild.max(1));
        let what = format!("GET /guilds/{guild}");
        let found = match self.ask(&what, self.http.get_guild(id)).await {
            Ok(found) => found,
            Err(e) => return look_of(e),
        };
        let what = format!("GET /guilds/{guild}/members/{bot}");
        let member = match self
            .ask(&what, self.http.get_member(id, dc::UserId::new(bot.max(1))))
            .await
        {
            Ok(member) => member,
            Err(e) => return look_of(e),
        };
        Ok(Look::Found(Server {
            id: guild,
            name: found.name.clone(),
            guild: found,
            member,
        }))
    }

    /// The channel `id` with its overwrites (`GET /channels/{id}`).
    ///
    /// # Errors
    /// [`ProbeError`] for anything but "not there" (a channel outside any
    /// server included).
    pub async fn channel(&self, id: u64) -> Result<Look<Channel>, ProbeError> {
        let what = format!("GET /channels/{id}");
        let found = match self
            .ask(&what, self.http.get_channel(dc::ChannelId::new(id.max(1))))
            .await
        {
            Ok(found) => found,
            Err(e) => return look_of(e),
        };
        match found {
            dc::Channel::Guild(channel) => Ok(Look::Found(Channel {
                id,
                name: channel.name.clone(),
                guild_id: channel.guild_id.get(),
                inner: channel,
            })),
            _ => Err(ProbeError::Unreadable {
                what,
                reason: "it is not a channel of a server".into(),
            }),
        }
    }
}

/// "Not there" (404) and "not for you" (403) as answers, the rest as
/// errors.
fn look_of<T>(e: ProbeError) -> Result<Look<T>, ProbeError> {
    match e {
        ProbeError::Status { status: 404, .. } => Ok(Look::Unknown),
        ProbeError::Status { status: 403, .. } => Ok(Look::Hidden),
        e => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invite_asks_for_what_the_readme_lists() {
        // View Channels, Send Messages, Embed Links, Attach Files, Read
        // Message History, Create Public Threads, Send Messages in Threads.
        assert_eq!(invite_permissions(), 309_237_763_072);
        assert!(invite_url(42).contains("client_id=42&scope=bot+applications.commands"));
    }
}
