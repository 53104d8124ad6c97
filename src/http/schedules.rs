//! `/api/v1/schedules`: the stored schedules `acp run` fires. Reading
//! them takes the read scope; adding, removing, pausing and resuming the
//! send scope (Discord's operator level), each audited by the core as the
//! token (`http:NAME`).
//!
//! A schedule is a person's to set: a token bound to an agent may not
//! change one (a firing is sent as `schedule:ID`, not as the agent), and
//! reads only the schedules that send to it (its own or every agent).
//!
//! What each refusal answers: a cron expression that does not parse 422,
//! with the `field` and `column` at fault; an unknown schedule or agent
//! 404; other bad input 400.

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::app::{NewSchedule, ScheduleView};
use crate::model::schedule::WhenBusy;

use super::api::{Body, bad, priority, query_problem};
use super::problem::Problem;
use super::{Caller, Http};

/// What `POST /schedules` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleBody {
    cron: String,
    /// An agent, `all` or `discord`.
    to: String,
    body: String,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    when_busy: Option<String>,
    /// How long a `wait` firing waits for the agent to go idle.
    #[serde(default)]
    wait_secs: Option<u64>,
    #[serde(default)]
    catch_up: bool,
}

/// A schedule's id from the path.
fn schedule_id(text: &str) -> Result<i64, Problem> {
    text.parse().map_err(|_| {
        bad(format!(
            "{:?} is not a schedule id: an id is a number, as GET /api/v1/schedules shows it",
            text.chars().take(32).collect::<String>()
        ))
    })
}

/// 403 for a token bound to an agent: schedules are a person's to change.
fn persons_only(caller: &Caller) -> Result<(), Problem> {
    match caller.agent() {
        Some(agent) => Err(Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "the token {} is bound to {agent}: schedules are set by a person, not with an \
                 agent's token. Use a token not bound to an agent, with the send scope",
                caller.name()
            ),
        )),
        None => Ok(()),
    }
}

/// Whether a token bound to an agent may read `s`: it sends to that
/// agent (or to every agent). Any other token reads every schedule.
fn visible(caller: &Caller, s: &ScheduleView) -> bool {
    caller
        .agent()
        .is_none_or(|agent| s.to == "all" || s.to.eq_ignore_ascii_case(agent.as_str()))
}

/// `GET /schedules`: each schedule with its last and next firing and how
/// many firings ended each way.
pub(crate) async fn list(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, Problem> {
    let mut schedules = http.app.schedules().await?;
    schedules.retain(|s| visible(&caller, s));
    Ok(axum::Json(schedules).into_response())
}

/// `POST /schedules`: stores a schedule; 201 with it.
pub(crate) async fn add(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Body(b): Body<ScheduleBody>,
) -> Result<Response, Problem> {
    persons_only(&caller)?;
    let when_busy = match b.when_busy.as_deref() {
        None => WhenBusy::default(),
        Some(w) => WhenBusy::parse(w).ok_or_else(|| {
            bad(format!(
                "when_busy {:?}: use wait, skip or deliver",
                w.chars().take(32).collect::<String>()
            ))
        })?,
    };
    let wait = match b.wait_secs {
        Some(0) => return Err(bad("wait_secs must be more than 0, e.g. 600 (10 minutes)")),
        other => other.map(std::time::Duration::from_secs),
    };
    let new = NewSchedule {
        cron: b.cron,
        to: b.to,
        body: b.body,
        priority: priority(b.priority.as_deref())?,
        when_busy,
        wait,
        catch_up: b.catch_up,
    };
    let app = &http.app;
    let id = app.add_schedule(new, &caller.actor()).await?;
    let view = app.schedule(id).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// `DELETE /schedules/{id}`: removes a schedule (its firings stay).
pub(crate) async fn remove(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    persons_only(&caller)?;
    let id = schedule_id(&id)?;
    http.app.remove_schedule(id, &caller.actor()).await?;
    Ok(axum::Json(json!({ "id": id, "removed": true })).into_response())
}

/// `POST /schedules/{id}/pause`.
pub(crate) async fn pause(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    paused(&http, &caller, schedule_id(&id)?, true).await
}

/// `POST /schedules/{id}/resume`: fires again from now on (none missed
/// while it was paused).
pub(crate) async fn resume(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    paused(&http, &caller, schedule_id(&id)?, false).await
}

async fn paused(http: &Http, caller: &Caller, id: i64, pause: bool) -> Result<Response, Problem> {
    persons_only(caller)?;
    http.app.pause_schedule(id, pause, &caller.actor()).await?;
    Ok(axum::Json(http.app.schedule(id).await?).into_response())
}

/// `?limit=` of a schedule's firings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FiringsQuery {
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    50
}

/// `GET /schedules/{id}/firings`: newest first. A token bound to an agent
/// reads those of the schedules it may read.
pub(crate) async fn firings(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<FiringsQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) = query.map_err(|e| query_problem(&e))?;
    let id = schedule_id(&id)?;
    if caller.agent().is_some() {
        let view = http.app.schedule(id).await?;
        if !visible(&caller, &view) {
            return Err(caller.not_its_agent("read schedules"));
        }
    }
    let firings = http.app.firings(id, q.limit.min(1000)).await?;
    Ok(axum::Json(firings).into_response())
}
