//! The hub's side: set up the streams, the nodes' consumers and the
//! presence bucket; record what the nodes send back (outcomes, messages
//! sent there, their agents' states and prompts) and their heartbeats;
//! hand again what JetStream dropped; send decisions back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{kv, stream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventBus};
use crate::model::{DeliveryState, Destination, NodeName, Registry};
use crate::store::cluster::{Handed, RemoteOutcome};
use crate::store::{Store, now_ms};

use super::intake::{Item, Verdict, consume};
use super::node::blocking;
use super::{ClusterError, Envelope, Link, Names};

/// How often the hub looks for work JetStream dropped past its age limit.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How long a node may leave a message unacknowledged before JetStream
/// hands it out again.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// Every machine the config names: the hub and each agent's node.
#[must_use]
pub fn nodes(registry: &Registry, hub: &NodeName) -> Vec<NodeName> {
    let mut all: Vec<NodeName> = registry
        .all()
        .iter()
        .filter_map(|a| a.node.clone())
        .chain(std::iter::once(hub.clone()))
        .collect();
    all.sort();
    all.dedup();
    all
}

fn stream_config(link: &Link, name: String, subject: String) -> stream::Config {
    let c = link.config();
    stream::Config {
        name,
        subjects: vec![subject],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        max_age: c.max_age,
        max_bytes: c.max_bytes,
        // Full: new work waits on the hub (its store) rather than old work
        // being dropped.
        discard: stream::DiscardPolicy::New,
        duplicate_window: c.duplicate_window,
        ..stream::Config::default()
    }
}

fn consumer_config(name: String, filter: String) -> pull::Config {
    pull::Config {
        durable_name: Some(name),
        filter_subject: filter,
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        deliver_policy: DeliverPolicy::All,
        max_deliver: -1,
        ..pull::Config::default()
    }
}

/// Creates (or brings up to date) the swarm's streams, one durable
/// consumer per node and the hub's, and the presence bucket.
///
/// # Errors
/// [`ClusterError`] if JetStream refuses (not enabled, not permitted).
pub async fn setup(link: &Link, nodes: &[NodeName]) -> Result<(), ClusterError> {
    let names = link.names();
    let swarm = names.swarm().to_owned();
    let node_stream = link
        .js
        .create_or_update_stream(stream_config(
            link,
            names.node_stream(),
            format!("acp.{swarm}.node.*"),
        ))
        .await
        .map_err(|e| link.explain("creating the node stream", &e))?;
    let hub_stream = link
        .js
        .create_or_update_stream(stream_config(
            link,
            names.hub_stream(),
            format!("acp.{swarm}.hub.*"),
        ))
        .await
        .map_err(|e| link.explain("creating the hub stream", &e))?;
    drop((node_stream, hub_stream));
    let work = link
        .js
        .get_stream(names.node_stream())
        .await
        .map_err(|e| link.explain("reading the node stream", &e))?;
    for node in nodes.iter().filter(|n| *n != link.node()) {
        work.get_or_create_consumer(
            &Names::node_consumer(node),
            consumer_config(Names::node_consumer(node), names.to_node(node)),
        )
        .await
        .map_err(|e| link.explain(&format!("creating node {node}'s consumer"), &e))?;
    }
    link.js
        .get_stream(names.hub_stream())
        .await
        .map_err(|e| link.explain("reading the hub stream", &e))?
        .get_or_create_consumer(
            Names::HUB_CONSUMER,
            consumer_config(Names::HUB_CONSUMER.into(), String::new()),
        )
        .await
        .map_err(|e| link.explain("creating the hub's consumer", &e))?;
    // The bucket's stream is made the way a key-value bucket is laid out
    // (nats-server 2.9, Debian's, answers the client's own bucket request
    // in a form the client does not read).
    let bucket = names.presence_bucket();
    link.js
        .create_or_update_stream(stream::Config {
            name: format!("KV_{bucket}"),
            description: Some(
                "acp heartbeats: one key per machine, gone when it stops beating".into(),
            ),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: link.config().presence_ttl,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            ..stream::Config::default()
        })
        .await
        .map_err(|e| link.explain("creating the presence bucket", &e))?;
    Ok(())
}

