//! Inbound webhooks: `/hooks/github` and `/hooks/NAME`.
//!
//! Every request must carry `X-Hub-Signature-256: sha256=HEX`, the
//! HMAC-SHA256 of the exact body with the hook's secret
//! (`ACP_HOOK_SECRET_<NAME>` in `.env`). A request without a valid one is
//! answered 401 and stores nothing. The delivery id (`X-GitHub-Delivery`,
//! or `X-Delivery-Id`; else the body's hash) is recorded with the message
//! in one transaction, so a redelivered event is handled once (200
//! `duplicate`). The signature covers the body but not the delivery id, so
//! the body's hash is recorded too: the same body under a new delivery id
//! within [`HOOK_REPLAY_WINDOW`] is a replay, answered 409 and audited,
//! and stores nothing. The `[[http.hooks]]` table maps (repository,
//! branch) to an agent and a short template.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{KeyInit as _, Mac as _};
use serde_json::Value;

use crate::app::{HOOK_REPLAY_WINDOW, HookConfig, HookOutcome, HookRoute};
use crate::model::{AuditOutcome, Draft, Kind, Priority, Recipient};

use super::Http;
use super::problem::Problem;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Whether `signature` (`sha256=HEX`) is the body's HMAC under `secret`,
/// compared in constant time.
fn signed(secret: &str, body: &[u8], signature: Option<&str>) -> bool {
    let Some(hex) = signature.and_then(|s| s.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Some(given) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The facts of an event a template can use.
struct Facts {
    event: String,
    repository: String,
    branch: String,
    action: String,
    conclusion: String,
    title: String,
    number: String,
    url: String,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// The first non-empty of several places in a GitHub payload.
fn first(payload: &Value, paths: &[&str]) -> String {
    paths
        .iter()
        .map(|p| text(payload.pointer(p).unwrap_or(&Value::Null)))
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

fn facts(event: &str, p: &Value) -> Facts {
    let branch = first(
        p,
        &[
            "/workflow_run/head_branch",
            "/check_run/check_suite/head_branch",
            "/check_suite/head_branch",
            "/pull_request/head/ref",
            "/branch",
            "/ref",
        ],
    );
    Facts {
        event: event.to_owned(),
        repository: first(p, &["/repository/full_name", "/repository"]),
        branch: branch
            .strip_prefix("refs/heads/")
            .unwrap_or(&branch)
            .to_owned(),
        action: first(p, &["/action"]),
        conclusion: first(
            p,
            &[
                "/workflow_run/conclusion",
                "/check_run/conclusion",
                "/check_suite/conclusion",
                "/conclusion",
            ],
        ),
        title: first(
            p,
            &[
                "/workflow_run/display_title",
                "/workflow_run/name",
                "/check_run/name",
                "/pull_request/title",
                "/head_commit/message",
                "/title",
                "/text",
            ],
        ),
        number: first(
            p,
            &[
                "/workflow_run/pull_requests/0/number",
                "/check_run/pull_requests/0/number",
                "/pull_request/number",
                "/number",
            ],
        ),
        url: first(
            p,
            &[
                "/workflow_run/html_url",
                "/check_run/html_url",
                "/pull_request/html_url",
                "/compare",
                "/url",
            ],
        ),
    }
}

fn matches(pattern: &str, value: &str) -> bool {
    pattern == "*" || pattern.eq_ignore_ascii_case(value)
}

fn render(template: &str, f: &Facts) -> String {
    let text = template
        .replace("{event}", &f.event)
        .replace("{repository}", &f.repository)
        .replace("{branch}", &f.branch)
        .replace("{action}", &f.action)
        .replace("{conclusion}", &f.conclusion)
        .replace("{title}", &f.title)
        .replace("{number}", &f.number)
        .replace("{url}", &f.url);
    // Facts an event does not have leave no double spaces behind.
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn route<'a>(hook: &'a HookConfig, f: &Facts) -> Option<&'a HookRoute> {
    hook.routes
        .iter()
        .find(|r| matches(&r.repository, &f.repository) && matches(&r.branch, &f.branch))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Refuses a request to hook `name`: audited (as done by the hook), and
/// answered `status` saying `why`, that nothing was stored, and `then`.
async fn refuse(
    app: &crate::app::App,
    name: &str,
    status: StatusCode,
    why: &str,
    then: &str,
) -> Problem {
    let refused = app
        .audit(
            &format!("hook:{name}"),
            "hook.receive",
            Some(name),
            AuditOutcome::Refused,
            Some(why),
        )
        .await;
    if let Err(e) = refused {
        tracing::warn!(error = %e, "cannot audit a refused webhook");
    }
    Problem::new(status, format!("{why}: nothing was stored{then}"))
}

/// `POST /hooks/{name}`.
pub(crate) async fn receive(
    State(http): State<Http>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let app = &http.app;
    let Some(hook) = app.config().http.hooks.iter().find(|h| h.name == name) else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!(
                "no hook named {name}: add [[http.hooks]] with name = \"{name}\" to config/acp.toml"
            ),
        ));
    };
    let source = format!("hook:{name}");
    let signature = header(&headers, "x-hub-signature-256");
    let valid = hook
        .secret
        .as_ref()
        .is_some_and(|s| signed(s.expose(), &body, signature));
    if !valid {
        let why = match (&hook.secret, signature) {
            (None, _) => format!(
                "no secret is set for this hook: set ACP_HOOK_SECRET_{} in .env",
                name.to_ascii_uppercase().replace('-', "_")
            ),
            (Some(_), None) => "no X-Hub-Signature-256 header".to_owned(),
            (Some(_), Some(_)) => "the signature does not match the body and the secret".to_owned(),
        };
        return Err(refuse(app, &name, StatusCode::UNAUTHORIZED, &why, "").await);
    }
    let event = header(&headers, "x-github-event")
        .unwrap_or(&name)
        .to_owned();
    if event == "ping" {
        return Ok((
            StatusCode::OK,
            axum::Json(serde_json::json!({"result": "pong"})),
        )
            .into_response());
    }
    let payload: Value = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON ({e}): send the event's JSON payload"),
        )
    })?;
    let delivery = header(&headers, "x-github-delivery")
        .or_else(|| header(&headers, "x-delivery-id"))
        .map_or_else(|| blake3::hash(&body).to_hex().to_string(), str::to_owned);
    if delivery.len() > 128 {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "the delivery id is over 128 characters",
        ));
    }
    let f = facts(&event, &payload);
    let draft = route(hook, &f).map(|r| -> Result<Draft, Problem> {
        let agent = app
            .agents()
            .lookup(&r.agent)
            .map_err(|e| Problem::from(crate::app::AppError::from(e)))?
            .id
            .clone();
        Ok(Draft {
            from: source.clone(),
            to: Recipient::Agent(agent),
            kind: Kind::System,
            priority: Priority::Normal,
            body: render(&r.template, &f),
            tags: vec![name.clone()],
            reply_to: None,
        })
    });
    let body_hash = blake3::hash(&body).to_hex().to_string();
    let outcome = app
        .accept_hook(&source, &delivery, &body_hash, draft.transpose()?)
        .await?;
    let code = match outcome {
        HookOutcome::Sent { .. } => StatusCode::CREATED,
        HookOutcome::Unrouted | HookOutcome::Duplicate { .. } => StatusCode::OK,
        HookOutcome::Replay { first_received_at } => {
            let why = format!(
                "this body came at {} under another delivery id: a replay",
                crate::model::time::rfc3339(first_received_at)
            );
            let then = format!(
                ". The signature covers the body, not the delivery id, so the same body is \
                 taken once in {} hours: a sender repeating an event on purpose must send a new \
                 body (a redelivery under the same delivery id is answered 200 duplicate)",
                HOOK_REPLAY_WINDOW.as_secs() / 3600
            );
            return Err(refuse(app, &name, StatusCode::CONFLICT, &why, &then).await);
        }
    };
    Ok((code, axum::Json(outcome)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_against_the_exact_body() {
        let mut mac = HmacSha256::new_from_slice(b"s3cret").unwrap();
        mac.update(b"{}");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .fold(String::new(), |mut out, b| {
                use std::fmt::Write as _;
                let _ = write!(out, "{b:02x}");
                out
            });
        let good = format!("sha256={hex}");
        assert!(signed("s3cret", b"{}", Some(&good)));
        assert!(!signed("s3cret", b"{} ", Some(&good)));
        assert!(!signed("other", b"{}", Some(&good)));
        assert!(!signed("s3cret", b"{}", None));
        assert!(!signed("s3cret", b"{}", Some("sha256=zz")));
        assert!(!signed("s3cret", b"{}", Some(&hex)));
    }
}
