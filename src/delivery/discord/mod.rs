//! The `discord` delivery method: the outbox's way out. A message to the
//! people on Discord (an agent's reply or report) is posted where it
//! belongs:
//!
//! - an answer to a message that came from a Discord command goes to that
//!   command's channel, as a Discord reply to its receipt; an answer to a
//!   post (a devlog's update) goes where that post is, as a reply to it;
//! - anything else from an agent goes to the agent's thread (with
//!   `discord.agent_threads`), else (devlogs) to the devlog channel, else
//!   to the swarm channel;
//! - devlogs go through the devlog webhook when one is set, with the
//!   agent's name as the author; one longer than four messages goes as a
//!   file attachment.
//!
//! Each part is posted with a nonce Discord enforces (the same nonce
//! within a few minutes returns the first message instead of a second one)
//! and recorded in the store as soon as Discord confirms it, so a retry
//! after a crash or a timeout posts nothing twice. Only this module and
//! the `discord` front door use serenity.
//!
//! - [`split`]: text cut within Discord's limit.
//! - [`probe`]: what the bot may do on Discord, asked of Discord (for `acp
//!   doctor`).

pub mod probe;
pub mod split;

use std::sync::Arc;

use serenity::all as dc;

use crate::config::{DiscordConfig, Webhook};
use crate::model::{AgentId, DeliveryError, Kind, MessageId, MethodName, Registry, UnifiedMessage};
use crate::store::Store;
use crate::store::discord::Posted;

use super::{DeliveryMethod, Target};

/// Posts to Discord over its REST API.
pub struct DiscordMethod {
    http: Arc<dc::Http>,
    runtime: tokio::runtime::Handle,
    store: Arc<Store>,
    registry: Arc<Registry>,
    swarm_channel: Option<u64>,
    agent_threads: bool,
    devlog_channel: Option<u64>,
    webhook: Option<Webhook>,
    /// `data/outbox/`: files sent with posts, one folder per message.
    outbox: std::path::PathBuf,
}

/// A devlog longer than this many messages goes as a file attachment.
pub const DEVLOG_MAX_PARTS: usize = 4;

/// Where one post goes.
#[derive(Debug, Clone, Copy)]
struct Route {
    channel: u64,
    /// The Discord message it replies to.
    reference: Option<u64>,
    /// Through the devlog webhook (into `channel` when it is a thread of
    /// the webhook's channel).
    webhook: bool,
    /// `channel` is an agent's thread.
    thread: bool,
}

/// A REST client for the configured token and base URL. With a base URL
/// (a rate-limit proxy, or the tests' stand-in) serenity's own limiter is
/// off and the proxy does that job; otherwise serenity waits out Discord's
/// rate limits itself.
#[must_use]
pub fn http(token: &str, api_base: Option<&str>) -> dc::Http {
    let mut builder = dc::HttpBuilder::new(token);
    if let Some(base) = api_base {
        builder = builder.proxy(base).ratelimiter_disabled(true);
    }
    builder.build()
}

/// The nonce of one part of one message: the same on every try, at most
/// 25 characters as Discord requires.
fn nonce(id: MessageId, part: usize) -> String {
    let hash = blake3::hash(format!("{id}/{part}").as_bytes());
    hash.to_hex()[..25].to_owned()
}

/// Why Discord did not take a post, and whether to try again.
fn classify(e: &dc::Error, channel: u64) -> DeliveryError {
    if let dc::Error::Http(dc::HttpError::UnsuccessfulRequest(r)) = e {
        let status = r.status_code.as_u16();
        let said = &r.error.message;
        return match status {
            429 => DeliveryError::transient("Discord is rate limiting acp (429): the post waits"),
            401 => DeliveryError::transient(
                "Discord refused DISCORD_TOKEN (401): the post waits. Reset the token on the Bot \
                 page of the developer portal, put it in .env and restart acp run",
            ),
            403 => DeliveryError::transient(format!(
                "Discord refused the post in channel {channel} (403: {said}): give the bot View \
                 Channel, Send Messages and Create Public Threads there; the post waits"
            )),
            404 => DeliveryError::permanent(format!(
                "Discord has no channel {channel} (404: {said}): check discord.swarm_channel"
            )),
            400..=499 => {
                DeliveryError::permanent(format!("Discord refused the post ({status}: {said})"))
            }
            _ => DeliveryError::transient(format!(
                "Discord failed ({status}: {said}): the post waits"
            )),
        };
    }
    // The text is recorded with the attempt and shown to people; a
    // transport error can name the URL, which holds a webhook's token
    // (reqwest's does; serenity's wrapper does not show it today).
    let said = e.to_string();
    DeliveryError::transient(format!(
        "cannot reach Discord ({}): the post waits",
        crate::config::redact::scrub(&said)
    ))
}

