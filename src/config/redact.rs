//! Secrets kept out of text that leaves acp's hands (the log, a delivery's
//! recorded error): the values the environment holds as secrets, and the
//! shapes secrets take in text whatever their value (a webhook's or an
//! interaction's token in a Discord URL, a Discord token, credentials in a
//! URL, an `Authorization` header, a NATS nkey seed).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

use super::{Env, Webhook};

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Shorter values are not looked for in text: a two-letter "secret" would
/// blank every word holding those letters. (acp refuses API tokens under
/// 16 characters; Discord's tokens and webhooks are far longer.)
const MIN_SECRET_CHARS: usize = 8;

/// Variables whose whole value is a secret.
const SECRET_KEYS: &[&str] = &[
    "DISCORD_TOKEN",
    "DISCORD_DEVLOG_WEBHOOK",
    "ACP_API_TOKEN",
    "ACP_BACKUP_KEY",
    "ACP_NATS_PASSWORD",
    "ACP_NATS_TOKEN",
    "ACP_NATS_NKEY",
];

/// Secret shapes, with what keeps the non-secret part readable.
static SHAPES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // A webhook's or an interaction's token in a Discord URL path.
        (r"(/webhooks/\d+/)[A-Za-z0-9._-]+", "${1}[redacted]"),
        (r"(/interactions/\d+/)[A-Za-z0-9._-]+", "${1}[redacted]"),
        // A Discord bot token: base64 id, timestamp, HMAC.
        (
            r"[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}",
            "[redacted]",
        ),
        // user:password@ in a URL (NATS, a proxy).
        (r"(://[^/\s:@]+:)[^/\s@]+@", "${1}[redacted]@"),
        // An Authorization header's credentials.
        (
            r"(?i)((?:authorization|auth)\W{1,4}(?:bot|bearer|basic)\s+)[^\s,;}\]]+",
            "${1}[redacted]",
        ),
        // A NATS nkey seed.
        (r"\bS[A-Z][A-Z2-7]{56}\b", "[redacted]"),
    ]
    .into_iter()
    .map(|(pattern, with)| (Regex::new(pattern).expect("a valid pattern"), with))
    .collect()
});

/// Secret shapes in `text` replaced (see the module's list); the text as
/// it was when it has none.
#[must_use]
pub fn scrub(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for (shape, with) in SHAPES.iter() {
        if let Cow::Owned(changed) = shape.replace_all(&out, *with) {
            out = Cow::Owned(changed);
        }
    }
    out
}

/// Removes the secrets it knows, and every secret shape, from text.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a value holding another is removed whole.
    values: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.values.len())
    }
}

impl Redactor {
    /// The secrets an environment (the process's and `.env`) holds: the
    /// Discord token, the devlog webhook (its URL and its token), API
    /// tokens, hook secrets (`ACP_HOOK_SECRET_*`), the backup key and NATS
    /// credentials.
    #[must_use]
    pub fn from_env(env: &Env) -> Self {
        let mut values = Vec::new();
        for (key, value) in env {
            let value = value.trim();
            if SECRET_KEYS.contains(&key.as_str()) || key.starts_with("ACP_HOOK_SECRET_") {
                values.push(value.to_owned());
            }
            if key == "DISCORD_DEVLOG_WEBHOOK"
                && let Some(hook) = Webhook::parse(value)
            {
                values.push(hook.token.expose().to_owned());
            }
            if key == "ACP_API_TOKENS" {
                values.extend(
                    value
                        .split(',')
                        .filter_map(|item| item.split_once('='))
                        .map(|(_, secret)| secret.trim().to_owned()),
                );
            }
        }
        values.retain(|v| v.chars().count() >= MIN_SECRET_CHARS);
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Self { values }
    }

    /// `text` without the known secrets and the secret shapes.
    #[must_use]
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = scrub(text);
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), REDACTED));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_and_secret_shapes_are_removed_and_the_rest_kept() {
        let mut env = Env::new();
        env.insert("DISCORD_TOKEN".into(), "plain-bot-secret-value".into());
        env.insert(
            "DISCORD_DEVLOG_WEBHOOK".into(),
            "https://discord.com/api/webhooks/42/hook-secret-token".into(),
        );
        env.insert("ACP_API_TOKENS".into(), "ci=ci-token-0123456789".into());
        env.insert("ACP_HOOK_SECRET_GITHUB".into(), "gh-hook-secret".into());
        env.insert("ACP_HOOK_SECRET_SHORT".into(), "abc".into());
        env.insert("ACP_POLL_MS".into(), "100000000".into());
        let r = Redactor::from_env(&env);
        let text = "token plain-bot-secret-value, ci-token-0123456789 and gh-hook-secret; \
                    POST https://127.0.0.1:9/api/v10/webhooks/42/hook-secret-token?wait=true; \
                    PATCH /webhooks/300/aW50ZXJhY3Rpb24/messages/@original; \
                    /interactions/7/token-7/callback; nats://acp:pa55word@hub:4222; \
                    Authorization: Bot MTAwMDAwMDAwMDAwMDAwMDAx.GhIjKl.abcdefghijklmnopqrstuvwxyz0123; \
                    seed SUAM2F3Y5G7ZQWPCDXV2JX4EU7JQEUJGHZ5LKM6N4V2JQUHZ6OOP3UPABC; poll 100000000 abc";
        let out = r.redact(text);
        for secret in [
            "plain-bot-secret-value",
            "ci-token-0123456789",
            "gh-hook-secret",
            "hook-secret-token",
            "aW50ZXJhY3Rpb24",
            "token-7",
            "pa55word",
            "MTAwMDAwMDAwMDAwMDAwMDAx",
            "SUAM2F3Y5G7ZQWPCDXV2JX4EU7JQEUJGHZ5LKM6N4V2JQUHZ6OOP3UPABC",
        ] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        for kept in [
            "/webhooks/42/[redacted]?wait=true",
            "/webhooks/300/[redacted]/messages/@original",
            "/interactions/7/[redacted]/callback",
            "nats://acp:[redacted]@hub:4222",
            "poll 100000000 abc",
        ] {
            assert!(out.contains(kept), "{kept} not in {out}");
        }
        assert!(matches!(r.redact("nothing secret"), Cow::Borrowed(_)));
        assert!(!format!("{r:?}").contains("secret"));
    }
}
