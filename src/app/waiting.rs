//! Who waits for a person, and the one reminder a waiting prompt gets.
//!
//! An agent waits for a person when it has an open prompt, or when its
//! state wants one (`needs_approval`, `asking`, `done`, `exited`). A
//! prompt still undecided `[attention] mention_after_secs` after it was
//! raised (and posted) gets one reminder: a message to Discord, in reply
//! to the prompt's post, that pings `mention_roles` and `mention_users`.
//! The store decides it happens once, whoever looks and however often.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{App, AppError, blocking};
use crate::model::attention::waited;
use crate::model::{AgentState, Destination, Draft, Kind, Priority, Prompt, Recipient, Via};
use crate::store::Submission;
pub use crate::store::waiting::PromptTimes;

/// How often prompts are looked at for a reminder that is due (prompts
/// raised by `acp hook` processes send no events here).
const REMIND_EVERY: Duration = Duration::from_secs(1);

/// The longest reminder: 200 mentions and a prompt's summary.
const REMINDER_MAX_BYTES: usize = 8 * 1024;

/// An agent waiting for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    pub agent: String,
    pub state: AgentState,
    /// Since when: its oldest open prompt, else its state.
    #[serde(with = "crate::model::time::ms")]
    pub since: i64,
    /// What goes with its state: its last words, what it asks.
    pub detail: Option<String>,
    /// Its open prompts, oldest first.
    pub prompts: Vec<Prompt>,
}

/// The reminder's text: who is pinged, who waits, for how long, for what.
fn reminder(prompt: &Prompt, mentions: &str, now: i64) -> String {
    format!(
        "🔔 {mentions} {} has waited {} for a decision: {} (prompt {})",
        prompt.agent,
        waited(now - prompt.created_at),
        prompt.summary,
        prompt.id
    )
}

impl App {
    /// Every agent waiting for a person, the longest waiting first.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn waiting(&self) -> Result<Vec<Waiting>, AppError> {
        let states = self.agent_states().await?;
        let store = Arc::clone(&self.store);
        let open = blocking(move || store.open_prompts(None)).await?;
        let mut out: Vec<Waiting> = states
            .into_iter()
            .filter_map(|s| {
                let prompts: Vec<Prompt> = open
                    .iter()
                    .filter(|p| p.agent.as_str() == s.agent)
                    .cloned()
                    .collect();
                if prompts.is_empty() && !s.state.wants_a_person() {
                    return None;
                }
                Some(Waiting {
                    since: prompts.first().map_or(s.since, |p| p.created_at),
                    agent: s.agent,
                    state: s.state,
                    detail: s.detail,
                    prompts,
                })
            })
            .collect();
        out.sort_by(|a, b| a.since.cmp(&b.since).then_with(|| a.agent.cmp(&b.agent)));
        Ok(out)
    }

    /// Reminds people of each prompt waiting longer than `[attention]
    /// mention_after_secs`: one message to Discord per prompt, ever,
    /// stored with the prompt's mark in one transaction. Returns how many
    /// reminders this call stored.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn remind_waiting(&self) -> Result<usize, AppError> {
        let attention = &self.config.attention;
        let Some(after) = attention.mention_after else {
            return Ok(0);
        };
        if attention.mentions.is_empty() {
            return Ok(0);
        }
        let now = crate::store::now_ms();
        let cutoff = now - i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
        let store = Arc::clone(&self.store);
        let due = blocking(move || store.prompts_to_mention(cutoff)).await?;
        let markup = attention.mentions.markup();
        let mut reminded = 0;
        for (prompt, post) in due {
            let Ok(message) = (Draft {
                from: prompt.agent.to_string(),
                to: Recipient::Discord,
                kind: Kind::Report,
                priority: Priority::Urgent,
                body: reminder(&prompt, &markup, now),
                tags: vec!["attention".into()],
                reply_to: Some(post),
            })
            // Made here, not typed by anyone: room for every id it may
            // ping, whatever limits.max_body_bytes says.
            .build(REMINDER_MAX_BYTES) else {
                continue;
            };
            if let Err(e) = self.check_discord_route(&message).await {
                tracing::warn!(error = %e, prompt = %prompt.id, "cannot remind people of a waiting prompt");
                continue;
            }
            let submission = Submission {
                message,
                via: Via::Auto,
                to: vec![Destination::Discord],
                audit: None,
            };
            let (store, sub, to) = (
                Arc::clone(&self.store),
                submission.clone(),
                attention.mentions.clone(),
            );
            if blocking(move || store.mention(prompt.id, &sub, &to, now)).await? {
                tracing::info!(prompt = %prompt.id, agent = %prompt.agent, "reminded people of a waiting prompt");
                self.accepted(&submission.message, 1);
                reminded += 1;
            }
        }
        Ok(reminded)
    }

    /// Reminds people of waiting prompts until `cancel` (what `acp run`
    /// does on the machine that runs the Discord bot).
    pub async fn watch_waiting(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            if let Err(e) = self.remind_waiting().await {
                tracing::warn!(error = %e, "cannot remind people of waiting prompts; trying again");
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(REMIND_EVERY) => {}
            }
        }
    }

    /// Prompts raised or decided at or after `since` (epoch ms), for the
    /// metrics.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn prompt_times(&self, since: i64) -> Result<Vec<PromptTimes>, AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.prompt_times(since)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PromptId, PromptSource};

    #[test]
    fn the_reminder_names_who_waits_how_long_and_for_what() {
        let prompt = Prompt {
            id: PromptId::generate(),
            agent: "Agent-2".parse().unwrap(),
            source: PromptSource::Hook,
            tool: Some("Bash".into()),
            summary: "Bash: make deploy".into(),
            detail: "make deploy".into(),
            allow_session: true,
            choices: Vec::new(),
            fingerprint: None,
            answered: None,
            session: None,
            created_at: 0,
            decided: None,
        };
        assert_eq!(
            reminder(&prompt, "<@&7>", 310_000),
            format!(
                "🔔 <@&7> Agent-2 has waited 5 min for a decision: Bash: make deploy (prompt {})",
                prompt.id
            )
        );
    }
}
