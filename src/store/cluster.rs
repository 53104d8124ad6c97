//! Work handed between machines (`[cluster]`). On a node: the deliveries
//! the hub handed over, stored once however often JetStream redelivers
//! them, and whether each outcome went back. On the hub: the outcomes that
//! come back, and each machine's last heartbeat.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::model::{
    AgentId, AttemptOutcome, DeliveryState, Kind, MessageId, MethodName, UnifiedMessage, Via,
};

use super::feed::{Activity, append};
use super::{Store, StoreError};

/// How `deliveries.claimed_by` names a machine holding a forwarded
/// delivery (no dispatcher lease stands for it).
pub(crate) const NODE_HOLDER: &str = "node:";

/// One delivery the hub hands to a node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Handed {
    pub message: UnifiedMessage,
    pub via: Via,
    pub agent: AgentId,
}

/// One method tried on the node, as reported to the hub.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteAttempt {
    pub attempt: u32,
    pub method: MethodName,
    pub started_at: i64,
    pub finished_at: i64,
    pub outcome: AttemptOutcome,
    pub error: Option<String>,
}

/// How a handed delivery ended on its node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteOutcome {
    pub message_id: MessageId,
    pub agent: AgentId,
    /// `delivered` or `failed`.
    pub state: DeliveryState,
    pub method: Option<MethodName>,
    pub detail: Option<String>,
    pub attempts: Vec<RemoteAttempt>,
}

/// What the hub recorded from an outcome, for its event.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub kind: Kind,
    pub attempts: u32,
}

/// A machine as the hub last heard of it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodeSeen {
    pub node: String,
    #[serde(with = "crate::model::time::ms")]
    pub last_seen: i64,
    /// What it said of itself (JSON: version, agents).
    pub detail: String,
}

/// A message as stored: sender, recipient, kind, priority, body, tags,
/// time, what it answers.
type StoredMessage = (
    String,
    String,
    String,
    i64,
    String,
    String,
    i64,
    Option<String>,
);

/// A handed delivery that ended: its id, message, agent, state, method
/// and detail.
type EndedRow = (
    i64,
    String,
    String,
    DeliveryState,
    Option<MethodName>,
    Option<String>,
);

impl Store {
    /// Stores deliveries handed over by the hub, in one transaction. A
    /// delivery already here (JetStream redelivered it) is not stored
    /// twice; if it already ended, its outcome is owed to the hub again
    /// (the hub may not have heard it). Returns how many were new.
    ///
    /// # Errors
    /// [`StoreError`]; then none of them was stored.
    pub fn accept_handed(&self, items: &[Handed], now: i64) -> Result<usize, StoreError> {
        self.accept_from_elsewhere(items, now, true)
            .map(|(fresh, _)| fresh)
    }

    /// On the hub: stores messages sent on a node (an agent's `acp send`
    /// there), one delivery per item, each once however often it arrives.
    /// A node may not name a message the hub already holds unless it is
    /// the same message (a redelivery, or another recipient of its own
    /// broadcast): an item whose id holds another message is not stored.
    /// Returns, per item, whether it was taken (false: refused).
    ///
    /// # Errors
    /// [`StoreError`]; then none of them was stored.
    pub fn accept_submitted(&self, items: &[Handed], now: i64) -> Result<Vec<bool>, StoreError> {
        self.accept_from_elsewhere(items, now, false)
            .map(|(_, taken)| taken)
    }

