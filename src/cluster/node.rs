//! A node's side: take the work the hub hands over (stored once, then
//! acked) and the hub's decisions on its prompts, report each outcome
//! back until the hub has it, and beat.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::events::EventBus;
use crate::model::{DeliveryState, Registry};
use crate::store::cluster::{Handed, RemoteOutcome};
use crate::store::{Store, StoreError, now_ms};

use super::intake::{Item, Verdict, consume};
use super::{Beat, ClusterError, Envelope, Link, Names};

/// How often owed outcomes are looked for without an event.
const REPORT_POLL: Duration = Duration::from_secs(1);
/// Most outcomes sent in one round.
const REPORT_MAX: usize = 256;

/// Runs store work on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(StoreError::Interrupted))
}

/// Whether this node can read its work: its consumer is there and the
/// server lets this user read it. Returns how many messages wait for it.
///
/// # Errors
/// [`ClusterError`]: not set up yet (start the hub first), or forbidden.
pub async fn check(link: &Link) -> Result<u64, ClusterError> {
    let names = link.names();
    let consumer = Names::node_consumer(link.node());
    match link
        .js
        .get_consumer_from_stream::<pull::Config, _, _>(&consumer, names.node_stream())
        .await
    {
        Ok(mut c) => match c.info().await {
            Ok(info) => Ok(info.num_pending + info.num_ack_pending as u64),
            Err(e) => Err(link.explain(&format!("reading consumer {consumer}"), &e)),
        },
        Err(e) if not_found(&e) => Err(ClusterError::NotSetUp {
            what: format!("consumer {consumer} on {}", names.node_stream()),
        }),
        Err(e) => Err(link.explain(
            &format!(
                "reading consumer {consumer} (subject {})",
                names.to_node(link.node())
            ),
            &e,
        )),
    }
}

/// Whether JetStream answered that the stream or the consumer is not
/// there (the hub has not set it up).
pub(crate) fn not_found(e: &async_nats::jetstream::stream::ConsumerError) -> bool {
    matches!(
        e.kind(),
        async_nats::jetstream::stream::ConsumerErrorKind::JetStream(ref js)
            if js.error_code() == async_nats::jetstream::ErrorCode::CONSUMER_NOT_FOUND
                || js.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// What a node needs from its process.
pub struct NodeParts {
    pub store: Arc<Store>,
    pub registry: Arc<Registry>,
    pub events: EventBus,
    /// Wakes the dispatcher when work arrives.
    pub wake: Arc<Notify>,
    /// Starts agents the hub asks for.
    pub spawner: Arc<dyn super::Spawner>,
}

/// Runs a node's side until `cancel`: intake, reports and heartbeats.
pub async fn run(link: Link, parts: NodeParts, cancel: CancellationToken) {
    tokio::join!(
        take_work(&link, &parts, &cancel),
        report(&link, &parts, &cancel),
        super::attention::report(&link, &parts, &cancel),
        beat(&link, &parts.registry, &cancel),
    );
}

/// Takes handed work: stores what is for this node's agents, refuses the
/// rest (and tells the hub why).
async fn take_work(link: &Link, parts: &NodeParts, cancel: &CancellationToken) {
    let names = link.names().clone();
    let consumer = Names::node_consumer(link.node());
    consume(link, &names.node_stream(), &consumer, cancel, |items| {
        handle_work(link, parts, items)
    })
    .await;
}

async fn handle_work(link: &Link, parts: &NodeParts, items: Vec<Item>) -> Vec<Verdict> {
    let me = link.node();
    let mut verdicts = vec![Verdict::Refused; items.len()];
    let mut mine: Vec<(usize, Handed)> = Vec::new();
    let mut refusals: Vec<(usize, RemoteOutcome)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match serde_json::from_slice::<Envelope>(&item.payload) {
            Ok(Envelope::Handed(h)) => match parts.registry.get(&h.agent) {
                Ok(agent) if agent.node.as_ref() == Some(me) => mine.push((i, h)),
                // Started here a moment ago, and this process has not
                // reloaded yet: in a moment it knows the agent.
                Err(_) if started_here(parts, &h.agent).await => verdicts[i] = Verdict::Later,
                found => {
                    let why = match found {
                        Ok(agent) => format!(
                            "{me} refused it: {} is not one of its agents (its config gives it \
                             to {})",
                            h.agent,
                            agent.node.as_ref().map_or("no node", |n| n.as_str())
                        ),
                        Err(e) => format!("{me} refused it: {e}"),
                    };
                    tracing::warn!(message = %h.message.id, agent = %h.agent, "{why}");
                    refusals.push((
                        i,
                        RemoteOutcome {
                            message_id: h.message.id,
                            agent: h.agent,
                            state: DeliveryState::Failed,
                            method: None,
                            detail: Some(why),
                            attempts: Vec::new(),
                        },
                    ));
                }
            },
            Ok(Envelope::Decision {
                prompt,
                agent,
                decided,
            }) => {
                verdicts[i] = super::attention::apply(link, parts, prompt, agent, decided).await;
            }
            Ok(Envelope::Spawn { agent, project, by }) => {
                verdicts[i] = spawn(link, parts, agent, project, by).await;
            }
            Ok(Envelope::Stop { agent, by }) => {
                verdicts[i] = match parts.spawner.stop(agent.clone(), by).await {
                    Ok(()) => Verdict::Done,
                    Err(why) => {
                        tracing::warn!(%agent, "cannot stop the agent the hub stopped: {why}");
                        Verdict::Refused
                    }
                };
            }
            Ok(_) | Err(_) => {
                tracing::warn!(
                    subject = item.subject,
                    "refused a malformed message from JetStream"
                );
            }
        }
    }
    if !mine.is_empty() {
        let store = Arc::clone(&parts.store);
        let handed: Vec<Handed> = mine.iter().map(|(_, h)| h.clone()).collect();
        match blocking(move || store.accept_handed(&handed, now_ms())).await {
            Ok(_) => {
                for (i, _) in &mine {
                    verdicts[*i] = Verdict::Done;
                }
                parts.wake.notify_one();
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot store handed work; JetStream redelivers it");
                for (i, _) in &mine {
                    verdicts[*i] = Verdict::Later;
                }
            }
        }
    }
    for (i, outcome) in refusals {
        let id = format!("o.{}.{}", outcome.message_id, outcome.agent);
        let sent = super::forward::publish(
            link,
            link.names().to_hub(me),
            id,
            &Envelope::Outcome(outcome),
        )
        .await;
        // Told the hub: done. Not told: keep it, and refuse it again later.
        verdicts[i] = if sent.is_ok() {
            Verdict::Refused
        } else {
            Verdict::Later
        };
    }
    verdicts
}

/// Whether `agent` is an agent started on this machine (running).
async fn started_here(parts: &NodeParts, agent: &crate::model::AgentId) -> bool {
    let store = Arc::clone(&parts.store);
    let id = agent.to_string();
    blocking(move || store.spawned_agent(&id))
        .await
        .ok()
        .flatten()
        .is_some_and(|s| s.state == crate::model::SpawnState::Running)
}

/// Starts an agent the hub asked for and tells the hub how it went
/// (asked again, the same answer: the start is recorded here once).
async fn spawn(
    link: &Link,
    parts: &NodeParts,
    agent: crate::model::AgentId,
    project: String,
    by: String,
) -> Verdict {
    let result = parts.spawner.spawn(agent.clone(), project, by).await;
    if let Err(why) = &result {
        tracing::warn!(%agent, "cannot start the agent the hub asked for: {why}");
    }
    let id = format!("s.{agent}");
    let envelope = Envelope::Spawned { agent, result };
    match super::forward::publish(link, link.names().to_hub(link.node()), id, &envelope).await {
        Ok(_) => Verdict::Done,
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell the hub about a start yet; asked again, it answers again");
            Verdict::Later
        }
    }
}

