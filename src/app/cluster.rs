//! Several machines through the core: connecting this machine to the
//! swarm (as the hub or a node), the machines as the hub sees them, and
//! what a delivery waits for when its machine is away.

use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{App, AppError, blocking};
use crate::cluster::{Link, hub, node};
use crate::model::{Recipient, UnifiedMessage};
use crate::store::DeliveryView;
use crate::store::cluster::NodeSeen;
use crate::store::now_ms;

pub use crate::cluster::ClusterError;

/// One machine of the swarm, as `acp agents`, `/agents` and the page show
/// it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodeView {
    pub node: String,
    pub hub: bool,
    /// Heard from within `[cluster] presence_ttl_ms`.
    pub online: bool,
    #[serde(with = "crate::model::time::opt_ms")]
    pub last_heartbeat: Option<i64>,
    /// Its agents, by config.
    pub agents: Vec<String>,
    /// Deliveries handed to it whose outcome has not come back.
    pub waiting: u64,
}

impl NodeView {
    /// "online", or "offline since 14:02" (or "never seen").
    #[must_use]
    pub fn presence(&self) -> String {
        match (self.online, self.last_heartbeat) {
            (true, Some(at)) => format!("online, last heartbeat {}", clock(at)),
            (true, None) => "online".into(),
            (false, Some(at)) => format!("offline since {}", clock(at)),
            (false, None) => "offline (never seen)".into(),
        }
    }
}

/// A time as a person reads it on this machine: `14:02`, with the date
/// when it is not today.
fn clock(ms: i64) -> String {
    let Ok(at) = jiff::Timestamp::from_millisecond(ms) else {
        return ms.to_string();
    };
    let zone = jiff::tz::TimeZone::system();
    let at = at.to_zoned_datetime(zone.clone());
    let today = jiff::Timestamp::now().to_zoned_datetime(zone).date();
    if at.date() == today {
        at.strftime("%H:%M").to_string()
    } else {
        at.strftime("%Y-%m-%d %H:%M").to_string()
    }
}

/// A node's starts, as the hub asks for them: the core's.
struct NodeSpawner(Arc<App>);

