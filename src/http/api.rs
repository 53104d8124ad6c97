//! `/api/v1/`: the core's operations as JSON, with the command line's
//! validation and error texts, as problem details.

use axum::Extension;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::app::{AppError, Scope, SendRequest};
use crate::model::{AgentId, Draft, Kind, MessageId, Priority, Recipient, Via};

use super::guard::BodyTimedOut;
use super::problem::Problem;
use super::{Caller, Http};

/// A JSON body, refused as problem details: 413 past the size limit, 400
/// for anything that is not the JSON the endpoint takes (saying where).
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(body_problem(&rejection)),
        }
    }
}

/// Whether reading the body failed on its deadline.
fn timed_out(rejection: &JsonRejection) -> Option<&BodyTimedOut> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<BodyTimedOut>() {
            return Some(t);
        }
        next = e.source();
    }
    None
}

fn body_problem(rejection: &JsonRejection) -> Problem {
    if let Some(t) = timed_out(rejection) {
        return Problem::new(StatusCode::REQUEST_TIMEOUT, t.to_string());
    }
    match rejection {
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is over http.max_body_bytes: send less (a message body is at \
                 most limits.max_body_bytes)",
            )
        }
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON, with Content-Type: application/json",
        ),
        other => Problem::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the body is not what this endpoint takes: {}",
                other.body_text()
            ),
        ),
    }
}

pub(crate) fn query_problem(rejection: &QueryRejection) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        format!("bad query string: {}", rejection.body_text()),
    )
}

/// What `POST /messages` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendBody {
    /// An agent id, or `discord`.
    to: String,
    body: String,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    /// Who sends it (default: `person:<token name>`, or the token's
    /// agent). Another name needs the admin scope.
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(default)]
    via: Option<String>,
}

/// What `POST /broadcast` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BroadcastBody {
    body: String,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

pub(crate) fn bad(e: impl std::fmt::Display) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, e.to_string())
}

pub(crate) fn priority(p: Option<&str>) -> Result<Priority, Problem> {
    p.map_or(Ok(Priority::Normal), |p| p.parse().map_err(bad))
}

fn message_id(text: &str) -> Result<MessageId, Problem> {
    text.parse().map_err(bad)
}

/// Whether `text` names `agent` (as the registry reads names).
fn names(http: &Http, text: &str, agent: &AgentId) -> bool {
    http.app.agents().lookup(text).is_ok_and(|a| a.id == *agent)
}

/// Who a message is from: the token's agent for a token bound to one;
/// else the person the token names (`person:NAME`, whose inbox gets the
/// answers; `http:NAME` for a name no person can have) unless it has
/// admin, which may name anyone (an agent, a person, `discord:...`).
fn sender(http: &Http, caller: &Caller, from: Option<String>) -> Result<String, Problem> {
    let own = caller
        .person()
        .map_or_else(|| caller.actor(), |p| p.sender());
    match (caller.agent(), from) {
        (Some(agent), None) => Ok(agent.to_string()),
        (Some(agent), Some(f)) if names(http, &f, agent) => Ok(agent.to_string()),
        (Some(_), Some(_)) => Err(caller.not_its_agent("send")),
        (None, None) => Ok(own),
        // `http:NAME`, as tokens signed before people had inboxes.
        (None, Some(f)) if f == own || f == caller.actor() => Ok(own),
        (None, Some(f)) if caller.allows(Scope::Admin) => Ok(f),
        (None, Some(_)) => Err(caller.lacks(Scope::Admin, "sending as someone else (`from`)")),
    }
}

