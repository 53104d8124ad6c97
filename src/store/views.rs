//! Read models over the queue (status, inbox listings, receipts) and acks.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::model::{
    AgentId, AttemptOutcome, DeliveryState, MessageId, MethodName, Priority, UnifiedMessage,
};

use super::queue::{MESSAGE_COLUMNS, message_from_row};
use super::{Store, StoreError};

/// One method tried in one attempt, as stored.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AttemptView {
    pub attempt: u32,
    pub method: MethodName,
    pub outcome: AttemptOutcome,
    pub error: Option<String>,
    #[serde(with = "crate::model::time::ms")]
    pub finished_at: i64,
}

/// A delivery of one message to one agent, with its history.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeliveryView {
    pub agent: String,
    pub state: DeliveryState,
    /// The method that delivered it.
    pub method: Option<MethodName>,
    /// The inbox file (delivered) or the last error (queued, failed).
    pub detail: Option<String>,
    pub attempts: u32,
    #[serde(with = "crate::model::time::ms")]
    pub updated_at: i64,
    pub acked_by: Option<String>,
    #[serde(with = "crate::model::time::opt_ms")]
    pub acked_at: Option<i64>,
    pub tried: Vec<AttemptView>,
    /// The machine that delivered it, or holds it (several machines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why it is still waiting, when the core knows better than the store
    /// ("node desk-2 offline since 14:02").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// When the agent took it: its own hook saw it in what it was given
    /// to read (not only keys pressed).
    #[serde(
        with = "crate::model::time::opt_ms",
        skip_serializing_if = "Option::is_none"
    )]
    pub seen_at: Option<i64>,
}

impl DeliveryView {
    /// Whether the delivery has reached a final state.
    #[must_use]
    pub fn is_final(&self) -> bool {
        self.state.is_final()
    }

    /// One line a person can read: "delivered by inbox after gui failed: …".
    #[must_use]
    pub fn summary(&self) -> String {
        let failures: Vec<String> = self
            .tried
            .iter()
            .filter(|t| t.outcome != AttemptOutcome::Ok)
            .map(|t| {
                format!(
                    "{} failed: {}",
                    t.method,
                    t.error.as_deref().unwrap_or("unknown error")
                )
            })
            .collect();
        match self.state {
            DeliveryState::Delivered => {
                let method = self.method.map_or("?", MethodName::as_str);
                let last_attempt = self.tried.iter().map(|t| t.attempt).max().unwrap_or(0);
                let fell_back: Vec<&AttemptView> = self
                    .tried
                    .iter()
                    .filter(|t| t.attempt == last_attempt && t.outcome != AttemptOutcome::Ok)
                    .collect();
                let on = self
                    .node
                    .as_deref()
                    .map(|n| format!(" on {n}"))
                    .unwrap_or_default();
                let seen = self
                    .seen_at
                    .and_then(|t| jiff::Timestamp::from_millisecond(t).ok())
                    .map(|t| format!(", seen by the agent at {t:.0}"))
                    .unwrap_or_default();
                if fell_back.is_empty() {
                    format!("delivered by {method}{on}{seen}")
                } else {
                    let why: Vec<String> = fell_back
                        .iter()
                        .map(|t| {
                            format!(
                                "{} failed: {}",
                                t.method,
                                t.error.as_deref().unwrap_or("unknown error")
                            )
                        })
                        .collect();
                    format!("delivered by {method}{on}{seen} after {}", why.join("; "))
                }
            }
            DeliveryState::Failed => format!(
                "failed after {} attempt(s): {}",
                self.attempts,
                failures
                    .last()
                    .cloned()
                    .or_else(|| self.detail.clone())
                    .unwrap_or_default()
            ),
            _ if self.waiting.is_some() => {
                format!("queued: {}", self.waiting.as_deref().unwrap_or_default())
            }
            DeliveryState::Delivering if self.node.is_some() => {
                format!("delivering on {}", self.node.as_deref().unwrap_or_default())
            }
            DeliveryState::Queued if self.attempts > 0 => format!(
                "queued for retry after {} attempt(s): {}",
                self.attempts,
                self.detail.as_deref().unwrap_or_default()
            ),
            other => other.as_str().to_owned(),
        }
    }
}

/// A message in an agent's inbox listing.
#[derive(Debug, Clone, Serialize)]
pub struct InboxEntry {
    pub message: UnifiedMessage,
    pub state: DeliveryState,
    pub method: Option<MethodName>,
    pub acked_by: Option<String>,
    #[serde(with = "crate::model::time::opt_ms")]
    pub acked_at: Option<i64>,
}

