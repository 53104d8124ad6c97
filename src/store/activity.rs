//! Recent activity, for the status page: the newest deliveries with their
//! outcome, and deliveries per minute.

use rusqlite::params;
use serde::Serialize;

use crate::model::message::{PREVIEW_CHARS, preview};
use crate::model::{DeliveryState, MethodName, Priority};

use super::{Store, StoreError};

/// One delivery as the status page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RecentDelivery {
    pub message_id: String,
    pub from: String,
    pub agent: String,
    pub priority: Priority,
    /// The start of the message's body as one line (see
    /// [`preview`](crate::model::message::preview)): text from anyone, to
    /// be escaped wherever it is shown.
    pub preview: String,
    pub state: DeliveryState,
    pub method: Option<MethodName>,
    /// The receipt's detail: the inbox file, the post, or the last error.
    pub detail: Option<String>,
    pub attempts: u32,
    #[serde(with = "crate::model::time::ms")]
    pub updated_at: i64,
}

/// A minute in milliseconds.
const MINUTE: i64 = 60_000;

/// How many characters of a body are read for its preview: enough for
/// [`PREVIEW_CHARS`] once runs of whitespace are folded, short of a whole
/// body of 16 KiB.
const PREVIEW_READ: usize = 4 * PREVIEW_CHARS;

impl Store {
    /// The `limit` deliveries updated last, newest first, each with the
    /// start of its message's body (only the start is read).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn recent_deliveries(&self, limit: usize) -> Result<Vec<RecentDelivery>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT d.message_id, m.sender, d.agent, d.priority, d.state, d.method, d.detail, \
                 d.attempts, d.updated_at, substr(m.body, 1, ?2), length(m.body) > ?2 FROM \
                 deliveries d JOIN messages m ON m.id = d.message_id ORDER BY d.updated_at DESC, \
                 d.id DESC LIMIT ?1",
            )?;
            let mut rows = stmt.query(params![
                i64::try_from(limit).unwrap_or(i64::MAX),
                i64::try_from(PREVIEW_READ).unwrap_or(i64::MAX)
            ])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let rank: i64 = row.get(3)?;
                out.push(RecentDelivery {
                    message_id: row.get(0)?,
                    from: row.get(1)?,
                    agent: row.get(2)?,
                    priority: Priority::from_rank(rank)
                        .ok_or_else(|| StoreError::Corrupt(format!("priority {rank}")))?,
                    preview: preview(&row.get::<_, String>(9)?, PREVIEW_CHARS, row.get(10)?),
                    state: row.get(4)?,
                    method: row.get(5)?,
                    detail: row.get(6)?,
                    attempts: row.get(7)?,
                    updated_at: row.get(8)?,
                });
            }
            Ok(out)
        })
    }

    /// Deliveries made per minute since `since` (milliseconds since the
    /// epoch): (the minute's start, how many), oldest first, minutes
    /// without any left out.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn delivered_per_minute(&self, since: i64) -> Result<Vec<(i64, u64)>, StoreError> {
        let now = super::now_ms();
        self.read(|tx| {
            // A count over each minute's stretch of the index: the index
            // is read, never the rows, and nothing is sorted.
            let mut stmt = tx.prepare_cached(
                "SELECT COUNT(*) FROM deliveries INDEXED BY deliveries_delivered_at WHERE \
                 state = 'delivered' AND updated_at >= ?1 AND updated_at < ?2",
            )?;
            let mut out = Vec::new();
            let mut minute = since.div_euclid(MINUTE) * MINUTE;
            while minute <= now {
                let n: i64 =
                    stmt.query_row(params![since.max(minute), minute + MINUTE], |r| r.get(0))?;
                if n > 0 {
                    out.push((minute, u64::try_from(n).unwrap_or(0)));
                }
                minute += MINUTE;
            }
            Ok(out)
        })
    }
}
