//! The HTTP API's bearer tokens and what each may do, from `.env`:
//! `ACP_API_TOKEN=SECRET` (named `api`) and
//! `ACP_API_TOKENS=NAME[:SCOPE+SCOPE][@AGENT]=SECRET,...`.
//!
//! Secrets live in `.env` only. A token whose scopes are not written may
//! only read: sending, acknowledging and changing roles are granted by
//! name, so a token made before scopes existed cannot do more than look.

use std::fmt;

use crate::model::AgentId;

use super::{ConfigError, Env, Secret, Source};

/// One thing a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Status, agents, roles, messages and inboxes, the page and metrics.
    Read,
    /// Send and broadcast (as the token, or as its agent), acknowledge.
    Send,
    /// Everything: roles, the captain, the audit log, sending as anyone.
    Admin,
}

impl Scope {
    /// Every scope, in the order they are written.
    pub const ALL: [Self; 3] = [Self::Read, Self::Send, Self::Admin];

    /// The scope as written.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Send => "send",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a token may do when `ACP_API_TOKENS` writes no scopes for it.
pub const DEFAULT_SCOPES: &[Scope] = &[Scope::Read];

/// A bearer token for the API: the name audits record, its secret, its
/// scopes, and the agent it is bound to, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub name: String,
    pub secret: Secret,
    /// What it may do (never empty: [`DEFAULT_SCOPES`] when none are
    /// written).
    pub scopes: Vec<Scope>,
    /// Whether its scopes were written, or are the default.
    pub scopes_written: bool,
    /// A token bound to an agent sends only as that agent and reads and
    /// acknowledges only that agent's messages.
    pub agent: Option<AgentId>,
    /// The variable it came from (`ACP_API_TOKEN` or `ACP_API_TOKENS`).
    pub source: &'static str,
}

impl ApiToken {
    /// Whether it may do `scope` (admin may do everything).
    #[must_use]
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }

    /// Its scopes and binding as written in `ACP_API_TOKENS`:
    /// `read+send@Agent-1`.
    #[must_use]
    pub fn grants(&self) -> String {
        let scopes: Vec<&str> = self.scopes.iter().map(|s| s.as_str()).collect();
        match &self.agent {
            Some(agent) => format!("{}@{agent}", scopes.join("+")),
            None => scopes.join("+"),
        }
    }
}

/// A token name: what the audit log shows after `http:`.
fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A token's name, its scopes if written, and its agent.
type Spec = (String, Option<Vec<Scope>>, Option<AgentId>);

/// Reads `NAME[:SCOPE+SCOPE][@AGENT]`, the part before `=`.
fn spec(src: &Source<'_>, text: &str) -> Result<Spec, ConfigError> {
    const KEY: &str = "ACP_API_TOKENS";
    let (rest, agent) = match text.split_once('@') {
        Some((rest, agent)) => {
            let id: AgentId = agent
                .trim()
                .parse()
                .map_err(|e: crate::model::AgentError| {
                    src.invalid(KEY, format!("token {rest:?}: @{agent}: {e}"))
                })?;
            (rest, Some(id))
        }
        None => (text, None),
    };
    let (name, scopes) = match rest.split_once(':') {
        Some((name, list)) => {
            let mut scopes = Vec::new();
            for word in list.split('+') {
                let scope = Scope::ALL
                    .into_iter()
                    .find(|s| s.as_str().eq_ignore_ascii_case(word.trim()))
                    .ok_or_else(|| {
                        src.invalid(
                            KEY,
                            format!(
                                "token {name:?}: unknown scope {:?}: use read, send or admin, \
                                 joined by + (name:read+send=SECRET)",
                                word.trim().chars().take(32).collect::<String>()
                            ),
                        )
                    })?;
                if !scopes.contains(&scope) {
                    scopes.push(scope);
                }
            }
            scopes.sort();
            (name.trim(), Some(scopes))
        }
        None => (rest.trim(), None),
    };
    if !name_ok(name) {
        return Err(src.invalid(
            KEY,
            format!(
                "{:?} is not a token name: use 1 to 32 letters, digits, '-', '_' or '.'",
                name.chars().take(40).collect::<String>()
            ),
        ));
    }
    if agent.is_some() && scopes.as_deref().is_some_and(|s| s.contains(&Scope::Admin)) {
        return Err(src.invalid(
            KEY,
            format!(
                "token {name} is bound to an agent and has admin: an agent's token may not \
                 change roles or act as others; drop admin, or the @AGENT"
            ),
        ));
    }
    Ok((name.to_owned(), scopes, agent))
}

