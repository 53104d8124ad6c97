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
            // people's counts (kept by the store's triggers), and each
            // one's newest message through the deliveries_agent index.
            let mut stmt = tx.prepare_cached(
                "SELECT c.agent, SUM(c.n), \
                 SUM(CASE WHEN c.state = 'delivered' AND c.acked = 0 THEN c.n ELSE 0 END), \
                 (SELECT MAX(d.message_id) FROM deliveries d WHERE d.agent = c.agent) AS newest \
                 FROM delivery_counts c WHERE c.agent >= ?1 AND c.agent < ?2 GROUP BY c.agent \
                 HAVING SUM(c.n) > 0 ORDER BY newest DESC",
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
