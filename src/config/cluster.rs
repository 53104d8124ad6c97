//! `[cluster]`: several machines, one swarm, through NATS JetStream. With
//! no `[cluster]` table nothing of this applies and no NATS is needed.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Env, Secret, Source};
use crate::model::NodeName;
use crate::model::node::valid_name;

/// The NATS server used when `ACP_NATS_URL` is not set.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// How acp proves who it is to NATS (from `.env`, never from the file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NatsAuth {
    /// No credentials (a NATS server without authorization).
    #[default]
    None,
    /// `ACP_NATS_USER` and `ACP_NATS_PASSWORD`.
    UserPassword { user: String, password: Secret },
    /// `ACP_NATS_TOKEN`.
    Token(Secret),
    /// `ACP_NATS_CREDS`: a `.creds` file (a JWT and an nkey seed).
    CredsFile(PathBuf),
    /// `ACP_NATS_NKEY`: an nkey seed (`SU...`).
    NKey(Secret),
}

impl NatsAuth {
    /// How it authenticates, in words safe for logs (no secret).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::None => "no credentials".into(),
            Self::UserPassword { user, .. } => format!("user {user} and a password"),
            Self::Token(_) => "a token".into(),
            Self::CredsFile(path) => format!("the credentials file {}", path.display()),
            Self::NKey(_) => "an nkey seed".into(),
        }
    }
}

/// Where NATS is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// `nats://host:port` (or `tls://`), comma-separated for several.
    pub url: String,
    pub auth: NatsAuth,
    /// Require TLS (`ACP_NATS_TLS=1`, or a `tls://` URL).
    pub tls_required: bool,
    /// A CA certificate to trust for the server's (`ACP_NATS_TLS_CA`).
    pub tls_ca: Option<PathBuf>,
}

/// The swarm's machines and how work reaches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This machine (`node` in the file, `ACP_NODE`, `acp run --node`).
    pub node: NodeName,
    /// The machine holding the bot, the HTTP server and the store of
    /// record.
    pub hub: NodeName,
    /// Namespaces subjects, streams and buckets, so several swarms can
    /// share one NATS.
    pub swarm: String,
    pub nats: NatsConfig,
    /// How long work waits in JetStream for a machine that is away.
    pub max_age: Duration,
    /// How many bytes each stream keeps at most; past that, new work
    /// waits on the hub (nothing is dropped).
    pub max_bytes: i64,
    /// JetStream drops a message published twice with one id within
    /// this window.
    pub duplicate_window: Duration,
    /// How often each machine says it is alive.
    pub heartbeat: Duration,
    /// A machine not heard from for this long is offline.
    pub presence_ttl: Duration,
}

impl ClusterConfig {
    /// Whether this machine is the hub.
    #[must_use]
    pub fn is_hub(&self) -> bool {
        self.node == self.hub
    }
}

/// The keys of `[cluster]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    node: Option<String>,
    hub: Option<String>,
    swarm: Option<String>,
    max_age_hours: Option<i64>,
    max_stream_mb: Option<i64>,
    duplicate_window_secs: Option<i64>,
    heartbeat_ms: Option<i64>,
    presence_ttl_ms: Option<i64>,
}

fn node_name(src: &Source<'_>, key: &str, text: &str) -> Result<NodeName, ConfigError> {
    text.trim()
        .parse()
        .map_err(|e: crate::model::InvalidNodeName| src.invalid(key, e.to_string()))
}

/// Reads `[cluster]`. `hub` is required; `node` defaults to the hub (the
/// hub's own config), and is usually set per machine with `ACP_NODE` or
/// `acp run --node`.
pub(super) fn cluster_from(
    src: &Source<'_>,
    raw: RawCluster,
) -> Result<ClusterConfig, ConfigError> {
    let hub = match raw.hub.as_deref() {
        Some(h) => node_name(src, "cluster.hub", h)?,
        None => {
            return Err(src.invalid(
                "cluster.hub",
                "is missing: name the machine that runs the Discord bot and holds the store \
                 (for example hub = \"desk-1\")",
            ));
        }
    };
    let node = match raw.node.as_deref() {
        Some(n) => node_name(src, "cluster.node", n)?,
        None => hub.clone(),
    };
    let swarm = raw.swarm.unwrap_or_else(|| "acp".into());
    if !valid_name(&swarm) {
        return Err(src.invalid(
            "cluster.swarm",
            format!(
                "{:?}: use a letter followed by up to 31 letters, digits, '-' or '_'",
                swarm.chars().take(40).collect::<String>()
            ),
        ));
    }
    let ms = |key: &str, v: Option<i64>, min: i64, max: i64, default: u64| {
        v.map(|v| src.int_in(key, v, min, max))
            .transpose()
            .map(|v| v.unwrap_or(default))
    };
    let heartbeat = Duration::from_millis(ms(
        "cluster.heartbeat_ms",
        raw.heartbeat_ms,
        100,
        60_000,
        2_000,
    )?);
    let presence_ttl = Duration::from_millis(ms(
        "cluster.presence_ttl_ms",
        raw.presence_ttl_ms,
        500,
        600_000,
        10_000,
    )?);
    if presence_ttl < heartbeat * 2 {
        return Err(src.invalid(
            "cluster.presence_ttl_ms",
            "must be at least twice cluster.heartbeat_ms, or a machine at work looks offline \
             between two heartbeats",
        ));
    }
    let max_age = Duration::from_secs(
        3600 * ms(
            "cluster.max_age_hours",
            raw.max_age_hours,
            1,
            24 * 365,
            24 * 7,
        )?,
    );
    let duplicate_window = Duration::from_secs(ms(
        "cluster.duplicate_window_secs",
        raw.duplicate_window_secs,
        1,
        86_400,
        600,
    )?);
    let max_bytes = i64::try_from(ms(
        "cluster.max_stream_mb",
        raw.max_stream_mb,
        1,
        1 << 20,
        1024,
    )?)
    .unwrap_or(i64::MAX)
        * (1 << 20);
    Ok(ClusterConfig {
        node,
        hub,
        swarm,
        nats: NatsConfig {
            url: DEFAULT_NATS_URL.into(),
            auth: NatsAuth::None,
            tls_required: false,
            tls_ca: None,
        },
        max_age,
        max_bytes,
        duplicate_window: duplicate_window.min(max_age),
        heartbeat,
        presence_ttl,
    })
}

