//! `[http]`: the status page, API, metrics and webhooks `acp run` serves.

use std::net::SocketAddr;

use serde::Deserialize;

use super::{ConfigError, Env, Secret, Source};

/// The port `acp run` listens on by default (on 127.0.0.1).
pub const DEFAULT_PORT: u16 = 7420;

/// A bearer token for the API, with the name audits record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub name: String,
    pub secret: Secret,
}

/// A webhook source: its secret and how its events map to agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookConfig {
    /// `github`, or the NAME of `/hooks/NAME`.
    pub name: String,
    /// The HMAC-SHA256 secret (`ACP_HOOK_SECRET_<NAME>`).
    pub secret: Option<Secret>,
    pub routes: Vec<HookRoute>,
}

/// One mapping: events matching it become a message to `agent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRoute {
    /// `owner/name`, or `*`.
    pub repository: String,
    /// A branch, or `*`.
    pub branch: String,
    pub agent: String,
    /// The message, with `{repository}`, `{branch}`, `{event}`,
    /// `{action}`, `{conclusion}`, `{title}`, `{number}`, `{url}`.
    pub template: String,
}

/// HTTP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Whether `acp run` serves HTTP at all.
    pub enabled: bool,
    pub bind: SocketAddr,
    /// API tokens, from `ACP_API_TOKEN` (named `api`) and `ACP_API_TOKENS`
    /// (`name=secret,...`).
    pub tokens: Vec<ApiToken>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    pub hooks: Vec<HookConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            tokens: Vec::new(),
            max_body_bytes: 1 << 20,
            hooks: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    enabled: Option<bool>,
    bind: Option<String>,
    max_body_bytes: Option<i64>,
    #[serde(default)]
    hooks: Vec<RawHook>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHook {
    name: String,
    repository: Option<String>,
    branch: Option<String>,
    agent: String,
    template: Option<String>,
}

/// What a GitHub event says by default.
const DEFAULT_TEMPLATE: &str =
    "{event} {action} {conclusion} on {repository} {branch}: {title} {url}";

fn hook_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub(super) fn apply_http(
    src: &Source<'_>,
    raw: RawHttp,
    out: &mut HttpConfig,
) -> Result<(), ConfigError> {
    if let Some(on) = raw.enabled {
        out.enabled = on;
    }
    if let Some(bind) = raw.bind {
        out.bind = bind.trim().parse().map_err(|_| {
            src.invalid(
                "http.bind",
                format!("{bind:?} is not an address: use IP:PORT, e.g. 127.0.0.1:{DEFAULT_PORT}"),
            )
        })?;
    }
    if let Some(v) = raw.max_body_bytes {
        out.max_body_bytes =
            usize::try_from(src.int_in("http.max_body_bytes", v, 1024, 64 << 20)?)
                .unwrap_or(usize::MAX);
    }
    for (i, hook) in raw.hooks.into_iter().enumerate() {
        let key = format!("http.hooks[{i}]");
        if !hook_name_ok(&hook.name) {
            return Err(src.invalid(
                &format!("{key}.name"),
                "use 1 to 32 lower-case letters, digits, '-' or '_' (github for GitHub)",
            ));
        }
        let route = HookRoute {
            repository: hook.repository.unwrap_or_else(|| "*".into()),
            branch: hook.branch.unwrap_or_else(|| "*".into()),
            agent: hook.agent,
            template: hook.template.unwrap_or_else(|| DEFAULT_TEMPLATE.into()),
        };
        match out.hooks.iter_mut().find(|h| h.name == hook.name) {
            Some(h) => h.routes.push(route),
            None => out.hooks.push(HookConfig {
                name: hook.name,
                secret: None,
                routes: vec![route],
            }),
        }
    }
    Ok(())
}

pub(super) fn apply_http_env(
    src: &Source<'_>,
    env: &Env,
    out: &mut HttpConfig,
) -> Result<(), ConfigError> {
    if let Some(bind) = env.get("ACP_HTTP_BIND").filter(|v| !v.trim().is_empty()) {
        out.bind = bind
            .trim()
            .parse()
            .map_err(|_| src.invalid("ACP_HTTP_BIND", "is not an address: use IP:PORT"))?;
    }
    let mut tokens = Vec::new();
    if let Some(t) = env.get("ACP_API_TOKEN").filter(|v| !v.trim().is_empty()) {
        tokens.push(("api".to_owned(), t.trim().to_owned()));
    }
    if let Some(list) = env.get("ACP_API_TOKENS") {
        for item in list.split(',').filter(|i| !i.trim().is_empty()) {
            let (name, secret) = item.trim().split_once('=').ok_or_else(|| {
                src.invalid(
                    "ACP_API_TOKENS",
                    "write name=token pairs, separated by commas",
                )
            })?;
            tokens.push((name.trim().to_owned(), secret.trim().to_owned()));
        }
    }
    for (name, secret) in tokens {
        if secret.len() < 16 {
            return Err(src.invalid(
                "ACP_API_TOKEN",
                format!(
                    "the token named {name} is shorter than 16 characters: make a long random one \
                     (for example `openssl rand -hex 32`)"
                ),
            ));
        }
        out.tokens.push(ApiToken {
            name,
            secret: Secret(secret),
        });
    }
    for hook in &mut out.hooks {
        let key = format!(
            "ACP_HOOK_SECRET_{}",
            hook.name.to_ascii_uppercase().replace('-', "_")
        );
        hook.secret = env
            .get(&key)
            .filter(|v| !v.trim().is_empty())
            .map(|v| Secret(v.trim().to_owned()));
    }
    Ok(())
}