impl crate::cluster::Spawner for NodeSpawner {
    fn spawn(
        &self,
        agent: crate::model::AgentId,
        project: String,
        by: String,
    ) -> futures_util::future::BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            self.0
                .spawn_asked(agent, &project, &by)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn stop(
        &self,
        agent: crate::model::AgentId,
        by: String,
    ) -> futures_util::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.0
                .stop_asked(agent, &by)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

impl App {
    /// Connects this machine to the swarm when `[cluster]` is set: the hub
    /// sets up the streams, consumers and bucket; a node checks it can
    /// read its work. `None` on a single machine.
    ///
    /// # Errors
    /// [`AppError::Cluster`]: NATS unreachable, credentials refused, this
    /// node's subjects forbidden, or (a node) the hub not set up yet.
    pub async fn connect_cluster(&self) -> Result<Option<Link>, AppError> {
        let Some(config) = &self.config.cluster else {
            return Ok(None);
        };
        let link = Link::connect(Arc::new(config.clone())).await?;
        if config.is_hub() {
            hub::setup(&link, &hub::nodes(&self.registry, &config.hub)).await?;
        } else {
            // Machines start in any order: a node started before the hub
            // has set up JetStream waits for it. Refused credentials or
            // subjects stop it at once.
            let mut said = false;
            let waiting = loop {
                match node::check(&link).await {
                    Err(ClusterError::NotSetUp { what }) => {
                        if !said {
                            tracing::warn!(hub = %config.hub, "JetStream has no {what} yet: waiting for the hub's acp run to set it up");
                            said = true;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                    other => break other?,
                }
            };
            tracing::info!(node = %config.node, hub = %config.hub, waiting, "reading this node's work from JetStream");
        }
        Ok(Some(link))
    }

    /// The swarm's side of `acp run` on this machine, until `cancel`.
    pub fn run_cluster(
        self: &Arc<Self>,
        link: Link,
        cancel: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let hub = link.config().is_hub();
        let max_body_bytes = self.config.limits.max_body_bytes;
        let attention: Arc<dyn crate::cluster::Attention> =
            Arc::new(super::relay::HubAttention(Arc::clone(self)));
        let spawner: Arc<dyn crate::cluster::Spawner> = Arc::new(NodeSpawner(Arc::clone(self)));
        let (store, registry, events, wake) = (
            Arc::clone(&self.store),
            Arc::clone(&self.registry),
            self.events.clone(),
            self.wake(),
        );
        async move {
            if hub {
                let parts = hub::HubParts {
                    store,
                    registry,
                    events,
                    wake,
                    max_body_bytes,
                    attention,
                };
                Box::pin(hub::run(link.clone(), parts, cancel)).await;
            } else {
                let parts = node::NodeParts {
                    store,
                    registry,
                    events,
                    wake,
                    spawner,
                };
                node::run(link.clone(), parts, cancel).await;
            }
            link.close().await;
        }
    }

    /// Every machine of the swarm with its last heartbeat, as this
    /// machine's store has it (the hub's is the one that hears them all).
    /// Empty on a single machine.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn nodes(&self) -> Result<Vec<NodeView>, AppError> {
        let Some(config) = &self.config.cluster else {
            return Ok(Vec::new());
        };
        let store = Arc::clone(&self.store);
        let (seen, held) =
            blocking(move || Ok((store.nodes_seen()?, store.held_by_nodes()?))).await?;
        let ttl = i64::try_from(config.presence_ttl.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        Ok(hub::nodes(&self.registry, &config.hub)
            .into_iter()
            .map(|n| {
                let last: Option<&NodeSeen> = seen.iter().find(|s| s.node == n.as_str());
                let last_heartbeat = last.map(|s| s.last_seen);
                NodeView {
                    hub: n == config.hub,
                    online: last_heartbeat.is_some_and(|at| now - at <= ttl),
                    last_heartbeat,
                    agents: self
                        .registry
                        .all()
                        .iter()
                        .filter(|a| a.node.as_ref() == Some(&n))
                        .map(|a| a.id.to_string())
                        .collect(),
                    waiting: held
                        .iter()
                        .find(|(h, _)| h == n.as_str())
                        .map_or(0, |(_, c)| *c),
                    node: n.to_string(),
                }
            })
            .collect())
    }

    /// Says, on each delivery still with an offline machine, that it waits
    /// for it ("node desk-2 offline since 14:02").
    pub(super) async fn annotate_waiting(&self, deliveries: &mut [DeliveryView]) {
        if self.config.cluster.is_none() || deliveries.iter().all(DeliveryView::is_final) {
            return;
        }
        let Ok(nodes) = self.nodes().await else {
            return;
        };
        for d in deliveries.iter_mut().filter(|d| !d.is_final()) {
            let node = d.node.clone().or_else(|| {
                d.agent
                    .parse()
                    .ok()
                    .and_then(|id| self.registry.get(&id).ok())
                    .and_then(|a| a.node.as_ref().map(ToString::to_string))
            });
            if let Some(view) = node
                .as_deref()
                .and_then(|n| nodes.iter().find(|v| v.node == n))
                .filter(|v| !v.online && !v.hub)
            {
                d.waiting = Some(format!("node {} {}", view.node, view.presence()));
            }
        }
    }

    /// What a new message waits for, when an agent it goes to is on a
    /// machine that is away: the first reply says so instead of
    /// "delivering…".
    pub async fn waiting_for(&self, message: &UnifiedMessage) -> Option<String> {
        self.config.cluster.as_ref()?;
        let nodes = self.nodes().await.ok()?;
        let agents: Vec<&crate::model::Agent> = match &message.to {
            Recipient::Agent(id) => self.registry.get(id).ok().into_iter().collect(),
            Recipient::Broadcast => self.registry.all().iter().collect(),
            Recipient::Discord | Recipient::Person(_) => Vec::new(),
        };
        let away: Vec<String> = nodes
            .iter()
            .filter(|v| !v.online && !v.hub)
            .filter(|v| {
                agents
                    .iter()
                    .any(|a| a.node.as_ref().is_some_and(|n| n.as_str() == v.node))
            })
            .map(|v| format!("node {} {}", v.node, v.presence()))
            .collect();
        (!away.is_empty()).then(|| away.join("; "))
    }
}
