//! The inbound webhooks' ledger: each delivery id a hook sent (so a
//! redelivered event is handled once), and a hash of each body it sent
//! lately (so a signed body sent again under a new delivery id, a replay,
//! is refused). Both are written in the same transaction as the message
//! the event made.

use rusqlite::{OptionalExtension, params};

use crate::model::MessageId;

use super::queue::{Submission, insert_submissions};
use super::{Store, StoreError};

/// What the ledger knew of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookSeen {
    /// New: its message (if any) and its records are stored.
    New,
    /// This delivery id came before; it made this message (if any).
    Duplicate(Option<MessageId>),
    /// This body came before, under another delivery id, at `received_at`
    /// (ms): nothing is stored.
    Replay { received_at: i64 },
}

impl Store {
    /// Stores a webhook event's message with its delivery id and its
    /// body's hash, unless the delivery id is known (a redelivery) or the
    /// same body came from the same source at or after `since` (ms), under
    /// another id (a replay). Body hashes older than `since` are forgotten.
    ///
    /// # Errors
    /// [`StoreError`]; nothing is stored then.
    pub fn accept_hook(
        &self,
        source: &str,
        delivery_id: &str,
        body_hash: &str,
        since: i64,
        submission: Option<&Submission>,
    ) -> Result<HookSeen, StoreError> {
        self.write(|tx| {
            let known: Option<Option<String>> = tx
                .query_row(
                    "SELECT message_id FROM hook_deliveries WHERE source = ?1 AND delivery_id = ?2",
                    params![source, delivery_id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = known {
                return Ok(HookSeen::Duplicate(id.and_then(|i| i.parse().ok())));
            }
            tx.execute(
                "DELETE FROM hook_bodies WHERE received_at < ?1",
                params![since],
            )?;
            let seen: Option<i64> = tx
                .query_row(
                    "SELECT received_at FROM hook_bodies WHERE source = ?1 AND body_hash = ?2",
                    params![source, body_hash],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(received_at) = seen {
                return Ok(HookSeen::Replay { received_at });
            }
            if let Some(s) = submission {
                insert_submissions(tx, &[s])?;
            }
            let message_id = submission.map(|s| s.message.id.to_string());
            let now = super::now_ms();
            tx.execute(
                "INSERT INTO hook_deliveries (source, delivery_id, message_id, received_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![source, delivery_id, message_id, now],
            )?;
            tx.execute(
                "INSERT INTO hook_bodies (source, body_hash, message_id, received_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![source, body_hash, message_id, now],
            )?;
            Ok(HookSeen::New)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Destination, Draft, Kind, Priority, Recipient, Via};

    fn submission() -> Submission {
        let message = Draft {
            from: "hook:ci".into(),
            to: Recipient::Agent("Agent-1".parse().unwrap()),
            kind: Kind::System,
            priority: Priority::Normal,
            body: "CI failed".into(),
            tags: vec![],
            reply_to: None,
        }
        .build(1024)
        .unwrap();
        Submission {
            message,
            via: Via::Auto,
            to: vec![Destination::Agent("Agent-1".parse().unwrap())],
            audit: None,
        }
    }

    #[test]
    fn a_redelivery_is_a_duplicate_and_a_replayed_body_stores_nothing_within_the_window() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("acp.db")).unwrap();
        let first = submission();
        let seen = |id: &str, since: i64, s: &Submission| {
            store
                .accept_hook("hook:ci", id, "h1", since, Some(s))
                .unwrap()
        };
        assert_eq!(seen("d1", 0, &first), HookSeen::New);
        assert_eq!(
            seen("d1", 0, &submission()),
            HookSeen::Duplicate(Some(first.message.id))
        );
        assert!(matches!(
            seen("d2", 0, &submission()),
            HookSeen::Replay { .. }
        ));
        // The same body from another source is its own.
        let other = store
            .accept_hook("hook:github", "d2", "h1", 0, Some(&submission()))
            .unwrap();
        assert_eq!(other, HookSeen::New);
        let messages: i64 = store
            .read(|tx| Ok(tx.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(messages, 2);
        // Past the window the body is forgotten.
        assert_eq!(seen("d3", i64::MAX, &submission()), HookSeen::New);
    }
}
