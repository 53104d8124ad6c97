//! Agents' states and prompts. A state change and the post that announces
//! it are written in one transaction, so a person is told once; a prompt
//! gets exactly one decision, by a conditional update, and every door then
//! reports the one the store kept.

use rusqlite::{OptionalExtension, params};

use crate::model::{AgentState, Decided, Decision, MessageId, Prompt, PromptId, PromptSource};

use super::queue::{Submission, insert_submissions};
use super::{Store, StoreError};

/// An agent's state as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StateRow {
    pub agent: String,
    pub state: AgentState,
    #[serde(with = "crate::model::time::ms")]
    pub since: i64,
    /// Where it was seen: `hook:Stop`, `pane`, `decision`...
    pub evidence: String,
    /// What goes with it: the last words, the prompt's summary.
    pub detail: Option<String>,
}

/// What a decision attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decide {
    /// This attempt decided it.
    Won(Decided),
    /// Someone decided first: this is theirs.
    Already(Decided),
    /// No such prompt.
    NotFound,
}

pub(super) const PROMPT_COLUMNS: &str = "id, agent, source, tool, summary, detail, allow_session, \
                                         session, created_at, decision, decided_by, decided_at, \
                                         reason, choices, fingerprint, answered";

fn corrupt(what: &str) -> impl Fn(String) -> StoreError + '_ {
    move |v| StoreError::Corrupt(format!("{what} {v:?}"))
}

pub(super) fn prompt_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PromptRow> {
    Ok(PromptRow {
        id: r.get(0)?,
        agent: r.get(1)?,
        source: r.get(2)?,
        tool: r.get(3)?,
        summary: r.get(4)?,
        detail: r.get(5)?,
        allow_session: r.get(6)?,
        session: r.get(7)?,
        created_at: r.get(8)?,
        decision: r.get(9)?,
        decided_by: r.get(10)?,
        decided_at: r.get(11)?,
        reason: r.get(12)?,
        choices: r.get(13)?,
        fingerprint: r.get(14)?,
        answered: r.get(15)?,
    })
}

pub(super) struct PromptRow {
    id: String,
    agent: String,
    source: String,
    tool: Option<String>,
    summary: String,
    detail: String,
    allow_session: bool,
    session: Option<String>,
    created_at: i64,
    decision: Option<String>,
    decided_by: Option<String>,
    decided_at: Option<i64>,
    reason: Option<String>,
    choices: String,
    fingerprint: Option<String>,
    answered: Option<String>,
}

impl PromptRow {
    pub(super) fn into_prompt(self) -> Result<Prompt, StoreError> {
        let decided = match (self.decision, self.decided_at) {
            (Some(d), Some(at)) => Some(Decided {
                decision: d
                    .parse::<Decision>()
                    .map_err(|e| corrupt("decision")(e.0))?,
                by: self.decided_by.unwrap_or_default(),
                at,
                reason: self.reason,
            }),
            _ => None,
        };
        Ok(Prompt {
            id: self
                .id
                .parse()
                .map_err(|_| corrupt("prompt id")(self.id.clone()))?,
            agent: self
                .agent
                .parse()
                .map_err(|_| corrupt("agent")(self.agent.clone()))?,
            source: self
                .source
                .parse::<PromptSource>()
                .map_err(|e| corrupt("prompt source")(e.0))?,
            tool: self.tool,
            summary: self.summary,
            detail: self.detail,
            allow_session: self.allow_session,
            session: self.session,
            choices: serde_json::from_str(&self.choices)
                .map_err(|e| corrupt("prompt choices")(e.to_string()))?,
            fingerprint: self.fingerprint,
            answered: self.answered,
            created_at: self.created_at,
            decided,
        })
    }
}

/// Changes closer together than this are told in one post, edited.
pub const STATE_BURST_MS: i64 = 60_000;
/// The most earlier states one post keeps below its latest.
const BURST_TRAIL: usize = 5;