/// What the hub needs from its process.
pub struct HubParts {
    pub store: Arc<Store>,
    pub registry: Arc<Registry>,
    pub events: EventBus,
    /// Wakes the dispatcher when messages arrive from nodes, or dropped
    /// work is queued again.
    pub wake: Arc<Notify>,
    /// The largest body any door accepts (`limits.max_body_bytes`).
    pub max_body_bytes: usize,
    /// What the core does with nodes' agents' states and prompts.
    pub attention: Arc<dyn super::Attention>,
}

/// Why the hub refuses what a node submitted: every check a front door
/// applies, and the node may speak only for its own agents.
fn vet(
    parts: &HubParts,
    node: &NodeName,
    message: &crate::model::UnifiedMessage,
    agent: &crate::model::AgentId,
) -> Result<(), String> {
    use crate::model::{Kind, Recipient};
    message
        .check(parts.max_body_bytes)
        .map_err(|e| e.to_string())?;
    let sender = message
        .from
        .parse::<crate::model::AgentId>()
        .ok()
        .and_then(|id| parts.registry.get(&id).ok());
    if sender.and_then(|a| a.node.as_ref()) != Some(node) {
        return Err(format!(
            "it is from {:?}, who is not an agent of {node}: a machine sends only as its own agents",
            message.from
        ));
    }
    if matches!(message.kind, Kind::Human | Kind::Devlog) {
        return Err(format!("an agent does not send {} messages", message.kind));
    }
    let addressed = match &message.to {
        Recipient::Agent(to) => to == agent,
        Recipient::Broadcast => true,
        Recipient::Discord | Recipient::Person(_) => false,
    };
    if !addressed || parts.registry.get(agent).is_err() {
        return Err(format!(
            "it is for {}, but asks for a delivery to {agent}",
            message.to
        ));
    }
    Ok(())
}

/// Runs the hub's side until `cancel`.
pub async fn run(link: Link, parts: HubParts, cancel: CancellationToken) {
    tokio::join!(
        take_reports(&link, &parts, &cancel),
        watch_presence(&link, &parts, &cancel),
        super::node::beat(&link, &parts.registry, &cancel),
        sweep(&link, &parts, &cancel),
        super::attention::send_decisions(&link, &parts, &cancel),
        hand_spawns(&link, &parts, &cancel),
    );
}

/// Hands each stop of another machine's agent to that machine, once sent.
async fn hand_stops(link: &Link, parts: &HubParts, hub: &str) {
    let store = Arc::clone(&parts.store);
    let me = hub.to_owned();
    let owed = match blocking(move || store.stops_to_hand(&me)).await {
        Ok(owed) => owed,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the stops owed to other machines");
            return;
        }
    };
    for s in owed {
        let Some(node) = s.node.clone() else { continue };
        let envelope = Envelope::Stop {
            agent: s.id.clone(),
            by: s.stopped_by.clone().unwrap_or_default(),
        };
        let id = format!("stop.{}", s.id);
        match super::forward::publish(link, link.names().to_node(&node), id, &envelope).await {
            Ok(_) => {
                let store = Arc::clone(&parts.store);
                let agent = s.id.clone();
                if let Err(e) = blocking(move || store.stop_handed(&agent, now_ms())).await {
                    tracing::error!(error = %e, "cannot note a stop handed over");
                }
            }
            Err(e) => {
                tracing::warn!(%node, agent = %s.id, error = %e, "cannot hand a stop to its machine yet");
            }
        }
    }
}

