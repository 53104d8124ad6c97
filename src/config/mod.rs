// Over 400 lines: the one loader of every key: defaults, file and environment side by side, with
// their tests.

//! The one typed configuration, loaded once and layered: built-in defaults <
//! `config/acp.toml` < environment (`ACP_*`, `DISCORD_*`, also from `.env`) <
//! command-line flags (applied by the CLI on the loaded value).
//!
//! The library never reads the process environment: the binary collects it
//! (with `.env`) into an [`Env`] and passes it in, so tests pass their own.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod attention;
mod backup;
mod cluster;
mod discover;
mod gui;
mod http;
mod projects;
mod pulse;
pub mod redact;
mod schedules;
mod show;
mod store;
mod tmux;
mod tokens;

pub use attention::AttentionConfig;
pub use backup::BackupConfig;
pub use cluster::{ClusterConfig, DEFAULT_NATS_URL, NatsAuth, NatsConfig};
pub use discover::{DiscoverConfig, ProgramPattern};
pub use http::{DEFAULT_PORT, HookConfig, HookRoute, HttpConfig};
pub use projects::{MAX_PROJECT_NAME, Project};
pub use pulse::{PulseConfig, QuietHours};
pub use redact::Redactor;
pub use schedules::SchedulesConfig;
pub use show::{Origin, Setting};
pub use store::StoreConfig;
pub use tokens::{ApiToken, DEFAULT_SCOPES, Scope};

use crate::model::DEFAULT_MAX_BODY_BYTES;
use crate::model::MethodName;
use crate::model::{Agent, AgentId, Registry};
pub use gui::GuiConfig;

/// Where the config file lives under the root.
pub const CONFIG_FILE: &str = "config/acp.toml";

/// Environment variables as collected by the binary (process environment over
/// `.env`).
pub type Env = BTreeMap<String, String>;

/// A configuration problem; names the file (or "environment"), the key and
/// the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no acp root at {root}: {file} is missing. Run `acp init --root {root}` to create one, \
         or pass --root / set ACP_ROOT to an existing root"
    )]
    Missing { root: String, file: String },
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: key `{key}`: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

/// A secret value (the Discord token). Never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    #[must_use]
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    #[cfg(test)]
    pub(crate) fn for_test(secret: &str) -> Self {
        Self(secret.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How the dispatcher behaves.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Methods tried in order for agents that do not set their own.
    pub order: Vec<MethodName>,
    /// Attempts (each trying every method) before a delivery is failed.
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt up to `retry_max`.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// How often the service looks for work queued by other processes.
    pub poll_interval: Duration,
    /// Most deliveries claimed in one batch.
    pub batch_size: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            order: vec![MethodName::Inbox],
            max_attempts: 5,
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            poll_interval: Duration::from_millis(100),
            batch_size: 256,
        }
    }
}

/// Size and content limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// Largest file a Discord command may bring to an agent.
    pub max_attachment_bytes: usize,
}

/// `[approval]`: prompts agents raise for a person.
#[derive(Debug, Clone)]
pub struct ApprovalConfig {
    /// How long a prompt waits for a decision before it ends unanswered
    /// (the agent's own dialog stays up).
    pub timeout: std::time::Duration,
    /// How often `acp run` reads the panes of tmux agents for their state
    /// and dialogs.
    pub pane_probe: std::time::Duration,
    /// Whether the captain agent may answer other agents' prompts over MCP.
    pub captain_decides: bool,
}

/// Coordinate validation settings.
#[derive(Debug, Clone)]
pub struct CoordsConfig {
    /// Two points closer than this (pixels, each axis) are reported as the
    /// same spot.
    pub near_radius_px: u32,
}

/// Discord settings (used by the bot).
#[derive(Debug, Clone)]
pub struct DiscordConfig {
    pub token: Option<Secret>,
    pub guild_id: Option<u64>,
    /// Base URL of the Discord API (a rate-limit proxy); `None` = discord.com.
    pub api_base: Option<String>,
    /// Role ids whose members may message agents.
    pub operator_roles: Vec<u64>,
    /// Role ids whose members may run admin commands.
    pub admin_roles: Vec<u64>,
    /// If not empty, commands are answered only in these channels.
    pub allowed_channels: Vec<u64>,
    /// How long a command's reply is edited with the outcome; later
    /// outcomes are posted as channel messages (the interaction token
    /// lasts 15 minutes).
    pub receipt_window: Duration,
    /// The swarm's channel: agents' posts and answers that have no
    /// command to reply to go here, and agent threads are made in it.
    pub swarm_channel: Option<u64>,
    /// One thread per agent in the swarm channel (off by default).
    pub agent_threads: bool,
    /// Where devlogs go (else the agent's thread, else the swarm channel).
    pub devlog_channel: Option<u64>,
    /// A channel webhook devlogs are posted through, so each shows its
    /// agent's name as the author (`DISCORD_DEVLOG_WEBHOOK`, a URL holding
    /// the webhook's token).
    pub devlog_webhook: Option<Webhook>,
    /// How long a devlog file must stay unchanged before it is posted (an
    /// editor may write it in several steps).
    pub devlog_settle: Duration,
}

