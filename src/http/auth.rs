//! Who calls, and what they may do: bearer tokens compared without
//! leaking their length or which one nearly matched, and each route's
//! scope (read, send or admin) checked in one place. A token bound to an
//! agent is held to that agent by the handlers (see [`Caller`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, OriginalUri, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};
use subtle::{ConditionallySelectable as _, ConstantTimeEq as _};

use crate::app::{ApiToken, Refused, Scope};
use crate::model::{AgentId, Registry};

use super::Http;
use super::problem::{Denied, Problem};

/// The configured tokens, each by the SHA-256 of its secret.
pub(crate) struct Tokens(Vec<([u8; 32], Arc<ApiToken>)>);

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl Tokens {
    /// The tokens, with each bound agent checked against the registry
    /// (and written as the registry spells it).
    ///
    /// # Errors
    /// [`Refused`] naming a token bound to an agent that is not configured.
    pub(crate) fn new(tokens: &[ApiToken], agents: &Registry) -> Result<Self, Refused> {
        let mut out = Vec::new();
        for token in tokens {
            let mut token = token.clone();
            if let Some(agent) = &token.agent {
                let known = agents.lookup(agent.as_str()).map_err(|e| {
                    Refused(format!(
                        "the API token {} is bound to {agent}: {e}. Fix its @AGENT in \
                         ACP_API_TOKENS",
                        token.name
                    ))
                })?;
                token.agent = Some(known.id.clone());
            }
            out.push((sha256(token.secret.expose()), Arc::new(token)));
        }
        Ok(Self(out))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The token whose secret is `given`. Fixed-size hashes are compared,
    /// every one of them and in constant time: the time taken tells
    /// neither a secret's length nor which token nearly matched.
    fn find(&self, given: &str) -> Option<&Arc<ApiToken>> {
        let given = sha256(given);
        let mut found = u32::MAX;
        for (i, (digest, _)) in self.0.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            found.conditional_assign(&i, digest[..].ct_eq(&given[..]));
        }
        self.0
            .get(usize::try_from(found).ok()?)
            .map(|(_, token)| token)
    }

    /// The token a request carries, or why it carries none of these.
    fn of(&self, headers: &HeaderMap) -> Result<&Arc<ApiToken>, &'static str> {
        let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
            return Err("no Authorization header");
        };
        let Some(given) = value.strip_prefix("Bearer ") else {
            return Err("the Authorization header is not `Bearer TOKEN`");
        };
        self.find(given.trim())
            .ok_or("the token is not one of this root's API tokens")
    }
}

/// The token that authorized a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Arc<ApiToken>);

impl Caller {
    /// The token's name.
    pub(crate) fn name(&self) -> &str {
        &self.0.name
    }

    /// Who the audit log says did it: `http:NAME`.
    pub(crate) fn actor(&self) -> String {
        format!("http:{}", self.0.name)
    }

    /// The agent the token is bound to, if any.
    pub(crate) fn agent(&self) -> Option<&AgentId> {
        self.0.agent.as_ref()
    }

    pub(crate) fn allows(&self, scope: Scope) -> bool {
        self.0.allows(scope)
    }

    /// 403: the token lacks `scope` for `what`, and how to grant it.
    pub(crate) fn lacks(&self, scope: Scope, what: &str) -> Problem {
        let t = &self.0;
        let has = if t.scopes_written {
            format!("has the scopes {}", t.grants())
        } else {
            "has no scopes written, so it may only read".to_owned()
        };
        let fix = if scope == Scope::Admin && t.agent.is_some() {
            "a token bound to an agent cannot have admin: use a token of a person's".to_owned()
        } else {
            let mut scopes = t.scopes.clone();
            scopes.push(scope);
            scopes.sort();
            scopes.dedup();
            let mut spec = format!(
                "{}:{}",
                t.name,
                scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("+")
            );
            if let Some(agent) = &t.agent {
                spec = format!("{spec}@{agent}");
            }
            let place = if t.source == "ACP_API_TOKEN" {
                "move it from ACP_API_TOKEN into ACP_API_TOKENS in .env"
            } else {
                "write its entry in ACP_API_TOKENS in .env"
            };
            format!("to grant it, {place} as {spec}=SECRET and restart acp run")
        };
        Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "the token {} {has}; {what} needs the {scope} scope: {fix}",
                t.name
            ),
        )
    }

    /// 403: the token is bound to an agent and `what` is another's.
    pub(crate) fn not_its_agent(&self, what: &str) -> Problem {
        let agent = self.agent().map_or("?", AgentId::as_str);
        Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "the token {} is bound to {agent}: it may {what} only as {agent}, and this is \
                 not {agent}'s. Use a token bound to that agent, or one not bound to any",
                self.name()
            ),
        )
    }
}

