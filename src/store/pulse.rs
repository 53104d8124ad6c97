//! The pulse: each agent's newest activity, the signs of life the other
//! tables do not keep, and the quiet spells nudged. A spell is keyed by
//! its agent and the activity it follows, inserted with `ON CONFLICT DO
//! NOTHING` in the transaction that stores the nudge and the note to the
//! person: whichever loop (or restart) gets there first nudges it, once.
//!
//! A spell nudged covers every spell that starts no later: activity only
//! moves forward, except when retention removes an old message, and that
//! must not open an old spell again.
//!
//! What the pulse sends is not the agent's activity: the nudge comes from
//! [`PULSE_SENDER`], and the note to the person, though it is posted as
//! the agent's (to reach its thread), is named in `pulses`.

use rusqlite::{OptionalExtension, params};

use super::queue::{Submission, insert_submissions};
use super::{Store, StoreError};

/// The sender of the pulse's nudges.
pub const PULSE_SENDER: &str = "pulse";

/// Where an agent's newest activity was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A message was delivered to it.
    Delivered,
    /// It sent a message (a reply, a report, a devlog posted).
    Sent,
    /// It acknowledged a message.
    Acked,
    /// It moved into this state (a hook, its pane, a decision).
    State(String),
    /// A sign of life with no row elsewhere: `pane` (its tmux pane
    /// changed), `hook:EVENT` (a hook event that left the state as it
    /// was).
    Seen(String),
}

impl Source {
    /// In words: "a message delivered to it".
    #[must_use]
    pub fn said(&self) -> String {
        match self {
            Self::Delivered => "a message delivered to it".into(),
            Self::Sent => "a message from it".into(),
            Self::Acked => "an ack from it".into(),
            Self::State(state) => format!("its move to {state}"),
            Self::Seen(e) if e == "pane" => "its pane changing".into(),
            Self::Seen(e) => format!("{} hook event", e.trim_start_matches("hook:")),
        }
    }
}

/// An agent's newest activity: when, and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastActivity {
    pub at: i64,
    pub source: Source,
}

/// A quiet spell that was nudged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulse {
    /// The activity the spell follows (0: none was ever seen).
    pub spell_from: i64,
    /// When it was nudged.
    pub at: i64,
    /// The nudge.
    pub message_id: String,
}