/// A Discord webhook: its id and its token (a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: u64,
    pub token: Secret,
}

impl Webhook {
    /// Reads `https://discord.com/api/webhooks/ID/TOKEN` (any host, with or
    /// without an API version).
    fn parse(url: &str) -> Option<Self> {
        let rest = url.trim().split("/webhooks/").nth(1)?;
        let mut parts = rest.trim_end_matches('/').split('/');
        let id = parts.next()?.parse().ok()?;
        let token = parts.next().filter(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })?;
        parts.next().is_none().then(|| Self {
            id,
            token: Secret(token.to_owned()),
        })
    }
}

impl Default for DiscordConfig {
    fn default() -> Self {
        Self {
            token: None,
            guild_id: None,
            api_base: None,
            operator_roles: Vec::new(),
            admin_roles: Vec::new(),
            allowed_channels: Vec::new(),
            receipt_window: Duration::from_secs(840),
            swarm_channel: None,
            agent_threads: false,
            devlog_channel: None,
            devlog_webhook: None,
            devlog_settle: Duration::from_secs(1),
        }
    }
}

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    pub agents: Registry,
    /// The captain named in config; `acp roles captain` overrides it.
    pub captain: Option<AgentId>,
    pub delivery: DeliveryConfig,
    pub limits: Limits,
    pub approval: ApprovalConfig,
    /// Pane profiles: the built-in ones and `[profiles.NAME]`.
    pub profiles: crate::model::pane::Profiles,
    /// Who is pinged when a prompt waits too long.
    pub attention: AttentionConfig,
    /// Stored schedules: the zone their cron expressions are read in.
    pub schedules: SchedulesConfig,
    /// How long finished messages are kept (`[store]`).
    pub store: StoreConfig,
    /// The nudge for agents that went quiet.
    pub pulse: PulseConfig,
    pub coords: CoordsConfig,
    pub discord: DiscordConfig,
    /// Default sender for `acp send` (`ACP_AGENT`, set in an agent's shell).
    pub default_sender: Option<String>,
    /// The person at the keyboard, when not the OS user's name
    /// (`ACP_OPERATOR`): the command line signs their messages
    /// `person:NAME`, and answers land in that person's inbox.
    pub operator: Option<crate::model::PersonName>,
    /// Keyboard-and-mouse delivery.
    pub gui: GuiConfig,
    /// Backups.
    pub backup: BackupConfig,
    /// The status page, API, metrics and webhooks.
    pub http: HttpConfig,
    /// Several machines through NATS JetStream; `None` on one machine.
    pub cluster: Option<ClusterConfig>,
    /// Where `acp spawn` starts new agents (`[[projects]]`).
    pub projects: Vec<Project>,
    /// How `acp discover` finds running agents.
    pub discover: DiscoverConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    captain: Option<String>,
    #[serde(default)]
    delivery: RawDelivery,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    approval: RawApproval,
    #[serde(default)]
    attention: attention::RawAttention,
    #[serde(default)]
    schedules: schedules::RawSchedules,
    #[serde(default)]
    store: store::RawStore,
    #[serde(default)]
    pulse: pulse::RawPulse,
    #[serde(default)]
    coords: RawCoords,
    #[serde(default)]
    discord: RawDiscord,
    #[serde(default)]
    gui: gui::RawGui,
    #[serde(default)]
    backup: backup::RawBackup,
    #[serde(default)]
    http: http::RawHttp,
    cluster: Option<cluster::RawCluster>,
    #[serde(default)]
    discover: discover::RawDiscover,
    #[serde(default)]
    profiles: std::collections::BTreeMap<String, tmux::RawProfile>,
    #[serde(default)]
    agents: Vec<RawAgent>,
    #[serde(default)]
    projects: Vec<projects::RawProject>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    order: Option<Vec<String>>,
    max_attempts: Option<i64>,
    retry_base_ms: Option<i64>,
    retry_max_ms: Option<i64>,
    poll_ms: Option<i64>,
    batch_size: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    timeout_secs: Option<i64>,
    pane_probe_ms: Option<i64>,
    captain_decides: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body_bytes: Option<i64>,
    max_attachment_bytes: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCoords {
    near_radius_px: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscord {
    guild_id: Option<i64>,
    api_base: Option<String>,
    operator_roles: Option<Vec<i64>>,
    admin_roles: Option<Vec<i64>>,
    allowed_channels: Option<Vec<i64>>,
    receipt_window_secs: Option<i64>,
    swarm_channel: Option<i64>,
    agent_threads: Option<bool>,
    devlog_channel: Option<i64>,
    devlog_settle_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct RawAgent {
    id: String,
    name: Option<String>,
    role: Option<String>,
    workspace: Option<PathBuf>,
    /// A workspace outside the root is refused unless this says so.
    allow_outside_root: Option<bool>,
    delivery: Option<Vec<String>>,
    /// The agent's tmux pane.
    tmux: Option<tmux::RawTmux>,
    /// The machine it runs on (`[cluster]`).
    node: Option<String>,
    /// The keyboard-and-mouse keys, checked by [`gui::RawAgentGui`] (which
    /// also refuses unknown keys: serde cannot flatten and deny at once).
    #[serde(flatten)]
    gui: toml::Table,
}

/// `path` with `.` and `..` resolved as text (nothing is looked up on
/// disk), so `../../outside` cannot pass for a path under the root.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Where a value came from, for error messages.
struct Source<'a> {
    file: &'a str,
}

impl Source<'_> {
    fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    fn int_in(&self, key: &str, value: i64, min: i64, max: i64) -> Result<u64, ConfigError> {
        if (min..=max).contains(&value) {
            Ok(value.unsigned_abs())
        } else {
            Err(self.invalid(key, format!("{value} is out of range: use {min} to {max}")))
        }
    }

    fn methods(&self, key: &str, names: &[String]) -> Result<Vec<MethodName>, ConfigError> {
        if names.is_empty() {
            return Err(self.invalid(key, "the list is empty: name at least one method (inbox)"));
        }
        let mut out = Vec::new();
        for name in names {
            let method: MethodName = name
                .trim()
                .parse()
                .map_err(|e: crate::model::UnknownMethod| self.invalid(key, e.to_string()))?;
            if out.contains(&method) {
                return Err(self.invalid(key, format!("{method} is listed twice")));
            }
            if method == MethodName::Cluster {
                return Err(self.invalid(
                    key,
                    "cluster is how work reaches another machine, chosen by the agent's node: \
                     list the methods that machine uses (gui, tmux, inbox)",
                ));
            }
            if matches!(method, MethodName::Discord | MethodName::Person) {
                return Err(self.invalid(
                    key,
                    format!(
                        "{method} is where agents' answers go, not a way to reach an agent: use \
                         gui, tmux or inbox"
                    ),
                ));
            }
            out.push(method);
        }
        Ok(out)
    }
}

