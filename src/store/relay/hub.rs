//! The hub's side: a node's prompts under the node's own ids (each once),
//! its decisions recorded unless the hub decided first, its agents'
//! states in the node's own order, and the decisions owed to nodes.

use rusqlite::{OptionalExtension, params};

use crate::model::{AgentId, AgentState, Decided, Decision, Prompt, PromptId};

use super::super::attention::{insert_prompt, transition};
use super::super::queue::{Submission, insert_submissions};
use super::super::{Store, StoreError};
use super::{RemoteAnswer, RemoteTaken, after, limit_of};

/// Stores a new prompt from `node`, its post, and its agent's move to
/// `needs_approval`.
fn insert_remote(
    tx: &rusqlite::Transaction<'_>,
    node: &str,
    prompt: &Prompt,
    post: Option<&Submission>,
    now: i64,
) -> Result<(), StoreError> {
    if let Some(post) = post {
        insert_submissions(tx, &[post])?;
    }
    insert_prompt(tx, prompt, post, Some(node))?;
    // A new prompt is news even if the agent already waits on one.
    tx.execute(
        "DELETE FROM agent_states WHERE agent = ?1",
        params![prompt.agent.as_str()],
    )?;
    transition(
        tx,
        prompt.agent.as_str(),
        AgentState::NeedsApproval,
        &format!("{node} {}:prompt", prompt.source.as_str()),
        Some(&prompt.summary),
        now,
    )?;
    Ok(())
}

/// The node's decision on a prompt the hub holds: recorded (as the
/// node's) if the hub has none; else the hub keeps its own, and notes
/// `instead` when the node's differs.
fn answer_remote(
    tx: &rusqlite::Transaction<'_>,
    node: &str,
    prompt: &Prompt,
    reported: &Decided,
    instead: &str,
    now: i64,
) -> Result<RemoteAnswer, StoreError> {
    let id = prompt.id.to_string();
    let agent = prompt.agent.as_str();
    let recorded = Decided {
        by: format!("{node}:{}", reported.by),
        ..reported.clone()
    };
    let changed = tx.execute(
        "UPDATE prompts SET decision = ?2, decided_by = ?3, decided_at = ?4, reason = ?5, answered \
         = ?6, decision_sent_at = ?7 WHERE id = ?1 AND decided_at IS NULL",
        params![
            id,
            recorded.decision.as_str(),
            recorded.by,
            recorded.at,
            recorded.reason,
            prompt.answered,
            now
        ],
    )?;
    let evidence = format!("{node} decision");
    let said = Some(reported.decision.said());
    if changed == 1 {
        super::super::attention::decided_activity(tx, prompt, &recorded)?;
        transition(tx, agent, after(reported.decision), &evidence, said, now)?;
        return Ok(RemoteAnswer::Recorded(recorded));
    }
    let kept: Decided = tx.query_row(
        "SELECT decision, decided_by, decided_at, reason FROM prompts WHERE id = ?1",
        params![id],
        |r| {
            let decision: String = r.get(0)?;
            Ok(Decided {
                decision: decision.parse().unwrap_or(Decision::Expired),
                by: r.get(1)?,
                at: r.get(2)?,
                reason: r.get(3)?,
            })
        },
    )?;
    let hubs_own =
        kept.decision == reported.decision && kept.by == reported.by && kept.at == reported.at;
    if hubs_own || kept == recorded {
        // The hub's own decision came back with what was done at the
        // pane: the post can say it now.
        if let Some(answered) = &prompt.answered {
            tx.execute(
                "UPDATE prompts SET answered = ?2 WHERE id = ?1 AND answered IS NULL",
                params![id, answered],
            )?;
        }
        return Ok(RemoteAnswer::Same);
    }
    let noted = tx.execute(
        "UPDATE prompts SET answered = ?2, post_updated_at = NULL WHERE id = ?1 AND answered IS \
         NULL",
        params![id, instead],
    )?;
    if noted == 1 {
        transition(tx, agent, after(reported.decision), &evidence, said, now)?;
    }
    Ok(RemoteAnswer::Differs(kept))
}

