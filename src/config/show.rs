// Over 400 lines: every key of the file, side by side in one projection, so that one place says
// what each setting is in effect and a test holds it to the file's keys.

//! `acp config show`: every setting in effect, written as the file writes
//! it (`delivery.retry_base_ms = 500`), and where it came from: the
//! built-in default, `config/acp.toml` (with its line), an environment
//! variable (also from `.env`), or a flag.
//!
//! The effective [`Config`] is projected into the file's keys; the file is
//! read again as a TOML document (with spans, for the lines) to see which
//! keys it sets, and the environment to see which variables override
//! them. Secrets (the Discord token, the devlog webhook's token, API
//! tokens, webhook secrets, the backup key, NATS credentials) are shown as
//! `[redacted]`, and every other value passes through the [`Redactor`]
//! (credentials in a URL, say).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::redact::{REDACTED, Redactor};
use super::{CONFIG_FILE, Config, Env};

/// Where a setting in effect came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Origin {
    /// Built into acp.
    Default,
    /// `config/acp.toml`, at this line.
    File { line: usize },
    /// An environment variable (the process's, or `.env`'s).
    Environment { variable: String },
    /// A command-line flag.
    Flag { flag: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File { line } => write!(f, "file ({CONFIG_FILE}:{line})"),
            Self::Environment { variable } => write!(f, "environment ({variable})"),
            Self::Flag { flag } => write!(f, "flag ({flag})"),
        }
    }
}

/// One setting in effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// As the file writes it: `delivery.max_attempts`, `agents[0].id`;
    /// settings only the environment sets have a key of the same shape
    /// (`discord.token`).
    pub key: String,
    /// The value in effect; `null` when unset. Secrets are `[redacted]`.
    pub value: Value,
    #[serde(flatten)]
    pub origin: Origin,
}

/// The projection: each key, its value, and the variables that set it.
#[derive(Default)]
struct Doc {
    rows: Vec<(String, Value, Vec<String>)>,
}