impl Config {
    /// Built-in defaults for a root, with no agents.
    #[must_use]
    pub fn defaults(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            agents: Registry::default(),
            captain: None,
            delivery: DeliveryConfig::default(),
            limits: Limits {
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                max_attachment_bytes: 10 << 20,
            },
            approval: ApprovalConfig {
                timeout: std::time::Duration::from_secs(600),
                pane_probe: std::time::Duration::from_millis(500),
                captain_decides: false,
            },
            profiles: tmux::profiles(
                &Source { file: CONFIG_FILE },
                std::collections::BTreeMap::new(),
            )
            .unwrap_or_default(),
            attention: AttentionConfig::default(),
            schedules: SchedulesConfig::default(),
            store: StoreConfig::default(),
            pulse: PulseConfig::default(),
            coords: CoordsConfig { near_radius_px: 10 },
            discord: DiscordConfig::default(),
            default_sender: None,
            operator: None,
            gui: GuiConfig::default(),
            backup: BackupConfig::defaults(root),
            http: HttpConfig::default(),
            cluster: None,
            projects: Vec::new(),
            discover: DiscoverConfig::default(),
        }
    }

    /// Loads `config/acp.toml` under `root` and applies the environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, key and reason.
    pub fn load(root: &Path, env: &Env) -> Result<Self, ConfigError> {
        let path = root.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::Missing {
                    root: root.display().to_string(),
                    file: CONFIG_FILE.into(),
                });
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    file: path.display().to_string(),
                    source,
                });
            }
        };
        Self::from_toml(root, &text, env)
    }

    /// The defaults and the environment, for a root that has no config
    /// yet (restoring onto a new machine).
    ///
    /// # Errors
    /// [`ConfigError`] for bad environment values.
    pub fn from_env_only(root: &Path, env: &Env) -> Result<Self, ConfigError> {
        let mut config = Self::defaults(root);
        config.apply_env(env)?;
        Ok(config)
    }

    /// Builds the config from the text of `config/acp.toml` and the
    /// environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, key and reason.
    pub(crate) fn from_toml(root: &Path, text: &str, env: &Env) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: CONFIG_FILE.into(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let mut config = Self::defaults(root);
        config.apply_file(raw)?;
        config.apply_env(env)?;
        Ok(config)
    }

    fn apply_file(&mut self, raw: RawConfig) -> Result<(), ConfigError> {
        let src = Source { file: CONFIG_FILE };
        let d = &mut self.delivery;
        if let Some(order) = &raw.delivery.order {
            d.order = src.methods("delivery.order", order)?;
        }
        if let Some(v) = raw.delivery.max_attempts {
            d.max_attempts =
                u32::try_from(src.int_in("delivery.max_attempts", v, 1, 100)?).unwrap_or(u32::MAX);
        }
        if let Some(v) = raw.delivery.retry_base_ms {
            d.retry_base =
                Duration::from_millis(src.int_in("delivery.retry_base_ms", v, 1, 3_600_000)?);
        }
        if let Some(v) = raw.delivery.retry_max_ms {
            d.retry_max =
                Duration::from_millis(src.int_in("delivery.retry_max_ms", v, 1, 86_400_000)?);
        }
        if d.retry_max < d.retry_base {
            return Err(src.invalid(
                "delivery.retry_max_ms",
                "must not be less than delivery.retry_base_ms",
            ));
        }
        if let Some(v) = raw.delivery.poll_ms {
            d.poll_interval =
                Duration::from_millis(src.int_in("delivery.poll_ms", v, 5, 60_000)?);
        }
        if let Some(v) = raw.delivery.batch_size {
            d.batch_size = usize::try_from(src.int_in("delivery.batch_size", v, 1, 10_000)?)
                .unwrap_or(usize::MAX);
        }
        if let Some(v) = raw.limits.max_attachment_bytes {
            self.limits.max_attachment_bytes =
                usize::try_from(src.int_in("limits.max_attachment_bytes", v, 1, 500 << 20)?)
                    .unwrap_or(usize::MAX);
        }
        if let Some(v) = raw.approval.timeout_secs {
            self.approval.timeout = std::time::Duration::from_secs(src.int_in(
                "approval.timeout_secs",
                v,
                1,
                7 * 24 * 3600,
            )?);
        }
        if let Some(v) = raw.approval.captain_decides {
            self.approval.captain_decides = v;
        }
        if let Some(v) = raw.approval.pane_probe_ms {
            self.approval.pane_probe =
                Duration::from_millis(src.int_in("approval.pane_probe_ms", v, 50, 60_000)?);
        }
        if let Some(v) = raw.limits.max_body_bytes {
            self.limits.max_body_bytes =
                usize::try_from(src.int_in("limits.max_body_bytes", v, 1, 1 << 20)?)
                    .unwrap_or(usize::MAX);
        }
        if let Some(v) = raw.coords.near_radius_px {
            self.coords.near_radius_px =
                u32::try_from(src.int_in("coords.near_radius_px", v, 0, 10_000)?)
                    .unwrap_or(u32::MAX);
        }
        self.apply_discord(&src, raw.discord)?;
        attention::apply_attention(
            &src,
            raw.attention,
            &self.discord.operator_roles,
            &mut self.attention,
        )?;
        schedules::apply_schedules(&src, raw.schedules, &mut self.schedules)?;
        store::apply_store(&src, &raw.store, &mut self.store)?;
        pulse::apply_pulse(&src, raw.pulse, self.limits.max_body_bytes, &mut self.pulse)?;
        gui::apply_gui(&src, &raw.gui, &mut self.gui)?;
        backup::apply_backup(&src, &self.root, raw.backup, &mut self.backup)?;
        http::apply_http(&src, raw.http, &mut self.http)?;
        self.cluster = raw
            .cluster
            .map(|c| cluster::cluster_from(&src, c))
            .transpose()?;
        discover::apply_discover(&src, raw.discover, &mut self.discover)?;

        self.profiles = tmux::profiles(&src, raw.profiles)?;
        let agents = self.agents_from(&src, raw.agents)?;
        self.projects = self.projects_from(&src, raw.projects)?;
        let seen: HashSet<AgentId> = agents.iter().map(|a| a.id.clone()).collect();
        if let Some(captain) = raw.captain {
            let id: AgentId = captain
                .parse()
                .map_err(|e: crate::model::AgentError| src.invalid("captain", e.to_string()))?;
            if !seen.contains(&id) {
                return Err(src.invalid(
                    "captain",
                    format!("{id} is not one of the configured [[agents]]"),
                ));
            }
            self.captain = Some(id);
        }
        self.agents = Registry::new(agents);
        Ok(())
    }

    fn apply_discord(&mut self, src: &Source<'_>, raw: RawDiscord) -> Result<(), ConfigError> {
        if let Some(v) = raw.guild_id {
            self.discord.guild_id = Some(src.int_in("discord.guild_id", v, 1, i64::MAX)?);
        }
        if let Some(base) = raw.api_base {
            self.discord.api_base = parse_api_base(src, "discord.api_base", &base)?;
        }
        let ids = |key: &str, list: Option<Vec<i64>>| -> Result<Vec<u64>, ConfigError> {
            list.unwrap_or_default()
                .into_iter()
                .map(|v| src.int_in(key, v, 1, i64::MAX))
                .collect()
        };
        self.discord.operator_roles = ids("discord.operator_roles", raw.operator_roles)?;
        self.discord.admin_roles = ids("discord.admin_roles", raw.admin_roles)?;
        self.discord.allowed_channels = ids("discord.allowed_channels", raw.allowed_channels)?;
        if let Some(v) = raw.receipt_window_secs {
            self.discord.receipt_window =
                Duration::from_secs(src.int_in("discord.receipt_window_secs", v, 1, 840)?);
        }

        if let Some(v) = raw.swarm_channel {
            let id = src.int_in("discord.swarm_channel", v, 0, i64::MAX)?;
            self.discord.swarm_channel = (id != 0).then_some(id);
        }
        if let Some(v) = raw.devlog_channel {
            let id = src.int_in("discord.devlog_channel", v, 0, i64::MAX)?;
            self.discord.devlog_channel = (id != 0).then_some(id);
        }
        if let Some(v) = raw.devlog_settle_ms {
            self.discord.devlog_settle =
                Duration::from_millis(src.int_in("discord.devlog_settle_ms", v, 0, 600_000)?);
        }
        if let Some(on) = raw.agent_threads {
            if on && self.discord.swarm_channel.is_none() {
                return Err(src.invalid(
                    "discord.agent_threads",
                    "threads are made in the swarm channel: set discord.swarm_channel too",
                ));
            }
            self.discord.agent_threads = on;
        }
        Ok(())
    }

    /// The `[[agents]]` tables: ids unique (also beyond case), each
    /// workspace its own.
    fn agents_from(&self, src: &Source<'_>, raw: Vec<RawAgent>) -> Result<Vec<Agent>, ConfigError> {
        let mut agents: Vec<Agent> = Vec::new();
        let mut seen = HashSet::new();
        let mut folded = HashSet::new();
        for (i, a) in raw.into_iter().enumerate() {
            let agent = self.agent(src, i, a)?;
            if !seen.insert(agent.id.clone()) {
                return Err(src.invalid(
                    &format!("agents[{i}].id"),
                    format!("{} is configured twice", agent.id),
                ));
            }
            // Ids name directories, and some file systems ignore case.
            if !folded.insert(agent.id.as_str().to_ascii_lowercase()) {
                return Err(src.invalid(
                    &format!("agents[{i}].id"),
                    format!(
                        "{} differs from another agent's id only in case: give each agent an id \
                         of its own",
                        agent.id
                    ),
                ));
            }
            if let Some(other) = agents.iter().find(|o| {
                o.workspace.starts_with(&agent.workspace)
                    || agent.workspace.starts_with(&o.workspace)
            }) {
                return Err(src.invalid(
                    &format!("agents[{i}].workspace"),
                    format!(
                        "{} is {}'s workspace or inside or around it: each agent needs a \
                         workspace of its own, or they read each other's messages",
                        agent.workspace.display(),
                        other.id
                    ),
                ));
            }
            agents.push(agent);
        }
        Ok(agents)
    }

    /// One `[[agents]]` table.
    fn agent(&self, src: &Source<'_>, i: usize, a: RawAgent) -> Result<Agent, ConfigError> {
        let key = |field: &str| format!("agents[{i}].{field}");
        let id: AgentId =
            a.id.parse()
                .map_err(|e: crate::model::AgentError| src.invalid(&key("id"), e.to_string()))?;
        let workspace = match a.workspace {
            Some(p) if p.as_os_str().is_empty() => {
                return Err(src.invalid(
                    &key("workspace"),
                    "is empty: give a directory or leave it out",
                ));
            }
            Some(p) => normalize(&self.root.join(p)),
            None => Registry::default_workspace(&self.root, &id),
        };
        let root = normalize(&self.root);
        if workspace == root {
            return Err(src.invalid(
                &key("workspace"),
                "is the root itself: give the agent a directory of its own",
            ));
        }
        if !workspace.starts_with(&root) && a.allow_outside_root != Some(true) {
            return Err(src.invalid(
                &key("workspace"),
                format!(
                    "{} is outside the root {}: acp creates directories there and writes \
                     messages into it. Move it under the root, or add allow_outside_root = true \
                     to this agent's table if you mean it",
                    workspace.display(),
                    root.display()
                ),
            ));
        }
        let delivery = match a.delivery {
            Some(list) => src.methods(&key("delivery"), &list)?,
            None => self.delivery.order.clone(),
        };
        if id.as_str().eq_ignore_ascii_case("discord") {
            return Err(src.invalid(
                &key("id"),
                "discord is reserved (`acp send --to discord` posts to Discord): name the agent \
                 otherwise",
            ));
        }
        let name = a.name.unwrap_or_else(|| id.to_string());
        if name.chars().any(char::is_control) || name.chars().count() > 64 {
            return Err(src.invalid(&key("name"), "use up to 64 printable characters"));
        }
        let raw_gui: gui::RawAgentGui =
            toml::Value::Table(a.gui)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    src.invalid(&format!("agents[{i}]"), e.message().to_owned())
                })?;
        let gui = gui::agent_gui(src, &format!("agents[{i}]"), &raw_gui, &self.gui.defaults)?;
        let tmux = tmux::agent_tmux(
            src,
            &format!("agents[{i}]"),
            a.tmux,
            &delivery,
            &self.profiles,
        )?;
        let node = match (a.node, &self.cluster) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(src.invalid(
                    &key("node"),
                    "names a machine, but there is no [cluster] table: add one (hub = \"...\"), \
                     or remove the node",
                ));
            }
            (None, Some(c)) => Some(c.hub.clone()),
            (Some(n), Some(_)) => Some(n.trim().parse().map_err(
                |e: crate::model::InvalidNodeName| src.invalid(&key("node"), e.to_string()),
            )?),
        };
        Ok(Agent {
            id,
            name,
            role: a.role.unwrap_or_default(),
            workspace,
            delivery,
            gui,
            tmux,
            node,
        })
    }

    fn apply_env(&mut self, env: &Env) -> Result<(), ConfigError> {
        let src = Source {
            file: "environment",
        };
        let int = |key: &str, min: i64, max: i64| -> Result<Option<u64>, ConfigError> {
            match env.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => {
                    let n: i64 = v
                        .parse()
                        .map_err(|_| src.invalid(key, format!("{v:?} is not a whole number")))?;
                    src.int_in(key, n, min, max).map(Some)
                }
            }
        };
        if let Some(v) = int("ACP_MAX_BODY_BYTES", 1, 1 << 20)? {
            self.limits.max_body_bytes = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = int("ACP_MAX_ATTEMPTS", 1, 100)? {
            self.delivery.max_attempts = u32::try_from(v).unwrap_or(u32::MAX);
        }
        if let Some(v) = int("ACP_POLL_MS", 5, 60_000)? {
            self.delivery.poll_interval = Duration::from_millis(v);
        }
        if let Some(order) = env
            .get("ACP_DELIVERY_ORDER")
            .filter(|v| !v.trim().is_empty())
        {
            let names: Vec<String> = order.split(',').map(str::to_owned).collect();
            self.delivery.order = src.methods("ACP_DELIVERY_ORDER", &names)?;
        }
        if let Some(display) = env.get("DISPLAY").filter(|v| !v.trim().is_empty()) {
            self.gui.display = Some(display.trim().to_owned());
        }
        if let Some(sender) = env.get("ACP_AGENT").filter(|v| !v.trim().is_empty()) {
            self.default_sender = Some(sender.trim().to_owned());
        }
        if let Some(name) = env.get("ACP_OPERATOR").filter(|v| !v.trim().is_empty()) {
            self.operator = Some(name.trim().parse().map_err(
                |e: crate::model::InvalidPersonName| src.invalid("ACP_OPERATOR", e.to_string()),
            )?);
        }
        if let Some(token) = env.get("DISCORD_TOKEN").filter(|v| !v.trim().is_empty()) {
            self.discord.token = Some(Secret(token.trim().to_owned()));
        }
        if let Some(v) = int("DISCORD_GUILD_ID", 1, i64::MAX)? {
            self.discord.guild_id = Some(v);
        }
        if let Some(base) = env.get("DISCORD_API_BASE") {
            self.discord.api_base = parse_api_base(&src, "DISCORD_API_BASE", base)?;
        }
        if let Some(url) = env
            .get("DISCORD_DEVLOG_WEBHOOK")
            .filter(|v| !v.trim().is_empty())
        {
            // The URL holds the webhook's token: never echoed back.
            self.discord.devlog_webhook = Some(Webhook::parse(url).ok_or_else(|| {
                src.invalid(
                    "DISCORD_DEVLOG_WEBHOOK",
                    "is not a webhook URL: copy it from the channel's Integrations → Webhooks \
                     (https://discord.com/api/webhooks/ID/TOKEN)",
                )
            })?);
        }
        backup::apply_backup_env(&self.root, env, &mut self.backup);
        http::apply_http_env(&src, env, &mut self.http)?;
        cluster::apply_cluster_env(&src, &self.root, env, self.cluster.as_mut())?;
        discover::apply_discover_env(env, &mut self.discover);
        Ok(())
    }

    /// Makes this process the given machine of the swarm (`acp run --node`).
    ///
    /// # Errors
    /// [`ConfigError`] when there is no `[cluster]` or the name is not valid.
    pub fn set_node(&mut self, node: &str) -> Result<(), ConfigError> {
        let src = Source {
            file: "command line",
        };
        let Some(c) = self.cluster.as_mut() else {
            return Err(src.invalid(
                "--node",
                "config/acp.toml has no [cluster] table: add one (see \
                 docs/several-machines.md), or leave --node out on a single machine",
            ));
        };
        c.node = node_name_arg(&src, node)?;
        Ok(())
    }

    /// The SQLite file.
    #[must_use]
    pub(crate) fn db_path(&self) -> PathBuf {
        self.root.join("data").join("acp.db")
    }

    /// The coordinates file.
    #[must_use]
    pub fn coords_path(&self) -> PathBuf {
        self.root.join("config").join("coordinates.json")
    }

    /// For a reload: the settings of `new` that a running `acp run` cannot
    /// take without a restart (the listening address, this machine's
    /// place in the swarm), each put back to the running value in `new`
    /// and described ("[http] bind: 127.0.0.1:7420 → 0.0.0.0:7420").
    pub fn keep_what_needs_restart(&self, new: &mut Config) -> Vec<String> {
        let mut kept = Vec::new();
        if new.http.enabled != self.http.enabled {
            kept.push(format!(
                "[http] enabled: {} → {}",
                self.http.enabled, new.http.enabled
            ));
            new.http.enabled = self.http.enabled;
        }
        if new.http.bind != self.http.bind {
            kept.push(format!(
                "[http] bind: {} → {}",
                self.http.bind, new.http.bind
            ));
            new.http.bind = self.http.bind;
        }
        let place = |c: &Option<ClusterConfig>| {
            c.as_ref().map_or_else(
                || "one machine".to_owned(),
                |c| {
                    let role = if c.is_hub() { "the hub" } else { "a node" };
                    format!(
                        "{} ({role}) of swarm {} with hub {}",
                        c.node, c.swarm, c.hub
                    )
                },
            )
        };
        if place(&new.cluster) != place(&self.cluster) {
            kept.push(format!(
                "[cluster]: {} → {}",
                place(&self.cluster),
                place(&new.cluster)
            ));
            new.cluster.clone_from(&self.cluster);
        }
        kept
    }
}

