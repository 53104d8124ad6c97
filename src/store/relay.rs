//! Agents' states, prompts and decisions carried between machines
//! (`[cluster]`). A node reads from its store what the hub has not been
//! told yet (each state change, each prompt, what each prompt's agent
//! finally got) and marks it told once JetStream has it; the hub stores a
//! node's prompt under the node's own id, once however often it arrives,
//! and sends each decision it keeps back to the node until told it went.
//! Both ends decide a prompt with the same conditional update: whichever
//! decision a store kept first stays there.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::model::{AgentId, AgentState, AuditOutcome, Decided, Decision, Prompt, PromptId};

use super::attention::{Decide, PROMPT_COLUMNS, PromptRow, decide_in, prompt_row, transition};
use super::queue::{Submission, insert_submissions};
use super::roles::audit;
use super::{Store, StoreError};

/// An agent's state change on a node, as the hub is told it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StateReport {
    pub agent: AgentId,
    pub state: AgentState,
    /// Where the node saw it: `hook:Stop`, `pane`...
    pub evidence: String,
    pub detail: Option<String>,
    /// When, by the node's clock.
    #[serde(with = "crate::model::time::ms")]
    pub at: i64,
    /// The node's order of its changes: the hub never lets an older one
    /// undo a newer one (JetStream may redeliver late).
    pub seq: i64,
}

/// Something a node owes the hub, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owed {
    /// A state change. `send` is false for one a prompt or its decision
    /// already carries (the hub makes the same change): it is only marked.
    State { report: StateReport, send: bool },
    /// A prompt: as raised (`last` false: undecided, nothing of its
    /// decision), or final (`last`): the decision its agent got and, for a
    /// pane, what was done there.
    Prompt { prompt: Prompt, last: bool },
}

impl Owed {
    /// When it happened, by this machine's clock: the order it is sent in.
    #[must_use]
    pub fn at(&self) -> i64 {
        match self {
            Self::State { report, .. } => report.at,
            Self::Prompt { prompt, last } => match (&prompt.decided, last) {
                (Some(d), true) => d.at,
                _ => prompt.created_at,
            },
        }
    }
}

/// What the hub made of a node's decision on a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteAnswer {
    /// The node reported no decision (the prompt was just raised).
    None,
    /// The hub had none: the node's is now the hub's (its `by` names the
    /// node).
    Recorded(Decided),
    /// It is the hub's own decision (or was recorded before): nothing new.
    Same,
    /// The hub decided otherwise first and keeps that, noting what the
    /// agent got.
    Differs(Decided),
}

/// What became of a prompt a node sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteTaken {
    /// Its id names another prompt the hub holds (another agent's, or
    /// another machine's): not stored.
    Clash,
    Taken {
        /// First seen now (false: JetStream redelivered it, or it is the
        /// final report of a prompt already here).
        new: bool,
        answer: RemoteAnswer,
    },
}

/// A prompt whose decision is final on its machine: decided, and for a
/// pane's dialog, its key given (or no key to give).
const FINAL: &str = "decided_at IS NOT NULL AND (source <> 'pane' OR answered IS NOT NULL OR \
                     decision IN ('at_terminal', 'expired'))";