fn ms(d: Duration) -> Value {
    json!(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn secs(d: Duration) -> Value {
    json!(d.as_secs())
}

fn strings<T: ToString>(items: &[T]) -> Value {
    Value::Array(items.iter().map(|i| Value::String(i.to_string())).collect())
}

fn opt<T: Serialize>(value: Option<T>) -> Value {
    value.map_or(Value::Null, |v| json!(v))
}

/// `[redacted]` for a secret that is set, `null` for one that is not.
fn masked(set: bool) -> Value {
    if set {
        Value::String(REDACTED.to_owned())
    } else {
        Value::Null
    }
}

impl Doc {
    fn put(&mut self, key: impl Into<String>, value: Value) {
        self.rows.push((key.into(), value, Vec::new()));
    }

    fn env(&mut self, key: impl Into<String>, value: Value, vars: &[&str]) {
        self.rows.push((
            key.into(),
            value,
            vars.iter().map(|v| (*v).to_owned()).collect(),
        ));
    }
}

impl Config {
    /// Every setting in effect and where it came from, reading
    /// `config/acp.toml` again for its lines (a root without one: the
    /// defaults and the environment). Secrets are masked.
    #[must_use]
    pub fn settings(&self, env: &Env) -> Vec<Setting> {
        let text = std::fs::read_to_string(self.root.join(CONFIG_FILE)).unwrap_or_default();
        self.settings_with(&text, env)
    }

    /// [`Config::settings`] for the file's text `text`.
    pub(crate) fn settings_with(&self, text: &str, env: &Env) -> Vec<Setting> {
        let lines = file_keys(text);
        let redactor = Redactor::from_env(env);
        let set = |var: &str| env.get(var).is_some_and(|v| !v.trim().is_empty());
        self.project()
            .rows
            .into_iter()
            .map(|(key, value, vars)| {
                let origin = match vars.iter().find(|v| set(v)) {
                    Some(variable) => Origin::Environment {
                        variable: variable.clone(),
                    },
                    None => lines
                        .get(&key)
                        .map_or(Origin::Default, |&line| Origin::File { line }),
                };
                Setting {
                    key,
                    value: scrub(value, &redactor),
                    origin,
                }
            })
            .collect()
    }

    /// The config in the file's words.
    fn project(&self) -> Doc {
        let mut doc = Doc::default();
        doc.put(
            "captain",
            opt(self.captain.as_ref().map(ToString::to_string)),
        );
        doc.env("agent", opt(self.default_sender.clone()), &["ACP_AGENT"]);
        self.project_delivery(&mut doc);
        self.project_discord(&mut doc);
        self.project_gui(&mut doc);
        self.project_backup(&mut doc);
        self.project_http(&mut doc);
        self.project_cluster(&mut doc);
        let programs: Vec<&str> = self
            .discover
            .programs
            .iter()
            .map(super::discover::ProgramPattern::as_str)
            .collect();
        doc.put("discover.programs", json!(programs));
        doc.env(
            "discover.tmux_tmpdir",
            opt(self
                .discover
                .tmux_tmpdir
                .as_ref()
                .map(|p| p.display().to_string())),
            &["TMUX_TMPDIR"],
        );
        self.project_agents(&mut doc);
        doc
    }

    fn project_delivery(&self, doc: &mut Doc) {
        let d = &self.delivery;
        doc.env("delivery.order", strings(&d.order), &["ACP_DELIVERY_ORDER"]);
        doc.env(
            "delivery.max_attempts",
            json!(d.max_attempts),
            &["ACP_MAX_ATTEMPTS"],
        );
        doc.put("delivery.retry_base_ms", ms(d.retry_base));
        doc.put("delivery.retry_max_ms", ms(d.retry_max));
        doc.env("delivery.poll_ms", ms(d.poll_interval), &["ACP_POLL_MS"]);
        doc.put("delivery.batch_size", json!(d.batch_size));
        doc.env(
            "limits.max_body_bytes",
            json!(self.limits.max_body_bytes),
            &["ACP_MAX_BODY_BYTES"],
        );
        doc.put(
            "limits.max_attachment_bytes",
            json!(self.limits.max_attachment_bytes),
        );
        let a = &self.approval;
        doc.put("approval.timeout_secs", secs(a.timeout));
        doc.put("approval.pane_probe_ms", ms(a.pane_probe));
        doc.put("approval.captain_decides", json!(a.captain_decides));
        let t = &self.attention;
        doc.put(
            "attention.mention_after_secs",
            json!(t.mention_after.map_or(0, |d| d.as_secs())),
        );
        doc.put("attention.mention_roles", json!(t.mentions.roles));
        doc.put("attention.mention_users", json!(t.mentions.users));
        doc.put("coords.near_radius_px", json!(self.coords.near_radius_px));
        doc.put(
            "schedules.time_zone",
            json!(self.schedules.time_zone.as_deref().unwrap_or("")),
        );
        let days =
            |d: Option<std::time::Duration>| json!(d.map_or(0.0, |d| d.as_secs_f64() / 86_400.0));
        doc.put("store.keep_days", days(self.store.keep));
        doc.put("store.keep_min", json!(self.store.keep_min));
        doc.put("store.keep_inbox_files", json!(self.store.keep_inbox_files));
        doc.put("store.audit_keep_days", days(self.store.audit_keep));
        doc.put(
            "store.warn_size_mb",
            json!(self.store.warn_bytes / (1024 * 1024)),
        );
        let p = &self.pulse;
        doc.put(
            "pulse.after_minutes",
            json!(p.after.map_or(0.0, |d| d.as_secs_f64() / 60.0)),
        );
        doc.put("pulse.text", json!(p.text));
        doc.put("pulse.priority", json!(p.priority.as_str()));
        doc.put(
            "pulse.quiet_hours",
            json!(p.quiet_hours.map(|q| q.to_string()).unwrap_or_default()),
        );
        doc.put(
            "pulse.agents",
            p.agents.as_deref().map_or(Value::Null, strings),
        );
    }

    fn project_discord(&self, doc: &mut Doc) {
        let d = &self.discord;
        doc.env(
            "discord.token",
            masked(d.token.is_some()),
            &["DISCORD_TOKEN"],
        );
        doc.env("discord.guild_id", opt(d.guild_id), &["DISCORD_GUILD_ID"]);
        doc.env(
            "discord.api_base",
            opt(d.api_base.clone()),
            &["DISCORD_API_BASE"],
        );
        doc.put("discord.operator_roles", json!(d.operator_roles));
        doc.put("discord.admin_roles", json!(d.admin_roles));
        doc.put("discord.allowed_channels", json!(d.allowed_channels));
        doc.put("discord.receipt_window_secs", secs(d.receipt_window));
        doc.put("discord.swarm_channel", opt(d.swarm_channel));
        doc.put("discord.agent_threads", json!(d.agent_threads));
        doc.put("discord.devlog_channel", opt(d.devlog_channel));
        doc.put("discord.devlog_settle_ms", ms(d.devlog_settle));
        doc.env(
            "discord.devlog_webhook",
            opt(d
                .devlog_webhook
                .as_ref()
                .map(|w| format!("webhook {} (token {REDACTED})", w.id))),
            &["DISCORD_DEVLOG_WEBHOOK"],
        );
    }

    fn project_gui(&self, doc: &mut Doc) {
        let g = &self.gui;
        doc.env("gui.display", opt(g.display.clone()), &["DISPLAY"]);
        doc.put("gui.lock_timeout_ms", ms(g.lock_timeout));
        doc.put("gui.settle_ms", ms(g.settle));
        doc.put("gui.type_max_chars", json!(g.type_max_chars));
        let s = &g.defaults;
        doc.put("gui.input", json!(s.input));
        doc.put("gui.submit_key", json!(s.submit_key.to_string()));
        doc.put("gui.paste_key", json!(s.paste_key.to_string()));
        doc.put("gui.newline_key", json!(s.newline_key.to_string()));
        doc.put("gui.clear_keys", strings(&s.clear_keys));
        doc.put("gui.onboarding_keys", strings(&s.onboarding_keys));
        doc.put("gui.pre_submit_delay_ms", ms(s.pre_submit_delay));
    }

    fn project_backup(&self, doc: &mut Doc) {
        let b = &self.backup;
        doc.env(
            "backup.repository",
            json!(b.repository.display().to_string()),
            &["ACP_BACKUP_REPOSITORY"],
        );
        doc.env("backup.key", masked(b.key.is_some()), &["ACP_BACKUP_KEY"]);
        doc.put("backup.include", json!(b.include));
        doc.put("backup.exclude", json!(b.exclude));
        doc.put("backup.zstd_level", json!(b.zstd_level));
        let every = |d: Option<Duration>, unit: u64| json!(d.map_or(0, |d| d.as_secs() / unit));
        doc.put("backup.full_every_hours", every(b.full_every, 3600));
        doc.put(
            "backup.differential_every_hours",
            every(b.differential_every, 3600),
        );
        doc.put(
            "backup.incremental_every_minutes",
            every(b.incremental_every, 60),
        );
        doc.put("backup.keep_last", json!(b.keep_last));
        doc.put("backup.keep_daily", json!(b.keep_daily));
        doc.put("backup.keep_weekly", json!(b.keep_weekly));
        doc.put("backup.rpo_minutes", json!(b.rpo.as_secs() / 60));
    }

    fn project_http(&self, doc: &mut Doc) {
        let h = &self.http;
        doc.put("http.enabled", json!(h.enabled));
        doc.env("http.bind", json!(h.bind.to_string()), &["ACP_HTTP_BIND"]);
        doc.put("http.max_body_bytes", json!(h.max_body_bytes));
        doc.env("http.hosts", json!(h.hosts), &["ACP_HTTP_HOSTS"]);
        doc.put("http.header_timeout_secs", secs(h.header_timeout));
        doc.put("http.body_timeout_secs", secs(h.body_timeout));
        doc.put("http.idle_timeout_secs", secs(h.idle_timeout));
        doc.put("http.max_connections", json!(h.max_connections));
        doc.put("http.refusal_audit_secs", secs(h.refusal_audit_every));
        // Each token by name and grants; its secret never.
        let tokens: Vec<String> = h
            .tokens
            .iter()
            .map(|t| format!("{}:{}={REDACTED}", t.name, t.grants()))
            .collect();
        doc.env(
            "http.tokens",
            json!(tokens),
            &["ACP_API_TOKENS", "ACP_API_TOKEN"],
        );
        let mut i = 0;
        for hook in &h.hooks {
            for route in &hook.routes {
                let key = |field: &str| format!("http.hooks[{i}].{field}");
                doc.put(key("name"), json!(hook.name));
                doc.put(key("repository"), json!(route.repository));
                doc.put(key("branch"), json!(route.branch));
                doc.put(key("agent"), json!(route.agent));
                doc.put(key("template"), json!(route.template));
                let var = format!(
                    "ACP_HOOK_SECRET_{}",
                    hook.name.to_ascii_uppercase().replace('-', "_")
                );
                doc.env(key("secret"), masked(hook.secret.is_some()), &[&var]);
                i += 1;
            }
        }
    }

    fn project_cluster(&self, doc: &mut Doc) {
        let Some(c) = &self.cluster else {
            return;
        };
        doc.env("cluster.node", json!(c.node.to_string()), &["ACP_NODE"]);
        doc.put("cluster.hub", json!(c.hub.to_string()));
        doc.put("cluster.swarm", json!(c.swarm));
        doc.put("cluster.max_age_hours", json!(c.max_age.as_secs() / 3600));
        doc.put("cluster.max_stream_mb", json!(c.max_bytes >> 20));
        doc.put("cluster.duplicate_window_secs", secs(c.duplicate_window));
        doc.put("cluster.heartbeat_ms", ms(c.heartbeat));
        doc.put("cluster.presence_ttl_ms", ms(c.presence_ttl));
        let n = &c.nats;
        doc.env("cluster.nats.url", json!(n.url), &["ACP_NATS_URL"]);
        doc.env(
            "cluster.nats.tls",
            json!(n.tls_required),
            &["ACP_NATS_TLS", "ACP_NATS_URL"],
        );
        doc.env(
            "cluster.nats.tls_ca",
            opt(n.tls_ca.as_ref().map(|p| p.display().to_string())),
            &["ACP_NATS_TLS_CA"],
        );
        doc.env(
            "cluster.nats.auth",
            json!(n.auth.describe()),
            &[
                "ACP_NATS_USER",
                "ACP_NATS_PASSWORD",
                "ACP_NATS_TOKEN",
                "ACP_NATS_CREDS",
                "ACP_NATS_NKEY",
            ],
        );
    }

    fn project_agents(&self, doc: &mut Doc) {
        for (i, a) in self.agents.all().iter().enumerate() {
            let key = |field: &str| format!("agents[{i}].{field}");
            doc.put(key("id"), json!(a.id.to_string()));
            doc.put(key("name"), json!(a.name));
            doc.put(key("role"), json!(a.role));
            doc.put(key("workspace"), json!(a.workspace.display().to_string()));
            doc.put(key("delivery"), strings(&a.delivery));
            if self.cluster.is_some() {
                doc.put(key("node"), opt(a.node.as_ref().map(ToString::to_string)));
            }
            let g = &a.gui;
            doc.put(
                key("window_title"),
                opt(g.window_title.as_ref().map(ToString::to_string)),
            );
            doc.put(
                key("window_class"),
                opt(g.window_class.as_ref().map(ToString::to_string)),
            );
            doc.put(key("input"), json!(g.input));
            doc.put(key("submit_key"), json!(g.submit_key.to_string()));
            doc.put(key("paste_key"), json!(g.paste_key.to_string()));
            doc.put(key("newline_key"), json!(g.newline_key.to_string()));
            doc.put(key("clear_keys"), strings(&g.clear_keys));
            doc.put(key("onboarding_keys"), strings(&g.onboarding_keys));
            doc.put(key("pre_submit_delay_ms"), ms(g.pre_submit_delay));
            doc.put(key("doorbell"), json!(g.doorbell));
            let Some(t) = &a.tmux else {
                continue;
            };
            let key = |field: &str| format!("agents[{i}].tmux.{field}");
            doc.put(key("target"), json!(t.target));
            doc.put(key("socket"), opt(t.socket.clone()));
            doc.put(
                key("command"),
                opt(t.command.as_ref().map(ToString::to_string)),
            );
            doc.put(
                key("idle_pattern"),
                opt(t.idle_pattern.as_ref().map(ToString::to_string)),
            );
            doc.put(key("busy_max_wait_ms"), ms(t.busy_max_wait));
            doc.put(key("when_busy"), json!(t.when_busy));
            doc.put(key("pre_submit_delay_ms"), ms(t.pre_submit_delay));
            doc.put(key("submit_key"), json!(t.submit_key));
            doc.put(
                key("paste_into_shell_runs_messages"),
                json!(t.paste_into_shell),
            );
            doc.put(key("profile"), opt(t.profile.clone()));
        }
    }
}

/// Every string in `value` through the redactor.
fn scrub(value: Value, redactor: &Redactor) -> Value {
    match value {
        Value::String(s) => Value::String(redactor.redact(&s).into_owned()),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| scrub(v, redactor)).collect())
        }
        other => other,
    }
}

