//! The stand-in's server, as `acp doctor` reads it: the bot user and its
//! application, the server with its roles, the bot's member, and channels
//! with their permission overwrites. Tests change it (an overwrite that
//! denies the bot a permission, the bot not in the server) and the
//! doctor's verdict must follow, computed as Discord computes it.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{APP_ID, BOT_ID, CHANNEL_ID, GUILD_ID};

/// The bot's own role, which Discord makes when the bot is invited.
pub const BOT_ROLE_ID: &str = "700000000000000009";
/// The roles the tests' config names as operator and admin roles.
pub const OPERATOR_ROLE_ID: &str = "700000000000000001";
pub const ADMIN_ROLE_ID: &str = "700000000000000002";
/// A second text channel, for devlogs.
pub const DEVLOG_CHANNEL_ID: &str = "500000000000000002";
/// The person who owns the server (not the bot).
const OWNER_ID: &str = "600000000000000099";

/// Discord's permission bits, as the tests use them.
pub const SEND_MESSAGES: u64 = 1 << 11;
const VIEW_CHANNEL: u64 = 1 << 10;
const ADD_REACTIONS: u64 = 1 << 6;
const READ_MESSAGE_HISTORY: u64 = 1 << 16;
/// What the invite link grants the bot's role: View Channels, Send
/// Messages, Embed Links, Attach Files, Read Message History, Create
/// Public Threads, Send Messages in Threads.
const INVITED: u64 = 309_237_763_072;

/// The server as it stands.
pub struct Guild {
    /// Whether the bot is in it.
    pub joined: bool,
    pub roles: Vec<Value>,
    /// The bot's roles (ids).
    pub bot_roles: Vec<String>,
    /// Channels by id.
    pub channels: BTreeMap<String, Value>,
}

fn role(id: &str, name: &str, position: u32, permissions: u64, bot: bool) -> Value {
    let mut role = json!({
        "id": id, "name": name, "permissions": permissions.to_string(), "position": position,
        "color": 0, "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
        "hoist": false, "managed": bot, "mentionable": false, "icon": null,
        "unicode_emoji": null, "flags": 0
    });
    if bot {
        role["tags"] = json!({"bot_id": BOT_ID});
    }
    role
}

/// A text channel of the server, with these overwrites.
pub fn text_channel(id: &str, name: &str, overwrites: &Value) -> Value {
    json!({
        "id": id, "type": 0, "flags": 0, "guild_id": GUILD_ID, "name": name, "position": 0,
        "permission_overwrites": overwrites, "last_message_id": null, "parent_id": null,
        "rate_limit_per_user": 0, "topic": null, "nsfw": false
    })
}

impl Default for Guild {
    fn default() -> Self {
        let everyone = VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | ADD_REACTIONS;
        Self {
            joined: true,
            roles: vec![
                role(GUILD_ID, "@everyone", 0, everyone, false),
                role(OPERATOR_ROLE_ID, "acp operator", 1, 0, false),
                role(ADMIN_ROLE_ID, "acp admin", 2, 0, false),
                role(BOT_ROLE_ID, "acp", 3, INVITED, true),
            ],
            bot_roles: vec![BOT_ROLE_ID.to_owned()],
            channels: [
                (CHANNEL_ID, text_channel(CHANNEL_ID, "swarm", &json!([]))),
                (
                    DEVLOG_CHANNEL_ID,
                    text_channel(DEVLOG_CHANNEL_ID, "devlogs", &json!([])),
                ),
            ]
            .into_iter()
            .map(|(id, c)| (id.to_owned(), c))
            .collect(),
        }
    }
}

/// A user object: the bot, or a person.
fn user(id: &str, name: &str, bot: bool) -> Value {
    json!({
        "id": id, "username": name, "avatar": null, "discriminator": "0", "public_flags": 0,
        "flags": 0, "global_name": null, "primary_guild": null, "bot": bot
    })
}

/// Discord's error body.
fn error(status: StatusCode, code: u32, message: &str) -> (StatusCode, Value) {
    (status, json!({"message": message, "code": code}))
}

impl Guild {
    /// The answer to a request for the server's things; `None` when the
    /// request is for something else.
    pub(super) fn answer(&self, method: &Method, segments: &[&str]) -> Option<(StatusCode, Value)> {
        if method != Method::GET {
            return None;
        }
        Some(match segments {
            ["users", "@me"] => {
                let mut me = user(BOT_ID, "acp", true);
                me["mfa_enabled"] = json!(false);
                me["locale"] = json!("en-US");
                (StatusCode::OK, me)
            }
            ["oauth2", "applications", "@me"] => (
                StatusCode::OK,
                json!({
                    "id": APP_ID, "name": "acp", "icon": null, "description": "", "type": null,
                    "verify_key": "0000", "flags": 0, "flags_new": "0", "redirect_uris": [],
                    "interactions_endpoint_url": null, "role_connections_verification_url": null,
                    "owner": user(OWNER_ID, "owner", false), "approximate_guild_count": 1,
                    "approximate_user_install_count": 0,
                    "approximate_user_authorization_count": 0, "explicit_content_filter": 0,
                    "team": null, "eligible_oauth2_scopes": [], "bot_public": false,
                    "bot_require_code_grant": false, "bot": user(BOT_ID, "acp", true)
                }),
            ),
            ["guilds", id] if *id == GUILD_ID && self.joined => (StatusCode::OK, self.guild()),
            ["guilds", id, "members", user_id] if *id == GUILD_ID && self.joined => {
                if *user_id != BOT_ID {
                    return Some(error(StatusCode::NOT_FOUND, 10007, "Unknown Member"));
                }
                (
                    StatusCode::OK,
                    json!({
                        "avatar": null, "banner": null, "communication_disabled_until": null,
                        "flags": 0, "joined_at": "2026-01-01T00:00:00.000000+00:00", "nick": null,
                        "pending": false, "premium_since": null, "roles": self.bot_roles,
                        "user": user(BOT_ID, "acp", true), "mute": false, "deaf": false
                    }),
                )
            }
            // A server the bot is not in answers Missing Access.
            ["guilds", _] | ["guilds", _, "members", _] => {
                error(StatusCode::FORBIDDEN, 50001, "Missing Access")
            }
            ["channels", id] => match self.channels.get(*id) {
                Some(channel) if self.joined => (StatusCode::OK, channel.clone()),
                Some(_) => error(StatusCode::FORBIDDEN, 50001, "Missing Access"),
                None => error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"),
            },
            _ => return None,
        })
    }

    fn guild(&self) -> Value {
        json!({
            "id": GUILD_ID, "name": "acp test", "icon": null, "description": null,
            "home_header": null, "splash": null, "discovery_splash": null, "features": [],
            "banner": null, "owner_id": OWNER_ID, "application_id": null, "region": "deprecated",
            "afk_channel_id": null, "afk_timeout": 300, "system_channel_id": null,
            "system_channel_flags": 0, "widget_enabled": false, "widget_channel_id": null,
            "verification_level": 0, "roles": self.roles, "default_message_notifications": 0,
            "mfa_level": 0, "explicit_content_filter": 0, "max_presences": null,
            "max_members": 500_000, "max_stage_video_channel_users": 50,
            "max_video_channel_users": 25, "vanity_url_code": null, "premium_tier": 0,
            "premium_subscription_count": 0, "preferred_locale": "en-US",
            "rules_channel_id": null, "safety_alerts_channel_id": null,
            "public_updates_channel_id": null, "premium_progress_bar_enabled": false,
            "nsfw": false, "nsfw_level": 0, "emojis": [], "stickers": [], "incidents_data": null
        })
    }
}