/// Records what a machine said of a start handed to it.
async fn spawned_there(
    parts: &HubParts,
    node: &NodeName,
    agent: crate::model::AgentId,
    result: Result<String, String>,
) -> Verdict {
    let store = Arc::clone(&parts.store);
    let from = node.to_string();
    let taken = blocking(move || {
        store.spawned_there(
            &agent,
            &from,
            result.as_deref().map_err(String::as_str),
            now_ms(),
        )
    })
    .await;
    match taken {
        Ok(_) => Verdict::Done,
        Err(e) => {
            tracing::error!(error = %e, "cannot record a start on another machine; it is redelivered");
            Verdict::Later
        }
    }
}

/// How often starts for other machines are looked for.
const SPAWN_POLL: Duration = Duration::from_millis(200);

/// Hands each start recorded for another machine to that machine, once
/// sent (its answer comes back as [`Envelope::Spawned`]).
async fn hand_spawns(link: &Link, parts: &HubParts, cancel: &CancellationToken) {
    let hub = link.config().hub.to_string();
    loop {
        let store = Arc::clone(&parts.store);
        let me = hub.clone();
        match blocking(move || store.spawns_to_hand(&me)).await {
            Ok(owed) => {
                for s in owed {
                    let Some(node) = s.node.clone() else { continue };
                    let envelope = Envelope::Spawn {
                        agent: s.id.clone(),
                        project: s.project.clone(),
                        by: s.spawned_by.clone(),
                    };
                    let id = format!("spawn.{}", s.id);
                    match super::forward::publish(link, link.names().to_node(&node), id, &envelope)
                        .await
                    {
                        Ok(_) => {
                            let store = Arc::clone(&parts.store);
                            let agent = s.id.clone();
                            if let Err(e) =
                                blocking(move || store.spawn_handed(&agent, now_ms())).await
                            {
                                tracing::error!(error = %e, "cannot note a start handed over");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(%node, agent = %s.id, error = %e, "cannot hand a start to its machine yet");
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the starts owed to other machines"),
        }
        hand_stops(link, parts, &hub).await;
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(SPAWN_POLL) => {}
        }
    }
}

async fn take_reports(link: &Link, parts: &HubParts, cancel: &CancellationToken) {
    let stream = link.names().hub_stream();
    consume(link, &stream, Names::HUB_CONSUMER, cancel, |items| {
        handle_reports(parts, items)
    })
    .await;
}

/// The node a hub subject (`acp.SWARM.hub.NODE`) comes from.
fn sender(subject: &str) -> Option<NodeName> {
    subject.rsplit('.').next()?.parse().ok()
}

async fn handle_reports(parts: &HubParts, items: Vec<Item>) -> Vec<Verdict> {
    let mut verdicts = Vec::with_capacity(items.len());
    let mut outcomes: Vec<(usize, NodeName, RemoteOutcome)> = Vec::new();
    let mut submitted: Vec<(usize, Handed)> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let Some(node) = sender(&item.subject) else {
            verdicts.push(Verdict::Refused);
            continue;
        };
        let verdict = match serde_json::from_slice::<Envelope>(&item.payload) {
            // Only from the machine that runs the agent.
            Ok(Envelope::Outcome(o)) => {
                let owner = parts
                    .registry
                    .get(&o.agent)
                    .ok()
                    .and_then(|a| a.node.as_ref());
                if owner == Some(&node) {
                    outcomes.push((i, node, o));
                    Verdict::Done
                } else {
                    tracing::warn!(%node, agent = %o.agent, "refused an outcome from a machine that does not run the agent");
                    Verdict::Refused
                }
            }
            Ok(Envelope::Submitted {
                message,
                via,
                agent,
            }) => match vet(parts, &node, &message, &agent) {
                Ok(()) => {
                    submitted.push((
                        i,
                        Handed {
                            message,
                            via,
                            agent,
                        },
                    ));
                    Verdict::Done
                }
                Err(why) => {
                    tracing::warn!(%node, message_id = %message.id, %agent, "refused a message from a node: {why}");
                    Verdict::Refused
                }
            },
            Ok(envelope @ (Envelope::State(_) | Envelope::Prompted(_))) => {
                super::attention::take(parts, &node, envelope).await
            }
            Ok(Envelope::Spawned { agent, result }) => {
                spawned_there(parts, &node, agent, result).await
            }
            // Hub-to-node envelopes, or nothing readable.
            _ => {
                tracing::warn!(%node, subject = item.subject, "refused a malformed report");
                Verdict::Refused
            }
        };
        verdicts.push(verdict);
    }
    if !outcomes.is_empty() && !record(parts, &outcomes).await {
        for (i, ..) in &outcomes {
            verdicts[*i] = Verdict::Later;
        }
    }
    if !submitted.is_empty() {
        let store = Arc::clone(&parts.store);
        let items: Vec<Handed> = submitted.iter().map(|(_, h)| h.clone()).collect();
        let stored = blocking(move || store.accept_submitted(&items, now_ms())).await;
        match stored {
            Ok(taken) => {
                for ((i, h), taken) in submitted.iter().zip(taken) {
                    if !taken {
                        tracing::warn!(%h.message.id, agent = %h.agent, "refused a message from a node: its id names another message the hub holds");
                        verdicts[*i] = Verdict::Refused;
                        continue;
                    }
                    parts.events.publish(Event::Accepted {
                        message_id: h.message.id,
                        from: h.message.from.clone(),
                        to: h.message.to.clone(),
                        kind: h.message.kind,
                        priority: h.message.priority,
                        deliveries: 1,
                    });
                }
                parts.wake.notify_one();
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot store messages from nodes; JetStream redelivers them");
                for (i, _) in &submitted {
                    verdicts[*i] = Verdict::Later;
                }
            }
        }
    }
    verdicts
}

/// Records a group of outcomes in one transaction and announces each
/// recorded one. Returns whether they are stored.
async fn record(parts: &HubParts, outcomes: &[(usize, NodeName, RemoteOutcome)]) -> bool {
    let store = Arc::clone(&parts.store);
    let owned: Vec<(String, RemoteOutcome)> = outcomes
        .iter()
        .map(|(_, n, o)| (n.to_string(), o.clone()))
        .collect();
    let recorded = blocking(move || {
        let refs: Vec<(&str, &RemoteOutcome)> =
            owned.iter().map(|(n, o)| (n.as_str(), o)).collect();
        store.record_remote(&refs, now_ms())
    })
    .await;
    let recorded = match recorded {
        Ok(recorded) => recorded,
        Err(e) => {
            tracing::error!(error = %e, "cannot record outcomes; JetStream redelivers them");
            return false;
        }
    };
    for ((_, node, o), recorded) in outcomes.iter().zip(recorded) {
        // Already final (reported twice), or unknown here: nothing to say.
        let Some(recorded) = recorded else { continue };
        let agent = Destination::Agent(o.agent.clone());
        let event = if let (DeliveryState::Delivered, Some(method)) = (o.state, o.method) {
            tracing::info!(message_id = %o.message_id, %agent, %method, %node, "delivered on its machine");
            Event::Delivered {
                message_id: o.message_id,
                agent,
                kind: recorded.kind,
                method,
                detail: o.detail.clone().unwrap_or_default(),
                fell_back: o
                    .attempts
                    .iter()
                    .filter_map(|a| a.error.clone().map(|e| (a.method, e)))
                    .collect(),
            }
        } else {
            tracing::error!(message_id = %o.message_id, %agent, %node, "delivery failed on its machine");
            Event::Failed {
                message_id: o.message_id,
                agent,
                attempts: recorded.attempts,
                error: o.detail.clone().unwrap_or_default(),
            }
        };
        parts.events.publish(event);
    }
    true
}

/// Reads each machine's heartbeat and records when the hub saw it change
/// (by the hub's clock, so machines' clocks need not agree).
async fn watch_presence(link: &Link, parts: &HubParts, cancel: &CancellationToken) {
    let hub = link.config().hub.clone();
    let all = nodes(&parts.registry, &hub);
    let mut revisions: HashMap<NodeName, u64> = HashMap::new();
    let mut bucket = None;
    loop {
        if bucket.is_none() {
            bucket = link
                .js
                .get_key_value(link.names().presence_bucket())
                .await
                .ok();
        }
        let now = now_ms();
        let mut seen: Vec<(String, String)> = vec![(hub.to_string(), "{}".into())];
        if let Some(kv) = &bucket {
            for node in all.iter().filter(|n| **n != hub) {
                if let Ok(Some(entry)) = kv.entry(node.as_str()).await
                    && entry.operation == kv::Operation::Put
                    && revisions.insert(node.clone(), entry.revision) != Some(entry.revision)
                {
                    seen.push((
                        node.to_string(),
                        String::from_utf8_lossy(&entry.value).into_owned(),
                    ));
                }
            }
        }
        let store = Arc::clone(&parts.store);
        let recorded = blocking(move || {
            for (node, detail) in &seen {
                store.node_seen(node, now, detail)?;
            }
            Ok(())
        })
        .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "cannot record heartbeats");
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(link.config().heartbeat) => {}
        }
    }
}

/// Queues again what a machine has held longer than JetStream keeps work:
/// JetStream dropped it, so it is handed over again (a machine that did
/// get it stores it once all the same).
async fn sweep(link: &Link, parts: &HubParts, cancel: &CancellationToken) {
    let max_age = i64::try_from(link.config().max_age.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        let store = Arc::clone(&parts.store);
        match blocking(move || store.requeue_stale_forwards(now_ms() - max_age)).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(
                    requeued = n,
                    "handing over again work JetStream dropped past [cluster] max_age_hours"
                );
                parts.wake.notify_one();
            }
            Err(e) => tracing::warn!(error = %e, "cannot look for dropped work"),
        }
    }
}

