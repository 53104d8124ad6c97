//! Agents' states and prompts through the core: a state change that wants
//! a person is posted once, a prompt carries buttons, and a decision is
//! kept once whichever door makes it (Discord, the CLI, the API), then
//! reported as the store decided.

use std::sync::Arc;
use std::time::Duration;

use super::{App, AppError, Refused, blocking};
use crate::events::Event;
use crate::model::{
    AgentId, AgentState, AuditOutcome, Decided, Decision, Destination, Draft, Kind, Priority,
    Prompt, PromptId, PromptSource, Recipient, Via,
};
use crate::store::Submission;
pub use crate::store::attention::{Decide, StateRow};

/// The longest detail a prompt keeps (a command, a diff).
pub const PROMPT_DETAIL_MAX: usize = 16 * 1024;
/// How often a waiting hook looks at the store for the decision.
const DECISION_POLL: Duration = Duration::from_millis(100);

/// What a prompt asks, as a door raises it.
#[derive(Debug, Clone)]
pub struct Ask {
    pub agent: AgentId,
    pub source: PromptSource,
    pub tool: Option<String>,
    pub summary: String,
    pub detail: String,
    pub allow_session: bool,
    pub session: Option<String>,
    /// A pane's dialog: its choices and fingerprint.
    pub choices: Vec<crate::model::pane::Choice>,
    pub fingerprint: Option<String>,
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub(super) fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Text from an agent, as one safe line: control characters out.
pub(super) fn clean(text: &str, max: usize) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    cut(text.trim(), max)
}

/// The longest detail a state keeps (an agent's last words).
pub(super) const STATE_DETAIL_MAX: usize = 1500;

/// What tells a person of a move into `state`, for the states that want
/// one.
pub(super) fn state_body(
    state: AgentState,
    evidence: &str,
    detail: Option<&str>,
) -> Option<String> {
    match state {
        AgentState::Done => Some(match detail {
            Some(words) if !words.is_empty() => {
                let quoted: Vec<String> = words.lines().map(|l| format!("> {l}")).collect();
                format!("✅ done:\n{}", quoted.join("\n"))
            }
            _ => "✅ done, waiting for what is next".to_owned(),
        }),
        AgentState::Exited => Some(format!(
            "⏹️ exited ({evidence}): messages go to its inbox until it is back"
        )),
        AgentState::Asking => Some(format!(
            "❓ asks: {}",
            detail.unwrap_or("(see its terminal)")
        )),
        _ => None,
    }
}

/// A prompt's post: what it asks, the start of its detail, its id.
pub(super) fn prompt_body(prompt: &Prompt) -> String {
    let shown = cut(&prompt.detail, 1200);
    format!(
        "🔐 needs approval: {}\n```\n{}\n```\n(prompt {})",
        prompt.summary,
        shown.replace("```", "`\u{200b}``"),
        prompt.id
    )
}

impl App {
    /// The agent, if it runs on this machine: another machine's agent
    /// raises its prompts and states there, where they can be answered
    /// (the hub takes them from that machine).
    fn agent_here(&self, agent: &AgentId) -> Result<AgentId, AppError> {
        let found = self.registry.get(agent)?;
        if let Some(c) = &self.config.cluster {
            let runs_on = found.node.as_ref().unwrap_or(&c.hub);
            if runs_on != &c.node {
                return Err(Refused(format!(
                    "{agent} runs on {runs_on}, not on this machine ({}): run its hook there \
                     (acp hook with that machine's root), whose acp run tells the hub",
                    c.node
                ))
                .into());
            }
        }
        Ok(found.id.clone())
    }

    /// Every agent's state (`unknown` for one never seen).
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn agent_states(&self) -> Result<Vec<StateRow>, AppError> {
        let store = Arc::clone(&self.store);
        let known = blocking(move || store.agent_states()).await?;
        Ok(self
            .registry
            .all()
            .iter()
            .map(|a| {
                known
                    .iter()
                    .find(|s| s.agent == a.id.as_str())
                    .cloned()
                    .unwrap_or_else(|| StateRow {
                        agent: a.id.to_string(),
                        state: AgentState::Unknown,
                        since: 0,
                        evidence: "none yet".into(),
                        detail: None,
                    })
            })
            .collect())
    }

