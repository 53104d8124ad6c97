//! `acp hook`, `acp approve`, `acp deny` and `acp prompts`.

use std::io::Read as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use acp::app::{App, Decide};
use acp::model::{Decision, PromptId};

use super::{EXIT_FAILURE, UsageError};

/// `acp hook`: one event on standard input; prints the answer, if any.
/// A bad event is said on standard error with exit 1 and nothing on
/// standard output, so the agent's own dialog stays.
pub(super) async fn hook(app: &Arc<App>) -> Result<ExitCode> {
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .take(acp::hook::MAX_INPUT_BYTES as u64 + 1)
        .read_to_end(&mut input)
        .context("reading the hook's event from standard input")?;
    if input.len() > acp::hook::MAX_INPUT_BYTES {
        return Err(UsageError(format!(
            "the hook's event is over {} bytes: not taken",
            acp::hook::MAX_INPUT_BYTES
        ))
        .into());
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let agent = app.config().default_sender.clone();
    match acp::hook::handle(app, &input, agent.as_deref(), &cwd).await {
        Ok(Some(out)) => {
            outln!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(None) => Ok(ExitCode::SUCCESS),
        Err(acp::hook::HookError::App(e)) => Err(e.into()),
        Err(e) => Err(UsageError(e.to_string()).into()),
    }
}

/// `acp approve ID [--session]`.
pub(super) async fn approve(
    app: &Arc<App>,
    id: &str,
    session: bool,
    json_out: bool,
) -> Result<ExitCode> {
    let decision = if session {
        Decision::AllowSession
    } else {
        Decision::Allow
    };
    decide(app, id, decision, None, json_out).await
}

/// `acp deny ID [--reason TEXT]`.
pub(super) async fn deny(
    app: &Arc<App>,
    id: &str,
    reason: Option<&str>,
    json_out: bool,
) -> Result<ExitCode> {
    decide(app, id, Decision::Deny, reason, json_out).await
}

/// `acp approve` / `acp deny`: the decision the store kept, and whether it
/// was this one (exit 1 when someone decided first).
async fn decide(
    app: &Arc<App>,
    id: &str,
    decision: Decision,
    reason: Option<&str>,
    json_out: bool,
) -> Result<ExitCode> {
    if let Some(agent) = &app.config().default_sender {
        return Err(UsageError(format!(
            "ACP_AGENT is set ({agent}): prompts are answered by a person, not by an agent; run \
             this from your own shell"
        ))
        .into());
    }
    let id: PromptId = app.resolve_prompt(id).await?;
    let by = super::show::actor();
    let result = app.decide(id, decision, &by, reason).await?;
    let (won, kept) = match result {
        Decide::Won(d) => (true, d),
        Decide::Already(d) => (false, d),
        Decide::NotFound => unreachable!("decide refuses unknown prompts"),
    };
    if json_out {
        outln!(
            "{}",
            serde_json::json!({"prompt": id, "decided": kept, "this": won})
        );
    } else if won {
        outln!("prompt {id}: {} by {}", kept.decision.said(), kept.by);
    } else {
        let at = jiff::Timestamp::from_millisecond(kept.at)
            .map_or_else(|_| kept.at.to_string(), |t| format!("{t:.0}"));
        outln!(
            "prompt {id}: already {} by {} at {at}; nothing changed",
            kept.decision.said(),
            kept.by
        );
    }
    Ok(if won {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

/// `acp prompts`: what waits for a person, and each agent's state.
pub(super) async fn list(app: &Arc<App>, json_out: bool) -> Result<ExitCode> {
    let prompts = app.open_prompts().await?;
    let states = app.agent_states().await?;
    if json_out {
        outln!(
            "{}",
            serde_json::json!({"prompts": prompts, "agents": states})
        );
        return Ok(ExitCode::SUCCESS);
    }
    if prompts.is_empty() {
        outln!("no prompt waits for a person");
    }
    for p in &prompts {
        outln!("{}  {}  {}", p.id, p.agent, p.summary);
    }
    outln!();
    for s in &states {
        let detail = s.detail.as_deref().unwrap_or("");
        outln!("{:<16} {:<15} {} {detail}", s.agent, s.state, s.evidence);
    }
    Ok(ExitCode::SUCCESS)
}