/// Tells a person of an agent's new state: a new post, or, within
/// [`STATE_BURST_MS`] of the agent's last state post, that post edited to
/// show the new state over the ones before (a burst of changes is one
/// message, not many).
fn announce(
    tx: &rusqlite::Transaction<'_>,
    agent: &str,
    post: &Submission,
    now: i64,
) -> Result<bool, StoreError> {
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT first_at, body FROM state_posts WHERE agent = ?1",
            params![agent],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let body = &post.message.body;
    if let Some((first_at, before)) = last
        && now - first_at < STATE_BURST_MS
    {
        let time = jiff::Timestamp::from_millisecond(now)
            .map_or_else(|_| now.to_string(), |t| t.strftime("%H:%M:%S").to_string());
        let mut lines: Vec<String> = before.lines().map(str::to_owned).collect();
        let head = lines.iter().take_while(|l| !l.starts_with("-# ")).count();
        let mut trail: Vec<String> = lines.split_off(head);
        trail.insert(
            0,
            format!(
                "-# before {time}: {}",
                lines.first().map_or("", String::as_str)
            ),
        );
        trail.truncate(BURST_TRAIL);
        let text = format!("{body}\n{}", trail.join("\n"));
        tx.execute(
            "UPDATE state_posts SET body = ?2, edit_owed = 1 WHERE agent = ?1",
            params![agent, text],
        )?;
        return Ok(false);
    }
    insert_submissions(tx, &[post])?;
    tx.execute(
        "INSERT INTO state_posts (agent, message_id, first_at, body, edit_owed) VALUES (?1, ?2, \
         ?3, ?4, 0) ON CONFLICT (agent) DO UPDATE SET message_id = ?2, first_at = ?3, body = ?4, \
         edit_owed = 0",
        params![agent, post.message.id.to_string(), now, body],
    )?;
    Ok(true)
}

/// Inserts a prompt (with its post's message id, and the machine it came
/// from when another one raised it).
pub(super) fn insert_prompt(
    tx: &rusqlite::Transaction<'_>,
    prompt: &Prompt,
    post: Option<&Submission>,
    node: Option<&str>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO prompts (id, agent, source, tool, summary, detail, allow_session, session, \
         created_at, post_id, choices, fingerprint, node) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
         ?9, ?10, ?11, ?12, ?13)",
        params![
            prompt.id.to_string(),
            prompt.agent.as_str(),
            prompt.source.as_str(),
            prompt.tool,
            prompt.summary,
            prompt.detail,
            prompt.allow_session,
            prompt.session,
            prompt.created_at,
            post.map(|p| p.message.id.to_string()),
            serde_json::to_string(&prompt.choices).unwrap_or_else(|_| "[]".into()),
            prompt.fingerprint,
            node,
        ],
    )?;
    super::feed::append(
        tx,
        super::now_ms(),
        &super::feed::Activity::PromptRaised {
            prompt_id: prompt.id,
            agent: prompt.agent.to_string(),
            summary: prompt.summary.clone(),
        },
    )?;
    Ok(())
}

/// The prompt whose `column` (`id` or `post_id`) is `value`, if any.
fn prompt_by(
    tx: &rusqlite::Transaction<'_>,
    column: &'static str,
    value: &str,
) -> Result<Option<Prompt>, StoreError> {
    tx.query_row(
        &format!("SELECT {PROMPT_COLUMNS} FROM prompts WHERE {column} = ?1"),
        params![value],
        prompt_row,
    )
    .optional()?
    .map(PromptRow::into_prompt)
    .transpose()
}

/// Moves `agent` to `state` unless it is there; returns whether it moved.
pub(super) fn transition(
    tx: &rusqlite::Transaction<'_>,
    agent: &str,
    state: AgentState,
    evidence: &str,
    detail: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let current: Option<String> = tx
        .query_row(
            "SELECT state FROM agent_states WHERE agent = ?1",
            params![agent],
            |r| r.get(0),
        )
        .optional()?;
    if current.as_deref() == Some(state.as_str()) {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO agent_states (agent, state, since, evidence, detail) VALUES (?1, ?2, ?3, ?4, \
         ?5) ON CONFLICT (agent) DO UPDATE SET state = ?2, since = ?3, evidence = ?4, detail = ?5",
        params![agent, state.as_str(), now, evidence, detail],
    )?;
    tx.execute(
        "INSERT INTO agent_transitions (agent, state, at, evidence, detail) VALUES (?1, ?2, ?3, \
         ?4, ?5)",
        params![agent, state.as_str(), now, evidence, detail],
    )?;
    super::feed::append(
        tx,
        now,
        &super::feed::Activity::AgentState {
            agent: agent.to_owned(),
            state,
            evidence: evidence.to_owned(),
            detail: detail.map(str::to_owned),
        },
    )?;
    Ok(true)
}