/// Per-agent line of the status report.
#[derive(Debug, Clone, Serialize)]
pub struct AgentStatus {
    pub agent: String,
    pub last_message: Option<String>,
    pub last_state: Option<DeliveryState>,
    pub last_method: Option<MethodName>,
    #[serde(with = "crate::model::time::opt_ms")]
    pub last_delivery_at: Option<i64>,
    /// Delivered and not yet acknowledged.
    pub unacked: u64,
}

/// A failed delivery in the status report.
#[derive(Debug, Clone, Serialize)]
pub struct FailureView {
    pub message_id: String,
    pub agent: String,
    pub attempts: u32,
    pub error: String,
    #[serde(with = "crate::model::time::ms")]
    pub at: i64,
}

/// Queue depth by state and priority, per-agent last delivery, failures.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// state -> priority -> count.
    pub queue: BTreeMap<DeliveryState, BTreeMap<Priority, u64>>,
    pub agents: Vec<AgentStatus>,
    pub recent_failures: Vec<FailureView>,
    pub failed_total: u64,
}

/// What an ack did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AckResult {
    Acked {
        #[serde(with = "crate::model::time::ms")]
        at: i64,
    },
    AlreadyAcked {
        by: String,
        #[serde(with = "crate::model::time::ms")]
        at: i64,
    },
    NotDelivered {
        state: DeliveryState,
    },
    NoSuchDelivery,
}