impl DiscordMethod {
    /// The method, posting with `http` on `runtime` and recording each
    /// post in `store`.
    #[must_use]
    pub fn new(
        http: Arc<dc::Http>,
        runtime: tokio::runtime::Handle,
        store: Arc<Store>,
        registry: Arc<Registry>,
        config: &DiscordConfig,
        outbox: std::path::PathBuf,
    ) -> Self {
        Self {
            outbox,
            http,
            runtime,
            store,
            registry,
            swarm_channel: config.swarm_channel,
            agent_threads: config.agent_threads,
            devlog_channel: config.devlog_channel,
            webhook: config.devlog_webhook.clone(),
        }
    }

    /// Whom a post may ping: nobody, except a waiting prompt's reminder,
    /// which may ping exactly the roles and users the store recorded with
    /// it. Agents' text (an answer, a devlog) can hold `@everyone` or
    /// `<@id>`, and a prompt-injected agent must not page people.
    fn allowed_mentions(
        &self,
        message: &UnifiedMessage,
    ) -> Result<serde_json::Value, DeliveryError> {
        let to = self
            .store
            .mentions_of(message.id)
            .map_err(|e| Self::store_err(&e))?;
        Ok(match to {
            Some(to) => serde_json::json!({
                "parse": [],
                "roles": to.roles.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "users": to.users.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
            None => serde_json::json!({"parse": []}),
        })
    }

    fn store_err(e: &crate::store::StoreError) -> DeliveryError {
        DeliveryError::transient(format!("cannot read the outbox's records: {e}"))
    }

    /// Where a message goes.
    fn route(&self, message: &UnifiedMessage) -> Result<Route, DeliveryError> {
        let devlog = message.kind == Kind::Devlog;
        let webhook = devlog && self.webhook.is_some();
        let at = |channel, reference| Route {
            channel,
            reference,
            webhook,
            thread: false,
        };
        if let Some(parent) = message.reply_to {
            if let Some(receipt) = self
                .store
                .receipt(parent)
                .map_err(|e| Self::store_err(&e))?
            {
                return Ok(at(receipt.channel_id, receipt.reply_id));
            }
            let posted = self.store.posted(parent).map_err(|e| Self::store_err(&e))?;
            if let Some(first) = posted.first() {
                return Ok(at(first.channel_id, Some(first.discord_id)));
            }
        }
        let agent = message.from.parse::<AgentId>().ok();
        if self.agent_threads
            && let Some(agent) = agent.filter(|a| self.registry.get(a).is_ok())
        {
            return Ok(Route {
                thread: true,
                ..at(self.thread_of(&agent)?, None)
            });
        }
        let channel = if devlog {
            self.devlog_channel.or(self.swarm_channel)
        } else {
            self.swarm_channel
        };
        match channel {
            Some(c) => Ok(at(c, None)),
            // A webhook knows its own channel.
            None if webhook => Ok(at(0, None)),
            None => Err(DeliveryError::permanent(
                "nowhere to post: set discord.swarm_channel in config/acp.toml",
            )),
        }
    }

    /// The agent's thread: remembered in the store, or made now in the
    /// swarm channel.
    fn thread_of(&self, agent: &AgentId) -> Result<u64, DeliveryError> {
        let swarm = self
            .swarm_channel
            .ok_or_else(|| DeliveryError::permanent("agent threads need discord.swarm_channel"))?;
        if let Some((channel, thread)) = self
            .store
            .agent_thread(agent)
            .map_err(|e| Self::store_err(&e))?
            && channel == swarm
        {
            return Ok(thread);
        }
        let name = self
            .registry
            .get(agent)
            .map_or_else(|_| agent.to_string(), |a| a.name.clone());
        let builder = dc::CreateThread::new(name)
            .kind(dc::ChannelType::PublicThread)
            .auto_archive_duration(dc::AutoArchiveDuration::OneWeek);
        let thread = self
            .runtime
            .block_on(dc::ChannelId::new(swarm).create_thread(&*self.http, builder))
            .map_err(|e| classify(&e, swarm))?;
        let id = thread.id.get();
        self.store
            .remember_thread(agent, swarm, id)
            .map_err(|e| Self::store_err(&e))?;
        tracing::info!(%agent, thread = id, "made the agent's Discord thread");
        Ok(id)
    }

    /// Who a message is from, as shown: the agent's name.
    fn who(&self, message: &UnifiedMessage) -> String {
        message
            .from
            .parse::<AgentId>()
            .ok()
            .and_then(|id| self.registry.get(&id).ok().map(|a| a.name.clone()))
            .unwrap_or_else(|| message.from.clone())
    }

    /// The text of a post: who says it, then what (a webhook post shows
    /// the name as its author instead).
    fn text(&self, message: &UnifiedMessage, route: Route) -> String {
        let who = self.who(message);
        match (message.kind, route.webhook) {
            (Kind::Devlog, true) => message.body.clone(),
            (Kind::Devlog, false) => format!("**{who}** {}", message.body),
            _ => format!("**{who}**: {}", message.body),
        }
    }

    /// The parts to post: the text split within Discord's limit, or for a
    /// devlog longer than [`DEVLOG_MAX_PARTS`] its title and the devlog as
    /// a file.
    fn parts(&self, message: &UnifiedMessage, route: Route) -> Vec<(String, Vec<Attached>)> {
        let text = self.text(message, route);
        let parts = split::split(&text, split::CONTENT_LIMIT);
        if message.kind != Kind::Devlog || parts.len() <= DEVLOG_MAX_PARTS {
            return parts.into_iter().map(|p| (p, Vec::new())).collect();
        }
        let (title, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let name = title
            .split('`')
            .nth(1)
            .and_then(|path| path.rsplit('/').next())
            .unwrap_or("devlog.md")
            .to_owned();
        let head = format!("{title} (long: attached as a file)");
        vec![(
            split::split(&head, split::CONTENT_LIMIT).remove(0),
            vec![Attached {
                name,
                bytes: body.as_bytes().to_vec(),
            }],
        )]
    }

    /// Posts one part; returns (channel, Discord message id).
    fn post(
        &self,
        message: &UnifiedMessage,
        route: Route,
        i: usize,
        content: &str,
        attached: &[Attached],
    ) -> Result<(u64, u64), DeliveryError> {
        // The body is written here rather than by serenity's builders: an
        // attachment's id must be a string, as Discord's OpenAPI
        // description types it.
        let mut body = serde_json::json!({
            "content": content,
            "allowed_mentions": self.allowed_mentions(message)?,
        });
        if !attached.is_empty() {
            body["attachments"] = attached
                .iter()
                .enumerate()
                .map(|(n, f)| serde_json::json!({"id": n.to_string(), "filename": f.name}))
                .collect();
        }
        let files: Vec<dc::CreateAttachment> = attached
            .iter()
            .map(|f| dc::CreateAttachment::bytes(f.bytes.clone(), &f.name))
            .collect();
        if route.webhook
            && let Some(hook) = &self.webhook
        {
            body["username"] = self.who(message).into();
            let thread = route.thread.then(|| dc::ChannelId::new(route.channel));
            let posted = self
                .runtime
                .block_on(self.http.execute_webhook(
                    dc::WebhookId::new(hook.id),
                    thread,
                    hook.token.expose(),
                    true,
                    files,
                    &body,
                ))
                .map_err(|e| classify(&e, route.channel))?
                .ok_or_else(|| {
                    DeliveryError::transient("Discord did not return the webhook's message")
                })?;
            return Ok((posted.channel_id.get(), posted.id.get()));
        }
        body["nonce"] = nonce(message.id, i).into();
        body["enforce_nonce"] = true.into();
        if i == 0
            && let Some(prompt) = self
                .store
                .prompt_of_post(message.id)
                .map_err(|e| Self::store_err(&e))?
                .filter(|p| p.decided.is_none())
        {
            body["components"] = prompt_buttons(&prompt);
        }
        if i == 0
            && let Some(reply) = route.reference
        {
            body["message_reference"] = serde_json::json!({
                "message_id": reply.to_string(),
                "channel_id": route.channel.to_string(),
                "fail_if_not_exists": false,
            });
        }
        let posted = self
            .runtime
            .block_on(
                self.http
                    .send_message(dc::ChannelId::new(route.channel), files, &body),
            )
            .map_err(|e| classify(&e, route.channel))?;
        Ok((route.channel, posted.id.get()))
    }
}

/// A file posted with a message.
struct Attached {
    name: String,
    bytes: Vec<u8>,
}

/// The buttons of a prompt's post: Allow, Allow for the session (where
/// the agent takes it), Deny, Show more.
fn prompt_buttons(prompt: &crate::model::Prompt) -> serde_json::Value {
    use crate::model::{Decision, Press};
    let button = |press, label: &str, style: u8| {
        serde_json::json!({
            "type": 2, "style": style, "label": label, "custom_id": prompt.id.button(press),
        })
    };
    let mut row = vec![button(Press::Decide(Decision::Allow), "Allow", 3)];
    if prompt.allow_session {
        row.push(button(
            Press::Decide(Decision::AllowSession),
            "Allow for this session",
            1,
        ));
    }
    row.push(button(Press::Decide(Decision::Deny), "Deny", 4));
    row.push(button(Press::More, "Show more", 2));
    serde_json::json!([{"type": 1, "components": row}])
}

/// Most files one post carries (Discord's limit).
pub const MAX_FILES: usize = 10;

/// The files staged for a post, by name.
fn staged_files(dir: &std::path::Path) -> std::io::Result<Vec<Attached>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() && !name.starts_with('.') {
            files.push(Attached {
                bytes: std::fs::read(entry.path())?,
                name,
            });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Copies files into `dir` (a new folder for one post), so the post
/// carries them as they were when it was sent. Returns each file's name
/// and size. A file that is missing, not a regular file, over `max` bytes,
/// or one too many is refused, and nothing is staged.
///
/// # Errors
/// The reason, to show the sender.
pub fn stage_files(
    dir: &std::path::Path,
    files: &[std::path::PathBuf],
    max: usize,
) -> Result<Vec<(String, u64)>, String> {
    if files.len() > MAX_FILES {
        return Err(format!(
            "{} files: a post carries at most {MAX_FILES}",
            files.len()
        ));
    }
    let mut out = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = name.trim_start_matches('.').to_owned();
        let name = if name.is_empty() {
            "file".to_owned()
        } else {
            name
        };
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("two files are named {name}: rename one"));
        }
        out.push((name, 0));
    }
    // Each file is opened, then checked as opened (a regular file, within
    // the limit however big it says it is), and copied as read.
    let staging = dir.with_extension("part");
    let cannot = |e: std::io::Error| format!("cannot stage the files in {}: {e}", dir.display());
    let mut copy = || -> Result<(), String> {
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(cannot)?;
        for (path, (name, size)) in files.iter().zip(&mut out) {
            let mut to = std::fs::File::create(staging.join(&*name)).map_err(cannot)?;
            *size = crate::untrusted::copy_named(path, max, &mut to).map_err(|e| match e {
                crate::untrusted::ReadError::TooBig { len, .. } => format!(
                    "{} is {len} bytes or more, over Discord's upload limit of {max} bytes \
                     (limits.max_attachment_bytes): nothing was sent. Send a smaller file, or \
                     say where it is",
                    path.display()
                ),
                e => format!("{} {e}: nothing was sent", path.display()),
            })?;
        }
        std::fs::rename(&staging, dir).map_err(cannot)
    };
    copy().inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&staging);
    })?;
    Ok(out)
}

