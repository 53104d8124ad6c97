//! What one agent may see through the doors that speak for it (MCP): its
//! own messages (sent to it, or to every agent) and those it sent. Any
//! other message is "no such message", so an agent cannot even learn that
//! it exists; its status counts only what concerns it.

use std::sync::Arc;

use super::{App, AppError, blocking};
use crate::model::{AgentId, MessageId, UnifiedMessage};
use crate::store::{DeliveryView, Status};

impl App {
    /// A message and its deliveries, if it concerns `agent`
    /// ([`UnifiedMessage::concerns`]).
    ///
    /// # Errors
    /// [`AppError::NotFound`] for a message that does not exist or is
    /// another agent's (the same answer for both); [`AppError::Store`].
    pub async fn read_as(
        &self,
        id: MessageId,
        agent: &AgentId,
    ) -> Result<(UnifiedMessage, Vec<DeliveryView>), AppError> {
        let (message, deliveries) = self.read(id).await?;
        if !message.concerns(agent) {
            return Err(AppError::NotFound(id));
        }
        Ok((message, deliveries))
    }

    /// The status report as `agent` may see it: the queue and the recent
    /// failures of deliveries to it and of messages it sent, and its own
    /// line only.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn status_as(&self, agent: &AgentId) -> Result<Status, AppError> {
        let store = Arc::clone(&self.store);
        let agent = agent.clone();
        Ok(blocking(move || store.status(std::slice::from_ref(&agent), 20, Some(&agent))).await?)
    }
}