    fn accept_from_elsewhere(
        &self,
        items: &[Handed],
        now: i64,
        inbound: bool,
    ) -> Result<(usize, Vec<bool>), StoreError> {
        self.write(|tx| {
            let mut message = tx.prepare_cached(&format!(
                "INSERT OR IGNORE INTO messages {}",
                super::queue::MESSAGE_ROW
            ))?;
            let mut stored = tx.prepare_cached(
                "SELECT sender, recipient, kind, priority, body, tags, created_at, reply_to FROM \
                 messages WHERE id = ?1",
            )?;
            let mut delivery = tx.prepare_cached(
                "INSERT OR IGNORE INTO deliveries (message_id, agent, priority, state, \
                 next_attempt_at, updated_at) VALUES (?1, ?2, ?3, 'queued', ?4, ?4)",
            )?;
            let mut inbound_row = tx.prepare_cached(
                "INSERT OR IGNORE INTO cluster_inbound (message_id, agent, received_at) VALUES \
                 (?1, ?2, ?3)",
            )?;
            let mut owe_again = tx.prepare_cached(
                "UPDATE cluster_inbound SET reported_at = NULL WHERE message_id = ?1 AND agent = \
                 ?2",
            )?;
            let mut fresh = 0;
            let mut taken = Vec::with_capacity(items.len());
            for h in items {
                let m = &h.message;
                let id = m.id.to_string();
                if !inbound {
                    let held: Option<StoredMessage> = stored
                        .query_row(params![id], |r| {
                            Ok((
                                r.get(0)?,
                                r.get(1)?,
                                r.get(2)?,
                                r.get(3)?,
                                r.get(4)?,
                                r.get(5)?,
                                r.get(6)?,
                                r.get(7)?,
                            ))
                        })
                        .optional()?;
                    let same = held.is_none_or(|held| {
                        held == (
                            m.from.clone(),
                            m.to.to_string(),
                            m.kind.as_str().to_owned(),
                            m.priority.rank(),
                            m.body.clone(),
                            serde_json::to_string(&m.tags).unwrap_or_else(|_| "[]".into()),
                            m.created_at,
                            m.reply_to.map(|r| r.to_string()),
                        )
                    });
                    taken.push(same);
                    if !same {
                        continue;
                    }
                }
                if super::queue::insert_message(&mut message, m, h.via)? == 1 {
                    append(tx, now, &Activity::sent(m, 1))?;
                }
                let new =
                    delivery.execute(params![id, h.agent.as_str(), m.priority.rank(), now])?;
                if !inbound {
                    fresh += new;
                } else if inbound_row.execute(params![id, h.agent.as_str(), now])? == 1 {
                    fresh += 1;
                } else {
                    owe_again.execute(params![id, h.agent.as_str()])?;
                }
            }
            Ok((fresh, taken))
        })
    }

