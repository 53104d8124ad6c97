//! The `cluster` delivery method: a delivery for an agent of another
//! machine is published to JetStream, with an id JetStream de-duplicates
//! by, and counts as sent once JetStream has stored it. On the hub it goes
//! to the agent's machine; on a node, to the hub, which routes it.

use std::time::Duration;

use async_nats::jetstream::message::PublishMessage as Publish;

use crate::delivery::{DeliveryMethod, Target};
use crate::model::{DeliveryError, MethodName, NodeName, UnifiedMessage};
use crate::store::cluster::Handed;

use super::{Envelope, Link};

/// The `cluster` method.
pub struct ClusterMethod {
    link: Link,
    handle: tokio::runtime::Handle,
}

impl ClusterMethod {
    /// The method over a link, publishing from blocking threads through
    /// `handle`.
    #[must_use]
    pub fn new(link: Link, handle: tokio::runtime::Handle) -> Self {
        Self { link, handle }
    }
}

/// Publishes `envelope` on `subject` with `id` for de-duplication and waits
/// for JetStream to say it is stored.
pub(crate) async fn publish(
    link: &Link,
    subject: String,
    id: String,
    envelope: &Envelope,
) -> Result<bool, DeliveryError> {
    let payload = serde_json::to_vec(envelope)
        .map_err(|e| DeliveryError::permanent(format!("cannot encode it: {e}")))?;
    let sent = async {
        let ack = link
            .js
            .send_publish(
                subject,
                Publish::build().payload(payload.into()).message_id(id),
            )
            .await
            .map_err(|e| {
                classify(
                    &e.to_string(),
                    e.kind()
                        == async_nats::jetstream::context::PublishErrorKind::MaxPayloadExceeded,
                )
            })?;
        ack.await.map_err(|e| classify(&e.to_string(), false))
    };
    match tokio::time::timeout(Duration::from_secs(10), sent).await {
        Ok(Ok(ack)) => Ok(ack.duplicate),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(DeliveryError::transient(
            "NATS did not confirm in 10 s (it is away or overloaded); trying again",
        )),
    }
}

fn classify(text: &str, too_big: bool) -> DeliveryError {
    if too_big {
        DeliveryError::permanent(format!(
            "too large for NATS ({text}): raise max_payload in nats-server's config, or send less"
        ))
    } else if text.contains("maximum bytes") || text.contains("maximum messages") {
        DeliveryError::transient(format!(
            "JetStream is full ({text}): the work waits here until the machine catches up; \
             [cluster] max_stream_mb sets the limit"
        ))
    } else {
        DeliveryError::transient(format!("NATS: {text}"))
    }
}

impl DeliveryMethod for ClusterMethod {
    fn name(&self) -> MethodName {
        MethodName::Cluster
    }

    fn deliver(&self, to: Target<'_>, message: &UnifiedMessage) -> Result<String, DeliveryError> {
        let Target::Remote(agent, via) = to else {
            return Err(DeliveryError::unavailable(
                "cluster reaches agents of other machines only",
            ));
        };
        let Some(node) = agent.node.as_ref() else {
            return Err(DeliveryError::permanent(format!(
                "{} has no node in config/acp.toml",
                agent.id
            )));
        };
        let names = self.link.names();
        let me: &NodeName = self.link.node();
        let (subject, id, envelope, detail) = if self.link.config().is_hub() {
            (
                names.to_node(node),
                format!("h.{}.{}", message.id, agent.id),
                Envelope::Handed(Handed {
                    message: message.clone(),
                    via,
                    agent: agent.id.clone(),
                }),
                format!("handed to {node}"),
            )
        } else {
            (
                names.to_hub(me),
                format!("s.{}.{}", message.id, agent.id),
                Envelope::Submitted {
                    message: message.clone(),
                    via,
                    agent: agent.id.clone(),
                },
                format!(
                    "sent to the hub ({}), which delivers it on {node}: follow it there with acp \
                     status",
                    self.link.config().hub
                ),
            )
        };
        self.handle
            .block_on(publish(&self.link, subject, id, &envelope))
            .map(|_| detail)
    }
}
