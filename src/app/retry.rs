//! Failed deliveries queued again by a person (`acp retry`, `POST
//! /api/v1/messages/{id}/retry`), whichever door asks: checked here (the
//! agent still configured, on this machine), decided once by the store
//! (only `failed` becomes `queued`), audited, announced, and delivered by
//! the same dispatcher path as any message.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{App, AppError, blocking};
use crate::events::Event;
use crate::model::{DeliveryState, Destination, MessageId};
use crate::store::now_ms;
use crate::store::retry::RetryOutcome;

/// A delivery the store did not queue again, and what it found.
type Refusal = (MessageId, String, RetryOutcome);

/// Most deliveries one `acp retry --failed` queues again.
pub const RETRY_MAX: usize = 1000;

/// A delivery queued again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requeued {
    pub message_id: MessageId,
    /// The agent, or `@discord`.
    pub agent: String,
    /// The attempts it had made (kept in its history).
    pub attempts: u32,
}

/// A failed delivery `acp retry --failed` left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub message_id: MessageId,
    pub agent: String,
    pub why: String,
}

/// What `acp retry --failed` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetryReport {
    pub queued: Vec<Requeued>,
    pub skipped: Vec<Skipped>,
}

impl App {
    /// Why a failed delivery to `agent` cannot be queued again here, if it
    /// cannot: its agent is no longer configured, or runs on another
    /// machine.
    fn cannot_retry(&self, id: MessageId, agent: &str) -> Option<AppError> {
        let Ok(Destination::Agent(agent_id)) = agent.parse::<Destination>() else {
            return None;
        };
        let Ok(found) = self.registry.get(&agent_id) else {
            return Some(AppError::AgentGone {
                id,
                agent: agent_id,
            });
        };
        let cluster = self.config.cluster.as_ref()?;
        let node = found.node.as_ref().unwrap_or(&cluster.hub);
        (node != &cluster.node).then(|| AppError::RetryElsewhere {
            id,
            agent: agent_id.clone(),
            node: node.to_string(),
        })
    }

    /// Queues message `id`'s failed deliveries again (only the one to
    /// `agent`, if given), for `actor` (as the audit log names them).
    ///
    /// # Errors
    /// [`AppError::NothingToRetry`] when none of them is failed (saying
    /// what each is: two retries at once, the second is told the first
    /// queued it), [`AppError::AgentGone`] when one is for an agent no
    /// longer configured; nothing is queued then.
    pub async fn retry(
        &self,
        id: MessageId,
        agent: Option<&str>,
        actor: &str,
    ) -> Result<Vec<Requeued>, AppError> {
        let (_, deliveries) = self.read(id).await?;
        let wanted = match agent {
            Some(text) => {
                let agent = self.registry.lookup(text)?.id.clone();
                let one: Vec<_> = deliveries
                    .iter()
                    .filter(|d| d.agent == agent.as_str())
                    .collect();
                if one.is_empty() {
                    return Err(AppError::NotRecipient {
                        id,
                        agent: crate::model::Destination::Agent(agent),
                    });
                }
                one
            }
            None => deliveries.iter().collect(),
        };
        let failed: Vec<String> = wanted
            .iter()
            .filter(|d| d.state == DeliveryState::Failed)
            .map(|d| d.agent.clone())
            .collect();
        if failed.is_empty() {
            return Err(nothing_to_retry(
                id,
                wanted.iter().map(|d| (d.agent.as_str(), d.summary())),
            ));
        }
        if let Some(e) = failed.iter().find_map(|a| self.cannot_retry(id, a)) {
            return Err(e);
        }
        let items: Vec<(MessageId, String)> = failed.into_iter().map(|a| (id, a)).collect();
        let (queued, refused) = self.requeue(items, actor).await?;
        if queued.is_empty() {
            return Err(match refused.into_iter().next() {
                Some((_, agent, RetryOutcome::FromHub)) => AppError::RetryElsewhere {
                    id,
                    agent: agent.parse()?,
                    node: "the hub".into(),
                },
                Some((_, agent, RetryOutcome::NotFailed(state))) => {
                    nothing_to_retry(id, [(agent.as_str(), state.to_string())].into_iter())
                }
                _ => AppError::NotFound(id),
            });
        }
        Ok(queued)
    }

    /// Queues every failed delivery again (to `agent` only, if given; only
    /// those that failed in the last `since`, if given), at most
    /// [`RETRY_MAX`]. Deliveries whose agent is gone, or on another
    /// machine, are skipped, each with its reason.
    ///
    /// # Errors
    /// [`AppError`] for an unknown agent or a store failure.
    pub async fn retry_failed(
        &self,
        agent: Option<&str>,
        since: Option<Duration>,
        actor: &str,
    ) -> Result<RetryReport, AppError> {
        let agent = agent
            .map(|a| self.registry.lookup(a).map(|a| a.id.to_string()))
            .transpose()?;
        let since = since.map(|d| now_ms() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let store = Arc::clone(&self.store);
        let failed =
            blocking(move || store.failed_deliveries(agent.as_deref(), since, RETRY_MAX)).await?;
        let mut report = RetryReport::default();
        let mut items = Vec::new();
        for f in failed {
            match self.cannot_retry(f.message_id, &f.agent) {
                Some(why) => report.skipped.push(Skipped {
                    message_id: f.message_id,
                    agent: f.agent,
                    why: why.to_string(),
                }),
                None => items.push((f.message_id, f.agent)),
            }
        }
        let (queued, refused) = self.requeue(items, actor).await?;
        report.queued = queued;
        // Refused here: queued by someone else meanwhile, or the hub's.
        for (message_id, agent, outcome) in refused {
            let why = match outcome {
                RetryOutcome::FromHub => "the hub handed it over: retry it on the hub".to_owned(),
                RetryOutcome::NotFailed(state) => format!("it is {state} now"),
                _ => "it is gone".to_owned(),
            };
            report.skipped.push(Skipped {
                message_id,
                agent,
                why,
            });
        }
        Ok(report)
    }

    /// Has the store queue `items` again (exactly once each), announces
    /// each one queued, and wakes the dispatcher. Returns those queued and
    /// the others with what the store found.
    async fn requeue(
        &self,
        items: Vec<(MessageId, String)>,
        actor: &str,
    ) -> Result<(Vec<Requeued>, Vec<Refusal>), AppError> {
        if items.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let store = Arc::clone(&self.store);
        let by = actor.to_owned();
        let asked = items.clone();
        let outcomes = blocking(move || store.retry(&asked, &by, now_ms())).await?;
        let mut queued = Vec::new();
        let mut refused = Vec::new();
        for ((message_id, agent), outcome) in items.into_iter().zip(outcomes) {
            match outcome {
                RetryOutcome::Queued { attempts } => {
                    if let Ok(destination) = agent.parse::<Destination>() {
                        self.events.publish(Event::Retried {
                            message_id,
                            agent: destination,
                            by: actor.to_owned(),
                        });
                    }
                    queued.push(Requeued {
                        message_id,
                        agent,
                        attempts,
                    });
                }
                other => refused.push((message_id, agent, other)),
            }
        }
        if !queued.is_empty() {
            self.wake.notify_one();
        }
        Ok((queued, refused))
    }
}

/// The refusal of a retry when nothing is failed, saying what each
/// delivery is.
fn nothing_to_retry<'a>(
    id: MessageId,
    states: impl Iterator<Item = (&'a str, String)>,
) -> AppError {
    AppError::NothingToRetry {
        id,
        states: states
            .map(|(agent, state)| format!("{agent}: {state}"))
            .collect::<Vec<_>>()
            .join("; "),
    }
}