/// The keys `text` sets, dotted as [`Setting::key`] writes them, each with
/// its line (1-based). A leaf is a value that is not a table; an array of
/// tables (`[[agents]]`) gives `agents[0].id`.
fn file_keys(text: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let Ok(doc) = toml::de::DeTable::parse(text) else {
        return out;
    };
    let line_of = |at: usize| text[..at.min(text.len())].matches('\n').count() + 1;
    walk_table(doc.get_ref(), "", &line_of, &mut out);
    out
}

fn walk_table(
    table: &toml::de::DeTable<'_>,
    prefix: &str,
    line_of: &dyn Fn(usize) -> usize,
    out: &mut BTreeMap<String, usize>,
) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        walk_value(value, &path, line_of(key.span().start), line_of, out);
    }
}

fn walk_value(
    value: &toml::Spanned<toml::de::DeValue<'_>>,
    path: &str,
    line: usize,
    line_of: &dyn Fn(usize) -> usize,
    out: &mut BTreeMap<String, usize>,
) {
    match value.get_ref() {
        toml::de::DeValue::Table(t) => walk_table(t, path, line_of, out),
        toml::de::DeValue::Array(items)
            if items
                .iter()
                .any(|i| matches!(i.get_ref(), toml::de::DeValue::Table(_))) =>
        {
            for (i, item) in items.iter().enumerate() {
                let at = format!("{path}[{i}]");
                walk_value(item, &at, line_of(item.span().start), line_of, out);
            }
        }
        _ => {
            out.insert(path.to_owned(), line);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn file_keys_have_their_lines_and_tables_of_arrays_their_index() {
        let keys = file_keys(
            "captain = \"A\"\n\n[delivery]\nmax_attempts = 3\norder = [\"inbox\"]\n\n[[agents]]\nid = \
             \"A\"\ntmux = { target = \"s:0\" }\n[[agents]]\nid = \"B\"\n",
        );
        let want: BTreeMap<String, usize> = [
            ("captain", 1),
            ("delivery.max_attempts", 4),
            ("delivery.order", 5),
            ("agents[0].id", 8),
            ("agents[0].tmux.target", 9),
            ("agents[1].id", 11),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(keys, want);
    }

    #[test]
    fn each_setting_says_its_source_and_secrets_are_masked() {
        let text = "[delivery]\nmax_attempts = 3\npoll_ms = 40\n[limits]\nmax_body_bytes = 5000\n\
                    [discord]\napi_base = \"https://proxy.example\"\n";
        let mut env = Env::new();
        env.insert("ACP_POLL_MS".into(), "70".into());
        env.insert("DISCORD_TOKEN".into(), "very-secret-bot-token".into());
        env.insert(
            "DISCORD_API_BASE".into(),
            "https://user:hunter2hunter2@proxy.example".into(),
        );
        let config = Config::from_toml(Path::new("/r"), text, &env).unwrap();
        let settings = config.settings_with(text, &env);
        let get = |key: &str| settings.iter().find(|s| s.key == key).unwrap().clone();
        assert_eq!(get("delivery.max_attempts").value, json!(3));
        assert_eq!(
            get("delivery.max_attempts").origin,
            Origin::File { line: 2 }
        );
        assert_eq!(get("delivery.poll_ms").value, json!(70));
        assert_eq!(
            get("delivery.poll_ms").origin.to_string(),
            "environment (ACP_POLL_MS)"
        );
        assert_eq!(get("delivery.retry_base_ms").origin, Origin::Default);
        assert_eq!(
            get("limits.max_body_bytes").origin,
            Origin::File { line: 5 }
        );
        assert_eq!(get("discord.token").value, json!(REDACTED));
        assert_eq!(get("backup.key").value, Value::Null);
        let all = serde_json::to_string(&settings).unwrap();
        assert!(!all.contains("very-secret-bot-token"), "{all}");
        assert!(!all.contains("hunter2"), "{all}");
    }

    #[test]
    fn every_key_of_a_full_file_is_shown_from_the_file() {
        // Every key a file may hold, none at its default: each must come
        // back as a setting of that name, from its line.
        let text = include_str!("show_full.toml");
        let config = Config::from_toml(Path::new("/r"), text, &Env::new()).unwrap();
        let settings = config.settings_with(text, &Env::new());
        let shown: BTreeMap<&str, &Setting> =
            settings.iter().map(|s| (s.key.as_str(), s)).collect();
        for (key, line) in file_keys(text) {
            if key.starts_with("profiles.") {
                continue;
            }
            let s = shown
                .get(key.as_str())
                .unwrap_or_else(|| panic!("{key} is not shown"));
            assert_eq!(s.origin, Origin::File { line }, "{key}");
        }
    }
}