/// Writes a prompt's decision into the activity feed.
pub(super) fn decided_activity(
    tx: &rusqlite::Transaction<'_>,
    prompt: &Prompt,
    kept: &Decided,
) -> Result<(), StoreError> {
    super::feed::append(
        tx,
        super::now_ms(),
        &super::feed::Activity::PromptDecided {
            prompt_id: prompt.id,
            agent: prompt.agent.to_string(),
            decision: kept.decision,
            by: kept.by.clone(),
        },
    )
}

/// [`Store::decide`] inside a transaction.
pub(super) fn decide_in(
    tx: &rusqlite::Transaction<'_>,
    id: PromptId,
    decided: &Decided,
    then: Option<AgentState>,
) -> Result<Decide, StoreError> {
    let changed = tx.execute(
        "UPDATE prompts SET decision = ?2, decided_by = ?3, decided_at = ?4, reason = ?5 WHERE id \
         = ?1 AND decided_at IS NULL",
        params![
            id.to_string(),
            decided.decision.as_str(),
            decided.by,
            decided.at,
            decided.reason
        ],
    )?;
    let Some(prompt) = prompt_by(tx, "id", &id.to_string())? else {
        return Ok(Decide::NotFound);
    };
    let kept = prompt
        .decided
        .clone()
        .ok_or_else(|| StoreError::Corrupt(format!("prompt {id} has no decision")))?;
    if changed == 0 {
        return Ok(Decide::Already(kept));
    }
    decided_activity(tx, &prompt, &kept)?;
    if let Some(state) = then {
        transition(
            tx,
            prompt.agent.as_str(),
            state,
            "decision",
            Some(decided.decision.said()),
            decided.at,
        )?;
    }
    Ok(Decide::Won(kept))
}

impl Store {
    /// Moves an agent to `state` (with the evidence), and stores `post`
    /// (the message that tells a person) in the same transaction, only if
    /// the state changed. Returns whether it changed.
    ///
    /// # Errors
    /// [`StoreError`]; nothing is stored then.
    pub fn set_state(
        &self,
        agent: &str,
        state: AgentState,
        evidence: &str,
        detail: Option<&str>,
        post: Option<&Submission>,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.set_state_told(agent, state, evidence, detail, post, now)
            .map(|(moved, _)| moved)
    }

    /// [`Store::set_state`], saying also whether `post` was stored as a
    /// new message (false within a burst: the last state post is edited).
    ///
    /// # Errors
    /// [`StoreError`]; nothing is stored then.
    pub fn set_state_told(
        &self,
        agent: &str,
        state: AgentState,
        evidence: &str,
        detail: Option<&str>,
        post: Option<&Submission>,
        now: i64,
    ) -> Result<(bool, bool), StoreError> {
        self.write(|tx| {
            let moved = transition(tx, agent, state, evidence, detail, now)?;
            let posted = match post {
                Some(post) if moved => announce(tx, agent, post, now)?,
                _ => false,
            };
            Ok((moved, posted))
        })
    }

