//! Messages, deliveries and attempts: the durable queue.

use rusqlite::{OptionalExtension, Row, params};

use crate::model::{
    AttemptOutcome, DISCORD, DeliveryError, DeliveryState, Destination, MessageId, MethodName,
    NodeName, PERSON_PREFIX, PersonName, Priority, Recipient, UnifiedMessage, Via,
};

use super::feed::{Activity, append};
use super::{Store, StoreError};

/// A message to store, with the method choice and its recipients.
#[derive(Debug, Clone)]
pub struct Submission {
    pub message: UnifiedMessage,
    pub via: Via,
    /// One delivery is made per destination (each agent, or Discord).
    pub to: Vec<Destination>,
    /// An audit row written in the same transaction: (actor, action).
    pub audit: Option<(String, String)>,
}

/// One delivery handed to a dispatcher.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_id: i64,
    /// Attempts already made before this one.
    pub attempts: u32,
    /// Of those, the ones made since a person last queued it again
    /// (`acp retry`): what the retry budget and the backoff count.
    pub since_retry: u32,
    pub to: Destination,
    pub via: Via,
    pub message: UnifiedMessage,
}

/// One method tried during an attempt.
#[derive(Debug, Clone)]
pub struct TriedMethod {
    pub method: MethodName,
    pub started_at: i64,
    pub finished_at: i64,
    /// The detail on success, the error on failure.
    pub result: Result<String, DeliveryError>,
}

/// Where a delivery goes after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeState {
    Delivered {
        method: MethodName,
        detail: String,
    },
    /// Handed to the machine that runs the agent; it stays `delivering`
    /// until that machine's outcome comes back.
    Forwarded {
        node: NodeName,
        detail: String,
    },
    Retry {
        next_attempt_at: i64,
        error: String,
    },
    Failed {
        error: String,
    },
}

/// The result of one attempt at one delivery.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub delivery_id: i64,
    pub tried: Vec<TriedMethod>,
    pub state: OutcomeState,
}

/// What the feed says of an attempt's outcome (`attempt` is its number).
fn outcome_activity(
    message_id: MessageId,
    to: String,
    attempt: u32,
    state: &OutcomeState,
) -> Activity {
    match state {
        OutcomeState::Delivered { method, detail } => Activity::Delivered {
            message_id,
            to,
            method: *method,
            detail: detail.clone(),
            attempt,
        },
        OutcomeState::Forwarded { node, .. } => Activity::Forwarded {
            message_id,
            to,
            node: node.to_string(),
        },
        OutcomeState::Retry { error, .. } => Activity::Retrying {
            message_id,
            to,
            attempt,
            error: error.clone(),
        },
        OutcomeState::Failed { error } => Activity::Failed {
            message_id,
            to,
            attempts: attempt,
            error: error.clone(),
        },
    }
}

/// The columns [`message_from_row`] reads, in order.
pub(crate) const MESSAGE_COLUMNS: &str =
    "m.id, m.sender, m.recipient, m.kind, m.priority, m.body, m.tags, m.created_at, m.reply_to";

/// Reads a message from the columns of [`MESSAGE_COLUMNS`] starting at `at`.
pub(crate) fn message_from_row(row: &Row<'_>, at: usize) -> Result<UnifiedMessage, StoreError> {
    let corrupt = |what: &str, value: &str| StoreError::Corrupt(format!("{what} {value:?}"));
    let id: String = row.get(at)?;
    let recipient: String = row.get(at + 2)?;
    let kind: String = row.get(at + 3)?;
    let rank: i64 = row.get(at + 4)?;
    let tags: String = row.get(at + 6)?;
    let reply_to: Option<String> = row.get(at + 8)?;
    Ok(UnifiedMessage {
        id: id.parse().map_err(|_| corrupt("message id", &id))?,
        from: row.get(at + 1)?,
        to: match recipient.as_str() {
            "*" => Recipient::Broadcast,
            DISCORD => Recipient::Discord,
            person if person.starts_with(PERSON_PREFIX) => Recipient::Person(
                PersonName::from_sender(person).ok_or_else(|| corrupt("recipient", person))?,
            ),
            agent => Recipient::Agent(agent.parse().map_err(|_| corrupt("recipient", agent))?),
        },
        kind: kind.parse().map_err(|_| corrupt("kind", &kind))?,
        priority: Priority::from_rank(rank)
            .ok_or_else(|| corrupt("priority", &rank.to_string()))?,
        body: row.get(at + 5)?,
        tags: serde_json::from_str(&tags).map_err(|_| corrupt("tags", &tags))?,
        created_at: row.get(at + 7)?,
        reply_to: reply_to
            .map(|r| r.parse().map_err(|_| corrupt("reply_to", &r)))
            .transpose()?,
    })
}

