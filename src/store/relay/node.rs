//! A node's side: what the hub has not been told yet, and the hub's
//! decisions applied with the same conditional update as any door.

use rusqlite::{OptionalExtension, params};

use crate::model::{AgentId, AgentState, AuditOutcome, Decided, Decision, PromptId};

use super::super::attention::{Decide, PROMPT_COLUMNS, PromptRow, decide_in, prompt_row};
use super::super::roles::audit;
use super::super::{Store, StoreError};
use super::{Owed, StateReport, limit_of};

/// A prompt whose decision is final on its machine: decided, and for a
/// pane's dialog, its key given (or no key to give).
const FINAL: &str = "decided_at IS NOT NULL AND (source <> 'pane' OR answered IS NOT NULL OR \
                     decision IN ('at_terminal', 'expired'))";

/// A transition row: id, agent, state, at, evidence, detail.
type TransitionRow = (i64, String, String, i64, String, Option<String>);

impl Store {
    /// On a node: what the hub has not been told yet about `agents` (this
    /// machine's), oldest first, at most `limit` of each kind.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn attention_owed(&self, agents: &[String], limit: usize) -> Result<Vec<Owed>, StoreError> {
        let agents = serde_json::to_string(agents).unwrap_or_else(|_| "[]".into());
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT id, agent, state, at, evidence, detail FROM agent_transitions WHERE \
                 reported_at IS NULL AND agent IN (SELECT value FROM json_each(?1)) ORDER BY id \
                 LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![agents, limit_of(limit)], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })?
                .collect::<Result<Vec<TransitionRow>, _>>()?;
            let corrupt = |what: &str, v: &str| StoreError::Corrupt(format!("{what} {v:?}"));
            let mut owed = Vec::with_capacity(rows.len());
            for (seq, agent, state, at, evidence, detail) in rows {
                // A prompt's and a decision's own moves: the hub makes them
                // when it takes the prompt or the decision.
                let send = evidence != "decision" && !evidence.ends_with(":prompt");
                owed.push(Owed::State {
                    report: StateReport {
                        agent: agent.parse().map_err(|_| corrupt("agent", &agent))?,
                        state: state.parse().map_err(|_| corrupt("agent state", &state))?,
                        evidence,
                        detail,
                        at,
                        seq,
                    },
                    send,
                });
            }
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {PROMPT_COLUMNS}, ({FINAL}) FROM prompts WHERE node IS NULL AND \
                 outcome_reported_at IS NULL AND agent IN (SELECT value FROM json_each(?1)) AND \
                 (reported_at IS NULL OR ({FINAL})) ORDER BY created_at LIMIT ?2"
            ))?;
            let rows = stmt
                .query_map(params![agents, limit_of(limit)], |r| {
                    Ok((prompt_row(r)?, r.get::<_, bool>(16)?))
                })?
                .collect::<Result<Vec<(PromptRow, bool)>, _>>()?;
            for (row, last) in rows {
                let mut prompt = row.into_prompt()?;
                if !last {
                    prompt.decided = None;
                    prompt.answered = None;
                }
                owed.push(Owed::Prompt { prompt, last });
            }
            owed.sort_by_key(Owed::at);
            Ok(owed)
        })
    }

    /// On a node: the hub has these state changes and prompts (`true`:
    /// their final report).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn attention_reported(
        &self,
        states: &[i64],
        prompts: &[(PromptId, bool)],
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut state =
                tx.prepare_cached("UPDATE agent_transitions SET reported_at = ?2 WHERE id = ?1")?;
            for id in states {
                state.execute(params![id, now])?;
            }
            let mut prompt = tx.prepare_cached(
                "UPDATE prompts SET reported_at = COALESCE(reported_at, ?3), outcome_reported_at \
                 = CASE WHEN ?2 THEN ?3 ELSE outcome_reported_at END WHERE id = ?1",
            )?;
            for (id, last) in prompts {
                prompt.execute(params![id.to_string(), last, now])?;
            }
            Ok(())
        })
    }

    /// On a node: applies the decision the hub kept on one of this
    /// machine's prompts, with the same conditional update as any other
    /// door (an answer at the terminal or a timeout that came first
    /// stays), audited when it wins. `NotFound` unless the prompt was
    /// raised here, for `agent`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn apply_hub_decision(
        &self,
        id: PromptId,
        agent: &AgentId,
        decided: &Decided,
        now: i64,
    ) -> Result<Decide, StoreError> {
        self.write(|tx| {
            let ours: Option<String> = tx
                .query_row(
                    "SELECT agent FROM prompts WHERE id = ?1 AND node IS NULL",
                    params![id.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            if ours.as_deref() != Some(agent.as_str()) {
                return Ok(Decide::NotFound);
            }
            let then = (decided.decision != Decision::Expired).then_some(AgentState::Working);
            let result = decide_in(tx, id, decided, then)?;
            if let Decide::Won(kept) = &result {
                audit(
                    tx,
                    now,
                    &kept.by,
                    &format!("prompt {}", kept.decision.as_str()),
                    Some(&id.to_string()),
                    AuditOutcome::Ok,
                    Some("decided on the hub"),
                )?;
            }
            Ok(result)
        })
    }
}