/// Reads the tokens in `ACP_API_TOKEN` and `ACP_API_TOKENS`.
pub(super) fn tokens_from_env(src: &Source<'_>, env: &Env) -> Result<Vec<ApiToken>, ConfigError> {
    let mut tokens: Vec<ApiToken> = Vec::new();
    if let Some(t) = env.get("ACP_API_TOKEN").filter(|v| !v.trim().is_empty()) {
        tokens.push(ApiToken {
            name: "api".to_owned(),
            secret: Secret(t.trim().to_owned()),
            scopes: DEFAULT_SCOPES.to_vec(),
            scopes_written: false,
            agent: None,
            source: "ACP_API_TOKEN",
        });
    }
    if let Some(list) = env.get("ACP_API_TOKENS") {
        for item in list.split(',').filter(|i| !i.trim().is_empty()) {
            let (spec_text, secret) = item.trim().split_once('=').ok_or_else(|| {
                src.invalid(
                    "ACP_API_TOKENS",
                    "write NAME=SECRET pairs, separated by commas (with scopes: \
                     NAME:read+send@AGENT=SECRET)",
                )
            })?;
            let (name, scopes, agent) = spec(src, spec_text)?;
            tokens.push(ApiToken {
                name,
                secret: Secret(secret.trim().to_owned()),
                scopes_written: scopes.is_some(),
                scopes: scopes.unwrap_or_else(|| DEFAULT_SCOPES.to_vec()),
                agent,
                source: "ACP_API_TOKENS",
            });
        }
    }
    for (i, token) in tokens.iter().enumerate() {
        if token.secret.expose().len() < 16 {
            return Err(src.invalid(
                token.source,
                format!(
                    "the token named {} is shorter than 16 characters: make a long random one \
                     (for example `openssl rand -hex 32`)",
                    token.name
                ),
            ));
        }
        if let Some(other) = tokens[..i].iter().find(|o| o.name == token.name) {
            return Err(src.invalid(
                token.source,
                format!(
                    "two tokens are named {} ({} and {}): the audit log could not tell them \
                     apart; rename one",
                    token.name, other.source, token.source
                ),
            ));
        }
        if let Some(other) = tokens[..i].iter().find(|o| o.secret == token.secret) {
            return Err(src.invalid(
                token.source,
                format!(
                    "tokens {} and {} have the same secret: give each its own",
                    other.name, token.name
                ),
            ));
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &str) -> Result<Vec<ApiToken>, ConfigError> {
        let mut env = Env::new();
        env.insert("ACP_API_TOKENS".into(), list.into());
        tokens_from_env(
            &Source {
                file: "environment",
            },
            &env,
        )
    }

    const S1: &str = "0123456789abcdef0";
    const S2: &str = "0123456789abcdef1";

    #[test]
    fn old_pairs_still_read_and_may_only_read() {
        let t = parse(&format!("ci={S1}")).unwrap();
        assert_eq!(t[0].name, "ci");
        assert_eq!(t[0].scopes, vec![Scope::Read]);
        assert!(!t[0].scopes_written);
        assert!(t[0].allows(Scope::Read) && !t[0].allows(Scope::Send));
    }

    #[test]
    fn scopes_and_an_agent_are_written_before_the_secret() {
        let t = parse(&format!("ci:send+read={S1}, a1:send+read@Agent-1={S2}=")).unwrap();
        assert_eq!(t[0].scopes, vec![Scope::Read, Scope::Send]);
        assert!(t[0].scopes_written && t[0].agent.is_none());
        assert_eq!(t[1].agent.as_ref().unwrap().as_str(), "Agent-1");
        // A secret may end in '=' (base64).
        assert_eq!(t[1].secret.expose(), format!("{S2}="));
        assert_eq!(t[1].grants(), "read+send@Agent-1");
        let admin = parse(&format!("ops:admin={S1}")).unwrap();
        assert!(admin[0].allows(Scope::Send) && admin[0].allows(Scope::Read));
    }

    #[test]
    fn mistakes_are_refused_with_what_to_write() {
        for (list, says) in [
            (format!("ci:write={S1}"), "unknown scope"),
            (format!("ci:={S1}"), "unknown scope"),
            (format!("a1:admin@Agent-1={S1}"), "drop admin"),
            (format!("a1:send@not an id={S1}"), "@not an id"),
            (format!("bad name:read={S1}"), "not a token name"),
            ("ci=short".to_owned(), "shorter than 16"),
            (format!("ci={S1},ci:send={S2}"), "two tokens are named ci"),
            (format!("ci={S1},cd:send={S1}"), "same secret"),
        ] {
            let e = parse(&list).unwrap_err().to_string();
            assert!(e.contains(says), "{list}: {e}");
        }
    }
}