/// A message row's columns and values, after `INSERT [OR IGNORE] INTO
/// messages`; [`insert_message`] binds them.
pub(crate) const MESSAGE_ROW: &str = "(id, sender, recipient, kind, priority, body, tags, \
                                      created_at, reply_to, via) VALUES (?1, ?2, ?3, ?4, ?5, \
                                      ?6, ?7, ?8, ?9, ?10)";

/// Runs a message insert prepared with [`MESSAGE_ROW`]. Returns how many
/// rows it wrote.
pub(crate) fn insert_message(
    stmt: &mut rusqlite::CachedStatement<'_>,
    m: &UnifiedMessage,
    via: Via,
) -> Result<usize, rusqlite::Error> {
    stmt.execute(params![
        m.id.to_string(),
        m.from,
        m.to.to_string(),
        m.kind.as_str(),
        m.priority.rank(),
        m.body,
        serde_json::to_string(&m.tags).unwrap_or_else(|_| "[]".into()),
        m.created_at,
        m.reply_to.map(|r| r.to_string()),
        via.as_str(),
    ])
}

/// Inserts messages and their deliveries inside a write transaction.
pub(crate) fn insert_submissions(
    tx: &rusqlite::Transaction<'_>,
    items: &[&Submission],
) -> Result<(), StoreError> {
    let mut message = tx.prepare_cached(&format!("INSERT INTO messages {MESSAGE_ROW}"))?;
    let mut insert_delivery = tx.prepare_cached(
        "INSERT INTO deliveries (message_id, agent, priority, state, next_attempt_at, \
         updated_at) VALUES (?1, ?2, ?3, 'queued', ?4, ?4)",
    )?;
    for Submission {
        message: m,
        via,
        to,
        audit,
    } in items.iter().copied()
    {
        let id = m.id.to_string();
        insert_message(&mut message, m, *via)?;
        for destination in to {
            insert_delivery.execute(params![
                id,
                destination.as_str(),
                m.priority.rank(),
                m.created_at
            ])?;
        }
        append(tx, super::now_ms(), &Activity::sent(m, to.len()))?;
        if let Some((actor, action)) = audit {
            super::roles::audit(
                tx,
                m.created_at,
                actor,
                action,
                Some(&id),
                crate::model::AuditOutcome::Ok,
                Some(&format!("to {}", m.to)),
            )?;
        }
    }
    Ok(())
}

impl Store {
    /// Stores messages and their per-agent deliveries in one transaction: when
    /// this returns, every one of them is on disk.
    ///
    /// # Errors
    /// [`StoreError`]; then none of them was stored.
    pub fn accept(&self, items: &[&Submission]) -> Result<(), StoreError> {
        self.write(|tx| insert_submissions(tx, items))
    }

