//! Prompts on Discord: a press on a prompt's button decides it through the
//! core (operator level, audited, the first decision wins), and the post
//! is edited to say what was decided, by whom, whichever door decided.
//!
//! Presses arrive as `MESSAGE_COMPONENT` interactions, answered with
//! `UPDATE_MESSAGE` (the post, its buttons gone) or, for a press that lost
//! or may not decide, an ephemeral reply. Decisions made elsewhere (`acp
//! approve`, the terminal, a timeout) are read from the store by a task
//! that edits each post once.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use poise::serenity_prelude as serenity;
use tokio_util::sync::CancellationToken;

use crate::app::{App, Decide};
use crate::model::{Decided, Decision, Press, Prompt, PromptId};

use super::permissions::Level;
use super::{Data, no_mentions};

/// How often decided prompts are looked for without an event (decisions
/// by another process send no events here).
const POLL: Duration = Duration::from_secs(1);
/// The most of a prompt's detail "Show more" shows.
const MORE_MAX: usize = 1800;

/// Who decided, as shown: a Discord user as a mention (mentions never
/// ping), anyone else by name.
pub(super) fn who(by: &str) -> String {
    match by.strip_prefix("discord:") {
        Some(rest) => format!("<@{}>", rest.split(':').next().unwrap_or(rest)),
        None => format!("`{by}`"),
    }
}

pub(super) fn when(at: i64) -> String {
    jiff::Timestamp::from_millisecond(at).map_or_else(|_| at.to_string(), |t| format!("{t:.0}"))
}

/// A prompt's post once decided: what it asked, and what became of it.
pub(crate) fn settled(prompt: &Prompt, decided: &Decided) -> String {
    let mark = match decided.decision {
        Decision::Allow | Decision::AllowSession => "✅",
        Decision::Deny => "⛔",
        Decision::AtTerminal => "⌨️",
        Decision::Expired => "⌛",
    };
    let mut text = format!(
        "**{}** 🔐 {}\n{mark} {} by {} at {}",
        prompt.agent,
        prompt.summary,
        decided.decision.said(),
        who(&decided.by),
        when(decided.at)
    );
    if let Some(reason) = &decided.reason {
        let _ = write!(text, ": {reason}");
    }
    if decided.decision == Decision::Expired {
        text.push_str(" (its dialog stays up at the terminal)");
    }
    if let Some(answered) = &prompt.answered {
        let _ = write!(text, "\n{answered}");
    }
    text
}

/// A reply only the presser sees, pinging nobody.
pub(crate) fn ephemeral(text: String) -> serenity::CreateInteractionResponse {
    serenity::CreateInteractionResponse::Message(
        serenity::CreateInteractionResponseMessage::new()
            .content(text)
            .ephemeral(true)
            .allowed_mentions(no_mentions()),
    )
}

