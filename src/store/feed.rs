//! The activity feed: one row per thing that happened to the swarm (a
//! message stored, a delivery's outcome, an acknowledgement, an agent's
//! state, a prompt raised or decided), written in the same transaction as
//! the change itself.
//!
//! Rows are numbered by `AUTOINCREMENT`, and SQLite runs one write
//! transaction at a time, so numbers are handed out in commit order and
//! never reused: a reader in any process that asks for the rows after the
//! last number it saw gets every row once, whatever it raced with. That is
//! what `acp watch` follows (events are in-process only; the store is the
//! record).

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::model::{
    AgentState, Decision, Kind, MessageId, MethodName, Priority, PromptId, UnifiedMessage,
};

use super::{Store, StoreError};

/// How long the feed keeps its rows (`acp watch --since` reaches back at
/// most this far).
pub const FEED_KEEP_MS: i64 = 7 * 24 * 3600 * 1000;

/// Longest body preview a `sent` row keeps, in characters.
const PREVIEW_CHARS: usize = 160;

/// One thing that happened, as the feed keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Activity {
    /// A message was stored (sent, an answer, a devlog, a post to
    /// Discord) with one delivery per recipient.
    Sent {
        message_id: MessageId,
        from: String,
        to: String,
        kind: Kind,
        priority: Priority,
        reply_to: Option<MessageId>,
        deliveries: usize,
        /// The body's start, on one line.
        preview: String,
    },
    /// A delivery succeeded.
    Delivered {
        message_id: MessageId,
        to: String,
        method: MethodName,
        detail: String,
        attempt: u32,
    },
    /// An attempt failed; the delivery is retried.
    Retrying {
        message_id: MessageId,
        to: String,
        attempt: u32,
        error: String,
    },
    /// A delivery failed for good.
    Failed {
        message_id: MessageId,
        to: String,
        attempts: u32,
        error: String,
    },
    /// A delivery was handed to the machine that runs the agent.
    Forwarded {
        message_id: MessageId,
        to: String,
        node: String,
    },
    /// A recipient acknowledged a message.
    Acked {
        message_id: MessageId,
        recipient: String,
        by: String,
    },
    /// An agent moved into a state.
    AgentState {
        agent: String,
        state: AgentState,
        evidence: String,
        detail: Option<String>,
    },
    /// An agent asks a person (a permission, a question).
    PromptRaised {
        prompt_id: PromptId,
        agent: String,
        summary: String,
    },
    /// A prompt got its decision (the first; later ones are refused).
    PromptDecided {
        prompt_id: PromptId,
        agent: String,
        decision: Decision,
        by: String,
    },
    /// A row this acp does not know (written by a newer one).
    #[serde(other)]
    Unknown,
}

impl Activity {
    /// The row's event name, as stored and in JSON.
    #[must_use]
    pub fn event(&self) -> &'static str {
        match self {
            Self::Sent { .. } => "sent",
            Self::Delivered { .. } => "delivered",
            Self::Retrying { .. } => "retrying",
            Self::Failed { .. } => "failed",
            Self::Forwarded { .. } => "forwarded",
            Self::Acked { .. } => "acked",
            Self::AgentState { .. } => "agent_state",
            Self::PromptRaised { .. } => "prompt_raised",
            Self::PromptDecided { .. } => "prompt_decided",
            Self::Unknown => "unknown",
        }
    }

    /// A stored message, with `deliveries` recipients.
    #[must_use]
    pub fn sent(m: &UnifiedMessage, deliveries: usize) -> Self {
        let flat: String = m
            .body
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut preview: String = flat.trim().chars().take(PREVIEW_CHARS).collect();
        if flat.trim().chars().count() > PREVIEW_CHARS {
            preview.push('…');
        }
        Self::Sent {
            message_id: m.id,
            from: m.from.clone(),
            to: m.to.to_string(),
            kind: m.kind,
            priority: m.priority,
            reply_to: m.reply_to,
            deliveries,
            preview,
        }
    }
}

/// One row of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedEntry {
    /// Its place in the feed: larger is later.
    pub seq: i64,
    /// When it was written.
    #[serde(with = "crate::model::time::ms")]
    pub at: i64,
    #[serde(flatten)]
    pub activity: Activity,
}

