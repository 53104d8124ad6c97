//! `[attention]`: who is pinged when a prompt waits too long.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Source};
use crate::model::Mentions;

/// How long a prompt waits before people are pinged, and whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionConfig {
    /// A prompt still undecided this long after it was raised gets one
    /// reminder that pings [`AttentionConfig::mentions`]; `None`: never.
    pub mention_after: Option<Duration>,
    /// Who the reminder pings (default: `discord.operator_roles`).
    pub mentions: Mentions,
}

impl Default for AttentionConfig {
    fn default() -> Self {
        Self {
            mention_after: Some(Duration::from_secs(300)),
            mentions: Mentions::default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(
    clippy::struct_field_names,
    reason = "the keys people write under [attention]"
)]
pub(super) struct RawAttention {
    mention_after_secs: Option<i64>,
    mention_roles: Option<Vec<i64>>,
    mention_users: Option<Vec<i64>>,
}

/// Discord ids under `key`: each a positive id, none twice, at most
/// [`Mentions::MAX_EACH`].
fn ids(src: &Source<'_>, key: &str, list: Vec<i64>) -> Result<Vec<u64>, ConfigError> {
    if list.len() > Mentions::MAX_EACH {
        return Err(src.invalid(
            key,
            format!(
                "{} ids: Discord pings at most {} per post; name a role instead",
                list.len(),
                Mentions::MAX_EACH
            ),
        ));
    }
    let mut out = Vec::new();
    for v in list {
        let id = src.int_in(key, v, 1, i64::MAX)?;
        if out.contains(&id) {
            return Err(src.invalid(key, format!("{id} is listed twice")));
        }
        out.push(id);
    }
    Ok(out)
}

/// Applies the file's `[attention]`; `operator_roles` are pinged unless
/// `mention_roles` says otherwise.
pub(super) fn apply_attention(
    src: &Source<'_>,
    raw: RawAttention,
    operator_roles: &[u64],
    attention: &mut AttentionConfig,
) -> Result<(), ConfigError> {
    if let Some(v) = raw.mention_after_secs {
        let secs = src.int_in("attention.mention_after_secs", v, 0, 7 * 24 * 3600)?;
        attention.mention_after = (secs > 0).then(|| Duration::from_secs(secs));
    }
    attention.mentions.roles = match raw.mention_roles {
        Some(list) => ids(src, "attention.mention_roles", list)?,
        None => operator_roles
            .iter()
            .take(Mentions::MAX_EACH)
            .copied()
            .fold(Vec::new(), |mut out, id| {
                if !out.contains(&id) {
                    out.push(id);
                }
                out
            }),
    };
    if let Some(list) = raw.mention_users {
        attention.mentions.users = ids(src, "attention.mention_users", list)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, Env};

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(Path::new("/r"), text, &Env::new())
    }

    #[test]
    fn operators_are_pinged_after_five_minutes_unless_told_otherwise() {
        let c = load("[discord]\noperator_roles = [11, 12]\n").unwrap();
        assert_eq!(c.attention.mention_after, Some(Duration::from_secs(300)));
        assert_eq!(c.attention.mentions.roles, [11, 12]);
        assert!(c.attention.mentions.users.is_empty());
        let c = load(
            "[discord]\noperator_roles = [11]\n[attention]\nmention_after_secs = 0\nmention_roles \
             = []\nmention_users = [99]\n",
        )
        .unwrap();
        assert_eq!(c.attention.mention_after, None);
        assert!(c.attention.mentions.roles.is_empty());
        assert_eq!(c.attention.mentions.users, [99]);
        for (text, says) in [
            (
                "[attention]\nmention_after_secs = -1\n",
                "mention_after_secs",
            ),
            ("[attention]\nmention_roles = [0]\n", "mention_roles"),
            ("[attention]\nmention_users = [5, 5]\n", "listed twice"),
            ("[attention]\nmention_everyone = true\n", "mention_everyone"),
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
        let many: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
        let err = load(&format!(
            "[attention]\nmention_users = [{}]\n",
            many.join(", ")
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("at most 100"), "{err}");
    }
}