/// The state the agent is in after `decision`: a dialog left up still
/// waits for a person.
fn after(decision: Decision) -> AgentState {
    if decision == Decision::Expired {
        AgentState::NeedsApproval
    } else {
        AgentState::Working
    }
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A transition row: id, agent, state, at, evidence, detail.
type TransitionRow = (i64, String, String, i64, String, Option<String>);

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PromptSource;

    fn prompt(agent: &str) -> Prompt {
        Prompt {
            id: PromptId::generate(),
            agent: agent.parse().unwrap(),
            source: PromptSource::Hook,
            tool: Some("Bash".into()),
            summary: "Bash: make deploy".into(),
            detail: "make deploy".into(),
            allow_session: true,
            session: Some("s1".into()),
            choices: Vec::new(),
            fingerprint: None,
            answered: None,
            created_at: 10,
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

    fn open(dir: &tempfile::TempDir, name: &str) -> Store {
        Store::open(&dir.path().join(name)).unwrap()
    }

    #[test]
    fn a_node_owes_each_prompt_once_raised_and_once_final_and_its_states_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let node = open(&tmp, "node.db");
        let mine = vec!["Agent-2".to_owned()];
        let p = prompt("Agent-2");
        node.raise_prompt(&p, AgentState::NeedsApproval, None)
            .unwrap();
        node.set_state("Agent-2", AgentState::Done, "hook:Stop", None, None, 20)
            .unwrap();
        // Another machine's agent is not this node's to report.
        node.set_state("Agent-4", AgentState::Done, "hook:Stop", None, None, 21)
            .unwrap();
        let owed = node.attention_owed(&mine, 10).unwrap();
        assert_eq!(owed.len(), 3, "{owed:?}");
        assert!(matches!(&owed[0], Owed::State { send: false, .. }));
        assert!(matches!(&owed[1], Owed::Prompt { last: false, .. }));
        let Owed::State { report, send: true } = &owed[2] else {
            panic!("{owed:?}")
        };
        assert_eq!(report.state, AgentState::Done);
        let seqs: Vec<i64> = owed
            .iter()
            .filter_map(|o| match o {
                Owed::State { report, .. } => Some(report.seq),
                Owed::Prompt { .. } => None,
            })
            .collect();
        node.attention_reported(&seqs, &[(p.id, false)], 30)
            .unwrap();
        assert!(node.attention_owed(&mine, 10).unwrap().is_empty());
        // Decided: owed again, final, with its decision.
        node.decide(p.id, &decided(Decision::AtTerminal, "terminal", 40), None)
            .unwrap();
        let owed = node.attention_owed(&mine, 10).unwrap();
        let [Owed::Prompt { prompt, last: true }] = owed.as_slice() else {
            panic!("{owed:?}")
        };
        assert_eq!(
            prompt.decided.as_ref().unwrap().decision,
            Decision::AtTerminal
        );
        node.attention_reported(&[], &[(p.id, true)], 50).unwrap();
        assert!(node.attention_owed(&mine, 10).unwrap().is_empty());
    }

    #[test]
    fn the_hub_takes_a_prompt_once_and_keeps_the_first_decision_either_end_made() {
        let tmp = tempfile::tempdir().unwrap();
        let hub = open(&tmp, "hub.db");
        let node = open(&tmp, "node.db");
        let p = prompt("Agent-2");
        node.raise_prompt(&p, AgentState::NeedsApproval, None)
            .unwrap();
        let taken = |p: &Prompt| {
            hub.take_remote_prompt("desk-2", p, None, "note", 100)
                .unwrap()
        };
        assert_eq!(
            taken(&p),
            RemoteTaken::Taken {
                new: true,
                answer: RemoteAnswer::None
            }
        );
        assert_eq!(
            taken(&p),
            RemoteTaken::Taken {
                new: false,
                answer: RemoteAnswer::None
            }
        );
        // The same id from another machine, or for another agent: refused.
        assert_eq!(
            hub.take_remote_prompt("desk-3", &p, None, "", 100).unwrap(),
            RemoteTaken::Clash
        );
        let mut other = p.clone();
        other.agent = "Agent-3".parse().unwrap();
        assert_eq!(taken(&other), RemoteTaken::Clash);

        // The hub decides; it is owed to the node until sent.
        let press = decided(Decision::Allow, "discord:1:alice", 200);
        hub.decide(p.id, &press, Some(AgentState::Working)).unwrap();
        let owed = hub.decisions_owed(10).unwrap();
        assert_eq!(
            owed,
            [("desk-2".into(), p.id, p.agent.clone(), press.clone())]
        );
        hub.decisions_sent(&[p.id], 210).unwrap();
        assert!(hub.decisions_owed(10).unwrap().is_empty());

        // The node applies it (once), and reports it back: the same.
        let agent = p.agent.clone();
        assert!(matches!(
            node.apply_hub_decision(p.id, &agent, &press, 220).unwrap(),
            Decide::Won(_)
        ));
        assert!(matches!(
            node.apply_hub_decision(p.id, &agent, &press, 221).unwrap(),
            Decide::Already(_)
        ));
        let mut back = node.prompt(p.id).unwrap().unwrap();
        assert_eq!(back.decided.as_ref(), Some(&press));
        back.answered = None;
        assert_eq!(
            taken(&back),
            RemoteTaken::Taken {
                new: false,
                answer: RemoteAnswer::Same
            }
        );

        // A second prompt answered at the node's terminal first: the hub,
        // undecided, records it, naming the node, and owes nothing back.
        let q = prompt("Agent-2");
        taken(&q);
        let mut at_terminal = q.clone();
        at_terminal.decided = Some(decided(Decision::AtTerminal, "terminal", 300));
        let RemoteTaken::Taken {
            answer: RemoteAnswer::Recorded(d),
            ..
        } = taken(&at_terminal)
        else {
            panic!()
        };
        assert_eq!(d.by, "desk-2:terminal");
        assert!(hub.decisions_owed(10).unwrap().is_empty());
        assert_eq!(
            taken(&at_terminal),
            RemoteTaken::Taken {
                new: false,
                answer: RemoteAnswer::Same
            }
        );
    }

    #[test]
    fn the_hub_keeps_its_own_decision_over_a_nodes_later_report_and_notes_it() {
        let tmp = tempfile::tempdir().unwrap();
        let hub = open(&tmp, "hub.db");
        let node = open(&tmp, "node.db");
        let taken = |p: &Prompt| {
            hub.take_remote_prompt("desk-2", p, None, "note", 100)
                .unwrap()
        };
        // The hub decided first, the node timed out first: the hub keeps
        // its own, and the post is to say what the agent got.
        let r = prompt("Agent-2");
        taken(&r);
        let deny = decided(Decision::Deny, "cli:bob", 400);
        hub.decide(r.id, &deny, Some(AgentState::Working)).unwrap();
        hub.post_settled(r.id, 401).unwrap();
        let mut expired = r.clone();
        expired.decided = Some(decided(Decision::Expired, "acp", 390));
        assert_eq!(
            hub.take_remote_prompt("desk-2", &expired, None, "the agent got: expired", 410)
                .unwrap(),
            RemoteTaken::Taken {
                new: false,
                answer: RemoteAnswer::Differs(deny.clone())
            }
        );
        let held = hub.prompt(r.id).unwrap().unwrap();
        assert_eq!(held.decided.as_ref(), Some(&deny));
        assert_eq!(held.answered.as_deref(), Some("the agent got: expired"));
        // A node's decision on a prompt it never raised: not applied.
        let agent = r.agent.clone();
        assert_eq!(
            node.apply_hub_decision(PromptId::generate(), &agent, &deny, 500)
                .unwrap(),
            Decide::NotFound
        );
    }

    #[test]
    fn a_late_state_from_a_node_never_undoes_a_newer_one() {
        let tmp = tempfile::tempdir().unwrap();
        let hub = open(&tmp, "hub.db");
        let set = |state, seq| {
            hub.set_state_from_node("Agent-2", state, "desk-2 hook", None, None, seq, 1)
                .unwrap()
        };
        assert!(set(AgentState::Working, 5));
        assert!(set(AgentState::Done, 7));
        assert!(!set(AgentState::Working, 5), "redelivered late");
        assert!(!set(AgentState::Working, 6), "older than the newest");
        assert_eq!(hub.agent_states().unwrap()[0].state, AgentState::Done);
        assert!(set(AgentState::Working, 8));
    }
}
