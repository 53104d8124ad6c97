//! Failed deliveries queued again by a person (`acp retry`). The store
//! decides, once: one conditional update takes a delivery from `failed` to
//! `queued` (`... WHERE state = 'failed'`), so of two retries at the same
//! moment exactly one queues it and the other is told what it found. The
//! attempts made so far stay in the history; the new ones are numbered on
//! from them, and the retry budget and backoff count from the retry.

use rusqlite::{OptionalExtension, params};

use crate::model::{AuditOutcome, DeliveryState, MessageId};

use super::{Store, StoreError};

/// What one retry found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Queued again; the attempts it had made.
    Queued { attempts: u32 },
    /// It was not `failed` (delivered, or queued by someone a moment ago).
    NotFailed(DeliveryState),
    /// On a node: the hub handed it over, and the hub's own delivery is
    /// the one to retry.
    FromHub,
    /// There is no such delivery.
    Missing,
}

/// A failed delivery, as `acp retry --failed` finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDelivery {
    pub message_id: MessageId,
    /// The agent, or `@discord`.
    pub agent: String,
    pub attempts: u32,
    /// When it failed.
    pub failed_at: i64,
}

impl Store {
    /// Queues the failed deliveries `items` (message, agent) again, in one
    /// transaction with an audit row (`message.retry`, by `actor`) for each
    /// one queued; a Discord receipt already given for the message is owed
    /// again, to be posted in its channel once the outcome is final.
    ///
    /// # Errors
    /// [`StoreError`]; then nothing was queued.
    pub fn retry(
        &self,
        items: &[(MessageId, String)],
        actor: &str,
        now: i64,
    ) -> Result<Vec<RetryOutcome>, StoreError> {
        self.write(|tx| {
            let mut requeue = tx.prepare_cached(
                "UPDATE deliveries SET state = 'queued', next_attempt_at = ?3, updated_at = ?3, \
                 claimed_by = NULL, method = NULL, detail = ?4, retry_from = attempts \
                 WHERE message_id = ?1 AND agent = ?2 AND state = 'failed' \
                 AND NOT EXISTS (SELECT 1 FROM cluster_inbound c \
                                 WHERE c.message_id = ?1 AND c.agent = ?2) \
                 RETURNING attempts",
            )?;
            let mut found = tx.prepare_cached(
                "SELECT d.state, EXISTS (SELECT 1 FROM cluster_inbound c \
                 WHERE c.message_id = ?1 AND c.agent = ?2) \
                 FROM deliveries d WHERE d.message_id = ?1 AND d.agent = ?2",
            )?;
            let mut receipt = tx.prepare_cached(
                "UPDATE discord_receipts SET state = 'late', updated_at = ?2 \
                 WHERE message_id = ?1 AND state = 'done'",
            )?;
            let detail = format!("queued again by {actor}");
            let mut out = Vec::with_capacity(items.len());
            for (message, agent) in items {
                let id = message.to_string();
                let queued: Option<u32> = requeue
                    .query_row(params![id, agent, now, detail], |r| r.get(0))
                    .optional()?;
                let outcome = match queued {
                    Some(attempts) => {
                        receipt.execute(params![id, now])?;
                        super::roles::audit(
                            tx,
                            now,
                            actor,
                            "message.retry",
                            Some(&id),
                            AuditOutcome::Ok,
                            Some(&format!("{agent}, after {attempts} attempt(s)")),
                        )?;
                        RetryOutcome::Queued { attempts }
                    }
                    None => match found
                        .query_row(params![id, agent], |r| {
                            Ok((r.get::<_, DeliveryState>(0)?, r.get::<_, bool>(1)?))
                        })
                        .optional()?
                    {
                        None => RetryOutcome::Missing,
                        Some((DeliveryState::Failed, true)) => RetryOutcome::FromHub,
                        Some((state, _)) => RetryOutcome::NotFailed(state),
                    },
                };
                out.push(outcome);
            }
            Ok(out)
        })
    }

    /// Failed deliveries, oldest message first: to `agent` only if given,
    /// and only those that failed at or after `since` if given; at most
    /// `limit`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn failed_deliveries(
        &self,
        agent: Option<&str>,
        since: Option<i64>,
        limit: usize,
    ) -> Result<Vec<FailedDelivery>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT message_id, agent, attempts, updated_at FROM deliveries \
                 WHERE state = 'failed' AND (?1 IS NULL OR agent = ?1) AND updated_at >= ?2 \
                 ORDER BY message_id, agent LIMIT ?3",
            )?;
            let mut rows = stmt.query(params![
                agent,
                since.unwrap_or(i64::MIN),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let id: String = row.get(0)?;
                out.push(FailedDelivery {
                    message_id: id
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("message id {id:?}")))?,
                    agent: row.get(1)?,
                    attempts: row.get(2)?,
                    failed_at: row.get(3)?,
                });
            }
            Ok(out)
        })
    }
}
