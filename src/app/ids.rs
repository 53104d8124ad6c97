//! Ids as people give them: whole, or a unique prefix of at least
//! [`MIN_ID_PREFIX`](crate::model::prefix::MIN_ID_PREFIX) characters, for
//! every door that takes a message or prompt id. The store reads the
//! prefix's range of its primary key ([`crate::store::ids`]); backups use
//! the same resolver over their catalog.

use std::sync::Arc;

use super::{App, AppError, blocking};
use crate::model::prefix::{self, IdPrefix};
use crate::model::{MessageId, PromptId};
use crate::store::ids::IdTable;

impl App {
    /// The message `text` names: a whole id (checked later, where it is
    /// read), or the one message whose id starts with it.
    ///
    /// # Errors
    /// [`AppError::Message`] for text that is no id,
    /// [`AppError::Prefix`] for a prefix too short, matching nothing, or
    /// matching several (listed).
    pub async fn resolve_message(&self, text: &str) -> Result<MessageId, AppError> {
        let prefix = IdPrefix::parse(text, prefix::MESSAGE)?;
        if prefix.is_whole() {
            return Ok(text.parse()?);
        }
        let store = Arc::clone(&self.store);
        let p = prefix.clone();
        let found = blocking(move || store.ids_with_prefix(IdTable::Messages, &p)).await?;
        let id = prefix.pick(found)?;
        Ok(id.parse()?)
    }

    /// The prompt `text` names: a whole id, or the one prompt whose id
    /// starts with it.
    ///
    /// # Errors
    /// [`AppError::Refused`] for text that is no id, [`AppError::Prefix`]
    /// for a prefix too short, matching nothing, or matching several.
    pub async fn resolve_prompt(&self, text: &str) -> Result<PromptId, AppError> {
        let prefix = IdPrefix::parse(text, prefix::PROMPT)?;
        let parse = |id: &str| {
            id.parse::<PromptId>()
                .map_err(|e| AppError::from(super::Refused(e.to_string())))
        };
        if prefix.is_whole() {
            return parse(prefix.as_str());
        }
        let store = Arc::clone(&self.store);
        let p = prefix.clone();
        let found = blocking(move || store.ids_with_prefix(IdTable::Prompts, &p)).await?;
        parse(&prefix.pick(found)?)
    }
}
