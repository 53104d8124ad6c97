//! `[http]`: the status page, API, metrics and webhooks `acp run` serves.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::tokens::{ApiToken, tokens_from_env};
use super::{ConfigError, Env, Secret, Source};

/// The port `acp run` listens on by default (on 127.0.0.1).
pub const DEFAULT_PORT: u16 = 7420;

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
    /// (`name[:scope+scope][@agent]=secret,...`).
    pub tokens: Vec<ApiToken>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    pub hooks: Vec<HookConfig>,
    /// Names besides the bind address (and localhost, for a loopback or
    /// any-address bind) that requests may carry in `Host`: what a reverse
    /// proxy or a tunnel forwards (`acp.example.com`, or with a port).
    /// Lower case.
    pub hosts: Vec<String>,
    /// How long a request's head may take to arrive, from the connection's
    /// start or the previous answer (so also how long a kept-alive
    /// connection may wait idle).
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive once its head has.
    pub body_timeout: Duration,
    /// A connection that moves no byte either way for this long is closed
    /// (a client that stops reading its answer, say).
    pub idle_timeout: Duration,
    /// Most connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Refused requests are audited as one row per source and reason per
    /// this interval (the first at once, the rest counted).
    pub refusal_audit_every: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            tokens: Vec::new(),
            max_body_bytes: 1 << 20,
            hooks: Vec::new(),
            hosts: Vec::new(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            refusal_audit_every: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    enabled: Option<bool>,
    bind: Option<String>,
    max_body_bytes: Option<i64>,
    hosts: Option<Vec<String>>,
    header_timeout_secs: Option<i64>,
    body_timeout_secs: Option<i64>,
    idle_timeout_secs: Option<i64>,
    max_connections: Option<i64>,
    refusal_audit_secs: Option<i64>,
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

/// `http.hosts`: DNS names, each with or without a port, lower-cased.
fn host_names<'a>(
    src: &Source<'_>,
    key: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for name in names {
        let name = name.trim().to_ascii_lowercase();
        let (host, port) = match name.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (name.as_str(), None),
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .split('.')
                .all(|label| !label.is_empty() && label.len() <= 63)
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !host_ok || port.is_some_and(|p| p.parse::<u16>().is_err()) {
            return Err(src.invalid(
                key,
                format!(
                    "{:?} is not a host name: write names such as acp.example.com or \
                     acp.example.com:8443 (IP addresses need no entry)",
                    name.chars().take(64).collect::<String>()
                ),
            ));
        }
        out.push(name);
    }
    Ok(out)
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
    if let Some(hosts) = raw.hosts {
        out.hosts = host_names(src, "http.hosts", hosts.iter().map(String::as_str))?;
    }
    let secs = |key: &str, v: Option<i64>, max: i64| -> Result<Option<Duration>, ConfigError> {
        v.map(|v| src.int_in(key, v, 1, max).map(Duration::from_secs))
            .transpose()
    };
    if let Some(d) = secs("http.header_timeout_secs", raw.header_timeout_secs, 3600)? {
        out.header_timeout = d;
    }
    if let Some(d) = secs("http.body_timeout_secs", raw.body_timeout_secs, 3600)? {
        out.body_timeout = d;
    }
    if let Some(d) = secs("http.idle_timeout_secs", raw.idle_timeout_secs, 86_400)? {
        out.idle_timeout = d;
    }
    if let Some(d) = secs("http.refusal_audit_secs", raw.refusal_audit_secs, 86_400)? {
        out.refusal_audit_every = d;
    }
    if let Some(v) = raw.max_connections {
        out.max_connections = usize::try_from(src.int_in("http.max_connections", v, 1, 65_536)?)
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
    if let Some(hosts) = env.get("ACP_HTTP_HOSTS").filter(|v| !v.trim().is_empty()) {
        out.hosts = host_names(
            src,
            "ACP_HTTP_HOSTS",
            hosts.split(',').filter(|h| !h.trim().is_empty()),
        )?;
    }
    out.tokens = tokens_from_env(src, env)?;
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::super::{Config, Env};

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, super::ConfigError> {
        let env: Env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_toml(Path::new("/r"), text, &env)
    }

    #[test]
    fn timeouts_cap_and_hosts_have_defaults_and_limits() {
        let c = load("", &[]).unwrap().http;
        assert_eq!(c.header_timeout, Duration::from_secs(10));
        assert_eq!(c.body_timeout, Duration::from_secs(30));
        assert_eq!(c.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.max_connections, 1024);
        assert!(c.hosts.is_empty());
        let c = load(
            "[http]\nhosts = [\"ACP.example.com\", \"ci.example.com:8443\"]\nmax_connections = 8\n",
            &[],
        )
        .unwrap()
        .http;
        assert_eq!(c.hosts, ["acp.example.com", "ci.example.com:8443"]);
        assert_eq!(c.max_connections, 8);
        let env = load("", &[("ACP_HTTP_HOSTS", "a.example, b.example")]).unwrap();
        assert_eq!(env.http.hosts, ["a.example", "b.example"]);
        for (text, says) in [
            ("[http]\nheader_timeout_secs = 0\n", "out of range"),
            ("[http]\nmax_connections = 0\n", "out of range"),
            (
                "[http]\nhosts = [\"http://acp.example.com\"]\n",
                "not a host name",
            ),
            (
                "[http]\nhosts = [\"acp.example.com:x\"]\n",
                "not a host name",
            ),
        ] {
            let e = load(text, &[]).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