/// Applies `ACP_NODE` and the `ACP_NATS_*` secrets and settings.
pub(super) fn apply_cluster_env(
    src: &Source<'_>,
    root: &std::path::Path,
    env: &Env,
    cluster: Option<&mut ClusterConfig>,
) -> Result<(), ConfigError> {
    let get = |key: &str| {
        env.get(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let Some(c) = cluster else {
        if let Some(key) = ["ACP_NODE", "ACP_NATS_URL"]
            .into_iter()
            .find(|k| get(k).is_some())
        {
            return Err(src.invalid(
                key,
                "is set, but config/acp.toml has no [cluster] table: add one (see \
                 docs/several-machines.md) or unset it",
            ));
        }
        return Ok(());
    };
    if let Some(node) = get("ACP_NODE") {
        c.node = node_name(src, "ACP_NODE", &node)?;
    }
    if let Some(url) = get("ACP_NATS_URL") {
        let schemes = ["nats://", "tls://", "ws://", "wss://"];
        for part in url.split(',') {
            if !schemes.iter().any(|s| part.trim().starts_with(s)) {
                return Err(src.invalid(
                    "ACP_NATS_URL",
                    "use nats://HOST:PORT (or tls://HOST:PORT), comma-separated for several \
                     servers",
                ));
            }
        }
        c.nats.url = url;
    }
    c.nats.tls_required = c.nats.url.starts_with("tls://")
        || matches!(
            get("ACP_NATS_TLS").as_deref(),
            Some("1" | "true" | "yes" | "on")
        );
    if let Some(ca) = get("ACP_NATS_TLS_CA") {
        c.nats.tls_ca = Some(root.join(ca));
    }
    let user = get("ACP_NATS_USER");
    let password = get("ACP_NATS_PASSWORD");
    let token = get("ACP_NATS_TOKEN");
    let creds = get("ACP_NATS_CREDS");
    let nkey = get("ACP_NATS_NKEY");
    let given = [
        user.is_some() || password.is_some(),
        token.is_some(),
        creds.is_some(),
        nkey.is_some(),
    ]
    .into_iter()
    .filter(|g| *g)
    .count();
    if given > 1 {
        return Err(src.invalid(
            "ACP_NATS_*",
            "set one kind of NATS credentials: ACP_NATS_USER with ACP_NATS_PASSWORD, \
             ACP_NATS_TOKEN, ACP_NATS_CREDS or ACP_NATS_NKEY",
        ));
    }
    c.nats.auth = match (user, password, token, creds, nkey) {
        (Some(user), Some(password), ..) => NatsAuth::UserPassword {
            user,
            password: Secret(password),
        },
        (Some(_), None, ..) | (None, Some(_), ..) => {
            return Err(src.invalid(
                "ACP_NATS_USER",
                "ACP_NATS_USER and ACP_NATS_PASSWORD go together: set both",
            ));
        }
        (_, _, Some(token), ..) => NatsAuth::Token(Secret(token)),
        (_, _, _, Some(path), _) => NatsAuth::CredsFile(root.join(path)),
        (_, _, _, _, Some(seed)) => {
            if !seed.starts_with("SU") {
                return Err(src.invalid(
                    "ACP_NATS_NKEY",
                    "is not a user nkey seed (it starts with SU): use the seed `nk -gen user` \
                     printed",
                ));
            }
            NatsAuth::NKey(Secret(seed))
        }
        _ => NatsAuth::None,
    };
    Ok(())
}
