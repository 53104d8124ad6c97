//! Agents' states, prompts and decisions between machines, on the
//! subjects work already uses. A node reads from its store what the hub
//! has not been told (each state change, each prompt as raised and again
//! once final) and sends it on `acp.SWARM.hub.NODE`, in order, marking it
//! told once JetStream has it. The hub checks each as a door would (a
//! machine speaks only for its own agents), stores it through the core,
//! which posts it, and sends each decision it keeps on
//! `acp.SWARM.node.NODE` until JetStream has it. The node applies it with
//! its own conditional update. Every message carries an id JetStream
//! de-duplicates by; the stores absorb the rest.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::events::Event;
use crate::model::{AgentId, Decided, NodeName, Registry};
use crate::store::attention::Decide;
use crate::store::now_ms;
use crate::store::relay::Owed;

use super::forward::publish;
use super::hub::HubParts;
use super::intake::Verdict;
use super::node::{NodeParts, blocking};
use super::{Envelope, Link, Taken};

/// How often the store is read for what is owed, without an event (a
/// hook runs in its own process: its prompts wake nobody here).
const POLL: Duration = Duration::from_millis(250);
/// Most items read in one round.
const ROUND_MAX: usize = 256;

/// Whether `node` runs `agent`, by the config every machine shares.
fn runs(registry: &Registry, node: &NodeName, agent: &AgentId) -> bool {
    registry
        .get(agent)
        .is_ok_and(|a| a.node.as_ref() == Some(node))
}

/// The JetStream id of an owed item: one per fact, so a resend after a
/// lost ack is dropped.
fn message_id(owed: &Owed) -> String {
    match owed {
        Owed::State { report, .. } => {
            format!("t.{}.{}.{}", report.agent, report.seq, report.at)
        }
        Owed::Prompt { prompt, last } => {
            format!("{}.{}", if *last { "a" } else { "p" }, prompt.id)
        }
    }
}