/// Sends the hub each outcome it is owed, until it has them all; wakes on
/// this process's delivery events and looks every second.
async fn report(link: &Link, parts: &NodeParts, cancel: &CancellationToken) {
    let mut events = parts.events.subscribe();
    let subject = link.names().to_hub(link.node());
    loop {
        let store = Arc::clone(&parts.store);
        let owed = blocking(move || store.unreported(REPORT_MAX)).await;
        let mut pause = REPORT_POLL;
        match owed {
            Ok(owed) if !owed.is_empty() => {
                let sends = owed.iter().map(|o| {
                    let id = format!("o.{}.{}", o.message_id, o.agent);
                    let envelope = Envelope::Outcome(o.clone());
                    let subject = subject.clone();
                    async move { super::forward::publish(link, subject, id, &envelope).await }
                });
                let results = futures_util::future::join_all(sends).await;
                let done: Vec<_> = owed
                    .iter()
                    .zip(&results)
                    .filter(|(_, r)| r.is_ok())
                    .map(|(o, _)| (o.message_id, o.agent.clone()))
                    .collect();
                if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
                    tracing::warn!(error = %e, "cannot report outcomes to the hub yet; they wait here");
                } else {
                    pause = Duration::ZERO;
                }
                let store = Arc::clone(&parts.store);
                if let Err(e) = blocking(move || store.mark_reported(&done, now_ms())).await {
                    tracing::error!(error = %e, "cannot note reported outcomes; they are sent again");
                }
                if pause.is_zero() {
                    continue;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the outcomes owed to the hub"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = events.recv() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Puts this machine's heartbeat in the presence bucket (whose entries
/// expire: a machine that stops beating is offline).
pub(crate) async fn beat(link: &Link, registry: &Registry, cancel: &CancellationToken) {
    let me = link.node().clone();
    let agents: Vec<String> = registry
        .all()
        .iter()
        .filter(|a| a.node.as_ref() == Some(&me))
        .map(|a| a.id.to_string())
        .collect();
    let bucket = link.names().presence_bucket();
    let mut store = None;
    let mut complained = false;
    loop {
        if store.is_none() {
            match link.js.get_key_value(&bucket).await {
                Ok(kv) => store = Some(kv),
                Err(e) if !complained => {
                    tracing::warn!(bucket, error = %e, "cannot reach the presence bucket yet (the hub creates it)");
                    complained = true;
                }
                Err(_) => {}
            }
        }
        if let Some(kv) = &store {
            let beat = Beat {
                node: me.to_string(),
                at: now_ms(),
                version: env!("CARGO_PKG_VERSION").into(),
                agents: agents.clone(),
            };
            let value = serde_json::to_vec(&beat).unwrap_or_default();
            if let Err(e) = kv.put(me.as_str(), value.into()).await {
                tracing::debug!(error = %e, "heartbeat not stored");
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(link.config().heartbeat) => {}
        }
    }
}
