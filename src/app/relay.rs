//! On the hub: the states and prompts of other machines' agents, as their
//! machines report them. Each is checked and bounded as the local doors
//! bound them, posted as a local one is, and decided by the hub's doors
//! (Discord, the CLI, the API) like any prompt; the cluster engine sends
//! the kept decision back, and the machine's answer (what the agent
//! really got) comes back here.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::attention::{PROMPT_DETAIL_MAX, STATE_DETAIL_MAX, clean, cut, prompt_body, state_body};
use super::{App, AppError, Refused, blocking};
use crate::cluster::{Attention, Taken};
use crate::events::Event;
use crate::model::{AgentId, AgentState, AuditOutcome, Decided, NodeName, Prompt};
use crate::store::relay::{RemoteAnswer, RemoteTaken, StateReport};

/// Most choices a pane's dialog keeps.
const CHOICES_MAX: usize = 12;

/// Whether `node` runs `agent`, by config.
fn runs(app: &App, node: &NodeName, agent: &AgentId) -> Result<(), AppError> {
    let found = app.registry.get(agent)?;
    if found.node.as_ref() == Some(node) {
        Ok(())
    } else {
        Err(Refused(format!(
            "{agent} is not an agent of {node}: a machine reports only on its own agents"
        ))
        .into())
    }
}

/// A decision as a machine reports it, bounded.
fn bounded_decision(d: Decided) -> Decided {
    Decided {
        by: clean(&d.by, 200),
        reason: d.reason.map(|r| clean(&r, 500)).filter(|r| !r.is_empty()),
        ..d
    }
}

/// A prompt as a machine sent it, bounded as `raise_prompt` bounds a
/// local one (text from another machine is the agent's text).
fn bounded(prompt: Prompt, now: i64) -> Prompt {
    Prompt {
        tool: prompt.tool.map(|t| clean(&t, 100)),
        summary: clean(&prompt.summary, 300),
        detail: cut(&prompt.detail, PROMPT_DETAIL_MAX),
        session: prompt.session.map(|s| clean(&s, 200)),
        choices: prompt
            .choices
            .into_iter()
            .take(CHOICES_MAX)
            .map(|c| crate::model::pane::Choice {
                key: clean(&c.key, 20),
                label: clean(&c.label, 200),
            })
            .collect(),
        fingerprint: prompt.fingerprint.map(|f| clean(&f, 128)),
        answered: prompt.answered.map(|a| clean(&a, 500)),
        // Another machine's clock: never in the future here.
        created_at: prompt.created_at.min(now),
        decided: prompt.decided.map(bounded_decision),
        ..prompt
    }
}

impl App {
    /// On the hub: `node`'s agent changed state, as `node` reports it. A
    /// change into a state that wants a person is posted once, as a local
    /// one is. Returns whether the agent moved (an older report than one
    /// already taken does nothing).
    ///
    /// # Errors
    /// [`AppError::Refused`] for another machine's agent; [`AppError::Store`].
    pub async fn take_remote_state(
        &self,
        node: &NodeName,
        report: StateReport,
    ) -> Result<bool, AppError> {
        runs(self, node, &report.agent)?;
        if report.state == AgentState::Unknown {
            return Ok(false);
        }
        let evidence = format!("{node} {}", clean(&report.evidence, 60));
        let detail = report.detail.map(|d| clean(&d, STATE_DETAIL_MAX));
        let post = match state_body(report.state, &evidence, detail.as_deref()) {
            Some(body) => self.attention_post(&report.agent, body).await,
            None => None,
        };
        let (store, agent, post_owned) = (
            Arc::clone(&self.store),
            report.agent.to_string(),
            post.clone(),
        );
        let (state, seq) = (report.state, report.seq);
        let moved = blocking(move || {
            store.set_state_from_node(
                &agent,
                state,
                &evidence,
                detail.as_deref(),
                post_owned.as_ref(),
                seq,
                crate::store::now_ms(),
            )
        })
        .await?;
        if moved {
            self.events.publish(Event::AgentState {
                agent: report.agent,
                state,
            });
            if let Some(post) = post {
                self.accepted(&post.message, 1);
            }
        }
        Ok(moved)
    }

