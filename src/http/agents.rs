//! `/api/v1/agents` for agents that come and go: start one in a project
//! (`POST`), stop it (`DELETE`), restart it (`POST .../restart`); the
//! admin scope for each (checked in [`super::auth`]), audited by the core
//! as the token (`http:NAME`).
//!
//! What each refusal answers: an unknown project or a name that is not a
//! started agent 404; a conflict with what is there 409 (an id taken, an
//! agent already stopped or configured rather than started, a worktree
//! with changes that `remove_worktree` would lose); bad input 400.

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::app::SpawnRequest;

use super::api::{Body, query_problem};
use super::problem::Problem;
use super::{Caller, Http};

/// What `POST /agents` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpawnBody {
    project: String,
    /// The first task, sent after the project's onboarding prompt.
    #[serde(default)]
    task: Option<String>,
    /// The new agent's id (default: `<project>-<n>`).
    #[serde(default)]
    id: Option<String>,
}

/// `POST /agents`: starts an agent in a project; 201 with what was done.
pub(crate) async fn spawn(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Body(b): Body<SpawnBody>,
) -> Result<Response, Problem> {
    let app = &http.app;
    // An unknown project is a resource not found, with the projects there
    // are.
    if let Err(e) = app.config().project_named(&b.project) {
        return Err(Problem::new(StatusCode::NOT_FOUND, e.to_string()));
    }
    let report = app
        .spawn(SpawnRequest {
            project: b.project,
            task: b.task,
            id: b.id,
            by: caller.actor(),
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(report)).into_response())
}

/// `?remove_worktree=` of a stop.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StopQuery {
    #[serde(default)]
    remove_worktree: bool,
}

/// `DELETE /agents/{agent}`: stops a started agent, once.
pub(crate) async fn stop(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Path(agent): Path<String>,
    query: Result<Query<StopQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) = query.map_err(|e| query_problem(&e))?;
    let report = http
        .app
        .stop_agent(&agent, q.remove_worktree, &caller.actor())
        .await?;
    Ok(axum::Json(report).into_response())
}

/// `POST /agents/{agent}/restart`: a new window for a started agent.
pub(crate) async fn restart(
    State(http): State<Http>,
    Extension(caller): Extension<Caller>,
    Path(agent): Path<String>,
) -> Result<Response, Problem> {
    let report = http.app.restart_agent(&agent, &caller.actor()).await?;
    Ok(axum::Json(report).into_response())
}