    /// The message that tells the people on Discord, when Discord is set
    /// up to hear it: from the agent, into its thread or the swarm channel.
    /// None on a node of a swarm: the hub, told of it, posts it (with
    /// buttons its bot answers).
    pub(super) async fn attention_post(&self, agent: &AgentId, body: String) -> Option<Submission> {
        self.thread_post(agent, body, Priority::Urgent, "attention")
            .await
    }

    /// [`App::attention_post`] with its priority and tag (`pulse`...).
    pub(super) async fn thread_post(
        &self,
        agent: &AgentId,
        body: String,
        priority: Priority,
        tag: &str,
    ) -> Option<Submission> {
        if self.config.cluster.as_ref().is_some_and(|c| !c.is_hub()) {
            return None;
        }
        let message = Draft {
            from: agent.to_string(),
            to: Recipient::Discord,
            kind: Kind::Report,
            priority,
            body,
            tags: vec![tag.to_owned()],
            reply_to: None,
        }
        .build(self.config.limits.max_body_bytes)
        .ok()?;
        self.check_discord_route(&message).await.ok()?;
        Some(Submission {
            message,
            via: Via::Auto,
            to: vec![Destination::Discord],
            audit: None,
        })
    }

    /// Records that `agent` is now in `state`, seen by `evidence` (with
    /// `detail`: its last words, what it asks). A change into a state that
    /// wants a person is posted once, in the same transaction.
    ///
    /// # Errors
    /// [`AppError`].
    pub async fn record_state(
        &self,
        agent: &AgentId,
        state: AgentState,
        evidence: &str,
        detail: Option<&str>,
    ) -> Result<bool, AppError> {
        let agent = self.agent_here(agent)?;
        let detail = detail.map(|d| clean(d, STATE_DETAIL_MAX));
        let post = match state_body(state, evidence, detail.as_deref()) {
            Some(body) => self.attention_post(&agent, body).await,
            None => None,
        };
        let (store, who, evidence_owned, detail_owned, post_owned) = (
            Arc::clone(&self.store),
            agent.to_string(),
            evidence.to_owned(),
            detail.clone(),
            post.clone(),
        );
        let (moved, posted) = blocking(move || {
            store.set_state_told(
                &who,
                state,
                &evidence_owned,
                detail_owned.as_deref(),
                post_owned.as_ref(),
                crate::store::now_ms(),
            )
        })
        .await?;
        if !moved && state == AgentState::Working && evidence.starts_with("hook:") {
            // A tool used while working: no news for a person, but a sign
            // of life for the pulse.
            self.note_hook_event(&agent, evidence).await;
        }
        if moved {
            self.events.publish(Event::AgentState {
                agent: agent.clone(),
                state,
            });
            // Within a burst, the agent's last state post is edited
            // instead (the event wakes the bot's editor).
            if let (Some(post), true) = (post, posted) {
                self.accepted(&post.message, 1);
            }
        }
        Ok(moved)
    }

    /// Raises a prompt: stored with the agent's move to `needs_approval`
    /// and the post that carries its buttons, in one transaction.
    ///
    /// # Errors
    /// [`AppError`].
    pub async fn raise_prompt(&self, ask: Ask) -> Result<Prompt, AppError> {
        let agent = self.agent_here(&ask.agent)?;
        let prompt = Prompt {
            id: PromptId::generate(),
            agent: agent.clone(),
            source: ask.source,
            tool: ask.tool.map(|t| clean(&t, 100)),
            summary: clean(&ask.summary, 300),
            detail: cut(&ask.detail, PROMPT_DETAIL_MAX),
            allow_session: ask.allow_session,
            session: ask.session.map(|s| clean(&s, 200)),
            choices: ask.choices,
            fingerprint: ask.fingerprint,
            answered: None,
            created_at: crate::store::now_ms(),
            decided: None,
        };
        let post = self.attention_post(&agent, prompt_body(&prompt)).await;
        let (store, p, post_owned) = (Arc::clone(&self.store), prompt.clone(), post.clone());
        blocking(move || store.raise_prompt(&p, AgentState::NeedsApproval, post_owned.as_ref()))
            .await?;
        self.events.publish(Event::PromptRaised {
            id: prompt.id,
            agent: agent.clone(),
        });
        self.events.publish(Event::AgentState {
            agent,
            state: AgentState::NeedsApproval,
        });
        if let Some(post) = post {
            self.accepted(&post.message, 1);
        }
        Ok(prompt)
    }

