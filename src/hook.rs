//! `acp hook`: the command Claude Code and Codex run as a command hook,
//! with the event as JSON on standard input. A front door over the core:
//! it reads the event, tells the core what it shows (the agent's state, a
//! prompt, a message the agent took), and for a permission request waits
//! for the decision, with a deadline, and prints it in the agent's format.
//! Printing nothing leaves the agent's own dialog up.

use std::path::Path;

use serde_json::{Value, json};

use crate::app::{App, AppError, Ask};
use crate::model::{AgentId, AgentState, Decided, Decision, PromptSource};

/// The largest event read from standard input.
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// Why a hook event was not taken.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(
        "the hook's input is not a JSON object with hook_event_name ({0}): run acp hook from the \
         agent's hook settings (see docs/prompts.md), which give it the event on standard input"
    )]
    BadInput(String),
    #[error(
        "no agent for this hook: set ACP_AGENT=AGENT in the agent's environment, or run the agent \
         in its workspace ({0} is in none)"
    )]
    NoAgent(String),
    #[error(transparent)]
    App(#[from] AppError),
}

/// The event's text field `key`, if any.
fn text<'a>(event: &'a Value, key: &str) -> Option<&'a str> {
    event.get(key).and_then(Value::as_str)
}

/// What a tool wants to do, in one line, and all of it.
fn describe(tool: &str, input: &Value) -> (String, String) {
    let main = [
        "command",
        "file_path",
        "path",
        "url",
        "pattern",
        "description",
    ]
    .iter()
    .find_map(|k| input.get(*k).and_then(Value::as_str))
    .unwrap_or("");
    let first = main.lines().next().unwrap_or("").trim();
    let summary = if first.is_empty() {
        tool.to_owned()
    } else {
        format!("{tool}: {first}")
    };
    let detail = match input.get("command").and_then(Value::as_str) {
        Some(command) => command.to_owned(),
        None => serde_json::to_string_pretty(input).unwrap_or_default(),
    };
    (summary, detail)
}

/// The answer to a permission request, in the format both agents read.
fn answer(decided: &Decided, event: &Value, tool: &str) -> Option<Value> {
    let decision = match decided.decision {
        Decision::Allow => json!({"behavior": "allow"}),
        Decision::AllowSession => {
            // Echoing a suggestion with the session as its destination is
            // what picking "allow for this session" in the dialog does.
            let mut rules: Vec<Value> = event
                .get("permission_suggestions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for rule in &mut rules {
                rule["destination"] = json!("session");
            }
            if rules.is_empty() {
                rules.push(json!({
                    "type": "addRules",
                    "rules": [{"toolName": tool}],
                    "behavior": "allow",
                    "destination": "session",
                }));
            }
            json!({"behavior": "allow", "updatedPermissions": rules})
        }
        Decision::Deny => json!({
            "behavior": "deny",
            "message": decided.reason.clone().unwrap_or_else(|| format!(
                "A person denied this ({}, through acp). Do not try it another way: ask what to do \
                 instead.",
                decided.by
            )),
        }),
        Decision::AtTerminal | Decision::Expired => return None,
    };
    Some(json!({
        "hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": decision}
    }))
}

/// A permission request: raised as a prompt, held until decided (or the
/// deadline), answered in the agent's format. Questions and plans pass.
async fn permission(
    app: &App,
    event: &Value,
    agent: AgentId,
    session: Option<String>,
    evidence: &str,
) -> Result<Option<String>, HookError> {
    let tool = text(event, "tool_name").unwrap_or("a tool").to_owned();
    let input = event.get("tool_input").cloned().unwrap_or(Value::Null);
    // Questions and plans have their own dialogs: shown, not held.
    if matches!(tool.as_str(), "AskUserQuestion" | "ExitPlanMode") {
        let (summary, _) = describe(&tool, &input);
        app.record_state(&agent, AgentState::Asking, evidence, Some(&summary))
            .await?;
        return Ok(None);
    }
    if text(event, "permission_mode") == Some("bypassPermissions") {
        return Ok(None);
    }
    // A new request of the same session: any earlier one was answered at
    // the terminal.
    app.answered_at_terminal(&agent, session.as_deref()).await?;
    let (summary, detail) = describe(&tool, &input);
    // Codex (its events carry a turn id) refuses a hook's "allow for the
    // session"; Claude Code takes it.
    let allow_session = event.get("turn_id").is_none();
    let prompt = app
        .raise_prompt(Ask {
            agent,
            source: PromptSource::Hook,
            tool: Some(tool.clone()),
            summary,
            detail,
            allow_session,
            session,
            choices: Vec::new(),
            fingerprint: None,
        })
        .await?;
    let decided = app
        .wait_decision(prompt.id, app.config().approval.timeout)
        .await?;
    Ok(answer(&decided, event, &tool).map(|v| v.to_string()))
}