impl Store {
    /// `agent`'s newest activity, if any: a delivery to it, a message or
    /// an ack from it, a state change, a sign of life; never what the
    /// pulse sent.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn last_activity(&self, agent: &str) -> Result<Option<LastActivity>, StoreError> {
        self.read(|tx| {
            let row = tx
                .prepare_cached(
                    "SELECT \
                     (SELECT d.updated_at FROM deliveries d JOIN messages m ON m.id = d.message_id \
                      WHERE d.agent = ?1 AND d.state = 'delivered' AND m.sender <> ?2 \
                      ORDER BY d.updated_at DESC LIMIT 1), \
                     (SELECT m.created_at FROM messages m WHERE m.sender = ?1 AND NOT EXISTS \
                      (SELECT 1 FROM pulses p WHERE p.note_id = m.id) \
                      ORDER BY m.created_at DESC LIMIT 1), \
                     (SELECT acked_at FROM acks WHERE agent = ?1 AND acked_by = ?1 \
                      ORDER BY acked_at DESC LIMIT 1), \
                     s.since, s.state, e.at, e.evidence \
                     FROM (SELECT 1) LEFT JOIN agent_states s ON s.agent = ?1 \
                     LEFT JOIN agent_seen e ON e.agent = ?1",
                )?
                .query_row(params![agent, PULSE_SENDER], |r| {
                    Ok((
                        r.get::<_, Option<i64>>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                })?;
            let (delivered, sent, acked, since, state, seen, evidence) = row;
            let found = [
                delivered.map(|at| (at, Source::Delivered)),
                sent.map(|at| (at, Source::Sent)),
                acked.map(|at| (at, Source::Acked)),
                since.zip(state).map(|(at, s)| (at, Source::State(s))),
                seen.zip(evidence).map(|(at, e)| (at, Source::Seen(e))),
            ];
            // The newest; of equal times, the first named.
            Ok(found
                .into_iter()
                .flatten()
                .fold(
                    None,
                    |best: Option<(i64, Source)>, (at, source)| match best {
                        Some((b, _)) if b >= at => best,
                        _ => Some((at, source)),
                    },
                )
                .map(|(at, source)| LastActivity { at, source }))
        })
    }

    /// Notes a sign of life of `agent` at `at` (`pane`, `hook:EVENT`)
    /// unless one was noted less than `every_ms` before: a busy agent
    /// writes at most once per `every_ms`. Returns whether it was noted.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn note_alive(
        &self,
        agent: &str,
        at: i64,
        evidence: &str,
        every_ms: i64,
    ) -> Result<bool, StoreError> {
        let last: Option<i64> = self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT at FROM agent_seen WHERE agent = ?1",
                    params![agent],
                    |r| r.get(0),
                )
                .optional()?)
        })?;
        if last.is_some_and(|last| at - last < every_ms) {
            return Ok(false);
        }
        self.write(|tx| {
            let n = tx.execute(
                "INSERT INTO agent_seen (agent, at, evidence) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (agent) DO UPDATE SET at = excluded.at, evidence = excluded.evidence \
                 WHERE excluded.at > agent_seen.at",
                params![agent, at, evidence],
            )?;
            Ok(n == 1)
        })
    }

    /// Whether `agent`'s spell after `spell_from` (or a later one) was
    /// nudged.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn pulsed(&self, agent: &str, spell_from: i64) -> Result<bool, StoreError> {
        self.read(|tx| {
            Ok(tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM pulses WHERE agent = ?1 AND spell_from >= ?2)",
                params![agent, spell_from],
                |r| r.get(0),
            )?)
        })
    }

    /// Nudges `agent`'s spell after `spell_from` once: records it and
    /// stores `nudge` (and `note`, which tells the person) in the same
    /// transaction. `false` when it (or a later one) was nudged already:
    /// nothing is stored then.
    ///
    /// # Errors
    /// [`StoreError`]; nothing is stored then.
    pub fn pulse(
        &self,
        agent: &str,
        spell_from: i64,
        at: i64,
        nudge: &Submission,
        note: Option<&Submission>,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx.execute(
                "INSERT INTO pulses (agent, spell_from, at, message_id, note_id) \
                 SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS \
                 (SELECT 1 FROM pulses WHERE agent = ?1 AND spell_from >= ?2) \
                 ON CONFLICT DO NOTHING",
                params![
                    agent,
                    spell_from,
                    at,
                    nudge.message.id.to_string(),
                    note.map(|n| n.message.id.to_string())
                ],
            )?;
            if n == 1 {
                let mut all = vec![nudge];
                all.extend(note);
                insert_submissions(tx, &all)?;
            }
            Ok(n == 1)
        })
    }

    /// `agent`'s newest nudged spell, if any.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn last_pulse(&self, agent: &str) -> Result<Option<Pulse>, StoreError> {
        self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT spell_from, at, message_id FROM pulses WHERE agent = ?1 \
                     ORDER BY spell_from DESC LIMIT 1",
                    params![agent],
                    |r| {
                        Ok(Pulse {
                            spell_from: r.get(0)?,
                            at: r.get(1)?,
                            message_id: r.get(2)?,
                        })
                    },
                )
                .optional()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AgentState, Destination, Draft, Kind, Priority, Recipient, Via};

    fn message(from: &str, to: Recipient, dest: Destination) -> Submission {
        let message = Draft {
            from: from.into(),
            to,
            kind: Kind::System,
            priority: Priority::Normal,
            body: "x".into(),
            tags: vec![],
            reply_to: None,
        }
        .build(1 << 16)
        .unwrap();
        Submission {
            message,
            via: Via::Auto,
            to: vec![dest],
            audit: None,
        }
    }

    fn to_agent(from: &str) -> Submission {
        message(
            from,
            Recipient::Agent("Agent-1".parse().unwrap()),
            Destination::Agent("Agent-1".parse().unwrap()),
        )
    }

    #[test]
    fn the_newest_activity_leaves_out_what_the_pulse_sent() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("acp.db")).unwrap();
        assert_eq!(store.last_activity("Agent-1").unwrap(), None);
        store
            .set_state("Agent-1", AgentState::Idle, "pane", None, None, 100)
            .unwrap();
        let got = store.last_activity("Agent-1").unwrap().unwrap();
        assert_eq!((got.at, got.source), (100, Source::State("idle".into())));
        // A message from the agent counts; the pulse's nudge to it and
        // its note to the person (posted as the agent's) do not.
        let mine = to_agent("Agent-1");
        store.accept(&[&mine]).unwrap();
        let got = store.last_activity("Agent-1").unwrap().unwrap();
        assert_eq!(
            (got.at, got.source),
            (mine.message.created_at, Source::Sent)
        );
        let nudge = to_agent(PULSE_SENDER);
        let note = message("Agent-1", Recipient::Discord, Destination::Discord);
        assert!(!store.pulsed("Agent-1", got.at).unwrap());
        assert!(
            store
                .pulse("Agent-1", got.at, 5, &nudge, Some(&note))
                .unwrap()
        );
        assert!(
            !store
                .pulse("Agent-1", got.at, 6, &to_agent(PULSE_SENDER), None)
                .unwrap(),
            "a spell is nudged once"
        );
        assert!(store.pulsed("Agent-1", got.at).unwrap());
        // An older spell (its last activity removed by retention) is
        // covered by the newer one nudged.
        assert!(store.pulsed("Agent-1", got.at - 50).unwrap());
        assert!(
            !store
                .pulse("Agent-1", got.at - 50, 7, &to_agent(PULSE_SENDER), None)
                .unwrap()
        );
        assert_eq!(store.last_activity("Agent-1").unwrap().unwrap().at, got.at);
        assert_eq!(
            store.last_pulse("Agent-1").unwrap().unwrap().message_id,
            nudge.message.id.to_string()
        );
        // Signs of life, at most one per `every_ms`.
        let later = got.at + 10_000;
        assert!(store.note_alive("Agent-1", later, "pane", 1000).unwrap());
        assert!(
            !store
                .note_alive("Agent-1", later + 10, "pane", 1000)
                .unwrap()
        );
        let got = store.last_activity("Agent-1").unwrap().unwrap();
        assert_eq!(
            (got.at, got.source.said()),
            (later, "its pane changing".into())
        );
    }
}