/// The scope a route needs: reading needs `read`, sending,
/// acknowledging and changing schedules `send`, and roles, the captain,
/// the audit log and starting, stopping and restarting agents `admin`.
fn required(method: &Method, route: &str) -> Scope {
    let agents = *method == Method::POST
        && ["/api/v1/agents", "/api/v1/agents/{agent}/restart"].contains(&route);
    // Removing a schedule is an operator's, as adding one is.
    let schedule = *method == Method::DELETE && route == "/api/v1/schedules/{id}";
    if schedule {
        Scope::Send
    } else if route == "/api/v1/audit" || agents || matches!(*method, Method::PUT | Method::DELETE)
    {
        Scope::Admin
    } else if matches!(*method, Method::GET | Method::HEAD) {
        Scope::Read
    } else {
        Scope::Send
    }
}

fn peer(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Lets a request through with a valid bearer token that has the route's
/// scope; answers 401 or 403 otherwise. Refusals, the handlers' 403s
/// included, are audited through [`super::refusals`].
pub(crate) async fn authorize(
    State(http): State<Http>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // The full path: inside /api/v1 the router sees it without the prefix.
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path(), |u| u.0.path())
        .to_owned();
    // The route's template, not the path: a metrics label per agent name
    // or id asked for would grow without end.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", MatchedPath::as_str);
    let name = format!("{} {route}", request.method());
    let needed = required(request.method(), route);
    let source = peer(&request);
    let token = match http.tokens.of(request.headers()) {
        Ok(token) => Arc::clone(token),
        Err(why) => {
            http.refusals
                .record(source, "http:unauthenticated", "http.auth", &path, why)
                .await;
            let hint = if http.tokens.is_empty() {
                "no API token is set for this root: set ACP_API_TOKENS in .env (see \
                 .env.example) and restart acp run"
            } else {
                "send `Authorization: Bearer TOKEN` with one of the tokens in ACP_API_TOKEN / \
                 ACP_API_TOKENS"
            };
            return Problem::new(StatusCode::UNAUTHORIZED, format!("{why}: {hint}"))
                .into_response();
        }
    };
    let caller = Caller(token);
    let response = if caller.allows(needed) {
        request.extensions_mut().insert(caller.clone());
        next.run(request).await
    } else {
        caller.lacks(needed, &name).into_response()
    };
    if let Some(Denied(why)) = response.extensions().get::<Denied>() {
        http.refusals
            .record(source, &caller.actor(), "http.scope", &path, why)
            .await;
    }
    http.app.record_command(
        "http",
        &name,
        response.status().is_success(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_secret_finds_its_token_and_no_other_does() {
        let mut env = crate::app::Env::new();
        env.insert(
            "ACP_API_TOKENS".into(),
            "a=aaaaaaaaaaaaaaaaaaaa,b:send=bbbbbbbbbbbbbbbbbbbb".into(),
        );
        let config =
            crate::app::Config::from_env_only(std::path::Path::new("/nowhere"), &env).unwrap();
        let tokens = Tokens::new(&config.http.tokens, &Registry::default()).unwrap();
        assert_eq!(tokens.find("bbbbbbbbbbbbbbbbbbbb").unwrap().name, "b");
        assert_eq!(tokens.find("aaaaaaaaaaaaaaaaaaaa").unwrap().name, "a");
        for wrong in ["", "a", "aaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaaaaaaa"] {
            assert!(tokens.find(wrong).is_none(), "{wrong}");
        }
    }

    #[test]
    fn routes_need_read_send_or_admin() {
        assert_eq!(required(&Method::GET, "/api/v1/status"), Scope::Read);
        assert_eq!(required(&Method::GET, "/metrics"), Scope::Read);
        assert_eq!(required(&Method::POST, "/api/v1/messages"), Scope::Send);
        assert_eq!(
            required(&Method::POST, "/api/v1/messages/{id}/ack"),
            Scope::Send
        );
        assert_eq!(
            required(&Method::PUT, "/api/v1/roles/{agent}"),
            Scope::Admin
        );
        assert_eq!(required(&Method::GET, "/api/v1/audit"), Scope::Admin);
        assert_eq!(required(&Method::GET, "/api/v1/agents"), Scope::Read);
        assert_eq!(required(&Method::POST, "/api/v1/agents"), Scope::Admin);
        assert_eq!(
            required(&Method::DELETE, "/api/v1/agents/{agent}"),
            Scope::Admin
        );
        assert_eq!(
            required(&Method::POST, "/api/v1/agents/{agent}/restart"),
            Scope::Admin
        );
        assert_eq!(required(&Method::GET, "/api/v1/schedules"), Scope::Read);
        assert_eq!(required(&Method::POST, "/api/v1/schedules"), Scope::Send);
        assert_eq!(
            required(&Method::DELETE, "/api/v1/schedules/{id}"),
            Scope::Send
        );
        assert_eq!(
            required(&Method::POST, "/api/v1/schedules/{id}/pause"),
            Scope::Send
        );
        assert_eq!(
            required(&Method::GET, "/api/v1/schedules/{id}/firings"),
            Scope::Read
        );
    }
}