/// On a node: tells the hub what its store owes it about this machine's
/// agents, until `cancel`. Wakes on this process's events and reads the
/// store every [`POLL`]; what NATS does not take waits in the store.
pub(crate) async fn report(link: &Link, parts: &NodeParts, cancel: &CancellationToken) {
    let me = link.node().clone();
    let mine: Vec<String> = parts
        .registry
        .all()
        .iter()
        .filter(|a| a.node.as_ref() == Some(&me))
        .map(|a| a.id.to_string())
        .collect();
    let subject = link.names().to_hub(&me);
    let mut events = parts.events.subscribe();
    let mut complained = false;
    loop {
        let (store, agents) = (Arc::clone(&parts.store), mine.clone());
        let mut pause = POLL;
        match blocking(move || store.attention_owed(&agents, ROUND_MAX)).await {
            Ok(owed) if !owed.is_empty() => {
                let full = owed.len() >= ROUND_MAX;
                let mut states = Vec::new();
                let mut prompts = Vec::new();
                let mut failed = None;
                // In order, one at a time: the hub sees a prompt before
                // its decision, and states in the order they happened.
                for item in owed {
                    let sent = match &item {
                        Owed::State { send: false, .. } => Ok(false),
                        Owed::State { report, .. } => {
                            let envelope = Envelope::State(report.clone());
                            publish(link, subject.clone(), message_id(&item), &envelope).await
                        }
                        Owed::Prompt { prompt, .. } => {
                            let envelope = Envelope::Prompted(prompt.clone());
                            publish(link, subject.clone(), message_id(&item), &envelope).await
                        }
                    };
                    if let Err(e) = sent {
                        failed = Some(e);
                        break;
                    }
                    match item {
                        Owed::State { report, .. } => states.push(report.seq),
                        Owed::Prompt { prompt, last } => prompts.push((prompt.id, last)),
                    }
                }
                if let Some(e) = failed {
                    if !complained {
                        tracing::warn!(error = %e, "cannot tell the hub of agents' states and prompts yet; they wait here");
                        complained = true;
                    }
                } else {
                    if complained {
                        tracing::info!("the hub has the agents' states and prompts again");
                    }
                    complained = false;
                    if full {
                        pause = Duration::ZERO;
                    }
                }
                let store = Arc::clone(&parts.store);
                let marked =
                    blocking(move || store.attention_reported(&states, &prompts, now_ms())).await;
                if let Err(e) = marked {
                    tracing::error!(error = %e, "cannot note what the hub was told; it is sent again");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot read agents' states and prompts owed to the hub");
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = events.recv() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// On a node: applies the decision the hub kept on one of this machine's
/// prompts. A waiting `acp hook` reads it from the store; a pane's dialog
/// gets its key from the pane watcher, woken here.
pub(crate) async fn apply(
    link: &Link,
    parts: &NodeParts,
    prompt: crate::model::PromptId,
    agent: AgentId,
    decided: Decided,
) -> Verdict {
    let me = link.node();
    if !runs(&parts.registry, me, &agent) {
        tracing::warn!(%prompt, %agent, "refused the hub's decision on a prompt of an agent this machine ({me}) does not run");
        return Verdict::Refused;
    }
    let (store, who, d) = (Arc::clone(&parts.store), agent.clone(), decided.clone());
    match blocking(move || store.apply_hub_decision(prompt, &who, &d, now_ms())).await {
        Ok(Decide::Won(kept)) => {
            tracing::info!(%prompt, %agent, by = kept.by, "the hub's decision: {}", kept.decision.said());
            parts.events.publish(Event::PromptDecided {
                id: prompt,
                decision: kept.decision,
                by: kept.by,
            });
            Verdict::Done
        }
        Ok(Decide::Already(kept)) => {
            if kept != decided {
                tracing::info!(%prompt, %agent, "the agent had its answer here first ({} by {}): that stays, and the hub is told", kept.decision.said(), kept.by);
            }
            Verdict::Done
        }
        Ok(Decide::NotFound) => {
            tracing::warn!(%prompt, %agent, "refused the hub's decision on a prompt this machine never raised for that agent");
            Verdict::Refused
        }
        Err(e) => {
            tracing::error!(error = %e, %prompt, "cannot store the hub's decision; JetStream redelivers it");
            Verdict::Later
        }
    }
}

/// On the hub: takes a node's report on one of its agents, checked as a
/// door checks: a machine speaks only for the agents it runs.
pub(crate) async fn take(parts: &HubParts, node: &NodeName, envelope: Envelope) -> Verdict {
    let (agent, taken) = match envelope {
        Envelope::State(report) if runs(&parts.registry, node, &report.agent) => (
            report.agent.clone(),
            parts.attention.state(node.clone(), report).await,
        ),
        Envelope::Prompted(prompt) if runs(&parts.registry, node, &prompt.agent) => (
            prompt.agent.clone(),
            parts.attention.prompt(node.clone(), prompt).await,
        ),
        Envelope::State(crate::store::relay::StateReport { agent, .. })
        | Envelope::Prompted(crate::model::Prompt { agent, .. }) => (
            agent.clone(),
            Taken::Refused(format!(
                "{agent} is not an agent of {node}: a machine reports only on its own agents"
            )),
        ),
        _ => {
            tracing::warn!(%node, "refused a malformed report");
            return Verdict::Refused;
        }
    };
    match taken {
        Taken::Stored => Verdict::Done,
        Taken::Refused(why) => {
            tracing::warn!(%node, %agent, "refused a report from a node: {why}");
            Verdict::Refused
        }
        Taken::Later(why) => {
            tracing::error!(%node, %agent, "cannot store a report from a node ({why}); JetStream redelivers it");
            Verdict::Later
        }
    }
}

/// On the hub: sends each decision on a node's prompt to that node until
/// JetStream has it, until `cancel`. Wakes on decisions made here and
/// reads the store every [`POLL`] (`acp approve` decides in its own
/// process).
pub(crate) async fn send_decisions(link: &Link, parts: &HubParts, cancel: &CancellationToken) {
    let mut events = parts.events.subscribe();
    let mut complained = false;
    loop {
        let store = Arc::clone(&parts.store);
        match blocking(move || store.decisions_owed(ROUND_MAX)).await {
            Ok(owed) if !owed.is_empty() => {
                let mut sent = Vec::new();
                let mut failed = None;
                for (node, prompt, agent, decided) in owed {
                    let Ok(node) = node.parse::<NodeName>() else {
                        tracing::warn!(%prompt, node, "a prompt from no machine this acp knows: its decision stays here");
                        sent.push(prompt);
                        continue;
                    };
                    let envelope = Envelope::Decision {
                        prompt,
                        agent,
                        decided,
                    };
                    let subject = link.names().to_node(&node);
                    match publish(link, subject, format!("x.{prompt}"), &envelope).await {
                        Ok(_) => sent.push(prompt),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                match failed {
                    Some(e) if !complained => {
                        tracing::warn!(error = %e, "cannot send decisions to their machines yet; they wait here");
                        complained = true;
                    }
                    Some(_) => {}
                    None => complained = false,
                }
                let store = Arc::clone(&parts.store);
                if let Err(e) = blocking(move || store.decisions_sent(&sent, now_ms())).await {
                    tracing::error!(error = %e, "cannot note the decisions sent; they are sent again");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot read the decisions owed to nodes");
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = events.recv() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}
