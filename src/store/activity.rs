//! Recent activity, for the status page: the newest deliveries with their
//! outcome, and deliveries per minute.

use rusqlite::params;
use serde::Serialize;

use crate::model::{DeliveryState, MethodName, Priority};

use super::{Store, StoreError};

/// One delivery as the status page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RecentDelivery {
    pub message_id: String,
    pub from: String,
    pub agent: String,
    pub priority: Priority,
    pub state: DeliveryState,
    pub method: Option<MethodName>,
    /// The receipt's detail: the inbox file, the post, or the last error.
    pub detail: Option<String>,
    pub attempts: u32,
    #[serde(with = "crate::model::time::ms")]
    pub updated_at: i64,
}

impl Store {
    /// The `limit` deliveries updated last, newest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn recent_deliveries(&self, limit: usize) -> Result<Vec<RecentDelivery>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT d.message_id, m.sender, d.agent, d.priority, d.state, d.method, d.detail, \
                 d.attempts, d.updated_at FROM deliveries d JOIN messages m ON m.id = \
                 d.message_id ORDER BY d.updated_at DESC, d.id DESC LIMIT ?1",
            )?;
            let mut rows = stmt.query([i64::try_from(limit).unwrap_or(i64::MAX)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let rank: i64 = row.get(3)?;
                out.push(RecentDelivery {
                    message_id: row.get(0)?,
                    from: row.get(1)?,
                    agent: row.get(2)?,
                    priority: Priority::from_rank(rank)
                        .ok_or_else(|| StoreError::Corrupt(format!("priority {rank}")))?,
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
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT (updated_at / 60000) * 60000 AS minute, COUNT(*) FROM deliveries WHERE \
                 state = 'delivered' AND updated_at >= ?1 GROUP BY minute ORDER BY minute",
            )?;
            let rows = stmt
                .query_map(params![since], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                })?
                .map(|r| r.map(|(m, n)| (m, u64::try_from(n).unwrap_or(0))))
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }
}