    /// Claims up to `limit` queued deliveries that are due, highest priority
    /// first and oldest first within a priority, for dispatcher `owner`.
    /// With `only`, claims only deliveries of those messages; posts to
    /// Discord only `with_discord` (a dispatcher that can post them).
    ///
    /// # Errors
    /// [`StoreError`]; nothing is claimed then.
    pub fn claim(
        &self,
        owner: &str,
        now: i64,
        limit: usize,
        only: Option<&[MessageId]>,
        with_discord: bool,
    ) -> Result<Vec<Claimed>, StoreError> {
        let only_json = only.map(|ids| {
            serde_json::to_string(&ids.iter().map(ToString::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
        });
        self.write(|tx| {
            let sql = format!(
                "SELECT d.id, d.attempts, d.agent, m.via, d.attempts - d.retry_from, {MESSAGE_COLUMNS}
                 FROM deliveries d JOIN messages m ON m.id = d.message_id
                 WHERE d.state = 'queued' AND d.next_attempt_at <= ?1
                   AND (?3 IS NULL OR d.message_id IN (SELECT value FROM json_each(?3)))
                   AND (?4 OR d.agent != '@discord')
                 ORDER BY d.priority DESC, d.message_id, d.id
                 LIMIT ?2"
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![
                now,
                i64::try_from(limit).unwrap_or(i64::MAX),
                only_json,
                with_discord
            ])?;
            let mut claimed = Vec::new();
            while let Some(row) = rows.next()? {
                let to: String = row.get(2)?;
                let via: String = row.get(3)?;
                claimed.push(Claimed {
                    delivery_id: row.get(0)?,
                    attempts: row.get(1)?,
                    to: to
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("destination {to:?}")))?,
                    via: via
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("via {via:?}")))?,
                    since_retry: row.get(4)?,
                    message: message_from_row(row, 5)?,
                });
            }
            drop(rows);
            let mut mark = tx.prepare_cached(
                "UPDATE deliveries SET state = 'delivering', claimed_by = ?2, updated_at = ?3 \
                 WHERE id = ?1",
            )?;
            for c in &claimed {
                mark.execute(params![c.delivery_id, owner, now])?;
            }
            Ok(claimed)
        })
    }

    /// Puts claimed deliveries that were never attempted back in the queue
    /// (on shutdown).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn release(&self, owner: &str, delivery_ids: &[i64]) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE deliveries SET state = 'queued', claimed_by = NULL WHERE id = ?1 AND \
                 state = 'delivering' AND claimed_by = ?2",
            )?;
            for id in delivery_ids {
                stmt.execute(params![id, owner])?;
            }
            Ok(())
        })
    }

    /// Records the outcomes of attempts made by `owner`, in one transaction.
    /// A delivery no longer claimed by `owner` is left alone.
    ///
    /// # Errors
    /// [`StoreError`]; nothing is recorded then, and the deliveries stay
    /// `delivering` until reclaimed.
    pub fn record(&self, owner: &str, outcomes: &[Outcome]) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut bump = tx.prepare_cached(
                "UPDATE deliveries SET attempts = attempts + 1 WHERE id = ?1 AND state = 'delivering' AND claimed_by = ?2
                 RETURNING attempts, message_id, agent",
            )?;
            let mut attempt = tx.prepare_cached(
                "INSERT INTO attempts (delivery_id, attempt, method, started_at, finished_at, outcome, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut update = tx.prepare_cached(
                "UPDATE deliveries SET state = ?2, method = ?3, detail = ?4, next_attempt_at = ?5, updated_at = ?6,
                        claimed_by = ?7, node = COALESCE(?8, node)
                 WHERE id = ?1",
            )?;
            let now = super::now_ms();
            for o in outcomes {
                let Some((n, message_id, to)): Option<(u32, String, String)> = bump
                    .query_row(params![o.delivery_id, owner], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()? else {
                    continue;
                };
                for t in &o.tried {
                    let (outcome, error) = match &t.result {
                        Ok(_) => (AttemptOutcome::Ok, None),
                        Err(e) => (AttemptOutcome::Failed(e.kind), Some(e.reason.as_str())),
                    };
                    attempt.execute(params![o.delivery_id, n, t.method, t.started_at, t.finished_at, outcome, error])?;
                }
                let (state, method, detail, next) = match &o.state {
                    OutcomeState::Delivered { method, detail } => (DeliveryState::Delivered, Some(*method), detail.as_str(), now),
                    OutcomeState::Forwarded { detail, .. } => (DeliveryState::Delivering, None, detail.as_str(), now),
                    OutcomeState::Retry { next_attempt_at, error } => (DeliveryState::Queued, None, error.as_str(), *next_attempt_at),
                    OutcomeState::Failed { error } => (DeliveryState::Failed, None, error.as_str(), now),
                };
                // A forwarded delivery is held by its machine until the
                // outcome comes back; no dispatcher lease stands for it.
                let (holder, node) = match &o.state {
                    OutcomeState::Forwarded { node, .. } => (Some(format!("{}{node}", super::cluster::NODE_HOLDER)), Some(node.as_str())),
                    _ => (None, None),
                };
                update.execute(params![o.delivery_id, state, method, detail, next, now, holder, node])?;
                let message_id: MessageId = message_id
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("message id {message_id:?}")))?;
                append(tx, now, &outcome_activity(message_id, to, n, &o.state))?;
            }
            Ok(())
        })
    }

    /// Owners holding deliveries in `delivering`, other than `me`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub(crate) fn claim_owners(&self, me: &str) -> Result<Vec<String>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT DISTINCT claimed_by FROM deliveries WHERE state = 'delivering' AND \
                 claimed_by IS NOT NULL AND claimed_by != ?1 AND claimed_by NOT LIKE 'node:%'",
            )?;
            let owners = stmt
                .query_map([me], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(owners)
        })
    }

    /// Puts every delivery a dead dispatcher held back in the queue, to be
    /// resumed. Returns how many.
    ///
    /// # Errors
    /// [`StoreError`].
    pub(crate) fn requeue_owner(&self, owner: &str) -> Result<usize, StoreError> {
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE deliveries SET state = 'queued', claimed_by = NULL WHERE state = \
                 'delivering' AND claimed_by = ?1",
                [owner],
            )?)
        })
    }

    /// When the earliest queued delivery is due, if any (posts to Discord
    /// counted only `with_discord`).
    ///
    /// # Errors
    /// [`StoreError`].
    pub(crate) fn next_due(&self, with_discord: bool) -> Result<Option<i64>, StoreError> {
        self.read(|tx| {
            Ok(tx.query_row(
                "SELECT MIN(next_attempt_at) FROM deliveries WHERE state = 'queued' AND (?1 OR \
                 agent != '@discord')",
                [with_discord],
                |r| r.get(0),
            )?)
        })
    }

    /// A stored message by id.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn message(&self, id: MessageId) -> Result<Option<UnifiedMessage>, StoreError> {
        self.read(|tx| {
            let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?1");
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut rows = stmt.query([id.to_string()])?;
            match rows.next()? {
                Some(row) => Ok(Some(message_from_row(row, 0)?)),
                None => Ok(None),
            }
        })
    }
}
