//! People through the core: what the person at a shell may sign, their
//! inbox (answers to what they sent, delivered by the `person` method),
//! and the activity feed `acp watch` follows from any process.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{App, AppError, Refused, blocking};
use crate::model::{PERSON_PREFIX, PersonName};
use crate::store::InboxEntry;
use crate::store::feed::FeedEntry;
use crate::store::people::PersonCount;

/// A person's inbox as the status page shows it: how many are unread,
/// and the newest messages.
#[derive(Debug, Clone, Serialize)]
pub struct PersonInbox {
    pub person: PersonName,
    pub unread: u64,
    pub total: u64,
    pub messages: Vec<InboxEntry>,
}

impl App {
    /// Who a message from a shell comes from: the agent `ACP_AGENT` names
    /// (and `--from`, if given, must name it too: an agent sends only as
    /// itself, never as a person or another agent); without `ACP_AGENT`,
    /// `person` (the person at the keyboard), or `from`: an agent (the
    /// person speaks for it), `person:NAME` or a bare name (that person).
    ///
    /// # Errors
    /// [`AppError::Refused`] saying what to write instead.
    pub fn shell_sender(
        &self,
        from: Option<&str>,
        person: &PersonName,
    ) -> Result<String, AppError> {
        if let Some(me) = self.config.default_sender.as_deref() {
            let me = self
                .registry
                .lookup(me)
                .map_err(|e| {
                    Refused(format!(
                        "ACP_AGENT={me:?} names no agent of this root ({e}); unset it to send \
                         as yourself ({})",
                        person.sender()
                    ))
                })?
                .id
                .clone();
            return match from {
                None => Ok(me.to_string()),
                Some(f) if self.registry.lookup(f).is_ok_and(|a| a.id == me) => Ok(me.to_string()),
                Some(f) => Err(Refused(format!(
                    "you are {me} (ACP_AGENT): an agent sends only as itself, not as {f:?}. A \
                     person sends from a shell without ACP_AGENT"
                ))
                .into()),
            };
        }
        let Some(from) = from.map(str::trim) else {
            return Ok(person.sender());
        };
        if let Ok(agent) = self.registry.lookup(from) {
            return Ok(agent.id.to_string());
        }
        let name = from.strip_prefix(PERSON_PREFIX).unwrap_or(from);
        if from.contains(':') && !from.starts_with(PERSON_PREFIX) {
            return Err(Refused(format!(
                "--from {from:?} is neither an agent nor a person: write an agent id, a \
                 person's name (alice) or person:NAME (discord: senders are the Discord bot's)"
            ))
            .into());
        }
        name.parse::<PersonName>()
            .map(|p| p.sender())
            .map_err(|e| Refused(format!("--from {from:?} is not a valid sender: {e}")).into())
    }

    /// A person's messages (answers to what they sent), newest first.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn person_inbox(
        &self,
        person: &PersonName,
        unacked_only: bool,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, AppError> {
        let store = Arc::clone(&self.store);
        let who = person.sender();
        Ok(blocking(move || store.inbox(&who, unacked_only, limit)).await?)
    }

    /// How many unread messages a person has.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn person_unread(&self, person: &PersonName) -> Result<u64, AppError> {
        let store = Arc::clone(&self.store);
        let counts = blocking(move || store.people()).await?;
        Ok(counts
            .iter()
            .find(|c| c.person == *person)
            .map_or(0, |c| c.unread))
    }

    /// Every person with messages (the newest first), each with up to
    /// `limit` of them, newest first.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn people_inboxes(&self, limit: usize) -> Result<Vec<PersonInbox>, AppError> {
        let store = Arc::clone(&self.store);
        let counts: Vec<PersonCount> = blocking(move || store.people()).await?;
        let mut out = Vec::with_capacity(counts.len());
        for c in counts {
            out.push(PersonInbox {
                messages: self.person_inbox(&c.person, false, limit).await?,
                person: c.person,
                unread: c.unread,
                total: c.total,
            });
        }
        Ok(out)
    }

    /// Where the activity feed stands now: following from here shows what
    /// happens next.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn activity_head(&self) -> Result<i64, AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.feed_head()).await?)
    }

    /// The feed's place just before what happened in the last `ago`.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn activity_since(&self, ago: Duration) -> Result<i64, AppError> {
        let store = Arc::clone(&self.store);
        let ago = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
        let at = crate::store::now_ms().saturating_sub(ago);
        Ok(blocking(move || store.feed_before(at)).await?)
    }

    /// Up to `limit` feed rows after `after`, oldest first.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn activity_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.feed_after(after, limit)).await?)
    }
}
