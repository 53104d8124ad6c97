//! People's inboxes: which people have messages, and how many of them
//! are unread. The messages themselves are read like an agent's
//! ([`Store::inbox`] with `person:NAME`).

use serde::Serialize;

use crate::model::{PERSON_PREFIX, PersonName};

use super::{Store, StoreError};

/// One person with messages in their inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonCount {
    pub person: PersonName,
    /// Delivered and not acknowledged.
    pub unread: u64,
    /// Every message to them, whatever its state.
    pub total: u64,
    /// The newest message's id.
    pub newest: String,
}

impl Store {
    /// Every person with messages, the one with the newest message first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn people(&self) -> Result<Vec<PersonCount>, StoreError> {
        self.read(|tx| {
            // A range on `agent` (`person:` up to `person;`) reads only
            // people's rows, through the deliveries_agent index.
            let mut stmt = tx.prepare_cached(
                "SELECT d.agent, COUNT(*), \
                 SUM(d.state = 'delivered' AND a.acked_at IS NULL), MAX(d.message_id) \
                 FROM deliveries d LEFT JOIN acks a ON a.message_id = d.message_id AND a.agent = \
                 d.agent WHERE d.agent >= ?1 AND d.agent < ?2 GROUP BY d.agent \
                 ORDER BY MAX(d.message_id) DESC",
            )?;
            let end = format!("{};", PERSON_PREFIX.trim_end_matches(':'));
            let rows = stmt
                .query_map([PERSON_PREFIX, end.as_str()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(who, total, unread, newest)| {
                    Ok(PersonCount {
                        person: PersonName::from_sender(&who)
                            .ok_or_else(|| StoreError::Corrupt(format!("recipient {who:?}")))?,
                        unread: unread.unsigned_abs(),
                        total: total.unsigned_abs(),
                        newest,
                    })
                })
                .collect()
        })
    }
}
