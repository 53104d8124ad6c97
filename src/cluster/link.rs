//! The connection to NATS and the names of everything acp keeps there.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;

use crate::config::{ClusterConfig, NatsAuth};
use crate::model::NodeName;

use super::error::ClusterError;
use super::error::connect_error;

/// How long one JetStream request (a publish's ack, an info) may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The names of subjects, streams, consumers and the bucket of one swarm.
#[derive(Debug, Clone)]
pub struct Names {
    swarm: String,
}

impl Names {
    #[must_use]
    pub fn new(swarm: &str) -> Self {
        Self {
            swarm: swarm.to_owned(),
        }
    }

    /// Work handed to `node`.
    #[must_use]
    pub fn to_node(&self, node: &NodeName) -> String {
        format!("acp.{}.node.{node}", self.swarm)
    }

    /// What `node` sends the hub.
    #[must_use]
    pub fn to_hub(&self, node: &NodeName) -> String {
        format!("acp.{}.hub.{node}", self.swarm)
    }

    /// The stream of work for the nodes.
    #[must_use]
    pub fn node_stream(&self) -> String {
        format!("ACP_{}_NODES", self.swarm)
    }

    /// The stream of what the nodes send the hub.
    #[must_use]
    pub fn hub_stream(&self) -> String {
        format!("ACP_{}_HUB", self.swarm)
    }

    /// `node`'s durable consumer on the node stream.
    #[must_use]
    pub fn node_consumer(node: &NodeName) -> String {
        format!("node-{node}")
    }

    /// The hub's durable consumer.
    pub const HUB_CONSUMER: &str = "hub";

    /// The heartbeat bucket.
    #[must_use]
    pub fn presence_bucket(&self) -> String {
        format!("acp_{}_presence", self.swarm)
    }

    /// The swarm's name.
    #[must_use]
    pub fn swarm(&self) -> &str {
        &self.swarm
    }
}

/// A live connection: the client, its JetStream context, and the last
/// permission refusal the server sent (requests it refuses otherwise just
/// time out).
#[derive(Clone)]
pub struct Link {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) names: Names,
    pub(crate) config: Arc<ClusterConfig>,
    refusals: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("node", &self.config.node)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Connects with the configured credentials. Fails at once on refused
    /// credentials or an unreachable server; once connected, the client
    /// reconnects by itself for as long as it takes.
    ///
    /// # Errors
    /// [`ClusterError`] saying what to check; no secret is in it.
    pub async fn connect(config: Arc<ClusterConfig>) -> Result<Self, ClusterError> {
        let nats = &config.nats;
        let mut options = match &nats.auth {
            NatsAuth::None => async_nats::ConnectOptions::new(),
            NatsAuth::UserPassword { user, password } => {
                async_nats::ConnectOptions::with_user_and_password(
                    user.clone(),
                    password.expose().to_owned(),
                )
            }
            NatsAuth::Token(token) => {
                async_nats::ConnectOptions::with_token(token.expose().to_owned())
            }
            NatsAuth::NKey(seed) => async_nats::ConnectOptions::with_nkey(seed.expose().to_owned()),
            NatsAuth::CredsFile(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| ClusterError::Credentials {
                    url: nats.url.clone(),
                    auth: nats.auth.describe(),
                    reason: format!("cannot read {}: {e}", path.display()),
                })?,
        };
        if nats.tls_required {
            options = options.require_tls(true);
        }
        if let Some(ca) = &nats.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        let refusals: Arc<Mutex<Option<String>>> = Arc::default();
        let seen = Arc::clone(&refusals);
        let node = config.node.to_string();
        options = options
            .name(format!("acp {node}"))
            // Replies to this machine only, so a node's NATS user can be
            // allowed its own inbox subjects and no one else's.
            .custom_inbox_prefix(format!("_INBOX_{node}"))
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(REQUEST_TIMEOUT))
            // Never give up on the server once connected: work waits in
            // the store meanwhile.
            .max_reconnects(None)
            .event_callback(move |event| {
                let seen = Arc::clone(&seen);
                async move {
                    match event {
                        async_nats::Event::ServerError(async_nats::ServerError::Other(e))
                            if e.to_ascii_lowercase().contains("permissions violation") =>
                        {
                            tracing::error!(error = %e, "NATS refused an operation");
                            *seen
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("lost the NATS connection; reconnecting");
                        }
                        async_nats::Event::Connected => tracing::info!("connected to NATS"),
                        other => tracing::debug!(event = %other, "NATS"),
                    }
                }
            });
        let client = options
            .connect(nats.url.as_str())
            .await
            .map_err(|e| connect_error(&e, nats))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .build(client.clone());
        Ok(Self {
            client,
            js,
            names: Names::new(&config.swarm),
            config,
            refusals,
        })
    }

    /// The names of this swarm's subjects and streams.
    #[must_use]
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// This machine.
    #[must_use]
    pub fn node(&self) -> &NodeName {
        &self.config.node
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Whether the connection is up now.
    #[must_use]
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Turns a failed request into the clearest error: the server's
    /// permission refusal if it sent one, a server or an account without
    /// JetStream, else what the client said.
    pub(crate) fn explain(&self, what: &str, e: &dyn std::fmt::Display) -> ClusterError {
        let refused = self
            .refusals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let url = || self.config.nats.url.clone();
        let said = e.to_string();
        match refused {
            Some(detail) => ClusterError::Forbidden {
                what: what.to_owned(),
                detail,
                node: self.config.node.to_string(),
                swarm: self.names.swarm.clone(),
                hub: self.config.is_hub(),
            },
            // The server said so when the client connected.
            None if !self.client.server_info().jetstream => {
                ClusterError::NoJetStream { url: url() }
            }
            None if said.contains(&format!(
                "error code {}",
                jetstream::ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT.0
            )) =>
            {
                ClusterError::AccountWithoutJetStream {
                    url: url(),
                    auth: self.config.nats.auth.describe(),
                }
            }
            None => ClusterError::JetStream(format!("{what}: {said}")),
        }
    }

    /// Flushes what was published and closes.
    pub async fn close(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.flush()).await;
    }
}