    /// On the hub: `node`'s agent asks a person (stored under the node's
    /// id, with its post, once however often it comes), or its prompt is
    /// final there: the node's decision is recorded unless the hub decided
    /// first, and then the post says what the agent got.
    ///
    /// # Errors
    /// [`AppError::Refused`] for another machine's agent, or an id naming
    /// another prompt the hub holds; [`AppError::Store`].
    pub async fn take_remote_prompt(
        &self,
        node: &NodeName,
        prompt: Prompt,
    ) -> Result<(), AppError> {
        runs(self, node, &prompt.agent)?;
        let now = crate::store::now_ms();
        let prompt = bounded(prompt, now);
        let post = self
            .attention_post(&prompt.agent, prompt_body(&prompt))
            .await;
        let instead = prompt.decided.as_ref().map_or_else(String::new, |d| {
            format!(
                "⚠️ the agent got another answer on {node} first: {} by `{}`",
                d.decision.said(),
                d.by
            )
        });
        let (store, p, post_owned, at) = (
            Arc::clone(&self.store),
            prompt.clone(),
            post.clone(),
            node.to_string(),
        );
        let taken =
            blocking(move || store.take_remote_prompt(&at, &p, post_owned.as_ref(), &instead, now))
                .await?;
        let RemoteTaken::Taken { new, answer } = taken else {
            return Err(Refused(format!(
                "its id ({}) names another prompt the hub holds",
                prompt.id
            ))
            .into());
        };
        if new {
            self.events.publish(Event::PromptRaised {
                id: prompt.id,
                agent: prompt.agent.clone(),
            });
            self.events.publish(Event::AgentState {
                agent: prompt.agent.clone(),
                state: AgentState::NeedsApproval,
            });
            if let Some(post) = post {
                self.accepted(&post.message, 1);
            }
        }
        match answer {
            RemoteAnswer::None => {}
            RemoteAnswer::Recorded(kept) => {
                self.audit(
                    &kept.by,
                    &format!("prompt {}", kept.decision.as_str()),
                    Some(&prompt.id.to_string()),
                    AuditOutcome::Ok,
                    Some(&format!("decided on {node}")),
                )
                .await?;
                self.events.publish(Event::PromptDecided {
                    id: prompt.id,
                    decision: kept.decision,
                    by: kept.by,
                });
            }
            RemoteAnswer::Same | RemoteAnswer::Differs(_) => {
                // The post may have more to say: wake the task that edits
                // it.
                if let Some(kept) = self.prompt(prompt.id).await?.decided {
                    self.events.publish(Event::PromptDecided {
                        id: prompt.id,
                        decision: kept.decision,
                        by: kept.by,
                    });
                }
            }
        }
        Ok(())
    }
}

/// The core as the hub's cluster engine sees it.
pub(super) struct HubAttention(pub(super) Arc<App>);

fn verdict(result: Result<(), AppError>) -> Taken {
    match result {
        Ok(()) => Taken::Stored,
        Err(e) if e.is_user_error() => Taken::Refused(e.to_string()),
        Err(e) => Taken::Later(e.to_string()),
    }
}

impl Attention for HubAttention {
    fn state(&self, node: NodeName, report: StateReport) -> BoxFuture<'_, Taken> {
        Box::pin(async move { verdict(self.0.take_remote_state(&node, report).await.map(drop)) })
    }

    fn prompt(&self, node: NodeName, prompt: Prompt) -> BoxFuture<'_, Taken> {
        Box::pin(async move { verdict(self.0.take_remote_prompt(&node, prompt).await) })
    }
}