/// How far behind one consumer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lag {
    /// `hub`, or the node's name.
    pub reader: String,
    /// Messages not yet handed to it.
    pub pending: u64,
    /// Handed to it, not yet acknowledged.
    pub unacked: u64,
    /// Whether anyone is reading it now.
    pub reading: bool,
}

/// Each consumer's lag: the hub's and every node's.
///
/// # Errors
/// [`ClusterError`] when a stream or consumer cannot be read.
pub async fn lag(link: &Link, nodes: &[NodeName]) -> Result<Vec<Lag>, ClusterError> {
    let names = link.names();
    let mut readers: Vec<(String, String, String)> = nodes
        .iter()
        .filter(|n| *n != &link.config().hub)
        .map(|n| (n.to_string(), names.node_stream(), Names::node_consumer(n)))
        .collect();
    readers.insert(
        0,
        ("hub".into(), names.hub_stream(), Names::HUB_CONSUMER.into()),
    );
    let mut out = Vec::new();
    for (reader, stream, consumer) in readers {
        let mut c = match link
            .js
            .get_consumer_from_stream::<pull::Config, _, _>(&consumer, &stream)
            .await
        {
            Ok(c) => c,
            Err(e) if super::node::not_found(&e) => {
                return Err(ClusterError::NotSetUp {
                    what: format!("consumer {consumer} on {stream}"),
                });
            }
            Err(e) => {
                return Err(link.explain(&format!("reading consumer {consumer} on {stream}"), &e));
            }
        };
        let info = c
            .info()
            .await
            .map_err(|e| link.explain(&format!("reading consumer {consumer}"), &e))?;
        out.push(Lag {
            reader,
            pending: info.num_pending,
            unacked: info.num_ack_pending as u64,
            reading: info.num_waiting > 0,
        });
    }
    Ok(out)
}
