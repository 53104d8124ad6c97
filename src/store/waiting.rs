//! What waits for a person, as the store keeps it: prompts due their one
//! reminder, the reminder itself (decided once, by a conditional update,
//! in the transaction that stores its post), whom that post may ping, and
//! when prompts were raised and decided, for the metrics.

use rusqlite::{OptionalExtension, params};

use crate::model::{Decision, Mentions, MessageId, Prompt, PromptId};

use super::attention::{PROMPT_COLUMNS, PromptRow, prompt_row};
use super::queue::{Submission, insert_submissions};
use super::{Store, StoreError};

/// When a prompt was raised and decided (for the metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTimes {
    pub id: PromptId,
    pub created_at: i64,
    /// The decision and when it was made, once decided.
    pub decided: Option<(Decision, i64)>,
}

/// Most prompts reminded of in one pass.
const DUE_BATCH: i64 = 50;

impl Store {
    /// Undecided prompts raised at or before `cutoff` whose post is on
    /// Discord and that nobody was reminded of yet, oldest first: each
    /// with its post's message id.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn prompts_to_mention(&self, cutoff: i64) -> Result<Vec<(Prompt, MessageId)>, StoreError> {
        let columns = PROMPT_COLUMNS
            .split(", ")
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {columns}, p.post_id FROM prompts p WHERE p.decided_at IS NULL AND \
                 p.mentioned_at IS NULL AND p.created_at <= ?1 AND p.post_id IS NOT NULL AND \
                 EXISTS (SELECT 1 FROM discord_posts d WHERE d.message_id = p.post_id) ORDER BY \
                 p.created_at LIMIT ?2"
            ))?;
            let rows = stmt
                .query_map(params![cutoff, DUE_BATCH], |r| {
                    Ok((prompt_row(r)?, r.get::<_, String>(16)?))
                })?
                .collect::<Result<Vec<(PromptRow, String)>, _>>()?;
            rows.into_iter()
                .map(|(p, post)| {
                    let post = post
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("prompt post id {post:?}")))?;
                    Ok((p.into_prompt()?, post))
                })
                .collect()
        })
    }

    /// Reminds people of prompt `id` once: marks it mentioned only if it
    /// is neither decided nor mentioned yet, and stores `post` (the
    /// reminder, which may ping `to`) in the same transaction. Returns
    /// whether this call did it; whoever else tries gets `false`.
    ///
    /// # Errors
    /// [`StoreError`]; nothing is stored then.
    pub fn mention(
        &self,
        id: PromptId,
        post: &Submission,
        to: &Mentions,
        now: i64,
    ) -> Result<bool, StoreError> {
        let to = serde_json::to_string(to)
            .map_err(|e| StoreError::Corrupt(format!("mentions not writable: {e}")))?;
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE prompts SET mentioned_at = ?1 WHERE id = ?2 AND mentioned_at IS NULL AND \
                 decided_at IS NULL",
                params![now, id.to_string()],
            )?;
            if changed == 0 {
                return Ok(false);
            }
            insert_submissions(tx, &[post])?;
            tx.execute(
                "UPDATE prompts SET mention_id = ?1, mention_to = ?2 WHERE id = ?3",
                params![post.message.id.to_string(), to, id.to_string()],
            )?;
            Ok(true)
        })
    }

    /// Whom `message` may ping: set only for a prompt's reminder; any
    /// other message pings nobody.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn mentions_of(&self, message: MessageId) -> Result<Option<Mentions>, StoreError> {
        let text: Option<String> = self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT mention_to FROM prompts WHERE mention_id = ?1",
                    params![message.to_string()],
                    |r| r.get(0),
                )
                .optional()?
                .flatten())
        })?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|_| StoreError::Corrupt(format!("mentions {t:?}")))
        })
        .transpose()
    }

    /// Prompts raised or decided at or after `since` (epoch ms).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn prompt_times(&self, since: i64) -> Result<Vec<PromptTimes>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT id, created_at, decision, decided_at FROM prompts WHERE created_at >= ?1 \
                 OR decided_at >= ?1",
            )?;
            let rows = stmt
                .query_map(params![since], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(id, created_at, decision, decided_at)| {
                    let decided = match (decision, decided_at) {
                        (Some(d), Some(at)) => Some((
                            d.parse::<Decision>()
                                .map_err(|e| StoreError::Corrupt(format!("decision {:?}", e.0)))?,
                            at,
                        )),
                        _ => None,
                    };
                    Ok(PromptTimes {
                        id: id
                            .parse()
                            .map_err(|_| StoreError::Corrupt(format!("prompt id {id:?}")))?,
                        created_at,
                        decided,
                    })
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        AgentId, AgentState, Decided, Destination, Draft, Kind, Priority, PromptSource, Recipient,
        Via,
    };
    use crate::store::discord::Posted;

    fn post(body: &str, reply_to: Option<MessageId>) -> Submission {
        Submission {
            message: Draft {
                from: "Agent-1".into(),
                to: Recipient::Discord,
                kind: Kind::Report,
                priority: Priority::Urgent,
                body: body.into(),
                tags: vec![],
                reply_to,
            }
            .build(1000)
            .unwrap(),
            via: Via::Auto,
            to: vec![Destination::Discord],
            audit: None,
        }
    }

    fn raise(store: &Store, at: i64) -> (Prompt, MessageId) {
        let prompt = Prompt {
            id: PromptId::generate(),
            agent: "Agent-1".parse::<AgentId>().unwrap(),
            source: PromptSource::Hook,
            tool: None,
            summary: "Bash: ls".into(),
            detail: "ls".into(),
            allow_session: false,
            choices: Vec::new(),
            fingerprint: None,
            answered: None,
            session: None,
            created_at: at,
            decided: None,
        };
        let carrier = post("needs approval", None);
        store
            .raise_prompt(&prompt, AgentState::NeedsApproval, Some(&carrier))
            .unwrap();
        (prompt, carrier.message.id)
    }

    #[test]
    fn a_waiting_prompt_is_mentioned_once_and_a_decided_one_never() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("acp.db")).unwrap();
        let to = Mentions {
            roles: vec![7],
            users: vec![],
        };
        let (waiting, waiting_post) = raise(&store, 1_000);
        let (decided, decided_post) = raise(&store, 1_000);
        // Not posted yet: not due, however old.
        assert!(store.prompts_to_mention(5_000).unwrap().is_empty());
        for message in [waiting_post, decided_post] {
            store
                .record_post(
                    message,
                    Posted {
                        part: 0,
                        channel_id: 5,
                        discord_id: 9,
                    },
                )
                .unwrap();
        }
        let answer = Decided {
            decision: Decision::Deny,
            by: "cli:bob".into(),
            at: 2_000,
            reason: None,
        };
        store.decide(decided.id, &answer, None).unwrap();
        // Too young at 999; due at 1000.
        assert!(store.prompts_to_mention(999).unwrap().is_empty());
        let due = store.prompts_to_mention(1_000).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0.id, waiting.id);
        assert_eq!(due[0].1, waiting_post);

        let first = post("<@&7> still waiting", Some(waiting_post));
        let second = post("<@&7> still waiting", Some(waiting_post));
        assert!(store.mention(waiting.id, &first, &to, 3_000).unwrap());
        assert!(!store.mention(waiting.id, &second, &to, 3_001).unwrap());
        // The loser's post was not stored; the winner's may ping `to`.
        assert!(store.message(second.message.id).unwrap().is_none());
        assert_eq!(
            store.mentions_of(first.message.id).unwrap(),
            Some(to.clone())
        );
        assert_eq!(store.mentions_of(waiting_post).unwrap(), None);
        assert!(!store.mention(decided.id, &second, &to, 3_002).unwrap());
        assert!(store.prompts_to_mention(10_000).unwrap().is_empty());

        let times = store.prompt_times(1_500).unwrap();
        assert_eq!(times.len(), 1);
        assert_eq!(times[0].decided, Some((Decision::Deny, 2_000)));
        assert_eq!(store.prompt_times(0).unwrap().len(), 2);
    }
}
