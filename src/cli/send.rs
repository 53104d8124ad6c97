//! `acp send` and `acp broadcast`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use acp::app::{App, DeliveryView, SendRequest, ServiceLock};
use acp::model::{DeliveryState, Kind, MessageId, Recipient};

use super::{DevlogCommand, ReplyArgs, RetryArgs, SendOpts, read_body};

/// Sends to `to`, or to everyone when `to` is `None`.
pub(crate) async fn send(
    app: &Arc<App>,
    to: Option<&String>,
    files: &[std::path::PathBuf],
    opts: &SendOpts,
    json_out: bool,
) -> Result<ExitCode> {
    let recipient = match to {
        Some(text) if text.eq_ignore_ascii_case("discord") => Recipient::Discord,
        Some(text) => Recipient::Agent(app.agents().lookup(text)?.id.clone()),
        None => Recipient::Broadcast,
    };
    let from = super::people::sender(app, opts.from.as_deref())?;
    let kind = opts
        .kind
        .unwrap_or(match (&recipient, app.agents().lookup(&from)) {
            (Recipient::Broadcast, _) => Kind::Broadcast,
            (Recipient::Discord, _) => Kind::Report,
            (_, Ok(_)) => Kind::AgentToAgent,
            (_, Err(_)) => Kind::Human,
        });
    let request = SendRequest {
        draft: acp::model::Draft {
            from,
            to: recipient,
            kind,
            priority: opts.priority,
            body: read_body(&opts.message)?,
            tags: opts.tags.clone(),
            reply_to: match &opts.reply_to {
                Some(text) => Some(app.resolve_message(text).await?),
                None => None,
            },
        },
        via: opts.via,
    };
    let message = app.send_with_files(request, files).await?;
    follow_up(app, &message, opts.wait, opts.timeout, json_out).await
}

/// `acp reply ID TEXT`: the answer goes where message ID came from.
pub(crate) async fn reply(app: &Arc<App>, r: &ReplyArgs, json_out: bool) -> Result<ExitCode> {
    let (who, person) = super::people::answerer(app, r.from.as_deref())?;
    let caller = super::people::replier(&who, person.as_ref());
    let body = read_body(&r.message)?;
    let id = app.resolve_message(&r.id).await?;
    let message = app.reply(id, body, caller, r.priority, &r.files).await?;
    follow_up(app, &message, r.wait, r.timeout, json_out).await
}

/// After a message is stored: prints its id, then delivers it here when no
/// `acp run` does (posts to Discord always wait for `acp run`), or waits
/// for the outcome if asked.
async fn follow_up(
    app: &Arc<App>,
    message: &acp::model::UnifiedMessage,
    wait: bool,
    timeout: u64,
    json_out: bool,
) -> Result<ExitCode> {
    let id = message.id;
    if !json_out {
        // The id first, alone, so scripts can take it: it is durable now.
        outln!("{id}");
    }
    outcome(app, message, wait, timeout, json_out, None).await
}

/// Delivers a stored (or queued again) message here when no `acp run`
/// does (posts to Discord always wait for `acp run`), or waits for the
/// outcome if asked; prints it. `extra` goes into the JSON answer.
async fn outcome(
    app: &Arc<App>,
    message: &acp::model::UnifiedMessage,
    wait: bool,
    timeout: u64,
    json_out: bool,
    extra: Option<(&str, serde_json::Value)>,
) -> Result<ExitCode> {
    let id = message.id;
    let service = ServiceLock::is_held(&app.config().root);
    let timeout = Duration::from_secs(timeout);
    let deliveries = if service || message.to == Recipient::Discord {
        if !service && !json_out {
            eprintln!("queued: posts to Discord go out when `acp run` runs for this root");
        }
        if wait {
            app.wait_for(id, timeout).await?
        } else {
            if service && !json_out {
                eprintln!("queued for the running `acp run` service");
            }
            return finish(app, id, None, json_out, false, extra).await;
        }
    } else {
        app.deliver_here(id, wait, timeout).await?
    };
    finish(app, id, Some(deliveries), json_out, wait, extra).await
}