fn node_name_arg(src: &Source<'_>, text: &str) -> Result<crate::model::NodeName, ConfigError> {
    text.trim()
        .parse()
        .map_err(|e: crate::model::InvalidNodeName| src.invalid("--node", e.to_string()))
}

fn parse_api_base(src: &Source<'_>, key: &str, value: &str) -> Result<Option<String>, ConfigError> {
    let value = value.trim().trim_end_matches('/');
    if value.is_empty() {
        return Ok(None);
    }
    if !(value.starts_with("http://") || value.starts_with("https://")) {
        return Err(src.invalid(key, format!("{value:?} is not an http:// or https:// URL")));
    }
    Ok(Some(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(Path::new("/r"), text, &Env::new())
    }

    #[test]
    fn defaults_apply_without_keys() {
        let c = load("").unwrap();
        assert_eq!(c.limits.max_body_bytes, 16 * 1024);
        assert_eq!(c.delivery.order, vec![MethodName::Inbox]);
        assert!(c.agents.all().is_empty());
    }

    #[test]
    fn agents_get_workspaces_under_the_root() {
        let c = load(
            "captain = \"Agent-2\"\n[[agents]]\nid = \"Agent-1\"\n[[agents]]\nid = \
             \"Agent-2\"\nname = \"DB\"\nworkspace = \"/abs/ws\"\nallow_outside_root = true\n",
        )
        .unwrap();
        let a = c.agents.all();
        assert_eq!(a[0].workspace, PathBuf::from("/r/agent_workspaces/Agent-1"));
        assert_eq!(a[1].workspace, PathBuf::from("/abs/ws"));
        assert_eq!(a[1].name, "DB");
        assert_eq!(c.captain.unwrap().as_str(), "Agent-2");
    }

    #[test]
    fn workspaces_stay_under_the_root_apart_and_ids_differ_beyond_case() {
        let agents = |tables: &str| load(tables).map(|c| c.agents.all().to_vec());
        for (tables, says) in [
            (
                "[[agents]]\nid = \"Agent-1\"\nworkspace = \"/etc\"\n",
                "outside the root",
            ),
            (
                "[[agents]]\nid = \"Agent-1\"\nworkspace = \"../../outside\"\n",
                "outside the root",
            ),
            (
                "[[agents]]\nid = \"Agent-1\"\nworkspace = \".\"\n",
                "the root itself",
            ),
            (
                "[[agents]]\nid = \"Agent-1\"\nworkspace = \"ws\"\n[[agents]]\nid = \
                 \"Agent-2\"\nworkspace = \"ws/\"\n",
                "workspace of its own",
            ),
            (
                "[[agents]]\nid = \"Agent-1\"\nworkspace = \"ws\"\n[[agents]]\nid = \
                 \"Agent-2\"\nworkspace = \"ws/sub\"\n",
                "workspace of its own",
            ),
            (
                "[[agents]]\nid = \"Agent-1\"\n[[agents]]\nid = \"agent-1\"\n",
                "only in case",
            ),
        ] {
            let err = agents(tables).unwrap_err().to_string();
            assert!(err.contains(says), "{tables}: {err}");
        }
        let outside = agents(
            "[[agents]]\nid = \"Agent-1\"\nworkspace = \"/srv/agent-1\"\nallow_outside_root = \
             true\n",
        )
        .unwrap();
        assert_eq!(outside[0].workspace, PathBuf::from("/srv/agent-1"));
        let dotted = agents("[[agents]]\nid = \"Agent-1\"\nworkspace = \"a/../b\"\n").unwrap();
        assert_eq!(dotted[0].workspace, PathBuf::from("/r/b"));
    }

    #[test]
    fn errors_name_the_file_key_and_reason() {
        let err = load("[delivery]\nmax_atempts = 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config/acp.toml") && err.contains("max_atempts"),
            "{err}"
        );
        let err = load("[delivery]\nmax_attempts = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("delivery.max_attempts") && err.contains("out of range"),
            "{err}"
        );
        let err = load("[[agents]]\nid = \"../etc\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("agents[0].id") && err.contains("not a valid agent id"),
            "{err}"
        );
        let err = load("[[agents]]\nid = \"A\"\n[[agents]]\nid = \"A\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("agents[1].id") && err.contains("twice"),
            "{err}"
        );
        let err = load("[delivery]\norder = [\"fax\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("delivery.order") && err.contains("fax"),
            "{err}"
        );
        let err = load("[[agents]]\nid = \"A\"\nwindow_titel = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("agents[0]") && err.contains("window_titel"),
            "{err}"
        );
        let err = load("[[agents]]\nid = \"A\"\nsubmit_key = \"ctrl+\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("agents[0].submit_key") && err.contains("not a key combination"),
            "{err}"
        );
        let err = load("[[agents]]\nid = \"A\"\nwindow_title = \"(unclosed\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("agents[0].window_title") && err.contains("regular expression"),
            "{err}"
        );
        let err = load("[gui]\ninput = \"telepathy\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gui.input") && err.contains("auto, type or paste"),
            "{err}"
        );
        let err = load("captain = \"Agent-9\"\n").unwrap_err().to_string();
        assert!(err.contains("captain"), "{err}");
        let err = load("limits = 3\n").unwrap_err().to_string();
        assert!(err.contains("limits"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut env = Env::new();
        env.insert("ACP_MAX_BODY_BYTES".into(), "100".into());
        env.insert("DISCORD_TOKEN".into(), "secret-token".into());
        let c =
            Config::from_toml(Path::new("/r"), "[limits]\nmax_body_bytes = 5000\n", &env).unwrap();
        assert_eq!(c.limits.max_body_bytes, 100);
        assert!(!format!("{c:?}").contains("secret-token"));
        env.insert("ACP_MAX_ATTEMPTS".into(), "many".into());
        let err = Config::from_toml(Path::new("/r"), "", &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("environment") && err.contains("ACP_MAX_ATTEMPTS"),
            "{err}"
        );
    }
}