    /// State posts whose text changed after they were posted: (agent, the
    /// text, channel, Discord message id).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn state_posts_to_edit(&self) -> Result<Vec<(String, String, u64, u64)>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT s.agent, s.body, d.channel_id, d.discord_id FROM state_posts s JOIN \
                 discord_posts d ON d.message_id = s.message_id AND d.part = 0 WHERE \
                 s.edit_owed = 1",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                        u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// The state post of `agent` now shows `body` (unless it changed again
    /// meanwhile: then it is still owed).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn state_post_edited(&self, agent: &str, body: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE state_posts SET edit_owed = 0 WHERE agent = ?1 AND body = ?2",
                params![agent, body],
            )?;
            Ok(())
        })
    }

    /// Every agent's state.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn agent_states(&self) -> Result<Vec<StateRow>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT agent, state, since, evidence, detail FROM agent_states ORDER BY agent",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                    ))
                })?
                .collect::<Result<Vec<(String, String, i64, String, Option<String>)>, _>>()?;
            rows.into_iter()
                .map(|(agent, state, since, evidence, detail)| {
                    Ok(StateRow {
                        agent,
                        state: state.parse().map_err(
                            |e: crate::model::attention::UnknownName| corrupt("agent state")(e.0),
                        )?,
                        since,
                        evidence,
                        detail,
                    })
                })
                .collect()
        })
    }

    /// Stores a new prompt, the agent's move to `needs_approval` (or
    /// `asking`) and the post that carries the prompt's buttons, together.
    ///
    /// # Errors
    /// [`StoreError`]; nothing is stored then.
    pub fn raise_prompt(
        &self,
        prompt: &Prompt,
        state: AgentState,
        post: Option<&Submission>,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            // The post first: the prompt refers to it.
            if let Some(post) = post {
                insert_submissions(tx, &[post])?;
            }
            insert_prompt(tx, prompt, post, None)?;
            // A new prompt is news even if the agent already waits on one.
            tx.execute(
                "DELETE FROM agent_states WHERE agent = ?1",
                params![prompt.agent.as_str()],
            )?;
            transition(
                tx,
                prompt.agent.as_str(),
                state,
                &format!("{}:prompt", prompt.source.as_str()),
                Some(&prompt.summary),
                prompt.created_at,
            )?;
            Ok(())
        })
    }

    /// Decides a prompt, unless it is decided: one conditional update, so
    /// exactly one decision is ever kept. When this one wins, the agent
    /// moves to `then` (if given) in the same transaction.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn decide(
        &self,
        id: PromptId,
        decided: &Decided,
        then: Option<AgentState>,
    ) -> Result<Decide, StoreError> {
        self.write(|tx| decide_in(tx, id, decided, then))
    }

    /// One prompt.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn prompt(&self, id: PromptId) -> Result<Option<Prompt>, StoreError> {
        self.read(|tx| prompt_by(tx, "id", &id.to_string()))
    }

    /// The prompt whose post is `message`, if any.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn prompt_of_post(&self, message: MessageId) -> Result<Option<Prompt>, StoreError> {
        self.read(|tx| prompt_by(tx, "post_id", &message.to_string()))
    }

    /// Prompts not decided yet (of one agent, or all), oldest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn open_prompts(&self, agent: Option<&str>) -> Result<Vec<Prompt>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {PROMPT_COLUMNS} FROM prompts WHERE decided_at IS NULL AND (?1 IS NULL OR \
                 agent = ?1) ORDER BY created_at"
            ))?;
            let rows = stmt
                .query_map(params![agent], prompt_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(PromptRow::into_prompt).collect()
        })
    }

    /// Decided prompts whose post on Discord still shows its buttons:
    /// each with the post's (channel, Discord message id), once posted.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn posts_to_settle(&self) -> Result<Vec<(Prompt, u64, u64)>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {}, d.channel_id, d.discord_id FROM prompts p JOIN discord_posts d ON \
                 d.message_id = p.post_id AND d.part = 0 WHERE p.decided_at IS NOT NULL AND \
                 p.post_updated_at IS NULL AND (p.source <> 'pane' OR p.answered IS NOT NULL OR \
                 p.decision IN ('at_terminal', 'expired')) ORDER BY p.decided_at LIMIT 50",
                PROMPT_COLUMNS
                    .split(", ")
                    .map(|c| format!("p.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))?;
            let rows = stmt
                .query_map([], |r| Ok((prompt_row(r)?, r.get(16)?, r.get(17)?)))?
                .collect::<Result<Vec<(PromptRow, i64, i64)>, _>>()?;
            rows.into_iter()
                .map(|(p, channel, id)| {
                    Ok((
                        p.into_prompt()?,
                        u64::try_from(channel).unwrap_or(0),
                        u64::try_from(id).unwrap_or(0),
                    ))
                })
                .collect()
        })
    }

    /// Pane prompts raised on this machine, decided by a person, whose
    /// answer is not yet given at the pane (another machine's pane prompt
    /// is answered there).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn pane_answers_owed(&self) -> Result<Vec<Prompt>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {PROMPT_COLUMNS} FROM prompts WHERE source = 'pane' AND node IS NULL AND \
                 decided_at IS NOT NULL AND answered IS NULL AND decision IN ('allow', \
                 'allow_session', 'deny') ORDER BY decided_at"
            ))?;
            let rows = stmt
                .query_map([], prompt_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(PromptRow::into_prompt).collect()
        })
    }

    /// Records what was done at the pane for a decided prompt.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn pane_answered(&self, id: PromptId, what: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE prompts SET answered = ?2 WHERE id = ?1 AND answered IS NULL",
                params![id.to_string(), what],
            )?;
            Ok(())
        })
    }

    /// The prompt's post now shows its decision.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn post_settled(&self, id: PromptId, now: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE prompts SET post_updated_at = ?2 WHERE id = ?1",
                params![id.to_string(), now],
            )?;
            Ok(())
        })
    }

    /// Marks as seen by the agent each of its delivered messages that
    /// `text` (what it was just given to read) carries: by id, or by its
    /// whole body. Returns those newly marked.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn mark_seen(
        &self,
        agent: &str,
        text: &str,
        now: i64,
    ) -> Result<Vec<MessageId>, StoreError> {
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT d.id, m.id, m.body FROM deliveries d JOIN messages m ON m.id = d.message_id \
                 WHERE d.agent = ?1 AND d.state = 'delivered' AND d.seen_at IS NULL \
                 ORDER BY d.updated_at DESC LIMIT 100",
            )?;
            let rows = stmt
                .query_map(params![agent], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut seen = Vec::new();
            for (delivery, id, body) in rows {
                let body = body.trim();
                if text.contains(&id) || (!body.is_empty() && text.contains(body)) {
                    tx.execute(
                        "UPDATE deliveries SET seen_at = ?2 WHERE id = ?1",
                        params![delivery, now],
                    )?;
                    if let Ok(id) = id.parse() {
                        seen.push(id);
                    }
                }
            }
            Ok(seen)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AgentId;

    fn prompt(agent: &str) -> Prompt {
        Prompt {
            id: PromptId::generate(),
            agent: agent.parse::<AgentId>().unwrap(),
            source: PromptSource::Hook,
            tool: Some("Bash".into()),
            summary: "Bash: rm -rf build".into(),
            detail: "rm -rf build".into(),
            allow_session: true,
            session: Some("s1".into()),
            choices: Vec::new(),
            fingerprint: None,
            answered: None,
            created_at: 1,
            decided: None,
        }
    }

    fn decided(decision: Decision, by: &str, at: i64) -> Decided {
        Decided {
            decision,
            by: by.into(),
            at,
            reason: None,
        }
    }

    #[test]
    fn a_prompt_keeps_the_first_decision() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("acp.db")).unwrap();
        let p = prompt("Agent-1");
        store
            .raise_prompt(&p, AgentState::NeedsApproval, None)
            .unwrap();
        assert_eq!(
            store.agent_states().unwrap()[0].state,
            AgentState::NeedsApproval
        );
        let first = decided(Decision::Deny, "discord:1", 5);
        assert_eq!(
            store
                .decide(p.id, &first, Some(AgentState::Working))
                .unwrap(),
            Decide::Won(first.clone())
        );
        assert_eq!(
            store
                .decide(p.id, &decided(Decision::Allow, "cli:bob", 6), None)
                .unwrap(),
            Decide::Already(first)
        );
        assert_eq!(store.agent_states().unwrap()[0].state, AgentState::Working);
        assert!(store.open_prompts(None).unwrap().is_empty());
        assert_eq!(
            store
                .decide(
                    PromptId::generate(),
                    &decided(Decision::Allow, "x", 1),
                    None
                )
                .unwrap(),
            Decide::NotFound
        );
        // The same state again is no transition.
        assert!(
            !store
                .set_state("Agent-1", AgentState::Working, "hook", None, None, 7)
                .unwrap()
        );
        assert!(
            store
                .set_state("Agent-1", AgentState::Done, "hook", None, None, 8)
                .unwrap()
        );
    }
}