/// A decision owed to a node: its node, prompt, agent, decision, by, at,
/// reason.
type DecisionRow = (String, String, String, String, String, i64, Option<String>);
impl Store {
    /// On the hub: takes a prompt `node` sent, under its own id, with its
    /// post (stored only the first time), in one transaction. If it comes
    /// with the node's decision, the hub records it unless it decided
    /// first; then it keeps its own and `instead` (what the agent got)
    /// goes on the post, which is edited again.
    ///
    /// # Errors
    /// [`StoreError`]; nothing is stored then.
    pub fn take_remote_prompt(
        &self,
        node: &str,
        prompt: &Prompt,
        post: Option<&Submission>,
        instead: &str,
        now: i64,
    ) -> Result<RemoteTaken, StoreError> {
        self.write(|tx| {
            let held: Option<(String, Option<String>)> = tx
                .query_row(
                    "SELECT agent, node FROM prompts WHERE id = ?1",
                    params![prompt.id.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let new = match held {
                Some((a, n)) if a == prompt.agent.as_str() && n.as_deref() == Some(node) => false,
                Some(_) => return Ok(RemoteTaken::Clash),
                None => {
                    insert_remote(tx, node, prompt, post, now)?;
                    true
                }
            };
            let answer = match &prompt.decided {
                Some(reported) => answer_remote(tx, node, prompt, reported, instead, now)?,
                None => RemoteAnswer::None,
            };
            Ok(RemoteTaken::Taken { new, answer })
        })
    }

    /// On the hub: decisions on other machines' prompts not yet sent to
    /// them, oldest first: (machine, prompt, agent, decision).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn decisions_owed(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, PromptId, AgentId, Decided)>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT node, id, agent, decision, decided_by, decided_at, reason FROM prompts \
                 WHERE node IS NOT NULL AND decision_sent_at IS NULL AND decided_at IS NOT NULL \
                 ORDER BY decided_at LIMIT ?1",
            )?;
            let rows = stmt
                .query_map([limit_of(limit)], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })?
                .collect::<Result<Vec<DecisionRow>, _>>()?;
            let corrupt = |what: &str, v: &str| StoreError::Corrupt(format!("{what} {v:?}"));
            rows.into_iter()
                .map(|(node, id, agent, decision, by, at, reason)| {
                    Ok((
                        node,
                        id.parse().map_err(|_| corrupt("prompt id", &id))?,
                        agent.parse().map_err(|_| corrupt("agent", &agent))?,
                        Decided {
                            decision: decision
                                .parse()
                                .map_err(|_| corrupt("decision", &decision))?,
                            by,
                            at,
                            reason,
                        },
                    ))
                })
                .collect()
        })
    }

    /// On the hub: these decisions reached their machines.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn decisions_sent(&self, ids: &[PromptId], now: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut stmt =
                tx.prepare_cached("UPDATE prompts SET decision_sent_at = ?2 WHERE id = ?1")?;
            for id in ids {
                stmt.execute(params![id.to_string(), now])?;
            }
            Ok(())
        })
    }

    /// On the hub: moves a node's agent to `state` as the node reported it
    /// (change number `seq` there), with `post` if it changed, unless a
    /// later change from the node is already here. Returns whether it
    /// moved.
    ///
    /// # Errors
    /// [`StoreError`]; nothing is stored then.
    #[expect(
        clippy::too_many_arguments,
        reason = "one row's fields, as set_state takes them, plus the node's order"
    )]
    pub fn set_state_from_node(
        &self,
        agent: &str,
        state: AgentState,
        evidence: &str,
        detail: Option<&str>,
        post: Option<&Submission>,
        seq: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let newest: Option<i64> = tx.query_row(
                "SELECT MAX(node_seq) FROM agent_transitions WHERE agent = ?1",
                params![agent],
                |r| r.get(0),
            )?;
            if newest.is_some_and(|n| n >= seq) {
                return Ok(false);
            }
            let moved = transition(tx, agent, state, evidence, detail, now)?;
            if moved {
                tx.execute(
                    "UPDATE agent_transitions SET node_seq = ?2 WHERE id = ?1",
                    params![tx.last_insert_rowid(), seq],
                )?;
                if let Some(post) = post {
                    insert_submissions(tx, &[post])?;
                }
            }
            Ok(moved)
        })
    }
}