    /// Outcomes of handed deliveries that ended and are not yet reported
    /// to the hub, oldest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn unreported(&self, limit: usize) -> Result<Vec<RemoteOutcome>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT d.id, d.message_id, d.agent, d.state, d.method, d.detail
                 FROM cluster_inbound c JOIN deliveries d
                   ON d.message_id = c.message_id AND d.agent = c.agent
                 WHERE c.reported_at IS NULL AND d.state IN ('delivered', 'failed')
                 ORDER BY c.received_at, c.message_id LIMIT ?1",
            )?;
            let rows: Vec<EndedRow> = stmt
                .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            let mut attempts = tx.prepare_cached(
                "SELECT attempt, method, started_at, finished_at, outcome, error FROM attempts \
                 WHERE delivery_id = ?1 ORDER BY id",
            )?;
            let corrupt = |what: &str, v: &str| StoreError::Corrupt(format!("{what} {v:?}"));
            let mut out = Vec::with_capacity(rows.len());
            for (delivery_id, message_id, agent, state, method, detail) in rows {
                out.push(RemoteOutcome {
                    message_id: message_id
                        .parse()
                        .map_err(|_| corrupt("message id", &message_id))?,
                    agent: agent.parse().map_err(|_| corrupt("agent", &agent))?,
                    state,
                    method,
                    detail,
                    attempts: attempts
                        .query_map([delivery_id], |r| {
                            Ok(RemoteAttempt {
                                attempt: r.get(0)?,
                                method: r.get(1)?,
                                started_at: r.get(2)?,
                                finished_at: r.get(3)?,
                                outcome: r.get(4)?,
                                error: r.get(5)?,
                            })
                        })?
                        .collect::<Result<_, _>>()?,
                });
            }
            Ok(out)
        })
    }

    /// Notes that the hub has these outcomes.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn mark_reported(&self, done: &[(MessageId, AgentId)], now: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE cluster_inbound SET reported_at = ?3 WHERE message_id = ?1 AND agent = ?2",
            )?;
            for (id, agent) in done {
                stmt.execute(params![id.to_string(), agent.as_str(), now])?;
            }
            Ok(())
        })
    }

    /// On the hub: records how forwarded deliveries ended on their
    /// machines (each `(node, outcome)`), with the attempts made there, in
    /// one transaction. A delivery already final, or unknown (the store was
    /// restored to before it), is left alone: `None` in its place.
    ///
    /// # Errors
    /// [`StoreError`]; then none of them was recorded.
    pub fn record_remote(
        &self,
        outcomes: &[(&str, &RemoteOutcome)],
        now: i64,
    ) -> Result<Vec<Option<Recorded>>, StoreError> {
        self.write(|tx| {
            let mut find = tx.prepare_cached(
                "SELECT d.id, d.state, d.attempts, m.kind FROM deliveries d JOIN messages m ON \
                 m.id = d.message_id WHERE d.message_id = ?1 AND d.agent = ?2",
            )?;
            let mut attempt = tx.prepare_cached(
                "INSERT INTO attempts (delivery_id, attempt, method, started_at, finished_at, \
                 outcome, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut update = tx.prepare_cached(
                "UPDATE deliveries SET state = ?2, method = ?3, detail = ?4, attempts = ?5, \
                 node = ?6, claimed_by = NULL, updated_at = ?7 WHERE id = ?1",
            )?;
            let mut out = Vec::with_capacity(outcomes.len());
            for (node, o) in outcomes {
                let found: Option<(i64, DeliveryState, u32, String)> = find
                    .query_row(params![o.message_id.to_string(), o.agent.as_str()], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .optional()?;
                let Some((id, _, before, kind)) =
                    found.filter(|(_, state, ..)| !state.is_final() && o.state.is_final())
                else {
                    out.push(None);
                    continue;
                };
                let mut last = 0;
                for a in &o.attempts {
                    attempt.execute(params![
                        id,
                        before + a.attempt,
                        a.method,
                        a.started_at,
                        a.finished_at,
                        a.outcome,
                        a.error
                    ])?;
                    last = last.max(a.attempt);
                }
                let attempts = before + last;
                update.execute(params![
                    id, o.state, o.method, o.detail, attempts, node, now
                ])?;
                let (to, detail) = (o.agent.to_string(), o.detail.clone().unwrap_or_default());
                let activity = match (o.state, o.method) {
                    (DeliveryState::Delivered, Some(method)) => Activity::Delivered {
                        message_id: o.message_id,
                        to,
                        method,
                        detail: format!("on {node}: {detail}"),
                        attempt: attempts,
                    },
                    _ => Activity::Failed {
                        message_id: o.message_id,
                        to,
                        attempts,
                        error: format!("on {node}: {detail}"),
                    },
                };
                append(tx, now, &activity)?;
                out.push(Some(Recorded {
                    kind: kind
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("kind {kind:?}")))?,
                    attempts,
                }));
            }
            Ok(out)
        })
    }

    /// On the hub: puts back in the queue the deliveries a machine has held
    /// since before `cutoff` (JetStream dropped them past its age limit),
    /// so they are handed over again. Returns how many.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn requeue_stale_forwards(&self, cutoff: i64) -> Result<usize, StoreError> {
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE deliveries SET state = 'queued', claimed_by = NULL WHERE state = \
                 'delivering' AND claimed_by LIKE 'node:%' AND updated_at < ?1",
                [cutoff],
            )?)
        })
    }

    /// On the hub: how many deliveries each machine holds, waiting for its
    /// outcome.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn held_by_nodes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT substr(claimed_by, 6), COUNT(*) FROM deliveries WHERE state = \
                 'delivering' AND claimed_by LIKE 'node:%' GROUP BY claimed_by ORDER BY 1",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.unsigned_abs()))
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// On the hub: records a machine's heartbeat.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn node_seen(&self, node: &str, at: i64, detail: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO cluster_nodes (node, last_seen, detail) VALUES (?1, ?2, ?3) ON \
                 CONFLICT (node) DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen), \
                 detail = excluded.detail",
                params![node, at, detail],
            )?;
            Ok(())
        })
    }

    /// On the hub: every machine heard from, by name.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn nodes_seen(&self) -> Result<Vec<NodeSeen>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT node, last_seen, detail FROM cluster_nodes ORDER BY node",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(NodeSeen {
                        node: r.get(0)?,
                        last_seen: r.get(1)?,
                        detail: r.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Draft, Priority, Recipient};
    use crate::store::{Outcome, OutcomeState, Submission, now_ms};

    fn message(to: &str) -> UnifiedMessage {
        Draft {
            from: "Agent-1".into(),
            to: Recipient::Agent(to.parse().unwrap()),
            kind: Kind::AgentToAgent,
            priority: Priority::Normal,
            body: "hello".into(),
            tags: vec![],
            reply_to: None,
        }
        .build(1000)
        .unwrap()
    }

    #[test]
    fn a_redelivered_handover_is_stored_once_and_its_outcome_owed_again() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("acp.db")).unwrap();
        let h = Handed {
            message: message("Agent-2"),
            via: Via::Auto,
            agent: "Agent-2".parse().unwrap(),
        };
        assert_eq!(store.accept_handed(std::slice::from_ref(&h), 1).unwrap(), 1);
        assert_eq!(store.accept_handed(std::slice::from_ref(&h), 2).unwrap(), 0);
        let claimed = store.claim("me", now_ms(), 10, None, false).unwrap();
        assert_eq!(claimed.len(), 1, "one delivery, however often handed");
        store
            .record(
                "me",
                &[Outcome {
                    delivery_id: claimed[0].delivery_id,
                    tried: vec![],
                    state: OutcomeState::Delivered {
                        method: MethodName::Inbox,
                        detail: "inbox/x.md".into(),
                    },
                }],
            )
            .unwrap();
        let owed = store.unreported(10).unwrap();
        assert_eq!(owed.len(), 1);
        assert_eq!(owed[0].state, DeliveryState::Delivered);
        store
            .mark_reported(&[(owed[0].message_id, owed[0].agent.clone())], 3)
            .unwrap();
        assert!(store.unreported(10).unwrap().is_empty());
        // Handed again after it ended: nothing new, the outcome owed again.
        assert_eq!(store.accept_handed(&[h], 4).unwrap(), 0);
        assert_eq!(store.unreported(10).unwrap().len(), 1);
    }

    #[test]
    fn the_hub_records_a_remote_outcome_once() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("acp.db")).unwrap();
        let m = message("Agent-2");
        store
            .accept(&[&Submission {
                message: m.clone(),
                via: Via::Auto,
                to: vec![crate::model::Destination::Agent("Agent-2".parse().unwrap())],
                audit: None,
            }])
            .unwrap();
        let claimed = store.claim("hub", now_ms(), 10, None, false).unwrap();
        store
            .record(
                "hub",
                &[Outcome {
                    delivery_id: claimed[0].delivery_id,
                    tried: vec![],
                    state: OutcomeState::Forwarded {
                        node: "desk-2".parse().unwrap(),
                        detail: "handed to desk-2".into(),
                    },
                }],
            )
            .unwrap();
        assert!(store.claim_owners("hub").unwrap().is_empty(), "not a lease");
        assert_eq!(store.held_by_nodes().unwrap(), [("desk-2".into(), 1)]);
        let outcome = RemoteOutcome {
            message_id: m.id,
            agent: "Agent-2".parse().unwrap(),
            state: DeliveryState::Delivered,
            method: Some(MethodName::Inbox),
            detail: Some("inbox/x.md".into()),
            attempts: vec![RemoteAttempt {
                attempt: 1,
                method: MethodName::Inbox,
                started_at: 1,
                finished_at: 2,
                outcome: AttemptOutcome::Ok,
                error: None,
            }],
        };
        let recorded = store.record_remote(&[("desk-2", &outcome)], 5).unwrap();
        assert!(recorded[0].is_some());
        // Reported twice: recorded once.
        assert!(store.record_remote(&[("desk-2", &outcome)], 6).unwrap()[0].is_none());
        let d = &store.deliveries_of(m.id).unwrap()[0];
        assert_eq!(d.summary(), "delivered by inbox on desk-2");
        assert_eq!(d.tried.len(), 1);
        assert!(store.held_by_nodes().unwrap().is_empty());
    }
}