/// Stores a message, audits it under the token's name, answers 201.
async fn store(http: &Http, caller: &Caller, request: SendRequest) -> Result<Response, Problem> {
    let app = &http.app;
    // Audited in the message's own transaction.
    let message = app
        .send_audited(request, &caller.actor(), "api.send")
        .await?;
    let body = json!({
        "id": message.id,
        "message": message,
        "delivering": app.delivering(),
    });
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

/// `POST /messages`: send to one agent (or `discord`).
pub(crate) async fn send(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Body(b): Body<SendBody>,
) -> Result<Response, Problem> {
    let app = &http.app;
    let to = if b.to.eq_ignore_ascii_case("discord") {
        Recipient::Discord
    } else {
        Recipient::Agent(
            app.agents()
                .lookup(&b.to)
                .map_err(AppError::from)?
                .id
                .clone(),
        )
    };
    let from = sender(&http, &caller, b.from)?;
    let kind = match b.kind.as_deref() {
        Some(k) => k.parse().map_err(bad)?,
        None if to == Recipient::Discord => Kind::Report,
        None if app.agents().lookup(&from).is_ok() => Kind::AgentToAgent,
        None => Kind::Human,
    };
    let request = SendRequest {
        draft: Draft {
            from,
            to,
            kind,
            priority: priority(b.priority.as_deref())?,
            body: b.body,
            tags: b.tags,
            reply_to: b.reply_to.as_deref().map(message_id).transpose()?,
        },
        via: b
            .via
            .as_deref()
            .map_or(Ok(Via::Auto), |v| v.parse().map_err(bad))?,
    };
    store(&http, &caller, request).await
}

/// `POST /broadcast`: one delivery per agent.
pub(crate) async fn broadcast(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Body(b): Body<BroadcastBody>,
) -> Result<Response, Problem> {
    let request = SendRequest {
        draft: Draft {
            from: sender(&http, &caller, b.from)?,
            to: Recipient::Broadcast,
            kind: Kind::Broadcast,
            priority: priority(b.priority.as_deref())?,
            body: b.body,
            tags: b.tags,
            reply_to: None,
        },
        via: Via::Auto,
    };
    store(&http, &caller, request).await
}

/// `GET /messages/{id}`: a message and its deliveries, with every attempt.
/// A token bound to an agent reads only what that agent sent or was sent.
pub(crate) async fn message(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let (message, deliveries) = http.app.read(message_id(&id)?).await?;
    if let Some(agent) = caller.agent() {
        let its = message.from.eq_ignore_ascii_case(agent.as_str())
            || deliveries.iter().any(|d| d.agent == agent.as_str());
        if !its {
            return Err(caller.not_its_agent("read messages"));
        }
    }
    Ok(axum::Json(json!({ "message": message, "deliveries": deliveries })).into_response())
}

/// What `POST /messages/{id}/ack` takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AckBody {
    #[serde(default)]
    agent: Option<String>,
    /// The person acknowledging for the agent (default: the token's name).
    #[serde(default)]
    by: Option<String>,
}

/// `POST /messages/{id}/ack`: a person acknowledges for an agent, or a
/// token bound to an agent for that agent (its own messages only).
pub(crate) async fn ack(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Body(b): Body<AckBody>,
) -> Result<Response, Problem> {
    let actor = caller.actor();
    let id = message_id(&id)?;
    let (agent, result) = if let Some(me) = caller.agent() {
        if b.by.is_some() || b.agent.as_deref().is_some_and(|a| !names(&http, a, me)) {
            return Err(caller.not_its_agent("acknowledge messages"));
        }
        // The core refuses (403) a message that is not this agent's.
        http.app
            .ack(id, None, Some(me.as_str()), None, &actor)
            .await?
    } else {
        // A person's inbox is acknowledged by that person's token (or an
        // admin's); an agent's message by any token that may send.
        let target = if let Some(agent) = b.agent.clone() {
            Some(agent)
        } else {
            let (_, deliveries) = http.app.read(id).await?;
            match deliveries.as_slice() {
                [one] => Some(one.agent.clone()),
                _ => None,
            }
        };
        if let Some(target) = &target {
            super::people::may_ack_for(&caller, target)?;
        }
        let own = caller.person().map(|p| p.sender());
        let by = match b.by {
            Some(by) => Some(by),
            None if own.is_some() && target == own => None,
            None => Some(actor.clone()),
        };
        http.app
            .ack(id, target.as_deref(), None, by.as_deref(), &actor)
            .await?
    };
    Ok(axum::Json(json!({ "agent": agent, "ack": result })).into_response())
}

/// What `POST /messages/{id}/retry` takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryBody {
    /// Only the delivery to this agent.
    #[serde(default)]
    agent: Option<String>,
}

/// `POST /messages/{id}/retry`: queues the message's failed deliveries
/// again (the store takes each from failed to queued once; 409 saying
/// each one's state when none is failed), audited as the token. A token
/// bound to an agent retries only what that agent sent.
pub(crate) async fn retry(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Body(b): Body<RetryBody>,
) -> Result<Response, Problem> {
    let id = message_id(&id)?;
    if let Some(me) = caller.agent() {
        let (message, _) = http.app.read(id).await?;
        if !message.from.eq_ignore_ascii_case(me.as_str()) {
            return Err(caller.not_its_agent("retry messages"));
        }
    }
    let queued = http
        .app
        .retry(id, b.agent.as_deref(), &caller.actor())
        .await?;
    Ok(axum::Json(json!({
        "id": id,
        "queued": queued,
        "delivering": http.app.delivering(),
    }))
    .into_response())
}

/// What `POST /prompts/{id}/decision` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    /// `allow`, `allow_session` or `deny`.
    decision: String,
    /// A deny's reason, told to the agent.
    #[serde(default)]
    reason: Option<String>,
}