    /// One prompt.
    ///
    /// # Errors
    /// [`AppError::Refused`] for an unknown id.
    pub async fn prompt(&self, id: PromptId) -> Result<Prompt, AppError> {
        let store = Arc::clone(&self.store);
        blocking(move || store.prompt(id))
            .await?
            .ok_or(AppError::NoPrompt(id))
    }

    /// The prompt a Discord post carries, if any.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn prompt_of_post(
        &self,
        message: crate::model::MessageId,
    ) -> Result<Option<Prompt>, AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.prompt_of_post(message)).await?)
    }

    /// Prompts waiting for a person, oldest first.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn open_prompts(&self) -> Result<Vec<Prompt>, AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.open_prompts(None)).await?)
    }

    /// Decides a prompt for `by` (who, as the audit log names them). The
    /// first decision wins; the answer says which one the store kept and
    /// whether it was this one. Audited either way.
    ///
    /// # Errors
    /// [`AppError::Refused`] for an unknown prompt, or "allow for the
    /// session" where the agent cannot take it.
    pub async fn decide(
        &self,
        id: PromptId,
        decision: Decision,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Decide, AppError> {
        if decision == Decision::AllowSession {
            let prompt = self.prompt(id).await?;
            if !prompt.allow_session && prompt.decided.is_none() {
                return Err(Refused(format!(
                    "{}'s prompt cannot be allowed for the session (its agent does not take that \
                     answer): allow it once, or deny it",
                    prompt.agent
                ))
                .into());
            }
        }
        let decided = Decided {
            decision,
            by: by.to_owned(),
            at: crate::store::now_ms(),
            reason: reason.map(|r| clean(r, 500)).filter(|r| !r.is_empty()),
        };
        // After an answer the agent goes on; a dialog left up (expired)
        // still waits for a person.
        let then = match decision {
            Decision::Allow | Decision::AllowSession | Decision::Deny | Decision::AtTerminal => {
                Some(AgentState::Working)
            }
            Decision::Expired => None,
        };
        let store = Arc::clone(&self.store);
        let d = decided.clone();
        let result = blocking(move || store.decide(id, &d, then)).await?;
        let action = format!("prompt {}", decision.as_str());
        let target = id.to_string();
        match &result {
            Decide::NotFound => return Err(AppError::NoPrompt(id)),
            Decide::Won(kept) => {
                self.audit(
                    by,
                    &action,
                    Some(&target),
                    AuditOutcome::Ok,
                    kept.reason.as_deref(),
                )
                .await?;
                self.events.publish(Event::PromptDecided {
                    id,
                    decision,
                    by: by.to_owned(),
                });
            }
            Decide::Already(kept) => {
                let note = format!("already {} by {}", kept.decision.said(), kept.by);
                self.audit(
                    by,
                    &action,
                    Some(&target),
                    AuditOutcome::Refused,
                    Some(&note),
                )
                .await?;
            }
        }
        Ok(result)
    }

    /// Decides a prompt for the captain agent `by` (over MCP), when
    /// `approval.captain_decides` lets it: never its own prompts.
    ///
    /// # Errors
    /// [`AppError::Refused`] saying why not; as [`App::decide`].
    pub async fn decide_as_captain(
        &self,
        by: &AgentId,
        id: PromptId,
        decision: Decision,
        reason: Option<&str>,
    ) -> Result<Decide, AppError> {
        self.captain_may_decide(by).await?;
        let prompt = self.prompt(id).await?;
        if prompt.agent == *by {
            return Err(Refused(format!(
                "prompt {id} is {by}'s own: an agent does not answer its own prompts; a person \
                 does"
            ))
            .into());
        }
        self.decide(id, decision, &format!("mcp:{by} (captain)"), reason)
            .await
    }

    /// Whether `agent` may answer other agents' prompts: the captain, with
    /// `approval.captain_decides`.
    ///
    /// # Errors
    /// [`AppError::Refused`] saying what would allow it.
    pub async fn captain_may_decide(&self, agent: &AgentId) -> Result<(), AppError> {
        if !self.config.approval.captain_decides {
            return Err(Refused(
                "prompts are answered by a person here: set approval.captain_decides = true in \
                 config/acp.toml to let the captain agent answer them"
                    .into(),
            )
            .into());
        }
        let captain = self
            .agent_views()
            .await?
            .into_iter()
            .find(|a| a.captain)
            .map(|a| a.id);
        if captain.as_deref() != Some(agent.as_str()) {
            return Err(Refused(format!(
                "only the captain ({}) answers prompts, and {agent} is not it",
                captain.as_deref().unwrap_or("none set")
            ))
            .into());
        }
        Ok(())
    }

    /// Waits until the prompt is decided, or `limit` has passed: then it
    /// ends as expired (unless a decision came meanwhile). Returns the
    /// decision the store kept.
    ///
    /// # Errors
    /// [`AppError`].
    pub async fn wait_decision(&self, id: PromptId, limit: Duration) -> Result<Decided, AppError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(d) = self.prompt(id).await?.decided {
                return Ok(d);
            }
            if tokio::time::Instant::now() >= deadline {
                return match self.decide(id, Decision::Expired, "acp", None).await? {
                    Decide::Won(d) | Decide::Already(d) => Ok(d),
                    Decide::NotFound => Err(AppError::NoPrompt(id)),
                };
            }
            tokio::time::sleep(DECISION_POLL).await;
        }
    }

    /// The agent moved on (a later hook event of the same session): its
    /// open prompts from that session were answered at its terminal.
    ///
    /// # Errors
    /// [`AppError`].
    pub async fn answered_at_terminal(
        &self,
        agent: &AgentId,
        session: Option<&str>,
    ) -> Result<usize, AppError> {
        let store = Arc::clone(&self.store);
        let who = agent.to_string();
        let open = blocking(move || store.open_prompts(Some(&who))).await?;
        let mut n = 0;
        for p in open {
            if (session.is_none() || p.session.as_deref() == session)
                && matches!(
                    self.decide(p.id, Decision::AtTerminal, "terminal", None)
                        .await?,
                    Decide::Won(_)
                )
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The agent was given `text` to read (its prompt): each delivered
    /// message it carries is marked seen by the agent.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn seen_by_agent(
        &self,
        agent: &AgentId,
        text: &str,
    ) -> Result<Vec<crate::model::MessageId>, AppError> {
        let store = Arc::clone(&self.store);
        let (who, text) = (agent.to_string(), text.to_owned());
        Ok(blocking(move || store.mark_seen(&who, &text, crate::store::now_ms())).await?)
    }

    /// Decided prompts whose Discord post still shows its buttons, with
    /// the post's channel and message id.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn posts_to_settle(&self) -> Result<Vec<(Prompt, u64, u64)>, AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.posts_to_settle()).await?)
    }

    /// State posts whose text changed after they were posted (a burst of
    /// changes): (agent, text, channel, Discord message id).
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn state_posts_to_edit(&self) -> Result<Vec<(String, String, u64, u64)>, AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.state_posts_to_edit()).await?)
    }

    /// An agent's state post now shows `text`.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn state_post_edited(&self, agent: &str, text: &str) -> Result<(), AppError> {
        let store = Arc::clone(&self.store);
        let (agent, text) = (agent.to_owned(), text.to_owned());
        Ok(blocking(move || store.state_post_edited(&agent, &text)).await?)
    }

    /// The prompt's post now shows its decision.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn post_settled(&self, id: PromptId) -> Result<(), AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.post_settled(id, crate::store::now_ms())).await?)
    }

    /// The agent whose workspace holds `dir` (a hook's working directory).
    #[must_use]
    pub fn agent_at(&self, dir: &std::path::Path) -> Option<AgentId> {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        self.registry
            .all()
            .iter()
            .filter_map(|a| {
                let ws = a
                    .workspace
                    .canonicalize()
                    .unwrap_or_else(|_| a.workspace.clone());
                dir.starts_with(&ws)
                    .then(|| (ws.components().count(), a.id.clone()))
            })
            .max_by_key(|(depth, _)| *depth)
            .map(|(_, id)| id)
    }
}
