//! Who may do what from Discord: one ordered level per member, from the
//! configured role ids, checked at run time on every command.

use serde::Serialize;

use crate::app::DiscordConfig;

/// Permission levels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Level {
    /// Anyone in the guild: read-only commands.
    User,
    /// May send messages to agents (`discord.operator_roles`).
    Operator,
    /// May change roles and run backups (`discord.admin_roles`).
    Admin,
}

impl Level {
    /// The level a member with these role ids has.
    #[must_use]
    pub(crate) fn of(roles: &[u64], config: &DiscordConfig) -> Self {
        if roles.iter().any(|r| config.admin_roles.contains(r)) {
            Self::Admin
        } else if roles.iter().any(|r| config.operator_roles.contains(r)) {
            Self::Operator
        } else {
            Self::User
        }
    }

    /// The level of whoever pressed a button, or why acp does not take
    /// the press (it came from another server than `discord.guild_id`).
    pub(crate) fn of_press(
        ci: &serenity::all::ComponentInteraction,
        config: &DiscordConfig,
    ) -> Result<Self, String> {
        let home = config
            .guild_id
            .is_none_or(|g| ci.guild_id.map(serenity::all::GuildId::get) == Some(g));
        if !home {
            return Err(
                "🚫 acp takes commands only in the server set as `discord.guild_id`.".to_owned(),
            );
        }
        let roles: Vec<u64> = ci
            .member
            .as_ref()
            .map(|m| m.roles.iter().map(|r| r.get()).collect())
            .unwrap_or_default();
        Ok(Self::of(&roles, config))
    }

    /// The config key that grants this level.
    #[must_use]
    pub(crate) fn config_key(self) -> &'static str {
        match self {
            Self::User => "(everyone)",
            Self::Operator => "discord.operator_roles",
            Self::Admin => "discord.admin_roles",
        }
    }

    /// The level's name, as shown to people.
    #[must_use]
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_beats_operator_beats_user() {
        let config = DiscordConfig {
            operator_roles: vec![10],
            admin_roles: vec![20],
            ..DiscordConfig::default()
        };
        assert_eq!(Level::of(&[], &config), Level::User);
        assert_eq!(Level::of(&[99, 10], &config), Level::Operator);
        assert_eq!(Level::of(&[10, 20], &config), Level::Admin);
        assert!(Level::User < Level::Operator && Level::Operator < Level::Admin);
    }
}