/// `GET /prompts`: the prompts waiting for a person and every agent's
/// state (a token bound to an agent: its own only).
pub(crate) async fn prompts(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, Problem> {
    let mut prompts = http.app.open_prompts().await?;
    let mut agents = http.app.agent_states().await?;
    if let Some(me) = caller.agent() {
        prompts.retain(|p| p.agent == *me);
        agents.retain(|a| a.agent == me.as_str());
    }
    Ok(axum::Json(json!({ "prompts": prompts, "agents": agents })).into_response())
}

/// `POST /prompts/{id}/decision`: decides a prompt as a person would
/// (audited as the token); 409 when someone decided first, saying who.
pub(crate) async fn decide(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Body(b): Body<DecisionBody>,
) -> Result<Response, Problem> {
    use crate::model::Decision;
    if let Some(agent) = caller.agent() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "the token {} is bound to {agent}: prompts are answered by a person, not with an \
                 agent's token. Use a token not bound to an agent, with the send scope",
                caller.name()
            ),
        ));
    }
    let id: crate::model::PromptId = id.parse().map_err(bad)?;
    let decision = match b.decision.as_str() {
        "allow" => Decision::Allow,
        "allow_session" => Decision::AllowSession,
        "deny" => Decision::Deny,
        other => {
            return Err(bad(format!(
                "decision {other:?}: use allow, allow_session or deny"
            )));
        }
    };
    match http
        .app
        .decide(id, decision, &caller.actor(), b.reason.as_deref())
        .await?
    {
        crate::app::Decide::Won(kept) => {
            Ok(axum::Json(json!({ "prompt": id, "decided": kept })).into_response())
        }
        crate::app::Decide::Already(kept) => Err(Problem::new(
            StatusCode::CONFLICT,
            format!(
                "prompt {id} was already {} by {}: this decision was not used",
                kept.decision.said(),
                kept.by
            ),
        )),
        crate::app::Decide::NotFound => Err(crate::app::AppError::NoPrompt(id).into()),
    }
}

/// `GET /status`.
pub(crate) async fn status(State(http): State<Http>) -> Result<Response, Problem> {
    let status = http.app.status().await?;
    Ok(axum::Json(json!({
        "status": status,
        "uptime_secs": http.app.uptime().as_secs(),
        "discord": http.app.discord_link().as_str(),
    }))
    .into_response())
}

/// `GET /agents` and `GET /roles`: agents with roles and the captain.
pub(crate) async fn agents(State(http): State<Http>) -> Result<Response, Problem> {
    Ok(axum::Json(http.app.agent_views().await?).into_response())
}

/// `?unread=&limit=` of an inbox listing (an agent's or a person's).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InboxQuery {
    #[serde(default)]
    pub(crate) unread: bool,
    #[serde(default = "default_limit")]
    pub(crate) limit: usize,
}

fn default_limit() -> usize {
    50
}

/// `GET /agents/{agent}/inbox` (a token bound to an agent: its own only).
pub(crate) async fn inbox(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Path(agent): Path<String>,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    if let Some(me) = caller.agent()
        && !names(&http, &agent, me)
    {
        return Err(caller.not_its_agent("read inboxes"));
    }
    let Query(q) = query.map_err(|e| query_problem(&e))?;
    let entries = http.app.inbox(&agent, q.unread, q.limit.min(500)).await?;
    Ok(axum::Json(entries).into_response())
}

/// What `PUT /roles/{agent}` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleBody {
    role: String,
}

/// `PUT /roles/{agent}`.
pub(crate) async fn set_role(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Path(agent): Path<String>,
    Body(b): Body<RoleBody>,
) -> Result<Response, Problem> {
    let id = http.app.set_role(&agent, &b.role, &caller.actor()).await?;
    Ok(axum::Json(json!({ "agent": id, "role": b.role.trim() })).into_response())
}

/// What `PUT /captain` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaptainBody {
    agent: String,
}

/// `PUT /captain`.
pub(crate) async fn set_captain(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Body(b): Body<CaptainBody>,
) -> Result<Response, Problem> {
    let id = http.app.set_captain(&b.agent, &caller.actor()).await?;
    Ok(axum::Json(json!({ "captain": id })).into_response())
}

/// `?limit=` of the audit log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    #[serde(default = "default_limit")]
    limit: usize,
}

/// `GET /audit`: the audit log, newest first.
pub(crate) async fn audit(
    State(http): State<Http>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) = query.map_err(|e| query_problem(&e))?;
    Ok(axum::Json(http.app.audit_log(q.limit.min(1000)).await?).into_response())
}

/// The API's OpenAPI description.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

/// `GET /openapi.json`.
pub(crate) async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

/// Any other path under `/api/v1/`.
pub(crate) async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no such endpoint: see /api/v1/openapi.json for the API",
    )
}