/// Appends a row inside the caller's write transaction.
pub(crate) fn append(
    tx: &rusqlite::Transaction<'_>,
    at: i64,
    activity: &Activity,
) -> Result<(), StoreError> {
    let data = serde_json::to_string(activity)
        .map_err(|e| StoreError::Corrupt(format!("activity not written as JSON: {e}")))?;
    tx.prepare_cached("INSERT INTO activity (at, event, data) VALUES (?1, ?2, ?3)")?
        .execute(params![at, activity.event(), data])?;
    Ok(())
}

impl Store {
    /// The last row's number (0 for an empty feed): following from here
    /// shows what happens from now on.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn feed_head(&self) -> Result<i64, StoreError> {
        self.read(|tx| {
            Ok(
                tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM activity", [], |r| {
                    r.get(0)
                })?,
            )
        })
    }

    /// The number just before the first row written at or after `at`
    /// (the head if there is none): following from there replays what
    /// happened since.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn feed_before(&self, at: i64) -> Result<i64, StoreError> {
        self.read(|tx| {
            let first: Option<i64> =
                tx.query_row("SELECT MIN(seq) FROM activity WHERE at >= ?1", [at], |r| {
                    r.get(0)
                })?;
            match first {
                Some(seq) => Ok(seq - 1),
                None => Ok(tx.query_row(
                    "SELECT COALESCE(MAX(seq), 0) FROM activity",
                    [],
                    |r| r.get(0),
                )?),
            }
        })
    }

    /// Up to `limit` rows after number `after`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn feed_after(&self, after: i64, limit: usize) -> Result<Vec<FeedEntry>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT seq, at, data FROM activity WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(
                    params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?)),
                )?
                .collect::<Result<Vec<(i64, i64, String)>, _>>()?;
            Ok(rows
                .into_iter()
                .map(|(seq, at, data)| FeedEntry {
                    seq,
                    at,
                    activity: serde_json::from_str(&data).unwrap_or(Activity::Unknown),
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Destination, Recipient};
    use crate::store::{Submission, test_submission};

    fn submission(body: &str) -> Submission {
        let agent = || "Agent-1".parse().unwrap();
        let to = vec![Destination::Agent(agent())];
        test_submission(
            "person:alice",
            Recipient::Agent(agent()),
            Kind::Human,
            body,
            to,
        )
    }

    #[test]
    fn the_feed_is_read_in_commit_order_from_a_cursor_and_pruned_by_age() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("acp.db")).unwrap();
        assert_eq!(store.feed_head().unwrap(), 0);
        store.accept(&[&submission("one\nline two")]).unwrap();
        let head = store.feed_head().unwrap();
        store
            .accept(&[&submission("two"), &submission("three")])
            .unwrap();
        let rows = store.feed_after(head, 10).unwrap();
        let previews: Vec<&str> = rows
            .iter()
            .map(|r| match &r.activity {
                Activity::Sent { preview, .. } => preview.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(previews, ["two", "three"]);
        assert!(rows[0].seq < rows[1].seq);
        let all = store.feed_after(0, 10).unwrap();
        assert!(
            matches!(&all[0].activity, Activity::Sent { preview, .. } if preview == "one line two")
        );
        assert!(store.feed_after(rows[1].seq, 10).unwrap().is_empty());
        assert_eq!(store.feed_before(0).unwrap(), 0);
        assert_eq!(store.feed_before(i64::MAX).unwrap(), rows[1].seq);
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["event"], "sent");
        assert_eq!(json["from"], "person:alice");
        // Retention takes the feed's old rows, a batch at a time.
        let prune = |before| {
            store
                .prune_records(i64::MIN, None, before, 2)
                .unwrap()
                .activity
        };
        assert_eq!(prune(0), 0);
        assert_eq!(prune(i64::MAX), 2);
        assert_eq!(prune(i64::MAX), 1);
        assert!(store.feed_after(0, 10).unwrap().is_empty());
        // Numbers are never handed out again, even after a prune.
        store.accept(&[&submission("four")]).unwrap();
        assert!(store.feed_head().unwrap() > rows[1].seq);
    }
}