/// Handles one hook event for the agent named by `agent` (`ACP_AGENT`),
/// or the one whose workspace holds the event's (or this process's)
/// working directory. Returns what to print, if anything.
///
/// # Errors
/// [`HookError`] saying what to fix; nothing is printed then.
pub async fn handle(
    app: &App,
    input: &[u8],
    agent: Option<&str>,
    cwd: &Path,
) -> Result<Option<String>, HookError> {
    let event: Value =
        serde_json::from_slice(input).map_err(|e| HookError::BadInput(e.to_string()))?;
    let name = text(&event, "hook_event_name")
        .ok_or_else(|| HookError::BadInput("no hook_event_name".into()))?
        .to_owned();
    let agent: AgentId = if let Some(a) = agent {
        app.agents().lookup(a).map_err(AppError::from)?.id.clone()
    } else {
        let dir = text(&event, "cwd").map_or_else(|| cwd.to_path_buf(), Into::into);
        app.agent_at(&dir)
            .ok_or_else(|| HookError::NoAgent(dir.display().to_string()))?
    };
    let session = text(&event, "session_id").map(str::to_owned);
    let evidence = format!("hook:{name}");
    match name.as_str() {
        "PermissionRequest" => permission(app, &event, agent, session, &evidence).await,
        "Notification" => {
            match text(&event, "notification_type") {
                Some("idle_prompt") => {
                    app.record_state(&agent, AgentState::Idle, &evidence, None)
                        .await?;
                }
                Some("permission_prompt")
                    if app.open_prompts().await?.iter().all(|p| p.agent != agent) =>
                {
                    let message = text(&event, "message");
                    app.record_state(&agent, AgentState::NeedsApproval, &evidence, message)
                        .await?;
                }
                _ => {}
            }
            Ok(None)
        }
        "Stop" => {
            app.answered_at_terminal(&agent, session.as_deref()).await?;
            let words = text(&event, "last_assistant_message");
            app.record_state(&agent, AgentState::Done, &evidence, words)
                .await?;
            Ok(None)
        }
        "UserPromptSubmit" => {
            app.answered_at_terminal(&agent, session.as_deref()).await?;
            if let Some(prompt) = text(&event, "prompt") {
                app.seen_by_agent(&agent, prompt).await?;
            }
            app.record_state(&agent, AgentState::Working, &evidence, None)
                .await?;
            Ok(None)
        }
        "PreToolUse" | "PostToolUse" => {
            app.answered_at_terminal(&agent, session.as_deref()).await?;
            app.record_state(&agent, AgentState::Working, &evidence, None)
                .await?;
            Ok(None)
        }
        "SessionStart" => {
            app.record_state(&agent, AgentState::Idle, &evidence, None)
                .await?;
            Ok(None)
        }
        "SessionEnd" => {
            app.answered_at_terminal(&agent, session.as_deref()).await?;
            let reason = text(&event, "reason").map(|r| format!("session ended: {r}"));
            app.record_state(&agent, AgentState::Exited, &evidence, reason.as_deref())
                .await?;
            Ok(None)
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(decision: Decision, reason: Option<&str>) -> Decided {
        Decided {
            decision,
            by: "discord:1".into(),
            at: 0,
            reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn answers_are_in_the_agents_format() {
        let event = json!({"permission_suggestions": [{"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": "npm test"}], "behavior": "allow", "destination": "localSettings"}]});
        let allow = answer(&decided(Decision::Allow, None), &event, "Bash").unwrap();
        assert_eq!(
            allow,
            json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}})
        );
        let session = answer(&decided(Decision::AllowSession, None), &event, "Bash").unwrap();
        let d = &session["hookSpecificOutput"]["decision"];
        assert_eq!(d["updatedPermissions"][0]["destination"], "session");
        assert_eq!(
            d["updatedPermissions"][0]["rules"][0]["ruleContent"],
            "npm test"
        );
        let deny = answer(
            &decided(Decision::Deny, Some("not on main")),
            &event,
            "Bash",
        )
        .unwrap();
        assert_eq!(
            deny["hookSpecificOutput"]["decision"]["message"],
            "not on main"
        );
        assert!(answer(&decided(Decision::Expired, None), &event, "Bash").is_none());
        assert!(answer(&decided(Decision::AtTerminal, None), &event, "Bash").is_none());
        assert_eq!(
            describe("Bash", &json!({"command": "rm -rf build\nls"})).0,
            "Bash: rm -rf build"
        );
    }
}