async fn finish(
    app: &App,
    id: MessageId,
    deliveries: Option<Vec<DeliveryView>>,
    json_out: bool,
    wait: bool,
    extra: Option<(&str, serde_json::Value)>,
) -> Result<ExitCode> {
    let deliveries = match deliveries {
        Some(d) => d,
        None => app.read(id).await?.1,
    };
    let failed = deliveries.iter().any(|d| d.state == DeliveryState::Failed);
    let pending = deliveries.iter().any(|d| !d.is_final());
    if json_out {
        let mut out = json!({ "id": id, "deliveries": deliveries });
        if let Some((key, value)) = extra {
            out[key] = value;
        }
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let (out_is_stdout, lines): (bool, Vec<String>) = (
            wait,
            deliveries
                .iter()
                .map(|d| format!("{}: {}{}", d.agent, d.summary(), detail_suffix(d)))
                .collect(),
        );
        for line in lines {
            if out_is_stdout {
                outln!("{line}");
            } else {
                eprintln!("{line}");
            }
        }
        if pending && !wait {
            eprintln!(
                "not delivered yet: it stays queued and `acp run` delivers it (check with `acp \
                 inbox read {id}`)"
            );
        }
    }
    if wait && (failed || pending) {
        if pending && !json_out {
            eprintln!("gave up waiting: the message is stored and still queued");
        }
        return Ok(ExitCode::from(super::EXIT_FAILURE));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn detail_suffix(d: &DeliveryView) -> String {
    match (d.state, &d.detail) {
        (DeliveryState::Delivered, Some(detail)) => format!(" ({detail})"),
        _ => String::new(),
    }
}

/// `acp retry ID` and `acp retry --failed`.
pub(crate) async fn retry(app: &Arc<App>, r: &RetryArgs, json_out: bool) -> Result<ExitCode> {
    let actor = super::show::actor();
    let Some(text) = r.id.as_deref().filter(|_| !r.failed) else {
        return retry_failed(app, r, &actor, json_out).await;
    };
    let id = app.resolve_message(text).await?;
    let queued = app.retry(id, r.agent.as_deref(), &actor).await?;
    if !json_out {
        for q in &queued {
            eprintln!(
                "{id}: queued again for {} (its {} attempt(s) stay in its history)",
                q.agent, q.attempts
            );
        }
    }
    let message = app.read(id).await?.0;
    let extra = ("queued", serde_json::to_value(&queued)?);
    outcome(app, &message, r.wait, r.timeout, json_out, Some(extra)).await
}

/// `acp retry --failed [--agent A] [--since D]`: each one queued again
/// (and delivered here when no `acp run` does), each one skipped with its
/// reason. Exit 1 if any was skipped.
async fn retry_failed(
    app: &Arc<App>,
    r: &RetryArgs,
    actor: &str,
    json_out: bool,
) -> Result<ExitCode> {
    let report = app.retry_failed(r.agent.as_deref(), r.since, actor).await?;
    let service = ServiceLock::is_held(&app.config().root);
    let mut ids: Vec<MessageId> = report.queued.iter().map(|q| q.message_id).collect();
    ids.dedup();
    let mut outcomes = Vec::new();
    for id in ids {
        let deliveries = if service {
            app.read(id).await?.1
        } else {
            app.deliver_here(id, false, Duration::from_secs(r.timeout))
                .await?
        };
        outcomes.push((id, deliveries));
    }
    if json_out {
        let deliveries: serde_json::Map<String, serde_json::Value> = outcomes
            .iter()
            .map(|(id, d)| Ok((id.to_string(), serde_json::to_value(d)?)))
            .collect::<Result<_>>()?;
        let out =
            json!({ "queued": report.queued, "skipped": report.skipped, "deliveries": deliveries });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        if report.queued.is_empty() && report.skipped.is_empty() {
            outln!("no failed deliveries to retry");
        }
        for q in &report.queued {
            outln!(
                "{} -> {}: queued again (after {} attempt(s))",
                q.message_id,
                q.agent,
                q.attempts
            );
        }
        for s in &report.skipped {
            outln!("{} -> {}: skipped: {}", s.message_id, s.agent, s.why);
        }
        for (id, deliveries) in &outcomes {
            for d in deliveries.iter().filter(|d| !service || d.is_final()) {
                outln!("{id} -> {}: {}{}", d.agent, d.summary(), detail_suffix(d));
            }
        }
        if service && !report.queued.is_empty() {
            eprintln!("queued for the running `acp run` service");
        }
    }
    Ok(super::success_if(report.skipped.is_empty()))
}

/// `acp devlog post FILE` and `acp devlog list`.
pub(crate) async fn devlog(
    app: &Arc<App>,
    cmd: &DevlogCommand,
    json_out: bool,
) -> Result<ExitCode> {
    match cmd {
        DevlogCommand::Post {
            file,
            wait,
            timeout,
        } => {
            let post = app.post_devlog(file, None).await?;
            let Some(id) = post.message_id else {
                if json_out {
                    outln!("{}", serde_json::to_string_pretty(&post)?);
                } else {
                    outln!(
                        "devlogs/{} was posted before with this content: nothing new to post \
                         (see `acp devlog list`)",
                        post.path
                    );
                }
                return Ok(ExitCode::SUCCESS);
            };
            if !json_out {
                let what = if post.update { "an update of" } else { "new" };
                eprintln!("devlogs/{}: {what} devlog", post.path);
            }
            let message = app.read(id).await?.0;
            follow_up(app, &message, *wait, *timeout, json_out).await
        }
        DevlogCommand::List { limit } => {
            let versions = app.devlog_versions(*limit).await?;
            if json_out {
                outln!("{}", serde_json::to_string_pretty(&versions)?);
                return Ok(ExitCode::SUCCESS);
            }
            if versions.is_empty() {
                outln!(
                    "no devlogs yet: write one in devlogs/<agent>/ or run `acp devlog post FILE`"
                );
            }
            for v in versions {
                let seen = jiff::Timestamp::from_millisecond(v.seen_at)
                    .map_or_else(|_| v.seen_at.to_string(), |t| format!("{t:.0}"));
                let agent = if v.agent.is_empty() { "-" } else { &v.agent };
                let state = match (&v.message_id, v.state) {
                    (None, _) => "seen before watching began: not posted".to_owned(),
                    (Some(_), Some(DeliveryState::Delivered)) => format!(
                        "posted in channel {} as {}",
                        v.channel_id.unwrap_or_default(),
                        v.discord_ids
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    (Some(_), Some(state)) => state.to_string(),
                    (Some(_), None) => "unknown".to_owned(),
                };
                outln!("{seen}  {agent:<12} devlogs/{}  {state}", v.path);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
