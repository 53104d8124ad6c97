//! Agents' states, prompts and decisions carried between machines
//! (`[cluster]`). A node reads from its store what the hub has not been
//! told yet (each state change, each prompt, what each prompt's agent
//! finally got) and marks it told once JetStream has it; the hub stores a
//! node's prompt under the node's own id, once however often it arrives,
//! and sends each decision it keeps back to the node until told it went.
//! Both ends decide a prompt with the same conditional update: whichever
//! decision a store kept first stays there.
//!
//! - [`node`]: what a node owes the hub, and the hub's decisions applied.
//! - [`hub`]: nodes' prompts and states taken, decisions owed to nodes.

mod hub;
mod node;

use serde::{Deserialize, Serialize};

use crate::model::{AgentId, AgentState, Decided, Decision, Prompt};

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

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The state the agent is in after `decision`: a dialog left up still
/// waits for a person.
pub(super) fn after(decision: Decision) -> AgentState {
    if decision == Decision::Expired {
        AgentState::NeedsApproval
    } else {
        AgentState::Working
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PromptId;
    use crate::model::PromptSource;
    use crate::store::Store;
    use crate::store::attention::Decide;

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