/// Handles a press on a prompt's button. Not a prompt's button: `false`.
pub(crate) async fn press(
    ctx: &serenity::Context,
    ci: &serenity::ComponentInteraction,
    data: &Data,
) -> Result<bool, serenity::Error> {
    let Some((id, press)) = PromptId::parse_button(&ci.data.custom_id) else {
        return Ok(false);
    };
    let started = std::time::Instant::now();
    let app = &data.app;
    let config = &app.config().discord;
    let reply = match Level::of_press(ci, config) {
        Err(away) => ephemeral(away),
        Ok(level) if level < Level::Operator => ephemeral(format!(
            "🚫 answering an agent's prompt needs the operator level ({}).",
            Level::Operator.config_key()
        )),
        Ok(_) => {
            let by = format!("discord:{}:{}", ci.user.id, ci.user.name);
            match press {
                Press::More => match app.prompt(id).await {
                    Ok(p) => {
                        let mut detail: String = p.detail.chars().take(MORE_MAX).collect();
                        if detail.len() < p.detail.len() {
                            detail.push('…');
                        }
                        ephemeral(format!(
                            "{} asks to run:\n```\n{}\n```",
                            p.agent,
                            detail.replace("```", "`\u{200b}``")
                        ))
                    }
                    Err(e) => ephemeral(format!("⚠️ {e}")),
                },
                Press::Decide(decision) => match app.decide(id, decision, &by, None).await {
                    Ok(Decide::Won(kept)) => match app.prompt(id).await {
                        Ok(p) => serenity::CreateInteractionResponse::UpdateMessage(
                            serenity::CreateInteractionResponseMessage::new()
                                .content(settled(&p, &kept))
                                .components(Vec::new())
                                .allowed_mentions(no_mentions()),
                        ),
                        Err(e) => ephemeral(format!("⚠️ {e}")),
                    },
                    Ok(Decide::Already(kept)) => ephemeral(format!(
                        "This prompt was already {} by {} at {}: your answer was not used.",
                        kept.decision.said(),
                        who(&kept.by),
                        when(kept.at)
                    )),
                    Ok(Decide::NotFound) => ephemeral(format!("⚠️ no prompt {id}")),
                    Err(e) if crate::app::is_user_error(&e) => ephemeral(format!("⚠️ {e}")),
                    Err(e) => {
                        tracing::error!(error = %e, prompt = %id, "a prompt's decision failed");
                        ephemeral("⚠️ something went wrong; see acp's log".into())
                    }
                },
            }
        }
    };
    // A pane's prompt is settled once its key is sent (the post then says
    // what was done at the pane).
    let pane =
        matches!(app.prompt(id).await, Ok(p) if p.source == crate::model::PromptSource::Pane);
    let updated = !pane && matches!(reply, serenity::CreateInteractionResponse::UpdateMessage(_));
    let answered = ci.create_response(&ctx.http, reply).await;
    if answered.is_ok() && updated {
        // The post shows the decision: nothing left for the settling task.
        if let Err(e) = app.post_settled(id).await {
            tracing::warn!(error = %e, prompt = %id, "cannot record the settled post");
        }
    }
    app.record_command(
        "discord",
        "prompt button",
        answered.is_ok(),
        started.elapsed(),
    );
    answered.map(|()| true)
}

/// Edits each agent's state post that a burst of changes updated.
async fn edit_state_posts(app: &App, http: &serenity::Http) {
    let posts = match app.state_posts_to_edit().await {
        Ok(posts) => posts,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the state posts to edit; trying again");
            return;
        }
    };
    for (agent, body, channel, message) in posts {
        let who = app
            .agents()
            .lookup(&agent)
            .map_or_else(|_| agent.clone(), |a| a.name.clone());
        let content: String = format!("**{who}**: {body}").chars().take(2000).collect();
        let edit = serenity::EditMessage::new()
            .content(content)
            .allowed_mentions(no_mentions());
        match serenity::ChannelId::new(channel)
            .edit_message(http, serenity::MessageId::new(message), edit)
            .await
        {
            Ok(_) => {
                if let Err(e) = app.state_post_edited(&agent, &body).await {
                    tracing::warn!(error = %e, "cannot record an edited state post");
                }
            }
            Err(e) => tracing::warn!(error = %e, %agent, "cannot edit a state post; trying again"),
        }
    }
}

/// Edits each decided prompt's post to say what became of it, until
/// `cancel`: woken by decisions, and once a second for decisions made by
/// other processes.
pub(crate) async fn settle(app: Arc<App>, http: Arc<serenity::Http>, cancel: CancellationToken) {
    let mut events = app.events().subscribe();
    loop {
        match app.posts_to_settle().await {
            Ok(posts) => {
                for (prompt, channel, message) in posts {
                    let Some(decided) = &prompt.decided else {
                        continue;
                    };
                    let edit = serenity::EditMessage::new()
                        .content(settled(&prompt, decided))
                        .components(Vec::new())
                        .allowed_mentions(no_mentions());
                    match serenity::ChannelId::new(channel)
                        .edit_message(&*http, serenity::MessageId::new(message), edit)
                        .await
                    {
                        Ok(_) => {
                            if let Err(e) = app.post_settled(prompt.id).await {
                                tracing::warn!(error = %e, "cannot record a settled post");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, prompt = %prompt.id, "cannot edit a prompt's post; trying again");
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read decided prompts; trying again"),
        }
        edit_state_posts(&app, &http).await;
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = events.recv() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}