impl DeliveryMethod for DiscordMethod {
    fn name(&self) -> MethodName {
        MethodName::Discord
    }

    fn deliver(&self, to: Target<'_>, message: &UnifiedMessage) -> Result<String, DeliveryError> {
        if let Target::Agent(agent) | Target::Remote(agent, _) = to {
            return Err(DeliveryError::unavailable(format!(
                "discord posts to people, not to agents ({})",
                agent.id
            )));
        }
        let done = self
            .store
            .posted(message.id)
            .map_err(|e| Self::store_err(&e))?;
        let mut route = self.route(message)?;
        if let Some(first) = done.first() {
            // Parts already posted fix where the rest goes.
            route.channel = first.channel_id;
        }
        let mut channel = route.channel;
        let mut ids: Vec<u64> = done.iter().map(|p| p.discord_id).collect();
        let mut parts = self.parts(message, route);
        // Files sent with the message go with its first part.
        let staged = staged_files(&self.outbox.join(message.id.to_string()))
            .map_err(|e| DeliveryError::transient(format!("cannot read the post's files: {e}")))?;
        if let Some(first) = parts.first_mut() {
            first.1.extend(staged);
        }
        for (i, (part, files)) in parts.iter().enumerate() {
            let n = u32::try_from(i).unwrap_or(u32::MAX);
            if done.iter().any(|p| p.part == n) {
                continue;
            }
            // The body only at trace, as text on one line (quoted: a body
            // cannot forge log lines).
            tracing::trace!(message_id = %message.id, part = i, body = ?part, "posting to Discord");
            let (posted_in, discord_id) = self.post(message, route, i, part, files)?;
            channel = posted_in;
            self.store
                .record_post(
                    message.id,
                    Posted {
                        part: n,
                        channel_id: posted_in,
                        discord_id,
                    },
                )
                .map_err(|e| Self::store_err(&e))?;
            ids.push(discord_id);
        }
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        Ok(format!(
            "posted in Discord channel {channel} as message {}",
            ids.join(", ")
        ))
    }
}