impl Store {
    /// Every delivery of a message, with its attempts and ack.
    ///
    /// # Errors
    /// [`StoreError`].
    pub(crate) fn deliveries_of(&self, id: MessageId) -> Result<Vec<DeliveryView>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT d.id, d.agent, d.state, d.method, d.detail, d.attempts, d.updated_at, a.acked_by, a.acked_at, d.node, d.seen_at
                 FROM deliveries d LEFT JOIN acks a ON a.message_id = d.message_id AND a.agent = d.agent
                 WHERE d.message_id = ?1 ORDER BY d.id",
            )?;
            let mut out: Vec<(i64, DeliveryView)> = stmt
                .query_map([id.to_string()], |r| {
                    Ok((
                        r.get(0)?,
                        DeliveryView {
                            agent: r.get(1)?,
                            state: r.get(2)?,
                            method: r.get(3)?,
                            detail: r.get(4)?,
                            attempts: r.get(5)?,
                            updated_at: r.get(6)?,
                            acked_by: r.get(7)?,
                            acked_at: r.get(8)?,
                            tried: Vec::new(),
                            node: r.get(9)?,
                            waiting: None,
                            seen_at: r.get(10)?,
                        },
                    ))
                })?
                .collect::<Result<_, _>>()?;
            let mut attempts = tx.prepare_cached(
                "SELECT attempt, method, outcome, error, finished_at FROM attempts WHERE \
                 delivery_id = ?1 ORDER BY id",
            )?;
            for (delivery_id, view) in &mut out {
                view.tried = attempts
                    .query_map([*delivery_id], |r| {
                        Ok(AttemptView {
                            attempt: r.get(0)?,
                            method: r.get(1)?,
                            outcome: r.get(2)?,
                            error: r.get(3)?,
                            finished_at: r.get(4)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
            }
            Ok(out.into_iter().map(|(_, v)| v).collect())
        })
    }

    /// The messages of one recipient (an agent id, or `person:NAME`),
    /// newest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn inbox(
        &self,
        recipient: &str,
        unacked_only: bool,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        self.read(|tx| {
            let sql = format!(
                "SELECT d.state, d.method, a.acked_by, a.acked_at, {MESSAGE_COLUMNS}
                 FROM deliveries d JOIN messages m ON m.id = d.message_id
                 LEFT JOIN acks a ON a.message_id = d.message_id AND a.agent = d.agent
                 WHERE d.agent = ?1 AND (?2 = 0 OR (a.acked_at IS NULL AND d.state = 'delivered'))
                 ORDER BY d.message_id DESC LIMIT ?3"
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![
                recipient,
                unacked_only,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(InboxEntry {
                    state: row.get(0)?,
                    method: row.get(1)?,
                    acked_by: row.get(2)?,
                    acked_at: row.get(3)?,
                    message: message_from_row(row, 4)?,
                });
            }
            Ok(out)
        })
    }

    /// Records that `agent` (an agent id, or `person:NAME`) acknowledged
    /// message `id`, by `by`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn ack(
        &self,
        id: MessageId,
        agent: &str,
        by: &str,
        now: i64,
    ) -> Result<AckResult, StoreError> {
        self.write(|tx| {
            let state: Option<DeliveryState> = tx
                .query_row(
                    "SELECT state FROM deliveries WHERE message_id = ?1 AND agent = ?2",
                    params![id.to_string(), agent],
                    |r| r.get(0),
                )
                .optional()?;
            match state {
                None => return Ok(AckResult::NoSuchDelivery),
                Some(DeliveryState::Delivered) => {}
                Some(state) => return Ok(AckResult::NotDelivered { state }),
            }
            let existing: Option<(String, i64)> = tx
                .query_row(
                    "SELECT acked_by, acked_at FROM acks WHERE message_id = ?1 AND agent = ?2",
                    params![id.to_string(), agent],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((by, at)) = existing {
                return Ok(AckResult::AlreadyAcked { by, at });
            }
            tx.execute(
                "INSERT INTO acks (message_id, agent, acked_by, acked_at) VALUES (?1, ?2, ?3, ?4)",
                params![id.to_string(), agent, by, now],
            )?;
            super::feed::append(
                tx,
                now,
                &super::feed::Activity::Acked {
                    message_id: id,
                    recipient: agent.to_owned(),
                    by: by.to_owned(),
                },
            )?;
            Ok(AckResult::Acked { at: now })
        })
    }

    /// The status report. `agents` lists the agents to report on, in order.
    /// With `only`, the queue and the failures count only the deliveries
    /// that concern that agent: those to it, and those of messages it sent.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn status(
        &self,
        agents: &[AgentId],
        failure_limit: usize,
        only: Option<&AgentId>,
    ) -> Result<Status, StoreError> {
        let concerns = if only.is_some() {
            "(d.agent = :agent OR d.message_id IN (SELECT id FROM messages WHERE sender = :agent))"
        } else {
            ":agent IS NULL"
        };
        let only = only.map(AgentId::as_str);
        self.read(|tx| {
            let mut queue: BTreeMap<DeliveryState, BTreeMap<Priority, u64>> = DeliveryState::ALL
                .into_iter()
                .map(|state| (state, Priority::ALL.into_iter().map(|p| (p, 0)).collect()))
                .collect();
            // The whole queue is counted by the store's triggers; one
            // agent's share (an agent's token) is counted row by row.
            let mut stmt = tx.prepare_cached(&if only.is_some() {
                format!("SELECT state, priority, COUNT(*) FROM deliveries d WHERE {concerns} GROUP BY state, priority")
            } else {
                "SELECT state, priority, SUM(n) FROM delivery_counts WHERE :agent IS NULL GROUP BY state, priority"
                    .to_owned()
            })?;
            let mut rows = stmt.query(rusqlite::named_params! {":agent": only})?;
            while let Some(row) = rows.next()? {
                let state: DeliveryState = row.get(0)?;
                let rank: i64 = row.get(1)?;
                let count: i64 = row.get(2)?;
                let count = u64::try_from(count).unwrap_or(0);
                // Ranks are written from `Priority`: no other can be stored.
                if let Some(p) = Priority::from_rank(rank) {
                    *queue.entry(state).or_default().entry(p).or_default() += count;
                }
            }
            drop(rows);
            let mut last = tx.prepare_cached(
                "SELECT message_id, state, method, updated_at FROM deliveries WHERE agent = ?1 AND state IN ('delivered','failed')
                 ORDER BY updated_at DESC, id DESC LIMIT 1",
            )?;
            let mut unacked = tx.prepare_cached(
                "SELECT COALESCE(SUM(n), 0) FROM delivery_counts WHERE agent = ?1 AND state = 'delivered' AND acked = 0",
            )?;
            let mut per_agent = Vec::new();
            for agent in agents {
                let row: Option<(String, DeliveryState, Option<MethodName>, i64)> = last
                    .query_row([agent.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .optional()?;
                let (last_message, last_state, last_method, last_delivery_at) = match row {
                    Some((m, s, method, at)) => (Some(m), Some(s), method, Some(at)),
                    None => (None, None, None, None),
                };
                per_agent.push(AgentStatus {
                    agent: agent.to_string(),
                    last_message,
                    last_state,
                    last_method,
                    last_delivery_at,
                    unacked: u64::try_from(unacked.query_row([agent.as_str()], |r| r.get::<_, i64>(0))?).unwrap_or(0),
                });
            }
            let mut failures = tx.prepare_cached(&format!(
                "SELECT message_id, agent, attempts, COALESCE(detail, ''), updated_at FROM deliveries d
                 WHERE state = 'failed' AND {concerns} ORDER BY updated_at DESC, id DESC LIMIT :limit"
            ))?;
            let limit = i64::try_from(failure_limit).unwrap_or(i64::MAX);
            let recent_failures = failures
                .query_map(rusqlite::named_params! {":limit": limit, ":agent": only}, |r| {
                    Ok(FailureView { message_id: r.get(0)?, agent: r.get(1)?, attempts: r.get(2)?, error: r.get(3)?, at: r.get(4)? })
                })?
                .collect::<Result<_, _>>()?;
            let failed_total = queue.get(&DeliveryState::Failed).map_or(0, |m| m.values().sum());
            Ok(Status { queue, agents: per_agent, recent_failures, failed_total })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Destination, Kind, Recipient};
    use crate::store::{Submission, test_submission};

    fn to_all(body: &str) -> Submission {
        let to = ["Agent-1", "Agent-2"]
            .map(|a| Destination::Agent(a.parse().unwrap()))
            .to_vec();
        test_submission(
            "person:alice",
            Recipient::Broadcast,
            Kind::Broadcast,
            body,
            to,
        )
    }

    /// The triggers' counts against the rows themselves.
    fn counts_agree(store: &Store) {
        store
            .read(|tx| {
                let kept: Vec<(String, String, i64, i64, i64)> = tx
                    .prepare("SELECT agent, state, priority, acked, n FROM delivery_counts WHERE n <> 0 ORDER BY 1, 2, 3, 4")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                    .collect::<Result<_, _>>()?;
                let truth: Vec<(String, String, i64, i64, i64)> = tx
                    .prepare(
                        "SELECT d.agent, d.state, d.priority, EXISTS (SELECT 1 FROM acks a \
                         WHERE a.message_id = d.message_id AND a.agent = d.agent), COUNT(*) \
                         FROM deliveries d GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
                    )?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                    .collect::<Result<_, _>>()?;
                assert_eq!(kept, truth);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn deliveries_per_minute_count_the_delivered_ones_in_each_minute() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("acp.db")).unwrap();
        let subs: Vec<Submission> = (0..4).map(|i| to_all(&format!("m{i}"))).collect();
        store.accept(&subs.iter().collect::<Vec<_>>()).unwrap();
        // Eight deliveries: ids 1..=8, placed in time by hand.
        let start = (crate::store::now_ms() / 60_000 - 5) * 60_000;
        store
            .write(|tx| {
                for (id, state, at) in [
                    (1, "delivered", start - 1),
                    (2, "delivered", start + 10_000),
                    (3, "delivered", start + 59_999),
                    (4, "failed", start + 20_000),
                    (5, "delivered", start + 60_000),
                    (6, "queued", start + 61_000),
                    (7, "delivered", start + 180_000),
                    (8, "delivered", start + 185_000),
                ] {
                    tx.execute(
                        "UPDATE deliveries SET state = ?2, updated_at = ?3 WHERE id = ?1",
                        rusqlite::params![id, state, at],
                    )?;
                }
                Ok(())
            })
            .unwrap();
        let minute = |n: i64| start + n * 60_000;
        assert_eq!(
            store.delivered_per_minute(start).unwrap(),
            [(minute(0), 2), (minute(1), 1), (minute(3), 2)]
        );
        // A window that begins inside a minute counts from where it begins.
        assert_eq!(
            store.delivered_per_minute(start + 30_000).unwrap(),
            [(minute(0), 1), (minute(1), 1), (minute(3), 2)]
        );
        assert!(store.delivered_per_minute(minute(4)).unwrap().is_empty());
    }

    #[test]
    fn the_counted_queue_follows_every_change_of_the_rows() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("acp.db")).unwrap();
        let subs: Vec<Submission> = (0..6).map(|i| to_all(&format!("m{i}"))).collect();
        store.accept(&subs.iter().collect::<Vec<_>>()).unwrap();
        counts_agree(&store);
        let set = |sql: &str| {
            store
                .write(|tx| {
                    tx.execute(sql, [])?;
                    Ok(())
                })
                .unwrap();
            counts_agree(&store);
        };
        set("UPDATE deliveries SET state = 'delivering' WHERE id % 2 = 0");
        set("UPDATE deliveries SET state = 'delivered' WHERE state = 'delivering'");
        set("UPDATE deliveries SET state = 'failed' WHERE id % 3 = 0 AND state = 'queued'");
        // An ack of a delivered message, of a queued one, then the queued
        // one delivered: unacked counts what is delivered and not acked.
        let delivered = subs[1].message.id;
        store.ack(delivered, "Agent-2", "Agent-2", 1).unwrap();
        counts_agree(&store);
        set("UPDATE deliveries SET state = 'delivered'");
        let status = store
            .status(
                &["Agent-1".parse().unwrap(), "Agent-2".parse().unwrap()],
                5,
                None,
            )
            .unwrap();
        let unacked: Vec<u64> = status.agents.iter().map(|a| a.unacked).collect();
        assert_eq!(unacked, vec![6, 5]);
        assert_eq!(
            status.queue[&DeliveryState::Delivered][&Priority::Urgent],
            12
        );
        // Retention removes rows: the counts follow.
        let (pruned, _) = store
            .prune_messages(
                crate::store::now_ms() + 1000,
                "",
                &std::collections::HashMap::new(),
                3,
            )
            .unwrap();
        assert_eq!(pruned.messages, 3);
        counts_agree(&store);
        set("DELETE FROM acks");
        set("UPDATE deliveries SET state = 'queued', priority = 0");
    }
}
